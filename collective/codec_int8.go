package collective

// int8Codec is the dynamic block-wise int8 codec: per block a float32 scale
// s = max|x|/127 and one signed byte per value (see codec_quant.go for the
// exact rules and docs/CODECS.md for the error bounds).
type int8Codec struct {
	block int
}

const int8Levels = 127

func newInt8Codec(block int) int8Codec { return int8Codec{block: block} }

func (int8Codec) Kind() CodecKind  { return CodecInt8 }
func (c int8Codec) BlockSize() int { return c.block }

func (c int8Codec) EncodedLen(n int) int {
	return n + 4*((n+c.block-1)/c.block)
}

func (c int8Codec) Encode(dst []byte, src []float32) {
	checkEncodeLen(c.Kind(), dst, len(src), c.EncodedLen(len(src)))
	c.encode(activeKernels, dst, src)
}

// encode is Encode on kernel set k: k's kernel takes the whole blocks it
// handles, encodeInt8Block the others and the short final block.
func (c int8Codec) encode(k *codecKernels, dst []byte, src []float32) {
	start, off := 0, 0
	if k.encInt8 != nil {
		full, stride := len(src)/c.block, 4+c.block
		for b := 0; b < full; {
			b += k.encInt8(bytep(dst, b*stride), f32p(src, b*c.block), full-b, c.block)
			if b < full {
				x := src[b*c.block : (b+1)*c.block]
				blk := dst[b*stride : (b+1)*stride]
				encodeInt8Block(blk[:4], blk[4:], x)
				b++
			}
		}
		start, off = full*c.block, full*stride
	}
	for ; start < len(src); start += c.block {
		x := src[start:min(start+c.block, len(src))]
		blk := dst[off : off+4+len(x)]
		encodeInt8Block(blk[:4], blk[4:], x)
		off += len(blk)
	}
}

// encodeInt8Block writes the scale of x into sc (4 bytes) and its codes
// into q (len(x) bytes).
func encodeInt8Block(sc, q []byte, x []float32) {
	m := absMaxBits(x)
	scale, r, ok := quickParams(m, int8Levels)
	pre, kind := float32(1), blockFinite
	if !ok {
		scale, r, pre, kind = blockParams(m, int8Levels)
	}
	putScale(sc, scale)
	q = q[:len(x)]
	switch kind {
	case blockFinite:
		if pre != 1 {
			for i, v := range x {
				q[i] = byte(quantCode(v*pre, r))
			}
			return
		}
		i := 0
		for ; i+8 <= len(x); i += 8 {
			s := x[i : i+8 : i+8]
			d := q[i : i+8 : i+8]
			d[0] = byte(quantCode(s[0], r))
			d[1] = byte(quantCode(s[1], r))
			d[2] = byte(quantCode(s[2], r))
			d[3] = byte(quantCode(s[3], r))
			d[4] = byte(quantCode(s[4], r))
			d[5] = byte(quantCode(s[5], r))
			d[6] = byte(quantCode(s[6], r))
			d[7] = byte(quantCode(s[7], r))
		}
		for ; i < len(x); i++ {
			q[i] = byte(quantCode(x[i], r))
		}
	case blockInf:
		for i, v := range x {
			q[i] = byte(int8(infCode(v, int8Levels)))
		}
	default:
		clear(q)
	}
}

func (c int8Codec) Decode(dst []float32, src []byte) {
	checkDecodeLen(c.Kind(), "Decode", src, len(dst), c.EncodedLen(len(dst)))
	c.decode(activeKernels, dst, src)
}

// decode is Decode on kernel set k.
func (c int8Codec) decode(k *codecKernels, dst []float32, src []byte) {
	start, off := 0, 0
	if full := len(dst) / c.block; k.decInt8 != nil && full > 0 {
		k.decInt8(f32p(dst, 0), bytep(src, 0), full, c.block)
		start, off = full*c.block, full*(4+c.block)
	}
	for ; start < len(dst); start += c.block {
		d := dst[start:min(start+c.block, len(dst))]
		s := getScale(src[off : off+4])
		q := src[off+4 : off+4+len(d)]
		off += 4 + len(d)
		q = q[:len(d)]
		i := 0
		for ; i+8 <= len(d); i += 8 {
			qq := q[i : i+8 : i+8]
			dd := d[i : i+8 : i+8]
			dd[0] = float32(int8(qq[0])) * s
			dd[1] = float32(int8(qq[1])) * s
			dd[2] = float32(int8(qq[2])) * s
			dd[3] = float32(int8(qq[3])) * s
			dd[4] = float32(int8(qq[4])) * s
			dd[5] = float32(int8(qq[5])) * s
			dd[6] = float32(int8(qq[6])) * s
			dd[7] = float32(int8(qq[7])) * s
		}
		for ; i < len(d); i++ {
			d[i] = float32(int8(q[i])) * s
		}
	}
}

func (c int8Codec) DecodeAdd(dst []float32, src []byte) {
	checkDecodeLen(c.Kind(), "DecodeAdd", src, len(dst), c.EncodedLen(len(dst)))
	c.decodeAdd(activeKernels, dst, src)
}

// decodeAdd is DecodeAdd on kernel set k.
func (c int8Codec) decodeAdd(k *codecKernels, dst []float32, src []byte) {
	start, off := 0, 0
	if full := len(dst) / c.block; k.decAddInt8 != nil && full > 0 {
		k.decAddInt8(f32p(dst, 0), bytep(src, 0), full, c.block)
		start, off = full*c.block, full*(4+c.block)
	}
	for ; start < len(dst); start += c.block {
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
			dd[0] += float32(float32(int8(qq[0])) * s)
			dd[1] += float32(float32(int8(qq[1])) * s)
			dd[2] += float32(float32(int8(qq[2])) * s)
			dd[3] += float32(float32(int8(qq[3])) * s)
			dd[4] += float32(float32(int8(qq[4])) * s)
			dd[5] += float32(float32(int8(qq[5])) * s)
			dd[6] += float32(float32(int8(qq[6])) * s)
			dd[7] += float32(float32(int8(qq[7])) * s)
		}
		for ; i < len(d); i++ {
			d[i] += float32(float32(int8(q[i])) * s)
		}
	}
}
