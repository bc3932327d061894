package collective

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// scaleRangeAbsmax lists block absmax values across the whole float32
// range: every power of ten from 1e-30 to 1e30, every power of two from
// 2^-149 (the smallest denormal) to 2^127, a random value in each binade,
// small multiples of 2^-149 and the largest float32 values.
func scaleRangeAbsmax(r *rand.Rand) []float32 {
	var as []float32
	for k := -30; k <= 30; k++ {
		as = append(as, float32(math.Pow(10, float64(k))))
	}
	for e := -149; e <= 127; e++ {
		as = append(as, float32(math.Ldexp(1, e)))
		as = append(as, float32(math.Ldexp(1+r.Float64(), e)))
	}
	for k := 2; k <= 1000; k += 7 {
		as = append(as, float32(k)*0x1p-149)
	}
	for d := range uint32(4) {
		as = append(as, math.Float32frombits(maxFloatBits-d))
	}
	return as
}

// TestCodecScaleRange checks that no block scale saturates: for blocks of
// every quantized codec with absmax anywhere in the float32 range (1e-30 to
// 1e30 and beyond, down to blocks made of denormals only), the stored scale
// and the block's largest decoded magnitude L*scale stay finite, every
// decoded value is finite, and the round trip stays within ErrorBound (and
// for fp8 within the per-value bound).
func TestCodecScaleRange(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 13))
	as := scaleRangeAbsmax(r)
	for _, kind := range quantKinds {
		L := float32(codecLevels(kind))
		for _, block := range []int{8, 256} {
			c := mustCodec(t, kind, block)
			t.Run(fmt.Sprintf("%s/B=%d", kind, block), func(t *testing.T) {
				worst := 0.0
				for _, a := range as {
					// One block per shape: Gaussian values scaled to absmax a
					// (the absmax value itself included, with either sign),
					// values uniform in [-a, a], and a block of equal
					// magnitudes; plus a short final block.
					n := 3*block + 5
					src := make([]float32, n)
					for i := range src {
						switch {
						case i < block:
							src[i] = float32(r.NormFloat64() / 4 * float64(a))
						case i < 2*block:
							src[i] = float32((2*r.Float64() - 1) * float64(a))
						default:
							src[i] = float32(math.Copysign(float64(a), r.NormFloat64()))
						}
						if math.Abs(float64(src[i])) > float64(a) {
							src[i] = float32(math.Copysign(float64(a), float64(src[i])))
						}
					}
					for b := 0; b < n; b += block {
						src[b+r.IntN(min(block, n-b))] = float32(math.Copysign(float64(a), r.NormFloat64()))
					}
					wire := make([]byte, c.EncodedLen(n))
					c.Encode(wire, src)
					for b := 0; b < n; b += block {
						s := getScale(wire[c.EncodedLen(b):])
						if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) || math.IsInf(float64(s*L), 0) || s < 0 {
							t.Fatalf("absmax %g (%#08x): block %d has scale %g, L*scale %g", a, math.Float32bits(a), b/block, s, s*L)
						}
					}
					got := make([]float32, n)
					c.Decode(got, wire)
					for i, v := range got {
						if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
							t.Fatalf("absmax %g: value %d = %g decodes to %g", a, i, src[i], v)
						}
					}
					if w := checkQuantBound(t, c, src, got); a >= 1e-30 && a <= 1e30 {
						worst = max(worst, w)
					}
				}
				if worst < 0.49 {
					t.Errorf("largest error over absmax 1e-30..1e30 is %.3f steps; half a step should be nearly reached", worst)
				}
			})
		}
	}
}

// TestBlockParamsRange checks the scale and the reciprocal of every
// quantized codec at every float32 exponent: a finite positive scale
// (or 0 when a/L underflows, only for a <= L*2^-150), a finite positive
// reciprocal, and x*pre*r <= L*(1+2^-22) at x = a, so the codes of a block
// lie within [-L, L] and never saturate.
func TestBlockParamsRange(t *testing.T) {
	for _, kind := range quantKinds {
		L := float32(codecLevels(kind))
		for e := -149; e <= 127; e++ {
			for _, f := range []float64{1, 1.5, 2 - 0x1p-23} {
				a := float32(math.Ldexp(f, e))
				if a == 0 || math.IsInf(float64(a), 0) {
					continue
				}
				s, r, pre, k := blockParams(math.Float32bits(a), L)
				if k == blockZero {
					if float64(a) > float64(L)*0x1p-150 {
						t.Fatalf("%s: absmax %g (2^%d) treated as zero", kind, a, e)
					}
					continue
				}
				if k != blockFinite || !(s > 0) || math.IsInf(float64(s*L), 0) || !(r > 0) || math.IsInf(float64(r), 0) {
					t.Fatalf("%s: absmax %g: scale %g, r %g, pre %g, kind %d", kind, a, s, r, pre, k)
				}
				if y := float64(float32(a*pre) * r); y > float64(L)*(1+0x1p-22) {
					t.Fatalf("%s: absmax %g: a*pre*r = %g > L", kind, a, y)
				}
			}
		}
	}
}
