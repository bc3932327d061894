package perfmodel

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/cost"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/tpu"
	"github.com/google/go-cmp/cmp"
)

func mustSetup(t testing.TB, topo, prof string, c collective.CodecKind, overlap bool) Setup {
	t.Helper()
	tp, err := tpu.ParseTopology(topo)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tpu.LoadProfile(prof)
	if err != nil {
		t.Fatal(err)
	}
	return Setup{TP: tp.Size(), Topology: tp, Profile: p, AllReduce: collective.Options{Codec: c}, Overlap: overlap}
}

func loadConfig(t testing.TB, name string) model.Config {
	t.Helper()
	c, err := model.LoadConfig(filepath.Join("..", "configs", "models", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPriceErrors(t *testing.T) {
	cfg := tinyGemma3()
	good := mustSetup(t, "ring:2", "v5e", collective.CodecInt8, false)
	tests := []struct {
		name    string
		lengths []int
		setup   func(s Setup) Setup
	}{
		{"empty batch", nil, func(s Setup) Setup { return s }},
		{"empty sequence", []int{3, 0}, func(s Setup) Setup { return s }},
		{"too long", []int{cfg.MaxSeqLen + 1}, func(s Setup) Setup { return s }},
		{"tp 0", []int{4}, func(s Setup) Setup { s.TP = 0; return s }},
		{"topology size", []int{4}, func(s Setup) Setup { s.TP = 4; return s }},
		{"heads not divisible", []int{4}, func(s Setup) Setup {
			s.TP, s.Topology = 3, tpu.Topology{Kind: tpu.KindRing, X: 3, Y: 1}
			return s
		}},
		{"no profile", []int{4}, func(s Setup) Setup { s.Profile = tpu.Profile{}; return s }},
	}
	for _, tc := range tests {
		_, err := Price(cfg, tc.lengths, tc.setup(good))
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v, want ErrInvalid", tc.name, err)
		}
	}
	bad := cfg
	bad.Heads = 0
	if _, err := Price(bad, []int{4}, good); !errors.Is(err, model.ErrInvalidConfig) {
		t.Errorf("invalid config: error %v, want model.ErrInvalidConfig", err)
	}
}

// TestAttentionPairs checks the closed count of softmax pairs against a
// direct enumeration of the engine's causal sliding-window mask.
func TestAttentionPairs(t *testing.T) {
	for _, window := range []int{0, 1, 5, 1024} {
		for _, lengths := range [][]int{{1}, {7}, {3, 9, 2}, {2000}} {
			var r rows
			want := 0
			for _, L := range lengths {
				for p := 0; p < L; p++ {
					r.pos = append(r.pos, p)
					for k := 0; k <= p; k++ {
						if window == 0 || p-k < window {
							want++
						}
					}
				}
			}
			if got := cost.Pairs(r.pos, window); got != want {
				t.Errorf("window %d, lengths %v: %d pairs, want %d", window, lengths, got, want)
			}
		}
	}
}

// TestOverlapBounds checks the overlapped schedule against what any
// two-stream schedule must satisfy: it takes at least the busier stream's
// time and at most both streams' in sequence, and it never beats the
// compute alone. With one device there is nothing to overlap: the
// micro-batched compute equals the serial schedule (rows split into whole
// 64-row LM head chunks).
func TestOverlapBounds(t *testing.T) {
	for _, tc := range []struct {
		model, topo, prof string
		codec             collective.CodecKind
		xla               bool
	}{
		{"gemma3-27b", "ring:8", "v5e", collective.CodecBF16, false},
		{"gemma3-27b", "ring:8", "v5e", collective.CodecInt8, false},
		{"gemma3-12b", "torus:4x4", "v6e", collective.CodecInt8, false},
		{"gemma3-1b", "ring:4", "v4", collective.CodecBF16, false},
		{"gemma3-4b", "ring:1", "v5e", collective.CodecInt8, false},
		{"gemma3-27b", "ring:8", "v5e", collective.CodecInt8, true},
		{"gemma3-12b", "ring:4", "v6e", collective.CodecBF16, true},
	} {
		name := fmt.Sprintf("%s %s %s %s xla=%v", tc.model, tc.topo, tc.prof, tc.codec, tc.xla)
		s := mustSetup(t, tc.topo, tc.prof, tc.codec, true)
		if tc.xla {
			s.Exec = cost.XLA()
		}
		e, err := Price(loadConfig(t, tc.model), []int{1024, 1024}, s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		o := e.Overlapped
		if diff := cmp.Diff([2]int{1024, 1024}, o.MicroBatchTokens); diff != "" {
			t.Errorf("%s: micro-batches (-want +got):\n%s", name, diff)
		}
		lo, hi := max(o.ComputeSeconds, o.AllReduceSeconds), o.ComputeSeconds+o.AllReduceSeconds
		if o.SimSeconds < lo*(1-1e-12) || o.SimSeconds > hi*(1+1e-12) {
			t.Errorf("%s: overlapped %.6g s outside [%.6g, %.6g]", name, o.SimSeconds, lo, hi)
		}
		compute := e.SerialSeconds - e.AllReduceSeconds
		// Under xla, micro-batches run at their own shapes (more kernels,
		// lower matmul efficiency), so only the baseline's compute splits
		// exactly.
		if !tc.xla && relDiff(o.ComputeSeconds, compute) > 1e-9 {
			t.Errorf("%s: micro-batched compute %.9g s, serial compute %.9g s", name, o.ComputeSeconds, compute)
		}
		if e.TP == 1 && relDiff(o.SimSeconds, e.SerialSeconds) > 1e-9 {
			t.Errorf("%s: one device: overlapped %.9g s != serial %.9g s", name, o.SimSeconds, e.SerialSeconds)
		}
		if e.SimSeconds != o.SimSeconds {
			t.Errorf("%s: SimSeconds %g is not the overlapped %g", name, e.SimSeconds, o.SimSeconds)
		}
		t.Logf("%s: serial %.3f ms, overlapped %.3f ms (compute %.3f, allreduce %.3f, hidden %.3f)", name,
			e.SerialSeconds*1e3, o.SimSeconds*1e3, o.ComputeSeconds*1e3, o.AllReduceSeconds*1e3, o.HiddenAllReduceSeconds*1e3)
	}
}

// TestSerialClosedForm checks one layer's matmul time of a dense
// config against FLOPs worked out by hand: per token and rank,
// 2·dim·(q + 2kv + o)·head_dim/tp + 3·2·dim·hidden/tp.
func TestSerialClosedForm(t *testing.T) {
	cfg := loadConfig(t, "gemma3-27b")
	s := mustSetup(t, "ring:8", "v5e", collective.CodecInt8, false)
	n := 512
	e, err := Price(cfg, []int{n}, s)
	if err != nil {
		t.Fatal(err)
	}
	d, hd, tp := 5376.0, 128.0, 8.0
	flops := float64(n) * (2*d*(32+2*16+32)*hd/tp + 3*2*d*21504/tp)
	want := flops / s.Profile.PeakBF16FLOPS
	if got := e.Layers[0].MatmulSeconds; relDiff(got, want) > 1e-12 {
		t.Errorf("layer 0 matmul %.12g s, want %.12g s", got, want)
	}
	// Every layer has the same AllReduce: 512·5376 values, twice.
	for _, l := range e.Layers {
		if l.AttnAllReduce.Elements != n*5376 || l.MLPAllReduce != l.AttnAllReduce {
			t.Fatalf("layer %d: allreduces %+v / %+v", l.Layer, l.AttnAllReduce, l.MLPAllReduce)
		}
	}
	est, err := collective.Estimate(s.Topology, s.Profile, n*5376, s.AllReduce)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * float64(cfg.Layers) * est.SimSeconds; relDiff(e.AllReduceSeconds, want) > 1e-9 {
		t.Errorf("allreduce total %.9g s, want %.9g s", e.AllReduceSeconds, want)
	}
	// Global layers see every key, local ones at most the window: at 512
	// tokens (< window 1024) their attention costs the same.
	if relDiff(e.Layers[0].AttentionSeconds, e.Layers[5].AttentionSeconds) > 1e-12 || !e.Layers[5].Global || e.Layers[0].Global {
		t.Errorf("attention local %g vs global %g", e.Layers[0].AttentionSeconds, e.Layers[5].AttentionSeconds)
	}
}

// BenchmarkPrice27B prices a 2048-token Gemma 3 27B prefill on v5e ring:8
// (shapes only), serial and overlapped.
func BenchmarkPrice27B(b *testing.B) {
	cfg := loadConfig(b, "gemma3-27b")
	s := mustSetup(b, "ring:8", "v5e", collective.CodecInt8, true)
	for b.Loop() {
		if _, err := Price(cfg, []int{2048}, s); err != nil {
			b.Fatal(err)
		}
	}
}

// Per-site options: all sites at one codec price exactly as the uniform
// setting; a mix lies strictly between the two uniform prices, and each
// site's AllReduce reports its own codec.
func TestSiteAllReduce(t *testing.T) {
	cfg := loadConfig(t, "gemma3-12b")
	lengths := []int{1024}
	uni := func(c collective.CodecKind) *Estimate {
		e, err := Price(cfg, lengths, mustSetup(t, "ring:4", "v5e", c, false))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	sites := func(pick func(i int) collective.CodecKind) *Estimate {
		s := mustSetup(t, "ring:4", "v5e", collective.CodecBF16, false)
		s.SiteAllReduce = make([]collective.Options, 2*cfg.Layers)
		for i := range s.SiteAllReduce {
			s.SiteAllReduce[i] = collective.Options{Codec: pick(i)}
		}
		e, err := Price(cfg, lengths, s)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	bf, i8 := uni(collective.CodecBF16), uni(collective.CodecInt8)
	if all := sites(func(int) collective.CodecKind { return collective.CodecInt8 }); all.SerialSeconds != i8.SerialSeconds {
		t.Fatalf("all-int8 sites %g s, uniform int8 %g s", all.SerialSeconds, i8.SerialSeconds)
	}
	mix := sites(func(i int) collective.CodecKind {
		if i%2 == 0 {
			return collective.CodecInt8
		}
		return collective.CodecBF16
	})
	if !(i8.SerialSeconds < mix.SerialSeconds && mix.SerialSeconds < bf.SerialSeconds) {
		t.Fatalf("mix %g s not between int8 %g and bf16 %g", mix.SerialSeconds, i8.SerialSeconds, bf.SerialSeconds)
	}
	if mix.Layers[0].AttnAllReduce.Codec != collective.CodecInt8 || mix.Layers[0].MLPAllReduce.Codec != collective.CodecBF16 {
		t.Fatalf("layer 0 ran %s and %s", mix.Layers[0].AttnAllReduce.Codec, mix.Layers[0].MLPAllReduce.Codec)
	}
	s := mustSetup(t, "ring:4", "v5e", collective.CodecBF16, false)
	s.SiteAllReduce = make([]collective.Options, 3)
	if _, err := Price(cfg, lengths, s); err == nil {
		t.Fatal("3 site options for a 48-layer model accepted")
	}
}
