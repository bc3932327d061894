package collective

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// Shared pieces of the block-quantized codecs (int8 and int4).
//
// For a block x with a = max|x| (finite, nonzero) and L levels on each side
// (127 for int8, 7 for int4):
//
//	scale s = fl32(a / L)                     (stored on the wire; stepped
//	                                          down one ulp if fl32(L*s)
//	                                          overflows, which happens only
//	                                          for int8 with a = MaxFloat32)
//	code  q = RNE(fl32(x * r)), r = fl32(L / a)
//
// so the quotient x/s is formed as x times a float32 reciprocal of the scale
// rather than by a division. |x*r| <= L*(1+2^-23) < L+1/2, so q never needs
// clamping. When a < 2^-64 the reciprocal L/a could overflow float32, so x and
// a are first multiplied by 2^64 (exact for every float32 that small) and r
// is formed from the scaled absmax. Decoding is q*s in float32.
//
// Blocks holding NaN or Inf get a non-finite scale: NaN when any NaN is
// present (codes all 0, so the whole block decodes to NaN); otherwise +Inf
// with code +L for +Inf, -L for -Inf and 0 for finite values, so the block
// decodes to +Inf, -Inf and NaN (0*Inf) at those positions. An all-zero
// block (and a block so small that a/L underflows to 0) gets scale 0 and
// decodes to exact zeros.

const (
	absMask  = 0x7fffffff
	infBits  = 0x7f800000
	nanScale = 0x7fc00000 // the quiet NaN stored as the scale of a NaN block

	// roundMagic is 1.5*2^23: adding it to a float32 y with |y| < 2^22 rounds
	// y to the nearest integer (ties to even) and leaves that integer, two's
	// complement, in the low mantissa bits.
	roundMagic float32 = 12582912

	tinyAbsMax float32 = 0x1p-64 // below this the block is pre-scaled
	tinyScale  float32 = 0x1p64  // the exact pre-scale factor
)

// absMaxBits returns max over x of the float32 bits with the sign cleared.
// Comparing those as unsigned integers orders finite values by magnitude,
// puts Inf (0x7f800000) above them and every NaN above Inf.
func absMaxBits(x []float32) uint32 {
	// Reading the values as uint32 (same size and alignment) loads them
	// straight into integer registers.
	u := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(x))), len(x))
	var m0, m1, m2, m3 uint32
	i := 0
	for ; i+8 <= len(u); i += 8 {
		s := u[i : i+8 : i+8]
		m0 = max(m0, s[0]&absMask, s[4]&absMask)
		m1 = max(m1, s[1]&absMask, s[5]&absMask)
		m2 = max(m2, s[2]&absMask, s[6]&absMask)
		m3 = max(m3, s[3]&absMask, s[7]&absMask)
	}
	for ; i < len(u); i++ {
		m0 = max(m0, u[i]&absMask)
	}
	return max(m0, m1, m2, m3)
}

// blockKind says how a block is encoded.
type blockKind uint8

const (
	blockFinite blockKind = iota // quantize with r (and pre)
	blockZero                    // scale 0, codes 0
	blockInf                     // scale +Inf, codes ±L at infinities, 0 elsewhere
	blockNaN                     // scale NaN, codes 0
)

// blockParams returns, for a block with absmax bits m and L = levels, the
// scale to store, the reciprocal factor r, the pre-scale to apply to x before
// multiplying by r (1 or 2^64), and the kind of block.
func blockParams(m uint32, levels float32) (scale, r, pre float32, kind blockKind) {
	switch {
	case m > infBits:
		return math.Float32frombits(nanScale), 0, 0, blockNaN
	case m == infBits:
		return float32(math.Inf(1)), 0, 0, blockInf
	case m == 0:
		return 0, 0, 0, blockZero
	}
	a := math.Float32frombits(m)
	scale = a / levels
	if scale == 0 {
		// a/L underflows: every value is below half the smallest denormal
		// step times L, and the block decodes to zeros.
		return 0, 0, 0, blockZero
	}
	for math.IsInf(float64(scale*levels), 0) {
		// Near MaxFloat32, L*fl32(a/L) can round up to Inf; step the scale
		// down until the largest code decodes finite (one step suffices).
		scale = math.Float32frombits(math.Float32bits(scale) - 1)
	}
	if a < tinyAbsMax {
		return scale, levels / (a * tinyScale), tinyScale, blockFinite
	}
	return scale, levels / a, 1, blockFinite
}

// quickParams is the inlined common case of blockParams: a finite block with
// 2^-64 <= a < MaxFloat32, where the scale cannot underflow or overflow and
// no pre-scaling is needed. ok is false for every other block.
func quickParams(m uint32, levels float32) (scale, r float32, ok bool) {
	if m < tinyAbsMaxBits || m >= maxFloatBits {
		return 0, 0, false
	}
	a := math.Float32frombits(m)
	return a / levels, levels / a, true
}

const (
	tinyAbsMaxBits = 0x1f800000 // math.Float32bits(tinyAbsMax)
	maxFloatBits   = 0x7f7fffff // math.Float32bits(math.MaxFloat32)
)

// putScale and getScale read and write the 4-byte little-endian scale.
func putScale(dst []byte, s float32) { binary.LittleEndian.PutUint32(dst, math.Float32bits(s)) }
func getScale(src []byte) float32    { return math.Float32frombits(binary.LittleEndian.Uint32(src)) }

// quantCode returns the low bits of RNE(fl32(x*r)) in two's complement; the
// caller keeps 8 or 4 of them. Valid for |x*r| < 2^22.
func quantCode(x, r float32) uint32 {
	return math.Float32bits(float32(x*r) + roundMagic)
}

// infCode is the code of x in a block whose scale is +Inf.
func infCode(x float32, levels int32) int32 {
	switch {
	case math.IsInf(float64(x), 1):
		return levels
	case math.IsInf(float64(x), -1):
		return -levels
	}
	return 0
}
