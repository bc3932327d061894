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

func TestNormKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 7))
	for _, n := range []int{1, 8, 13, 768} {
		x, o, w := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range x {
			x[i], o[i], w[i] = float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64())
		}
		want := make([]float32, n)
		var ref float64
		for i := range x {
			want[i] = x[i] + o[i]
			ref += float64(want[i]) * float64(want[i])
		}
		ss := AddSumSquares(x, o)
		for i := range x {
			if x[i] != want[i] {
				t.Fatalf("n %d: x[%d] = %v after the add, want %v", n, i, x[i], want[i])
			}
		}
		// float64 sum of n squares (each exact): within n·2^-53·sum.
		if d := math.Abs(ss - ref); d > float64(n)*0x1p-53*ref {
			t.Fatalf("n %d: sum of squares %v, want %v", n, ss, ref)
		}
		if ss2 := AddSumSquares(x, nil); math.Abs(ss2-ref) > float64(n)*0x1p-53*ref {
			t.Fatalf("n %d: sum of squares without add %v, want %v", n, ss2, ref)
		}
		for _, onePlus := range []bool{false, true} {
			out := make([]float32, n)
			const inv = 0.37
			ScaleMul(out, x, w, inv, onePlus)
			for i := range out {
				wi := w[i]
				if onePlus {
					wi = 1 + wi
				}
				if want := (x[i] * inv) * wi; out[i] != want {
					t.Fatalf("n %d onePlus %v: out[%d] = %v, want %v (bitwise)", n, onePlus, i, out[i], want)
				}
			}
		}
		c, s := make([]float32, n), make([]float32, n)
		a, b := append([]float32(nil), x...), append([]float32(nil), o...)
		for i := range c {
			th := r.Float64() * 6
			c[i], s[i] = float32(math.Cos(th)), float32(math.Sin(th))
		}
		RopeHalf(a, b, c, s)
		for i := range a {
			wa := float64(x[i])*float64(c[i]) - float64(o[i])*float64(s[i])
			wb := float64(o[i])*float64(c[i]) + float64(x[i])*float64(s[i])
			// Two products and a sum, each rounded at most once:
			// within 2u·(|x c| + |o s|).
			ba := 2 * u * (math.Abs(float64(x[i])*float64(c[i])) + math.Abs(float64(o[i])*float64(s[i])))
			bb := 2 * u * (math.Abs(float64(o[i])*float64(c[i])) + math.Abs(float64(x[i])*float64(s[i])))
			if math.Abs(float64(a[i])-wa) > ba || math.Abs(float64(b[i])-wb) > bb {
				t.Fatalf("n %d: rope pair %d = (%v, %v), want (%v, %v)", n, i, a[i], b[i], wa, wb)
			}
		}
	}
}

func TestGELUTanhMul(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 7))
	for _, n := range []int{1, 8, 13, 1000} {
		g, u := make([]float32, n), make([]float32, n)
		for i := range g {
			g[i] = float32(r.NormFloat64() * 4)
			u[i] = float32(r.NormFloat64())
		}
		g[0] = -30
		in := append([]float32(nil), g...)
		want := make([]float64, n)
		for i := range g {
			x := float64(g[i])
			// 0.5·x·(1+tanh(y)) in the form that does not cancel for x << 0.
			want[i] = x * float64(u[i]) / (1 + math.Exp(-2*0.7978845608028654*(x+0.044715*x*x*x)))
		}
		GELUTanhMul(g, u)
		for i := range g {
			// The argument -2y of the exp is formed with 5 roundings, so it
			// is off by up to 5u·|2y| absolute and e^-2y by that much
			// relative (plus the exp's own 3e-7); 1/(1+e^-2y) inherits at
			// most that, and the product and quotient add 2u.
			x := float64(in[i])
			y2 := 2 * 0.7978845608028654 * math.Abs(x+0.044715*x*x*x)
			const ur = 1.0 / (1 << 24)
			// The exp's clamp at e^88 leaves |x·u|/(1+e^88), rounded a few times.
			bound := (6*ur*y2+3e-7+3*ur)*math.Abs(want[i]) + math.Abs(x*float64(u[i]))*math.Exp(-88)*(1+8*ur)
			if d := math.Abs(float64(g[i]) - want[i]); d > bound {
				t.Fatalf("n %d: gelu·u [%d] = %v, want %v", n, i, g[i], want[i])
			}
		}
	}
}
