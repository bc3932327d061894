package collective

import "math"

// fp8Codec is the dynamic block-wise FP8 codec: per block a float32 scale
// s = max|x|/448 and one OCP FP8 E4M3FN byte per value, the value x/s
// rounded to the nearest E4M3 number, ties to even (see codec_quant.go for
// the block rules it shares with int8, codec.go for the byte format and
// docs/CODECS.md for the error bounds). It has no vector kernels: the loops
// below run on every machine.
//
// E4M3FN: sign bit, 4 exponent bits (bias 7), 3 mantissa bits. Exponent
// field e > 0 gives 2^(e-7) * (1 + m/8); e = 0 gives the subnormals
// m * 2^-9. There are no infinities: 0x7f and 0xff are NaN, and the largest
// finite magnitude is 0x7e = 448.
type fp8Codec struct {
	block int
}

const (
	fp8Levels = 448 // the largest finite E4M3FN value

	fp8MaxCode = 0x7e // 448
	// fp8MinNormalBits is math.Float32bits(2^-6), the smallest normal E4M3
	// magnitude: below it a value rounds on the subnormal grid of 2^-9.
	fp8MinNormalBits = 0x3c800000
	// fp8SubMagic is 2^14: fl32(|y| + 2^14) for |y| < 2^-6 rounds |y| to a
	// multiple of 2^-9 (the float32 ulp at 2^14), ties to even, and leaves
	// the multiple in the low mantissa bits.
	fp8SubMagic     float32 = 0x1p14
	fp8SubMagicBits         = 0x46800000
	// fp8ExpRebias is (127-7)<<3: the float32 exponent bias minus the E4M3
	// one, in the position exponent and mantissa take in (bits>>20).
	fp8ExpRebias = 0x3c0
)

// fp8Values maps each E4M3FN byte to its value as a float32 (exact); 0x7f
// and 0xff map to NaN.
var fp8Values = func() (t [256]float32) {
	for b := range 256 {
		e, m := (b>>3)&0xf, b&7
		v := math.Ldexp(float64(m), -9)
		if e > 0 {
			v = math.Ldexp(1+float64(m)/8, e-7)
		}
		if b&0x7f == 0x7f {
			v = math.NaN()
		}
		if b&0x80 != 0 {
			v = -v
		}
		t[b] = float32(v)
	}
	return t
}()

func newFP8Codec(block int) fp8Codec { return fp8Codec{block: block} }

func (fp8Codec) Kind() CodecKind  { return CodecFP8 }
func (c fp8Codec) BlockSize() int { return c.block }

func (c fp8Codec) EncodedLen(n int) int {
	return n + 4*((n+c.block-1)/c.block)
}

// fp8Code returns the E4M3FN byte of y rounded to nearest, ties to even, for
// |y| < 464 (the midpoint between 448 and the missing next value 480). A
// value that rounds to zero gets the code +0, whatever its sign.
func fp8Code(y float32) byte {
	b := math.Float32bits(y)
	m := b & absMask
	// Both roundings are computed and one is picked (a conditional move,
	// not a branch). Normal range: round the 23 mantissa bits to 3, ties to
	// even; a carry moves into the exponent, as it should.
	mag := (m+0x7ffff+(m>>20)&1)>>20 - fp8ExpRebias
	sub := math.Float32bits(math.Float32frombits(m)+fp8SubMagic) - fp8SubMagicBits
	if m < fp8MinNormalBits {
		mag = sub
	}
	// The sign bit, kept only for a nonzero magnitude (-mag has its top
	// bits set exactly when mag != 0).
	return byte(mag | (b>>24)&(-mag>>24)&0x80)
}

// fp8Pair is fp8Code for two values at once, given by their float32 bits,
// computed in the two 32-bit lanes of a uint64. It handles only magnitudes
// in the normal E4M3 range [2^-6, 464) (there the magnitude byte is at
// least 0x08, so the sign bit is always kept, and no lane carries or
// borrows into the other); ok reports whether both are.
func fp8Pair(b0, b1 uint32) (c0, c1 byte, ok bool) {
	const lanes = 0x0000000100000001
	w := uint64(b0) | uint64(b1)<<32
	m := w & (absMask * lanes)
	mag := ((m+0x7ffff*lanes+(m>>20)&lanes)>>20)&(0xfff*lanes) - fp8ExpRebias*lanes
	c := mag | (w>>24)&(0x80*lanes)
	// A lane below 2^-6 sets its top bit in m - 2^-6 (a borrow out of the
	// low lane can only flag the high one too, which is harmless: the
	// caller then rounds both values one by one).
	return byte(c), byte(c >> 32), (m-fp8MinNormalBits*lanes)&(0x80000000*lanes) == 0
}

func (c fp8Codec) Encode(dst []byte, src []float32) {
	checkEncodeLen(c.Kind(), dst, len(src), c.EncodedLen(len(src)))
	off := 0
	for start := 0; start < len(src); start += c.block {
		x := src[start:min(start+c.block, len(src))]
		blk := dst[off : off+4+len(x)]
		encodeFP8Block(blk[:4], blk[4:], x)
		off += len(blk)
	}
}

// encodeFP8Block writes the scale of x into sc (4 bytes) and its codes into
// q (len(x) bytes).
func encodeFP8Block(sc, q []byte, x []float32) {
	m := absMaxBits(x)
	scale, r, ok := quickParams(m, fp8Levels)
	pre, kind := float32(1), blockFinite
	if !ok {
		scale, r, pre, kind = blockParams(m, fp8Levels)
	}
	putScale(sc, scale)
	q = q[:len(x)]
	switch kind {
	case blockFinite:
		if pre != 1 {
			for i, v := range x {
				q[i] = fp8Code(float32(v*pre) * r)
			}
			return
		}
		i := 0
		for ; i+4 <= len(x); i += 4 {
			s := x[i : i+4 : i+4]
			d := q[i : i+4 : i+4]
			y0, y1, y2, y3 := s[0]*r, s[1]*r, s[2]*r, s[3]*r
			c0, c1, ok0 := fp8Pair(math.Float32bits(y0), math.Float32bits(y1))
			c2, c3, ok1 := fp8Pair(math.Float32bits(y2), math.Float32bits(y3))
			if !ok0 || !ok1 {
				c0, c1, c2, c3 = fp8Code(y0), fp8Code(y1), fp8Code(y2), fp8Code(y3)
			}
			d[0], d[1], d[2], d[3] = c0, c1, c2, c3
		}
		for ; i < len(x); i++ {
			q[i] = fp8Code(x[i] * r)
		}
	case blockInf:
		for i, v := range x {
			switch {
			case math.IsInf(float64(v), 1):
				q[i] = fp8MaxCode
			case math.IsInf(float64(v), -1):
				q[i] = 0x80 | fp8MaxCode
			default:
				q[i] = 0
			}
		}
	default:
		clear(q)
	}
}

func (c fp8Codec) Decode(dst []float32, src []byte) {
	checkDecodeLen(c.Kind(), "Decode", src, len(dst), c.EncodedLen(len(dst)))
	t := &fp8Values
	off := 0
	for start := 0; start < len(dst); start += c.block {
		d := dst[start:min(start+c.block, len(dst))]
		s := getScale(src[off : off+4])
		q := src[off+4 : off+4+len(d)]
		off += 4 + len(d)
		q = q[:len(d)]
		i := 0
		for ; i+8 <= len(d); i += 8 {
			qq := q[i : i+8 : i+8]
			dd := d[i : i+8 : i+8]
			dd[0] = t[qq[0]] * s
			dd[1] = t[qq[1]] * s
			dd[2] = t[qq[2]] * s
			dd[3] = t[qq[3]] * s
			dd[4] = t[qq[4]] * s
			dd[5] = t[qq[5]] * s
			dd[6] = t[qq[6]] * s
			dd[7] = t[qq[7]] * s
		}
		for ; i < len(d); i++ {
			d[i] = t[q[i]] * s
		}
	}
}

func (c fp8Codec) DecodeAdd(dst []float32, src []byte) {
	checkDecodeLen(c.Kind(), "DecodeAdd", src, len(dst), c.EncodedLen(len(dst)))
	t := &fp8Values
	off := 0
	for start := 0; start < len(dst); start += c.block {
		d := dst[start:min(start+c.block, len(dst))]
		s := getScale(src[off : off+4])
		q := src[off+4 : off+4+len(d)]
		off += 4 + len(d)
		q = q[:len(d)]
		i := 0
		// The explicit float32 conversions keep the product rounded on its
		// own (no fused multiply-add), so DecodeAdd equals Decode then add.
		for ; i+8 <= len(d); i += 8 {
			qq := q[i : i+8 : i+8]
			dd := d[i : i+8 : i+8]
			dd[0] += float32(t[qq[0]] * s)
			dd[1] += float32(t[qq[1]] * s)
			dd[2] += float32(t[qq[2]] * s)
			dd[3] += float32(t[qq[3]] * s)
			dd[4] += float32(t[qq[4]] * s)
			dd[5] += float32(t[qq[5]] * s)
			dd[6] += float32(t[qq[6]] * s)
			dd[7] += float32(t[qq[7]] * s)
		}
		for ; i < len(d); i++ {
			d[i] += float32(t[q[i]] * s)
		}
	}
}
