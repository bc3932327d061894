package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestVecVariant(t *testing.T) {
	want := "go"
	if Variant() != "go" {
		want = "avx2"
	}
	if VecVariant() != want {
		t.Fatalf("VecVariant() = %q with GEMM %q, want %q", VecVariant(), Variant(), want)
	}
}

// The exp algorithm: |r| <= ln2/2, Taylor remainder r^7/5040 < 2e-8
// relative, plus float32 roundings in the Horner steps and the reduction
// (n·ln2lo is rounded): about 2.5 ulps; we allow 3e-7 relative, or an
// absolute 1e-37 near the underflow cut.
func checkExp(t *testing.T, what string, x float64, got float32) {
	t.Helper()
	want := math.Exp(x)
	if x < -87.33654 {
		want = 0
	}
	if x > 88 {
		want = math.Exp(88)
	}
	if d := math.Abs(float64(got) - want); d > 3e-7*want && d > 1e-37 {
		t.Fatalf("%s: exp(%v) = %v, want %v (rel %.3g)", what, x, got, want, d/want)
	}
}

func TestExpScaleShiftSum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 7))
	for _, n := range []int{0, 1, 7, 8, 9, 64, 1000} {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(r.Float64()*1400 - 700)
		}
		if n > 3 {
			src[1] = float32(math.Inf(-1))
			src[2] = -677
			src[3] = 723
		}
		// scale a power of 2, so s·scale is exact and both the FMA (asm) and
		// the float32 ops (Go) round x = s·scale - shift once.
		const scale, shift = 0.125, 2.5
		dst := make([]float32, n)
		sum := ExpScaleShiftSum(dst, src, scale, shift)
		var ref, mag float64
		for i, s := range src {
			x := float64(float32(float64(s)*scale - shift))
			checkExp(t, VecVariant(), x, dst[i])
			ref += float64(dst[i])
			mag += math.Abs(float64(dst[i]))
		}
		// The sum of n float32 values: within gamma(n)·sum|v|.
		if d := math.Abs(float64(sum) - ref); d > gamma(n)*mag {
			t.Fatalf("n %d: sum %v, want %v", n, sum, ref)
		}
	}
}

func TestSiLUMul(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 7))
	for _, n := range []int{1, 8, 13, 1000} {
		g, u := make([]float32, n), make([]float32, n)
		for i := range g {
			g[i] = float32(r.NormFloat64() * 8)
			u[i] = float32(r.NormFloat64())
		}
		g[0] = -100
		want := make([]float64, n)
		for i := range g {
			x := float64(g[i])
			want[i] = x * float64(u[i]) / (1 + math.Exp(-x))
		}
		SiLUMul(g, u)
		for i := range g {
			// exp within 3e-7 relative, then a product, a sum and a
			// quotient each rounded: within 1e-6 relative of the result.
			if d := math.Abs(float64(g[i]) - want[i]); d > 1e-6*math.Abs(want[i]) && d > 1e-30 {
				t.Fatalf("n %d: silu·u [%d] = %v, want %v", n, i, g[i], want[i])
			}
		}
	}
}

func TestExpGo(t *testing.T) {
	for x := -90.0; x < 89; x += 0.0137 {
		checkExp(t, "Exp", float64(float32(x)), Exp(float32(x)))
	}
}

func TestMax(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 7))
	for _, n := range []int{0, 1, 31, 32, 33, 100, 1000} {
		x := make([]float32, n)
		want := float32(math.Inf(-1))
		for i := range x {
			x[i] = float32(r.NormFloat64())
			want = max(want, x[i])
		}
		if n > 40 {
			x[37] = 50 // in the asm part
			want = 50
		}
		if got := Max(x); got != want {
			t.Fatalf("n %d: Max = %v, want %v", n, got, want)
		}
	}
}
