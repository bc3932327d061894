package model

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExpNeg(t *testing.T) {
	var worst float64
	for i := 0; i < 200000; i++ { // x in (-87, 0]
		x := -87 * float64(i) / 200000
		got := float64(ExpNeg(float32(x)))
		want := math.Exp(float64(float32(x)))
		rel := math.Abs(got-want) / want
		worst = max(worst, rel)
	}
	t.Logf("ExpNeg max relative error on [-87, 0]: %.3g", worst)
	if worst > 3e-7 {
		t.Errorf("ExpNeg relative error %.3g > 3e-7", worst)
	}
	if got := ExpNeg(-100); got != 0 {
		t.Errorf("ExpNeg(-100) = %g", got)
	}
	if got := ExpNeg(float32(math.Inf(-1))); got != 0 {
		t.Errorf("ExpNeg(-Inf) = %g", got)
	}
	if got := ExpNeg(float32(math.NaN())); got == got {
		t.Errorf("ExpNeg(NaN) = %g", got)
	}
}

func TestMatMulAgainstFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sh := range [][3]int{{1, 1, 1}, {3, 5, 7}, {17, 64, 172}, {64, 172, 64}, {0, 4, 4}, {2, 0, 3}} {
		n, k, m := sh[0], sh[1], sh[2]
		x := make([]float32, n*k)
		w := make([]float32, m*k)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		out := make([]float32, n*m)
		for i := range out {
			out[i] = 99 // must be overwritten
		}
		flops, err := MatMulT(x, n, k, w, m, out)
		if err != nil {
			t.Fatal(err)
		}
		if flops != float64(2*n*m*k) {
			t.Errorf("%v: flops %g", sh, flops)
		}
		// wᵀ as a [k, m] matrix for MatMulNN.
		wt := make([]float32, k*m)
		for i := 0; i < m; i++ {
			for j := 0; j < k; j++ {
				wt[j*m+i] = w[i*k+j]
			}
		}
		out2 := make([]float32, n*m)
		if _, err := MatMulNN(x, n, k, wt, m, out2); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			for j := 0; j < m; j++ {
				var s, abs float64
				for l := 0; l < k; l++ {
					p := float64(x[i*k+l]) * float64(w[j*k+l])
					s += p
					abs += math.Abs(p)
				}
				// float32 accumulation: |error| <= k·2^-24·Σ|terms| (+ rounding of the result).
				bound := float64(k+1)*math.Pow(2, -24)*abs + 1e-30
				for name, got := range map[string]float32{"MatMulT": out[i*m+j], "MatMulNN": out2[i*m+j]} {
					if d := math.Abs(float64(got) - s); d > bound {
						t.Errorf("%s %v [%d,%d]: got %g, want %g (bound %g)", name, sh, i, j, got, s, bound)
					}
				}
			}
		}
	}
	if _, err := MatMulT(make([]float32, 3), 2, 2, make([]float32, 4), 2, make([]float32, 4)); err == nil {
		t.Error("short x accepted")
	}
}

func TestRopeStyles(t *testing.T) {
	// One head of 4 dims at position 1, theta 100: angles 1 and 0.1.
	cos, sin := ropeTable([]int{1}, 4, 100, 1)
	x := []float32{1, 2, 3, 4}
	inter := append([]float32(nil), x...)
	applyRope(inter, 1, 1, 4, cos, sin, RopeInterleaved)
	half := append([]float32(nil), x...)
	applyRope(half, 1, 1, 4, cos, sin, RopeHalf)
	rot := func(a, b, ang float64) (float64, float64) {
		return a*math.Cos(ang) - b*math.Sin(ang), a*math.Sin(ang) + b*math.Cos(ang)
	}
	i0, i1 := rot(1, 2, 1)
	i2, i3 := rot(3, 4, 0.1)
	h0, h2 := rot(1, 3, 1)
	h1, h3 := rot(2, 4, 0.1)
	want := map[string][]float64{"interleaved": {i0, i1, i2, i3}, "half": {h0, h1, h2, h3}}
	got := map[string][]float32{"interleaved": inter, "half": half}
	for k := range want {
		for i := range want[k] {
			if math.Abs(float64(got[k][i])-want[k][i]) > 1e-6 {
				t.Errorf("%s: got %v, want %v", k, got[k], want[k])
				break
			}
		}
	}
}

func TestRMSNorm(t *testing.T) {
	x := []float32{1, -2, 3, 4}
	w := []float32{0.5, 1, 2, -1}
	inv := 1 / math.Sqrt((1+4+9+16)/4.0+1e-5)
	for _, onePlus := range []bool{false, true} {
		out := make([]float32, 4)
		rmsNorm(out, x, 1, 4, w, 1e-5, onePlus)
		for i := range x {
			s := float64(w[i])
			if onePlus {
				s = 1 + s
			}
			if want := float64(x[i]) * inv * s; math.Abs(float64(out[i])-want) > 1e-6 {
				t.Errorf("onePlus %v: out[%d] = %g, want %g", onePlus, i, out[i], want)
			}
		}
	}
}

func TestGeluSilu(t *testing.T) {
	for _, x := range []float64{-5, -1, -0.1, 0, 0.3, 2, 8} {
		wantG := 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
		wantS := x / (1 + math.Exp(-x))
		if d := math.Abs(float64(geluTanh(float32(x))) - wantG); d > 1e-6 {
			t.Errorf("geluTanh(%g) off by %g", x, d)
		}
		if d := math.Abs(float64(silu(float32(x))) - wantS); d > 1e-6 {
			t.Errorf("silu(%g) off by %g", x, d)
		}
	}
}

func tinyConfig(arch string) Config {
	c := Config{Arch: arch, Dim: 16, HiddenDim: 24, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4,
		Vocab: 32, MaxSeqLen: 64, NormEps: 1e-6, RopeTheta: 10000, RopeStyle: RopeHalf, Activation: ActSiLU}
	if arch == "gemma3" {
		c.Activation = ActGELUTanh
		c.RopeTheta = 1e6
		c.RopeLocalTheta = 1e4
		c.SlidingWindow = 4
		c.SlidingWindowPattern = 2
		c.QueryPreAttnScalar = 4
	}
	return c
}

type fakeLinear struct{ in, out int }

func (f fakeLinear) InDim() int  { return f.in }
func (f fakeLinear) OutDim() int { return f.out }
func (f fakeLinear) Forward(context.Context, []float32, int, []float32) error {
	return nil
}

func TestNewBlockBindingErrors(t *testing.T) {
	full := func(arch string) LayerWeights {
		c := tinyConfig(arch)
		v := func(n int) []float32 { return make([]float32, n) }
		return LayerWeights{
			AttnNorm: v(c.Dim), FFNNorm: v(c.Dim),
			Q: fakeLinear{16, 16}, K: fakeLinear{16, 8}, V: fakeLinear{16, 8}, O: fakeLinear{16, 16},
			Gate: fakeLinear{16, 24}, Up: fakeLinear{16, 24}, Down: fakeLinear{24, 16},
			QNorm: v(4), KNorm: v(4), PostAttnNorm: v(16), PostFFNNorm: v(16),
			Heads: HeadShard{QHeads: 4, KVHeads: 2},
		}
	}
	tests := []struct {
		name, arch string
		edit       func(*LayerWeights)
		want       string // "" = no error
	}{
		{"llama complete", "llama", func(*LayerWeights) {}, ""},
		{"gemma3 complete", "gemma3", func(*LayerWeights) {}, ""},
		{"missing wq", "llama", func(w *LayerWeights) { w.Q = nil }, "layer 1: missing wq"},
		{"missing w_down", "llama", func(w *LayerWeights) { w.Down = nil }, "layer 1: missing w_down"},
		{"missing attn_norm", "llama", func(w *LayerWeights) { w.AttnNorm = nil }, "layer 1: missing attn_norm"},
		{"short ffn_norm", "llama", func(w *LayerWeights) { w.FFNNorm = w.FFNNorm[:3] }, "layer 1: ffn_norm has 3 values, want 16"},
		{"wk shape", "llama", func(w *LayerWeights) { w.K = fakeLinear{16, 4} }, "layer 1: wk maps 16 -> 4, want 16 -> 8"},
		{"gemma3 missing q_norm", "gemma3", func(w *LayerWeights) { w.QNorm = nil }, "layer 1: missing q_norm"},
		{"gemma3 missing post_ffn_norm", "gemma3", func(w *LayerWeights) { w.PostFFNNorm = nil }, "layer 1: missing post_ffn_norm"},
		{"llama ignores gemma norms", "llama", func(w *LayerWeights) { w.QNorm, w.PostAttnNorm = nil, nil }, ""},
		{"mlp widths", "llama", func(w *LayerWeights) { w.Up = fakeLinear{16, 23} }, "layer 1: MLP widths disagree"},
		{"kv heads missing", "llama", func(w *LayerWeights) {
			w.Heads = HeadShard{QHeads: 2, QFirst: 2, KVHeads: 1, KVFirst: 0}
			w.Q, w.K, w.V, w.O = fakeLinear{16, 8}, fakeLinear{16, 4}, fakeLinear{16, 4}, fakeLinear{8, 16}
		}, "lacks kv heads"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(tinyConfig(tc.arch))
			if err != nil {
				t.Fatal(err)
			}
			w := full(tc.arch)
			tc.edit(&w)
			_, err = a.NewBlock(1, w)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestRegistryAndConfig(t *testing.T) {
	if diff := cmp.Diff([]string{"gemma3", "llama"}, Archs()); diff != "" {
		t.Errorf("Archs (-want +got):\n%s", diff)
	}
	bad := tinyConfig("llama")
	bad.Activation = ActGELUTanh
	if _, err := New(bad); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("llama with gelu: %v", err)
	}
	bad = tinyConfig("gemma3")
	bad.SlidingWindow = 0
	if _, err := New(bad); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("gemma3 without window: %v", err)
	}
	bad = tinyConfig("mamba")
	if _, err := New(bad); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("unknown arch: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("duplicate Register did not panic")
		}
	}()
	Register("llama", newLlama)
}

func TestGlobalLayers(t *testing.T) {
	c := tinyConfig("gemma3")
	c.SlidingWindowPattern = 6
	var got []int
	for i := 0; i < 26; i++ {
		if c.IsGlobalLayer(i) {
			got = append(got, i)
		}
	}
	if diff := cmp.Diff([]int{5, 11, 17, 23}, got); diff != "" {
		t.Errorf("global layers of a 26-layer gemma3 (-want +got):\n%s", diff)
	}
	l := tinyConfig("llama")
	if !l.IsGlobalLayer(3) {
		t.Error("llama layer not global")
	}
}

func TestBatchLayout(t *testing.T) {
	b := NewBatch([]int{3, 1, 2})
	want := &Batch{N: 6, Pos: []int{0, 1, 2, 0, 0, 1}, Start: []int{0, 0, 0, 3, 4, 4}}
	if diff := cmp.Diff(want, b); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
