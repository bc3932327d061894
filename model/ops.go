package model

import (
	"math"

	"github.com/equarx/equarx/cost"
	"github.com/equarx/equarx/kernels"
)

// Meter receives the work a device does, as the operations of package cost,
// so that its simulated clock can be advanced.
type Meter interface {
	Charge(ops ...cost.Op)
}

// NopMeter discards all charges.
type NopMeter struct{}

func (NopMeter) Charge(...cost.Op) {}

// rmsNorm writes, for each of the n rows of x (width d), x·rsqrt(mean(x²)+eps)
// scaled by w (or by 1+w when onePlus, as Gemma stores its norm weights).
// The mean is accumulated in float64. out may alias x.
func rmsNorm(out, x []float32, n, d int, w []float32, eps float64, onePlus bool) {
	addRMSNorm(out, x, nil, n, d, w, eps, onePlus)
}

// addRMSNorm is rmsNorm of x + add, where x also receives the sum (the
// residual add fused with the norm that follows it: one pass reads x and add,
// writes x and sums the squares; a second writes out). add nil: no add.
func addRMSNorm(out, x, add []float32, n, d int, w []float32, eps float64, onePlus bool) {
	for r := 0; r < n; r++ {
		row := x[r*d : (r+1)*d]
		var a []float32
		if add != nil {
			a = add[r*d : (r+1)*d]
		}
		ss := kernels.AddSumSquares(row, a)
		inv := float32(1 / math.Sqrt(ss/float64(d)+eps))
		kernels.ScaleMul(out[r*d:(r+1)*d], row, w, inv, onePlus)
	}
}

// addResidual adds o into x.
func addResidual(x, o []float32) {
	o = o[:len(x)]
	for i := range x {
		x[i] += o[i]
	}
}

// ropeTable returns cos and sin of pos·θ^(-2i/hd)/factor for i < hd/2, row
// per token: linear RoPE scaling divides the inverse frequencies by factor,
// as Hugging Face's _compute_linear_scaling_rope_parameters does. A factor of
// 1 (or 0) leaves the frequencies untouched, bit for bit.
func ropeTable(pos []int, hd int, theta, factor float64) (cos, sin []float32) {
	half := hd / 2
	cos = make([]float32, len(pos)*half)
	sin = make([]float32, len(pos)*half)
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = 1 / math.Pow(theta, float64(2*i)/float64(hd))
		if factor != 0 && factor != 1 {
			inv[i] /= factor
		}
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

// applyRope rotates every head of x (n rows of heads·hd values) in place.
// Interleaved style rotates pairs (2i, 2i+1) (llama2.c); half style rotates
// pairs (i, i+hd/2) (Hugging Face).
func applyRope(x []float32, n, heads, hd int, cos, sin []float32, style RopeStyle) {
	half := hd / 2
	for t := 0; t < n; t++ {
		c := cos[t*half : (t+1)*half]
		s := sin[t*half : (t+1)*half]
		for h := 0; h < heads; h++ {
			v := x[(t*heads+h)*hd : (t*heads+h+1)*hd]
			if style == RopeInterleaved {
				for i := 0; i < half; i++ {
					a, b := v[2*i], v[2*i+1]
					v[2*i] = a*c[i] - b*s[i]
					v[2*i+1] = a*s[i] + b*c[i]
				}
			} else {
				kernels.RopeHalf(v[:half], v[half:], c, s)
			}
		}
	}
}

func silu(x float32) float32 { return x / (1 + float32(math.Exp(float64(-x)))) }

// geluTanh is GELU with the tanh approximation (PyTorch gelu(approximate="tanh")).
func geluTanh(x float32) float32 {
	const c = 0.7978845608028654 // sqrt(2/pi)
	xf := float64(x)
	return float32(0.5 * xf * (1 + math.Tanh(c*(xf+0.044715*xf*xf*xf))))
}

// ExpNeg returns e^x for x <= 0 in float32 with a relative error below
// 3e-7, about 2.5 float32 ulps (checked against math.Exp in the tests):
// x = n·ln2 + r with |r| <= ln2/2, e^r by a degree-6 Taylor polynomial,
// times 2^n. At or below -87 it returns 0 (e^-87 ≈ 1.6e-38 is at the bottom
// of float32 normals); NaN stays NaN.
func ExpNeg(x float32) float32 {
	if !(x > -87) { // NaN also lands here
		if x != x {
			return x
		}
		return 0
	}
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	n := float32(int32(x*log2e - 0.5))
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
