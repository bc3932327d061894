package collective

// int4Codec is the dynamic block-wise int4 codec: per block a float32 scale
// s = max|x|/7 and two signed 4-bit codes in [-7, 7] per byte, value 2i in
// the low nibble and 2i+1 in the high one (see codec_quant.go for the exact
// rules and docs/CODECS.md for the error bounds).
type int4Codec struct {
	block int // even, so only the last block can hold an odd count
}

const int4Levels = 7

func newInt4Codec(block int) int4Codec { return int4Codec{block: block} }

func (int4Codec) Kind() CodecKind  { return CodecInt4 }
func (c int4Codec) BlockSize() int { return c.block }

func (c int4Codec) EncodedLen(n int) int {
	full, rem := n/c.block, n%c.block
	l := full * (4 + c.block/2)
	if rem > 0 {
		l += 4 + (rem+1)/2
	}
	return l
}

func (c int4Codec) Encode(dst []byte, src []float32) {
	checkEncodeLen(c.Kind(), dst, len(src), c.EncodedLen(len(src)))
	c.encode(activeKernels, dst, src)
}

// encode is Encode on kernel set k: k's kernel takes the whole blocks it
// handles, encodeInt4Block the others and the short final block.
func (c int4Codec) encode(k *codecKernels, dst []byte, src []float32) {
	start, off := 0, 0
	if k.encInt4 != nil {
		full, stride := len(src)/c.block, 4+c.block/2
		for b := 0; b < full; {
			b += k.encInt4(bytep(dst, b*stride), f32p(src, b*c.block), full-b, c.block)
			if b < full {
				x := src[b*c.block : (b+1)*c.block]
				blk := dst[b*stride : (b+1)*stride]
				encodeInt4Block(blk[:4], blk[4:], x)
				b++
			}
		}
		start, off = full*c.block, full*stride
	}
	for ; start < len(src); start += c.block {
		x := src[start:min(start+c.block, len(src))]
		blk := dst[off : off+4+(len(x)+1)/2]
		encodeInt4Block(blk[:4], blk[4:], x)
		off += len(blk)
	}
}

// encodeInt4Block writes the scale of x into sc (4 bytes) and its packed
// codes into q ((len(x)+1)/2 bytes).
func encodeInt4Block(sc, q []byte, x []float32) {
	m := absMaxBits(x)
	scale, r, ok := quickParams(m, int4Levels)
	pre, kind := float32(1), blockFinite
	if !ok {
		scale, r, pre, kind = blockParams(m, int4Levels)
	}
	putScale(sc, scale)
	n := len(x)
	q = q[:(n+1)/2]
	switch kind {
	case blockFinite:
		if pre != 1 {
			for i, v := range x {
				c := byte(quantCode(v*pre, r) & 0xf)
				if i%2 == 0 {
					q[i/2] = c
				} else {
					q[i/2] |= c << 4
				}
			}
			return
		}
		i := 0
		for ; i+16 <= n; i += 16 {
			s := x[i : i+16 : i+16]
			d := q[i/2 : i/2+8 : i/2+8]
			d[0] = byte(quantCode(s[0], r)&0xf | quantCode(s[1], r)<<4)
			d[1] = byte(quantCode(s[2], r)&0xf | quantCode(s[3], r)<<4)
			d[2] = byte(quantCode(s[4], r)&0xf | quantCode(s[5], r)<<4)
			d[3] = byte(quantCode(s[6], r)&0xf | quantCode(s[7], r)<<4)
			d[4] = byte(quantCode(s[8], r)&0xf | quantCode(s[9], r)<<4)
			d[5] = byte(quantCode(s[10], r)&0xf | quantCode(s[11], r)<<4)
			d[6] = byte(quantCode(s[12], r)&0xf | quantCode(s[13], r)<<4)
			d[7] = byte(quantCode(s[14], r)&0xf | quantCode(s[15], r)<<4)
		}
		for ; i+2 <= n; i += 2 {
			q[i/2] = byte(quantCode(x[i], r)&0xf | quantCode(x[i+1], r)<<4)
		}
		if i < n {
			q[i/2] = byte(quantCode(x[i], r) & 0xf)
		}
	case blockInf:
		clear(q)
		for i, v := range x {
			c := byte(infCode(v, int4Levels)) & 0xf
			q[i/2] |= c << (4 * (i % 2))
		}
	default:
		clear(q)
	}
}

// int4Lo and int4Hi sign-extend the low and high nibble of b.
func int4Lo(b byte) float32 { return float32(int8(b<<4) >> 4) }
func int4Hi(b byte) float32 { return float32(int8(b) >> 4) }

func (c int4Codec) Decode(dst []float32, src []byte) {
	checkDecodeLen(c.Kind(), "Decode", src, len(dst), c.EncodedLen(len(dst)))
	c.decode(activeKernels, dst, src)
}

// decode is Decode on kernel set k.
func (c int4Codec) decode(k *codecKernels, dst []float32, src []byte) {
	start, off := 0, 0
	if full := len(dst) / c.block; k.decInt4 != nil && full > 0 {
		k.decInt4(f32p(dst, 0), bytep(src, 0), full, c.block)
		start, off = full*c.block, full*(4+c.block/2)
	}
	for ; start < len(dst); start += c.block {
		d := dst[start:min(start+c.block, len(dst))]
		n := len(d)
		s := getScale(src[off : off+4])
		q := src[off+4 : off+4+(n+1)/2]
		off += 4 + len(q)
		i := 0
		for ; i+16 <= n; i += 16 {
			qq := q[i/2 : i/2+8 : i/2+8]
			dd := d[i : i+16 : i+16]
			dd[0], dd[1] = int4Lo(qq[0])*s, int4Hi(qq[0])*s
			dd[2], dd[3] = int4Lo(qq[1])*s, int4Hi(qq[1])*s
			dd[4], dd[5] = int4Lo(qq[2])*s, int4Hi(qq[2])*s
			dd[6], dd[7] = int4Lo(qq[3])*s, int4Hi(qq[3])*s
			dd[8], dd[9] = int4Lo(qq[4])*s, int4Hi(qq[4])*s
			dd[10], dd[11] = int4Lo(qq[5])*s, int4Hi(qq[5])*s
			dd[12], dd[13] = int4Lo(qq[6])*s, int4Hi(qq[6])*s
			dd[14], dd[15] = int4Lo(qq[7])*s, int4Hi(qq[7])*s
		}
		for ; i+2 <= n; i += 2 {
			b := q[i/2]
			d[i], d[i+1] = int4Lo(b)*s, int4Hi(b)*s
		}
		if i < n {
			d[i] = int4Lo(q[i/2]) * s
		}
	}
}

func (c int4Codec) DecodeAdd(dst []float32, src []byte) {
	checkDecodeLen(c.Kind(), "DecodeAdd", src, len(dst), c.EncodedLen(len(dst)))
	c.decodeAdd(activeKernels, dst, src)
}

// decodeAdd is DecodeAdd on kernel set k.
func (c int4Codec) decodeAdd(k *codecKernels, dst []float32, src []byte) {
	start, off := 0, 0
	if full := len(dst) / c.block; k.decAddInt4 != nil && full > 0 {
		k.decAddInt4(f32p(dst, 0), bytep(src, 0), full, c.block)
		start, off = full*c.block, full*(4+c.block/2)
	}
	for ; start < len(dst); start += c.block {
		d := dst[start:min(start+c.block, len(dst))]
		n := len(d)
		s := getScale(src[off : off+4])
		q := src[off+4 : off+4+(n+1)/2]
		off += 4 + len(q)
		i := 0
		// The explicit float32 conversions keep the product rounded on its
		// own (no fused multiply-add), so DecodeAdd equals Decode then add.
		for ; i+16 <= n; i += 16 {
			qq := q[i/2 : i/2+8 : i/2+8]
			dd := d[i : i+16 : i+16]
			dd[0] += float32(int4Lo(qq[0]) * s)
			dd[1] += float32(int4Hi(qq[0]) * s)
			dd[2] += float32(int4Lo(qq[1]) * s)
			dd[3] += float32(int4Hi(qq[1]) * s)
			dd[4] += float32(int4Lo(qq[2]) * s)
			dd[5] += float32(int4Hi(qq[2]) * s)
			dd[6] += float32(int4Lo(qq[3]) * s)
			dd[7] += float32(int4Hi(qq[3]) * s)
			dd[8] += float32(int4Lo(qq[4]) * s)
			dd[9] += float32(int4Hi(qq[4]) * s)
			dd[10] += float32(int4Lo(qq[5]) * s)
			dd[11] += float32(int4Hi(qq[5]) * s)
			dd[12] += float32(int4Lo(qq[6]) * s)
			dd[13] += float32(int4Hi(qq[6]) * s)
			dd[14] += float32(int4Lo(qq[7]) * s)
			dd[15] += float32(int4Hi(qq[7]) * s)
		}
		for ; i+2 <= n; i += 2 {
			b := q[i/2]
			d[i] += float32(int4Lo(b) * s)
			d[i+1] += float32(int4Hi(b) * s)
		}
		if i < n {
			d[i] += float32(int4Lo(q[i/2]) * s)
		}
	}
}
