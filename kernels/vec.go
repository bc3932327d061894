package kernels

import "math"

// VecVariant names the path of the element-wise kernels (ExpScaleShiftSum,
// SiLUMul, GELUTanhMul, Max, AddSumSquares, ScaleMul, RopeHalf): "avx2" (8-lane asm loops, used whenever the GEMM runs an asm
// micro-kernel) or "go".
func VecVariant() string {
	if vecAsm {
		return "avx2"
	}
	return "go"
}

// Exp returns e^x in float32 by the vector kernels' algorithm: x = n·ln2 + r
// (n rounded to nearest, ln2 split in two parts), e^r by its degree-6
// Taylor polynomial, times 2^n. Below -87.33654 it returns 0, above 88 it
// returns e^88; relative error about 3e-7 (tested against math.Exp).
func Exp(x float32) float32 {
	if !(x >= -87.33654) { // NaN lands here too
		if x != x {
			return x
		}
		return 0
	}
	x = min(x, 88)
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	n := float32(math.RoundToEven(float64(x * log2e)))
	r := x - n*ln2hi - n*ln2lo
	p := float32(1.0 / 720)
	p = p*r + 1.0/120
	p = p*r + 1.0/24
	p = p*r + 1.0/6
	p = p*r + 0.5
	p = p*r + 1
	p = p*r + 1
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// ExpScaleShiftSum sets dst[i] = e^(src[i]·scale - shift) for i <
// len(src) and returns their sum (the softmax step: scores to unnormalized
// probabilities). -Inf scores give 0. dst may alias src.
func ExpScaleShiftSum(dst, src []float32, scale, shift float32) float32 {
	dst = dst[:len(src)]
	n8 := 0
	var sum float32
	if vecAsm {
		n8 = len(src) &^ 7
		if n8 > 0 {
			sum = expScaleShiftSumAsm(dst[:n8], src[:n8], scale, shift)
		}
	}
	for i := n8; i < len(src); i++ {
		e := Exp(src[i]*scale - shift)
		dst[i] = e
		sum += e
	}
	return sum
}

// SiLUMul sets g[i] = silu(g[i])·u[i] = g[i]·u[i] / (1 + e^-g[i]), the
// gated MLP's activation, in one pass.
func SiLUMul(g, u []float32) {
	u = u[:len(g)]
	n8 := 0
	if vecAsm {
		n8 = len(g) &^ 7
		if n8 > 0 {
			siluMulAsm(g[:n8], u[:n8])
		}
	}
	for i := n8; i < len(g); i++ {
		x := g[i]
		g[i] = x * u[i] / (1 + Exp(-x))
	}
}

// Max returns the largest value of x (-Inf if x is empty). NaNs are not
// handled specially (the engine's scores have none).
func Max(x []float32) float32 {
	m := float32(math.Inf(-1))
	n32 := 0
	if vecAsm {
		n32 = len(x) &^ 31
		if n32 > 0 {
			m = maxAsm(x[:n32])
		}
	}
	for _, v := range x[n32:] {
		if v > m {
			m = v
		}
	}
	return m
}

// AddSumSquares adds o into x (x[i] += o[i]; o nil: no add) and returns
// the sum of the squares of the new x in float64: the residual add fused
// with the first pass of the RMSNorm that follows it.
func AddSumSquares(x, o []float32) float64 {
	if o != nil {
		o = o[:len(x)]
	}
	n8 := 0
	var ss float64
	if vecAsm {
		n8 = len(x) &^ 7
		if n8 > 0 {
			var on []float32
			if o != nil {
				on = o[:n8]
			}
			ss = addSumSqAsm(x[:n8], on)
		}
	}
	for i := n8; i < len(x); i++ {
		if o != nil {
			x[i] += o[i]
		}
		ss += float64(x[i]) * float64(x[i])
	}
	return ss
}

// ScaleMul sets out[i] = (x[i]·inv)·w[i], or (x[i]·inv)·(1+w[i]) when
// onePlus (Gemma's norm weights): the second pass of an RMSNorm. out may
// alias x.
func ScaleMul(out, x, w []float32, inv float32, onePlus bool) {
	out, w = out[:len(x)], w[:len(x)]
	n8 := 0
	if vecAsm {
		n8 = len(x) &^ 7
		if n8 > 0 {
			scaleMulAsm(out[:n8], x[:n8], w[:n8], inv, onePlus)
		}
	}
	for i := n8; i < len(x); i++ {
		wi := w[i]
		if onePlus {
			wi = 1 + wi
		}
		out[i] = (x[i] * inv) * wi
	}
}

// RopeHalf rotates the pairs (a[i], b[i]) by the angles whose cosines and
// sines are c[i], s[i]: RoPE on the two halves of a head.
func RopeHalf(a, b, c, s []float32) {
	b, c, s = b[:len(a)], c[:len(a)], s[:len(a)]
	n8 := 0
	if vecAsm {
		n8 = len(a) &^ 7
		if n8 > 0 {
			ropeHalfAsm(a[:n8], b[:n8], c[:n8], s[:n8])
		}
	}
	for i := n8; i < len(a); i++ {
		x, y := a[i], b[i]
		a[i] = x*c[i] - y*s[i]
		b[i] = y*c[i] + x*s[i]
	}
}

// GELUTanhMul sets g[i] = gelu_tanh(g[i])·u[i] (PyTorch's
// gelu(approximate="tanh"), Gemma's gate), in one pass, through the
// identity 0.5·x·(1+tanh(y)) = x / (1 + e^(-2y)), y = sqrt(2/pi)·(x +
// 0.044715·x³).
func GELUTanhMul(g, u []float32) {
	u = u[:len(g)]
	n8 := 0
	if vecAsm {
		n8 = len(g) &^ 7
		if n8 > 0 {
			geluTanhMulAsm(g[:n8], u[:n8])
		}
	}
	for i := n8; i < len(g); i++ {
		x := g[i]
		y := x * (1 + 0.044715*x*x) * -1.5957691216057308
		g[i] = x * u[i] / (1 + Exp(y))
	}
}
