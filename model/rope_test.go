package model

import (
	"math"
	"testing"
)

// oldRopeTable is ropeTable as it was before linear scaling existed.
func oldRopeTable(pos []int, hd int, theta float64) (cos, sin []float32) {
	half := hd / 2
	cos = make([]float32, len(pos)*half)
	sin = make([]float32, len(pos)*half)
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = 1 / math.Pow(theta, float64(2*i)/float64(hd))
	}
	for t, p := range pos {
		for i := 0; i < half; i++ {
			a := float64(p) * inv[i]
			cos[t*half+i] = float32(math.Cos(a))
			sin[t*half+i] = float32(math.Sin(a))
		}
	}
	return cos, sin
}

// refRopeHalf rotates one half-split head in float64 with linear scaling:
// angle i is (pos/factor)·θ^(-2i/hd), as Hugging Face's linear rope_type.
func refRopeHalf(v []float64, pos int, theta, factor float64) {
	hd := len(v)
	for i := 0; i < hd/2; i++ {
		ang := float64(pos) / factor * math.Pow(theta, -float64(2*i)/float64(hd))
		c, s := math.Cos(ang), math.Sin(ang)
		a, b := v[i], v[i+hd/2]
		v[i], v[i+hd/2] = a*c-b*s, a*s+b*c
	}
}

func TestRopeLinearScalingMatchesFloat64(t *testing.T) {
	const hd, theta = 256, 1e6
	pos := []int{0, 1, 7, 100, 1023, 4096, 32767, 131071}
	for _, factor := range []float64{1, 8, 2.5} {
		cos, sin := ropeTable(pos, hd, theta, factor)
		x := make([]float32, len(pos)*hd)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)*0.37)) + 0.1
		}
		got := append([]float32(nil), x...)
		applyRope(got, len(pos), 1, hd, cos, sin, RopeHalf)
		var worst float64
		for tk, p := range pos {
			want := make([]float64, hd)
			for i := range want {
				want[i] = float64(x[tk*hd+i])
			}
			refRopeHalf(want, p, theta, factor)
			for i := range want {
				worst = max(worst, math.Abs(want[i]-float64(got[tk*hd+i])))
			}
		}
		// cos/sin are rounded to float32 and the rotation runs in float32:
		// a few ulps of values below 2.
		if worst > 1e-6 {
			t.Errorf("factor %g: max |float32 - float64| = %.3g", factor, worst)
		}
	}
}

func TestRopeFactorOneIsBitwiseUnscaled(t *testing.T) {
	pos := []int{0, 1, 2, 3, 17, 1000, 131071}
	for _, theta := range []float64{1e4, 5e5, 1e6} {
		oc, os := oldRopeTable(pos, 128, theta)
		for _, factor := range []float64{0, 1} {
			c, s := ropeTable(pos, 128, theta, factor)
			for i := range oc {
				if math.Float32bits(c[i]) != math.Float32bits(oc[i]) || math.Float32bits(s[i]) != math.Float32bits(os[i]) {
					t.Fatalf("theta %g factor %g: entry %d differs from the unscaled table", theta, factor, i)
				}
			}
		}
	}
}

// A power-of-two factor scales exactly, so position 8p with factor 8 gives
// bitwise the table of position p without scaling.
func TestRopeFactorIsPositionInterpolation(t *testing.T) {
	c8, s8 := ropeTable([]int{0, 8, 80, 8000}, 64, 1e6, 8)
	c1, s1 := ropeTable([]int{0, 1, 10, 1000}, 64, 1e6, 1)
	for i := range c1 {
		if c8[i] != c1[i] || s8[i] != s1[i] {
			t.Fatalf("entry %d: factor 8 at 8p = (%g, %g), unscaled at p = (%g, %g)", i, c8[i], s8[i], c1[i], s1[i])
		}
	}
}

func TestLayerRope(t *testing.T) {
	g := Config{Arch: "gemma3", RopeTheta: 1e6, RopeLocalTheta: 1e4, SlidingWindowPattern: 6, RopeScalingFactor: 8}
	for i := 0; i < 12; i++ {
		theta, factor := g.LayerRope(i)
		wantT, wantF := 1e4, 1.0
		if i == 5 || i == 11 {
			wantT, wantF = 1e6, 8
		}
		if theta != wantT || factor != wantF {
			t.Errorf("gemma3 layer %d: LayerRope = (%g, %g), want (%g, %g)", i, theta, factor, wantT, wantF)
		}
	}
	l := Config{Arch: "llama", RopeTheta: 1e4}
	if theta, factor := l.LayerRope(3); theta != 1e4 || factor != 1 {
		t.Errorf("llama without scaling: LayerRope = (%g, %g), want (10000, 1)", theta, factor)
	}
	l.RopeScalingFactor = 4
	if _, factor := l.LayerRope(0); factor != 4 {
		t.Errorf("llama with factor 4: LayerRope factor %g", factor)
	}
}

func TestRopeScalingValidate(t *testing.T) {
	base := Config{Arch: "llama", Dim: 8, HiddenDim: 8, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 4,
		Vocab: 8, MaxSeqLen: 8, NormEps: 1e-5, RopeTheta: 1e4, RopeStyle: RopeHalf, Activation: ActSiLU}
	for _, f := range []float64{0, 1, 8, 0.5} {
		c := base
		c.RopeScalingFactor = f
		if err := c.Validate(); err != nil {
			t.Errorf("factor %g rejected: %v", f, err)
		}
	}
	for _, f := range []float64{-1, math.Inf(1), math.NaN()} {
		c := base
		c.RopeScalingFactor = f
		if err := c.Validate(); err == nil {
			t.Errorf("factor %g accepted", f)
		}
	}
}
