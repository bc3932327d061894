package collective

import (
	"encoding/binary"
	"math"
)

// Straightforward reference encoders and decoders, written for clarity and
// kept as the oracle the tuned kernels must match bit for bit.

// refEncode returns the wire bytes of src for the codec kind and block size.
func refEncode(kind CodecKind, block int, src []float32) []byte {
	var out []byte
	switch kind {
	case CodecF32:
		for _, v := range src {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
		}
	case CodecBF16:
		for _, v := range src {
			out = binary.LittleEndian.AppendUint16(out, refBF16(v))
		}
	case CodecInt8, CodecInt4:
		levels := 127
		if kind == CodecInt4 {
			levels = 7
		}
		for start := 0; start < len(src); start += block {
			x := src[start:min(start+block, len(src))]
			scale, codes := refQuantBlock(x, levels)
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(scale))
			if kind == CodecInt8 {
				for _, q := range codes {
					out = append(out, byte(int8(q)))
				}
				continue
			}
			for i := 0; i < len(codes); i += 2 {
				b := byte(codes[i]) & 0xf
				if i+1 < len(codes) {
					b |= (byte(codes[i+1]) & 0xf) << 4
				}
				out = append(out, b)
			}
		}
	default:
		panic("refEncode: unknown kind " + string(kind))
	}
	if out == nil {
		out = []byte{}
	}
	return out
}

// refBF16 rounds x to bfloat16 by comparing the two neighbouring bfloat16
// values in float64 (ties to the even one).
func refBF16(x float32) uint16 {
	if math.IsNaN(float64(x)) {
		return uint16(math.Float32bits(x)>>16) | 0x0040
	}
	bits := math.Float32bits(x)
	sign := bits & 0x80000000
	mag := bits &^ 0x80000000
	lo := mag &^ 0xffff
	hi := lo + 0x10000
	ax := math.Abs(float64(x))
	loV := float64(math.Float32frombits(lo))
	var hiV float64
	if hi >= 0x7f800000 {
		hiV = math.Ldexp(1, 128) // the value the rounding treats as Inf
		hi = 0x7f800000
	} else {
		hiV = float64(math.Float32frombits(hi))
	}
	if lo == 0x7f800000 { // x is ±Inf
		return uint16((sign | lo) >> 16)
	}
	pick := lo
	switch dl, dh := ax-loV, hiV-ax; {
	case dh < dl:
		pick = hi
	case dh == dl && (lo>>16)&1 == 1:
		pick = hi
	}
	return uint16((sign | pick) >> 16)
}

// refQuantBlock quantizes one block with L = levels, returning the scale and
// the integer codes, following the rules documented in codec_quant.go.
func refQuantBlock(x []float32, levels int) (float32, []int) {
	codes := make([]int, len(x))
	hasNaN, hasInf := false, false
	var a float32
	for _, v := range x {
		switch {
		case math.IsNaN(float64(v)):
			hasNaN = true
		case math.IsInf(float64(v), 0):
			hasInf = true
		default:
			a = max(a, float32(math.Abs(float64(v))))
		}
	}
	if hasNaN {
		return float32(math.NaN()), codes
	}
	if hasInf {
		for i, v := range x {
			switch {
			case math.IsInf(float64(v), 1):
				codes[i] = levels
			case math.IsInf(float64(v), -1):
				codes[i] = -levels
			}
		}
		return float32(math.Inf(1)), codes
	}
	L := float32(levels)
	if a == 0 || a/L == 0 {
		return 0, codes
	}
	scale := a / L
	for math.IsInf(float64(scale*L), 0) {
		scale = math.Nextafter32(scale, 0)
	}
	pre := float32(1)
	if a < 0x1p-64 {
		pre = 0x1p64
	}
	r := L / (a * pre)
	for i, v := range x {
		y := float32(float32(v*pre) * r)
		q := int(math.RoundToEven(float64(y)))
		codes[i] = max(-levels, min(levels, q))
	}
	return scale, codes
}

// refDecode decodes wire bytes into n values.
func refDecode(kind CodecKind, block int, src []byte, n int) []float32 {
	out := make([]float32, n)
	switch kind {
	case CodecF32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case CodecBF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
	case CodecInt8:
		off := 0
		for start := 0; start < n; start += block {
			s := math.Float32frombits(binary.LittleEndian.Uint32(src[off:]))
			off += 4
			for i := start; i < min(start+block, n); i++ {
				out[i] = float32(int8(src[off])) * s
				off++
			}
		}
	case CodecInt4:
		off := 0
		for start := 0; start < n; start += block {
			s := math.Float32frombits(binary.LittleEndian.Uint32(src[off:]))
			off += 4
			end := min(start+block, n)
			for i := start; i < end; i++ {
				b := src[off+(i-start)/2]
				nib := b & 0xf
				if (i-start)%2 == 1 {
					nib = b >> 4
				}
				q := int(nib)
				if q >= 8 {
					q -= 16
				}
				out[i] = float32(q) * s
			}
			off += (end - start + 1) / 2
		}
	default:
		panic("refDecode: unknown kind " + string(kind))
	}
	return out
}
