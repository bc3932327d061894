package collective

import (
	"encoding/binary"
	"math"
)

// f32Codec sends the float32 bits unchanged: the exact wire.
type f32Codec struct{}

func (f32Codec) Kind() CodecKind      { return CodecF32 }
func (f32Codec) BlockSize() int       { return 1 }
func (f32Codec) EncodedLen(n int) int { return 4 * n }

func (c f32Codec) Encode(dst []byte, src []float32) {
	checkEncodeLen(c.Kind(), dst, len(src), c.EncodedLen(len(src)))
	i := 0
	for ; i+8 <= len(src); i += 8 {
		s := src[i : i+8 : i+8]
		d := dst[4*i : 4*i+32 : 4*i+32]
		binary.LittleEndian.PutUint32(d[0:], math.Float32bits(s[0]))
		binary.LittleEndian.PutUint32(d[4:], math.Float32bits(s[1]))
		binary.LittleEndian.PutUint32(d[8:], math.Float32bits(s[2]))
		binary.LittleEndian.PutUint32(d[12:], math.Float32bits(s[3]))
		binary.LittleEndian.PutUint32(d[16:], math.Float32bits(s[4]))
		binary.LittleEndian.PutUint32(d[20:], math.Float32bits(s[5]))
		binary.LittleEndian.PutUint32(d[24:], math.Float32bits(s[6]))
		binary.LittleEndian.PutUint32(d[28:], math.Float32bits(s[7]))
	}
	for ; i < len(src); i++ {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(src[i]))
	}
}

func (c f32Codec) Decode(dst []float32, src []byte) {
	checkDecodeLen(c.Kind(), "Decode", src, len(dst), c.EncodedLen(len(dst)))
	i := 0
	for ; i+8 <= len(dst); i += 8 {
		d := dst[i : i+8 : i+8]
		s := src[4*i : 4*i+32 : 4*i+32]
		d[0] = math.Float32frombits(binary.LittleEndian.Uint32(s[0:]))
		d[1] = math.Float32frombits(binary.LittleEndian.Uint32(s[4:]))
		d[2] = math.Float32frombits(binary.LittleEndian.Uint32(s[8:]))
		d[3] = math.Float32frombits(binary.LittleEndian.Uint32(s[12:]))
		d[4] = math.Float32frombits(binary.LittleEndian.Uint32(s[16:]))
		d[5] = math.Float32frombits(binary.LittleEndian.Uint32(s[20:]))
		d[6] = math.Float32frombits(binary.LittleEndian.Uint32(s[24:]))
		d[7] = math.Float32frombits(binary.LittleEndian.Uint32(s[28:]))
	}
	for ; i < len(dst); i++ {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func (c f32Codec) DecodeAdd(dst []float32, src []byte) {
	checkDecodeLen(c.Kind(), "DecodeAdd", src, len(dst), c.EncodedLen(len(dst)))
	i := 0
	for ; i+8 <= len(dst); i += 8 {
		d := dst[i : i+8 : i+8]
		s := src[4*i : 4*i+32 : 4*i+32]
		d[0] += math.Float32frombits(binary.LittleEndian.Uint32(s[0:]))
		d[1] += math.Float32frombits(binary.LittleEndian.Uint32(s[4:]))
		d[2] += math.Float32frombits(binary.LittleEndian.Uint32(s[8:]))
		d[3] += math.Float32frombits(binary.LittleEndian.Uint32(s[12:]))
		d[4] += math.Float32frombits(binary.LittleEndian.Uint32(s[16:]))
		d[5] += math.Float32frombits(binary.LittleEndian.Uint32(s[20:]))
		d[6] += math.Float32frombits(binary.LittleEndian.Uint32(s[24:]))
		d[7] += math.Float32frombits(binary.LittleEndian.Uint32(s[28:]))
	}
	for ; i < len(dst); i++ {
		dst[i] += math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}
