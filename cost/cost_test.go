package cost

import (
	"bytes"
	"math"
	"os"
	"testing"

	"github.com/equarx/equarx/tpu"
)

func TestConstantsFileCopy(t *testing.T) {
	b, err := os.ReadFile("../configs/tpu/xla.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, xlaJSON) {
		t.Fatal("cost/xla.json differs from configs/tpu/xla.json: copy one over the other")
	}
}

// TestConstantsPlausible: every TPU profile has execution constants, each
// with a source and inside its documented plausible range (a fitted value
// outside it would mean the model, not the hardware, is off).
func TestConstantsPlausible(t *testing.T) {
	for _, name := range tpu.ProfileNames() {
		c, err := ConstantsOf(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		for k, v := range c.Named() {
			t.Logf("%s %s = %g [%g, %g] %s", name, k, v.Value, v.Min, v.Max, v.Origin)
		}
	}
	c, _ := ConstantsOf("v5e")
	c.ICIEfficiency.Value = 1.2
	if err := c.Validate(); err == nil {
		t.Error("ici_efficiency 1.2 (above its range) validated")
	}
}

func TestParseExec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Exec
		str  string
	}{
		{"baseline", Exec{}, "baseline"},
		{"", Exec{}, "baseline"},
		{"xla", XLA(), "xla"},
		{"bf16,fuse", Exec{BF16: true, Fuse: true}, "bf16,fuse"},
		{"xla,-fuse,-ici", Exec{BF16: true, MatmulCurve: true, FlashAttention: true, Overheads: true}, "bf16,curve,flash,overheads"},
	} {
		got, err := ParseExec(tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if got != tc.want || got.String() != tc.str {
			t.Errorf("%q: %+v (%s), want %+v (%s)", tc.in, got, got, tc.want, tc.str)
		}
		if back, err := ParseExec(got.String()); err != nil || back != got {
			t.Errorf("%q: String %q does not parse back (%+v, %v)", tc.in, got.String(), back, err)
		}
	}
	if _, err := ParseExec("xla,turbo"); err == nil {
		t.Error("unknown part accepted")
	}
}

func sum(ops []Op, f func(Op) float64) float64 {
	s := 0.0
	for _, o := range ops {
		s += f(o)
	}
	return s
}

// TestBlockCounts checks one gemma-like block's work against counts worked
// out by hand for n = 5 tokens at positions 0..4, window 3.
func TestBlockCounts(t *testing.T) {
	b := Block{Pos: []int{0, 1, 2, 3, 4}, Dim: 16, HeadDim: 4, QHeads: 2, KVHeads: 1, Hidden: 24, Window: 3,
		QKNorm: true, Sandwich: true}
	attn, mlp, cl := b.Phases()
	all := append(append(append([]Op(nil), attn...), mlp...), cl...)
	n, d, hd, hid := 5.0, 16.0, 4.0, 24.0
	// Projections: q (2 heads), k and v (1 head each), o; gate, up, down.
	wantMatmul := 2*n*d*hd*(2+1+1+2) + 3*2*n*d*hid
	// Pairs per head: min(p+1, 3) for p = 0..4 = 1+2+3+3+3 = 12; 2 heads.
	wantAttn := 4 * hd * 2 * 12
	if got := sum(all, func(o Op) float64 {
		if o.Kind == Matmul {
			return o.FLOPs()
		}
		return 0
	}); got != wantMatmul {
		t.Errorf("matmul FLOPs %g, want %g", got, wantMatmul)
	}
	if got := sum(all, func(o Op) float64 {
		if o.Kind == Attention {
			return o.FLOPs()
		}
		return 0
	}); got != wantAttn {
		t.Errorf("attention FLOPs %g, want %g", got, wantAttn)
	}
	// Unfused element-wise values: 4 norms of 2nd, 2 residual adds of 3nd,
	// q/k norm and RoPE of 2·n·(2+1)·hd each, the gate 3·n·hid.
	wantElems := 4*2*n*d + 2*3*n*d + 2*2*n*3*hd + 3*n*hid
	ew := func(o Op) float64 {
		if o.Kind == Elementwise {
			return o.Elems
		}
		return 0
	}
	if got := sum(all, ew); got != wantElems {
		t.Errorf("element-wise values %g, want %g", got, wantElems)
	}
	// Fused: only the two residual passes remain.
	if got := sum(all, func(o Op) float64 {
		if o.Kind == Elementwise {
			return o.FusedElems
		}
		return 0
	}); got != 2*3*n*d {
		t.Errorf("fused element-wise values %g, want %g", got, 2*3*n*d)
	}
}

func relDiff(a, b float64) float64 { return math.Abs(a-b) / math.Max(math.Abs(a), math.Abs(b)) }

// TestSeconds checks each kind of op's time against its closed form under
// the baseline and the XLA execution.
func TestSeconds(t *testing.T) {
	p, err := tpu.LoadProfile("v5e")
	if err != nil {
		t.Fatal(err)
	}
	peak, hbm := p.PeakBF16FLOPS, p.HBMBytesPerSec
	base, err := NewModel(Exec{}, p)
	if err != nil {
		t.Fatal(err)
	}
	x, err := NewModel(XLA(), p)
	if err != nil {
		t.Fatal(err)
	}
	c := x.Constants()
	launch, ceil := c.KernelLaunchSeconds.Value, c.MXUCeiling.Value

	big := Op{Kind: Matmul, M: 2048, N: 4096, K: 4096}
	if got, want := base.Seconds(big), big.FLOPs()/peak; relDiff(got, want) > 1e-12 {
		t.Errorf("baseline matmul %g s, want %g", got, want)
	}
	// Aligned and compute bound: the ceiling.
	if got, want := x.Seconds(big), big.FLOPs()/(peak*ceil)+launch; relDiff(got, want) > 1e-12 {
		t.Errorf("xla matmul %g s, want %g", got, want)
	}
	// A narrow shard (N = 64 of a 128 tile) runs at half the rate.
	narrow := Op{Kind: Matmul, M: 2048, N: 64, K: 4096}
	if got, want := x.MatmulEfficiency(2048, 64, 4096), ceil/2; relDiff(got, want) > 1e-12 {
		t.Errorf("narrow efficiency %g, want %g", got, want)
	}
	// Small M: bound by reading the bf16 weights.
	small := Op{Kind: Matmul, M: 16, N: 4096, K: 4096}
	wantSmall := (2*16*(4096+4096)+2*4096*4096)/hbm + launch
	if got := x.Seconds(small); relDiff(got, wantSmall) > 1e-12 {
		t.Errorf("small-M matmul %g s, want %g (weights at HBM bandwidth)", got, wantSmall)
	}
	nb := (2*2048*(4096+64) + 2*4096*64) / hbm
	if got, want := x.Seconds(narrow), math.Max(narrow.FLOPs()/(peak*ceil/2), nb)+launch; relDiff(got, want) > 1e-12 {
		t.Errorf("narrow matmul %g s, want %g", got, want)
	}

	ew := Op{Kind: Elementwise, Elems: 1000, FusedElems: 300}
	if got, want := base.Seconds(ew), 4000/hbm; relDiff(got, want) > 1e-12 {
		t.Errorf("baseline element-wise %g, want %g", got, want)
	}
	if got, want := x.Seconds(ew), 600/hbm+launch; relDiff(got, want) > 1e-12 {
		t.Errorf("fused bf16 element-wise %g, want %g", got, want)
	}
	if got := x.Seconds(Op{Kind: Elementwise, Elems: 1000}); got != 0 {
		t.Errorf("fully fused op costs %g s, want 0 (no kernel)", got)
	}

	at := Op{Kind: Attention, Pairs: 1e6, HeadDim: 128, Elems: 3e6, FusedElems: 2e5}
	if got, want := base.Seconds(at), 4*128*1e6/peak+12e6/hbm; relDiff(got, want) > 1e-12 {
		t.Errorf("baseline attention %g, want %g", got, want)
	}
	if got, want := x.Seconds(at), math.Max(4*128*1e6/(peak*ceil), 4e5/hbm)+launch; relDiff(got, want) > 1e-12 {
		t.Errorf("flash attention %g, want %g", got, want)
	}
	if got, want := x.Seconds(Op{Kind: Dispatch}), c.DispatchSeconds.Value; got != want {
		t.Errorf("dispatch %g, want %g", got, want)
	}
	if base.Seconds(Op{Kind: Dispatch}) != 0 {
		t.Error("baseline dispatch is not free")
	}
	np := x.NetworkProfile()
	if np.ICIBytesPerSecPerLinkDir != p.ICIBytesPerSecPerLinkDir*c.ICIEfficiency.Value || np.HopLatencySeconds != c.ICIHopLatencySeconds.Value {
		t.Errorf("derated network %g B/s, %g s/hop", np.ICIBytesPerSecPerLinkDir, np.HopLatencySeconds)
	}
	if base.NetworkProfile().ICIBytesPerSecPerLinkDir != p.ICIBytesPerSecPerLinkDir {
		t.Error("baseline derates the network")
	}
}
