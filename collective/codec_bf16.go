package collective

import (
	"encoding/binary"
	"math"
)

// bf16Codec sends each value as bfloat16, rounded to nearest even.
type bf16Codec struct{}

func (bf16Codec) Kind() CodecKind      { return CodecBF16 }
func (bf16Codec) BlockSize() int       { return 1 }
func (bf16Codec) EncodedLen(n int) int { return 2 * n }

// toBF16 rounds a float32 to bfloat16 bits, nearest even. Finite values too
// large for bfloat16 become Inf (the carry runs into the exponent); NaN stays
// NaN with the quiet bit set, keeping its sign and top payload bits.
func toBF16(x float32) uint16 {
	b := math.Float32bits(x)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x0040
	}
	return uint16(bf16RNE(b))
}

// fromBF16 widens bfloat16 bits to float32 exactly.
func fromBF16(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// bf16RNE rounds finite or infinite float32 bits to bfloat16 bits, nearest
// even, in the low 16 bits of the result. It must not see a NaN.
func bf16RNE(b uint32) uint32 { return (b + 0x7fff + (b>>16)&1) >> 16 }

func (c bf16Codec) Encode(dst []byte, src []float32) {
	checkEncodeLen(c.Kind(), dst, len(src), c.EncodedLen(len(src)))
	c.encode(activeKernels, dst, src)
}

// encode is Encode on kernel set k: k's kernel takes the largest multiple of
// 16 values, the Go loop the rest.
func (c bf16Codec) encode(k *codecKernels, dst []byte, src []float32) {
	i := 0
	if n := len(src) &^ 15; k.encBF16 != nil && n > 0 {
		k.encBF16(bytep(dst, 0), f32p(src, 0), n)
		i = n
	}
	for ; i+8 <= len(src); i += 8 {
		s := src[i : i+8 : i+8]
		d := dst[2*i : 2*i+16 : 2*i+16]
		// A NaN makes the sum NaN (so can Inf - Inf, which only sends a
		// NaN-free group down the slow path); NaN-free groups round two
		// values per 32-bit store.
		if t := ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])); t != t {
			for k, v := range s {
				binary.LittleEndian.PutUint16(d[2*k:], toBF16(v))
			}
			continue
		}
		b0, b1, b2, b3 := math.Float32bits(s[0]), math.Float32bits(s[1]), math.Float32bits(s[2]), math.Float32bits(s[3])
		b4, b5, b6, b7 := math.Float32bits(s[4]), math.Float32bits(s[5]), math.Float32bits(s[6]), math.Float32bits(s[7])
		binary.LittleEndian.PutUint32(d[0:], bf16RNE(b0)|bf16RNE(b1)<<16)
		binary.LittleEndian.PutUint32(d[4:], bf16RNE(b2)|bf16RNE(b3)<<16)
		binary.LittleEndian.PutUint32(d[8:], bf16RNE(b4)|bf16RNE(b5)<<16)
		binary.LittleEndian.PutUint32(d[12:], bf16RNE(b6)|bf16RNE(b7)<<16)
	}
	for ; i < len(src); i++ {
		binary.LittleEndian.PutUint16(dst[2*i:], toBF16(src[i]))
	}
}

func (c bf16Codec) Decode(dst []float32, src []byte) {
	checkDecodeLen(c.Kind(), "Decode", src, len(dst), c.EncodedLen(len(dst)))
	c.decode(activeKernels, dst, src)
}

// decode is Decode on kernel set k.
func (c bf16Codec) decode(k *codecKernels, dst []float32, src []byte) {
	i := 0
	if n := len(dst) &^ 15; k.decBF16 != nil && n > 0 {
		k.decBF16(f32p(dst, 0), bytep(src, 0), n)
		i = n
	}
	for ; i+8 <= len(dst); i += 8 {
		d := dst[i : i+8 : i+8]
		s := src[2*i : 2*i+16 : 2*i+16]
		d[0] = fromBF16(binary.LittleEndian.Uint16(s[0:]))
		d[1] = fromBF16(binary.LittleEndian.Uint16(s[2:]))
		d[2] = fromBF16(binary.LittleEndian.Uint16(s[4:]))
		d[3] = fromBF16(binary.LittleEndian.Uint16(s[6:]))
		d[4] = fromBF16(binary.LittleEndian.Uint16(s[8:]))
		d[5] = fromBF16(binary.LittleEndian.Uint16(s[10:]))
		d[6] = fromBF16(binary.LittleEndian.Uint16(s[12:]))
		d[7] = fromBF16(binary.LittleEndian.Uint16(s[14:]))
	}
	for ; i < len(dst); i++ {
		dst[i] = fromBF16(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

func (c bf16Codec) DecodeAdd(dst []float32, src []byte) {
	checkDecodeLen(c.Kind(), "DecodeAdd", src, len(dst), c.EncodedLen(len(dst)))
	c.decodeAdd(activeKernels, dst, src)
}

// decodeAdd is DecodeAdd on kernel set k.
func (c bf16Codec) decodeAdd(k *codecKernels, dst []float32, src []byte) {
	i := 0
	if n := len(dst) &^ 15; k.decAddBF16 != nil && n > 0 {
		k.decAddBF16(f32p(dst, 0), bytep(src, 0), n)
		i = n
	}
	for ; i+8 <= len(dst); i += 8 {
		d := dst[i : i+8 : i+8]
		s := src[2*i : 2*i+16 : 2*i+16]
		d[0] += fromBF16(binary.LittleEndian.Uint16(s[0:]))
		d[1] += fromBF16(binary.LittleEndian.Uint16(s[2:]))
		d[2] += fromBF16(binary.LittleEndian.Uint16(s[4:]))
		d[3] += fromBF16(binary.LittleEndian.Uint16(s[6:]))
		d[4] += fromBF16(binary.LittleEndian.Uint16(s[8:]))
		d[5] += fromBF16(binary.LittleEndian.Uint16(s[10:]))
		d[6] += fromBF16(binary.LittleEndian.Uint16(s[12:]))
		d[7] += fromBF16(binary.LittleEndian.Uint16(s[14:]))
	}
	for ; i < len(dst); i++ {
		dst[i] += fromBF16(binary.LittleEndian.Uint16(src[2*i:]))
	}
}
