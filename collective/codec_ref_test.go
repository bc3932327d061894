package collective

import (
	"encoding/binary"
	"fmt"
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
	case CodecInt8, CodecInt4, CodecInt6:
		levels := codecLevels(kind)
		round := func(y float32) int {
			q := int(math.RoundToEven(float64(y)))
			return max(-levels, min(levels, q))
		}
		for start := 0; start < len(src); start += block {
			x := src[start:min(start+block, len(src))]
			scale, codes := refQuantBlock(x, levels, round, func(sign int) int { return sign * levels })
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(scale))
			switch kind {
			case CodecInt8:
				for _, q := range codes {
					out = append(out, byte(int8(q)))
				}
			case CodecInt4:
				for i := 0; i < len(codes); i += 2 {
					b := byte(codes[i]) & 0xf
					if i+1 < len(codes) {
						b |= (byte(codes[i+1]) & 0xf) << 4
					}
					out = append(out, byte(b))
				}
			case CodecInt6:
				out = append(out, refPackBits(codes, 6)...)
			}
		}
	case CodecFP8:
		for start := 0; start < len(src); start += block {
			x := src[start:min(start+block, len(src))]
			scale, codes := refQuantBlock(x, fp8Levels, refE4M3, func(sign int) int {
				if sign < 0 {
					return 0xfe
				}
				return 0x7e
			})
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(scale))
			for _, q := range codes {
				out = append(out, byte(q))
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
// the codes, following the rules documented in codec_quant.go: round maps
// the float32 quotient x*r to a code, inf(±1) is the code of ±Inf in a block
// whose scale is +Inf; every other code of a non-finite or zero block is 0.
func refQuantBlock(x []float32, levels int, round func(float32) int, inf func(sign int) int) (float32, []int) {
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
				codes[i] = inf(1)
			case math.IsInf(float64(v), -1):
				codes[i] = inf(-1)
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
		codes[i] = round(y)
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
	case CodecInt6:
		off := 0
		for start := 0; start < n; start += block {
			s := math.Float32frombits(binary.LittleEndian.Uint32(src[off:]))
			off += 4
			m := min(start+block, n) - start
			for i, q := range refUnpackBits(src[off:off+(6*m+7)/8], 6, m) {
				out[start+i] = float32(q) * s
			}
			off += (6*m + 7) / 8
		}
	case CodecFP8:
		off := 0
		for start := 0; start < n; start += block {
			s := math.Float32frombits(binary.LittleEndian.Uint32(src[off:]))
			off += 4
			for i := start; i < min(start+block, n); i++ {
				out[i] = float32(refE4M3Value(src[off])) * s
				off++
			}
		}
	default:
		panic("refDecode: unknown kind " + string(kind))
	}
	return out
}

// refPackBits writes the low `bits` bits of each code as a little-endian bit
// stream: code i occupies bits [bits*i, bits*(i+1)) counted from bit 0 of
// byte 0, zero-padded to whole bytes.
func refPackBits(codes []int, bits int) []byte {
	out := make([]byte, (bits*len(codes)+7)/8)
	for i, q := range codes {
		for j := range bits {
			if uint(q)>>j&1 == 1 {
				p := bits*i + j
				out[p/8] |= 1 << (p % 8)
			}
		}
	}
	return out
}

// refUnpackBits reads n signed (two's complement) codes of `bits` bits from
// the bit stream refPackBits writes.
func refUnpackBits(b []byte, bits, n int) []int {
	out := make([]int, n)
	for i := range out {
		q := 0
		for j := range bits {
			p := bits*i + j
			q |= int(b[p/8]>>(p%8)&1) << j
		}
		if q >= 1<<(bits-1) {
			q -= 1 << bits
		}
		out[i] = q
	}
	return out
}

// refE4M3Value is the value of an OCP FP8 E4M3FN byte, computed from its
// fields: NaN for 0x7f and 0xff.
func refE4M3Value(b byte) float64 {
	if b&0x7f == 0x7f {
		return math.Copysign(math.NaN(), 1-2*float64(b>>7)) // the code's sign
	}
	e, m := int(b>>3&0xf), float64(b&7)
	v := m / 8 * math.Ldexp(1, -6) // subnormal: 0.m * 2^(1-7)
	if e > 0 {
		v = (1 + m/8) * math.Ldexp(1, e-7)
	}
	if b&0x80 != 0 {
		v = -v
	}
	return v
}

// refE4M3 rounds y to the nearest finite E4M3FN value by comparing it in
// float64 with every non-negative finite one (ties to the even byte, i.e.
// even last mantissa bit) and returns that byte, with the sign of y unless
// the value is zero. |y| must stay below 464, half-way to the missing 480.
func refE4M3(y float32) int {
	ay := math.Abs(float64(y))
	if !(ay < 464) {
		panic("refE4M3: out of range")
	}
	best, bestD := 0, math.Inf(1)
	for b := 0; b <= 0x7e; b++ {
		d := math.Abs(ay - refE4M3Value(byte(b)))
		if d < bestD || d == bestD && b%2 == 0 {
			best, bestD = b, d
		}
	}
	if best != 0 && math.Signbit(float64(y)) {
		best |= 0x80
	}
	return best
}

// decodeDiff is bitsDiff for the decoded values of wire, except that an fp8
// NaN code (0x7f, 0xff) in a block whose scale is a NaN too may decode to
// either NaN: the multiply returns one of its two NaN operands, and which
// one depends on the operand order the compiler picks. No encoder writes
// such a block.
func decodeDiff(kind CodecKind, block int, wire []byte, want, got []float32) string {
	if kind != CodecFP8 || len(want) != len(got) {
		return bitsDiff(want, got)
	}
	w := append([]float32(nil), want...)
	for i := range w {
		off := i/block*(block+4) + 4 + i%block
		s := math.Float32frombits(binary.LittleEndian.Uint32(wire[i/block*(block+4):]))
		if wire[off]&0x7f == 0x7f && math.IsNaN(float64(s)) && math.IsNaN(float64(w[i])) && math.IsNaN(float64(got[i])) {
			w[i] = got[i]
		}
	}
	if d := bitsDiff(w, got); d != "" {
		for i := range w {
			if math.Float32bits(w[i]) != math.Float32bits(got[i]) {
				off := i/block*(block+4) + 4 + i%block
				return fmt.Sprintf("%s (value %d: code %#02x, scale %#08x)", d, i, wire[off], binary.LittleEndian.Uint32(wire[i/block*(block+4):]))
			}
		}
	}
	return ""
}
