package weights

import (
	"math"
	"sync"
)

// f16Table maps every binary16 bit pattern to its float32 value; decoding
// by table is several times faster than by branches.
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = f16ToF32(uint16(i))
	}
	return &t
})

// f16ToF32 converts an IEEE 754 binary16 value to float32 exactly (every
// binary16 value, subnormals included, is representable in float32; NaN
// payloads are kept).
func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0 && man == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: man * 2^-24, normalised for float32
		e := uint32(0)
		for man&0x400 == 0 {
			man <<= 1
			e++
		}
		return math.Float32frombits(sign | (113-e)<<23 | (man&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

// bf16ToF32 converts a bfloat16 value to float32 exactly.
func bf16ToF32(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}

// f32ToF16 rounds a float32 to the nearest binary16, ties to even; values
// beyond the binary16 range become infinities and NaN stays NaN.
func f32ToF16(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	exp := int(bits>>23) & 0xff
	man := bits & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00 | uint16(man>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e <= 0 {
		// Subnormal or zero in binary16: the value in units of 2^-24,
		// rounded to even (exact in float64). 1024 units is the smallest
		// normal number, whose encoding is also 1024.
		m := math.RoundToEven(math.Abs(float64(f)) * (1 << 24))
		return sign | uint16(m)
	}
	m := man >> 13
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && m&1 == 1) {
		m++ // may carry into the exponent, which is the correct result
	}
	v := uint32(e)<<10 + m
	if v >= 0x7c00 {
		return sign | 0x7c00
	}
	return sign | uint16(v)
}

// f32ToBF16 rounds a float32 to the nearest bfloat16, ties to even; NaN
// stays a (quiet) NaN.
func f32ToBF16(f float32) uint16 {
	bits := math.Float32bits(f)
	if bits&0x7fffffff > 0x7f800000 {
		return uint16(bits>>16) | 0x0040
	}
	return uint16((bits + 0x7fff + (bits>>16)&1) >> 16)
}
