package collective

import "encoding/binary"

// int6Codec is the dynamic block-wise int6 codec: per block a float32 scale
// s = max|x|/31 and signed 6-bit codes in [-31, 31], four codes packed into
// three bytes (see codec_quant.go for the quantization rules, codec.go for
// the bit layout and docs/CODECS.md for the error bounds). It has no vector
// kernels: the loops below run on every machine.
type int6Codec struct {
	block int // a multiple of 8, so only the last block can end in a partial group
}

const int6Levels = 31

func newInt6Codec(block int) int6Codec { return int6Codec{block: block} }

func (int6Codec) Kind() CodecKind  { return CodecInt6 }
func (c int6Codec) BlockSize() int { return c.block }

// int6Bytes is the number of code bytes of m values: ceil(6m/8).
func int6Bytes(m int) int { return (6*m + 7) / 8 }

func (c int6Codec) EncodedLen(n int) int {
	full, rem := n/c.block, n%c.block
	l := full * (4 + int6Bytes(c.block))
	if rem > 0 {
		l += 4 + int6Bytes(rem)
	}
	return l
}

func (c int6Codec) Encode(dst []byte, src []float32) {
	checkEncodeLen(c.Kind(), dst, len(src), c.EncodedLen(len(src)))
	off := 0
	for start := 0; start < len(src); start += c.block {
		x := src[start:min(start+c.block, len(src))]
		blk := dst[off : off+4+int6Bytes(len(x))]
		encodeInt6Block(blk[:4], blk[4:], x)
		off += len(blk)
	}
}

// int6Pack writes the four 6-bit codes (the low 6 bits of a, b, c, d) into
// d3 as one little-endian 24-bit word a | b<<6 | c<<12 | d<<18.
func int6Pack(d3 []byte, a, b, c, d uint32) {
	w := a&0x3f | (b&0x3f)<<6 | (c&0x3f)<<12 | d<<18
	d3 = d3[:3:3]
	d3[0], d3[1], d3[2] = byte(w), byte(w>>8), byte(w>>16)
}

// int6PackTail writes the last m < 4 codes of a block, zero-padded to a
// whole group, into its int6Bytes(m) bytes.
func int6PackTail(q []byte, codes [3]uint32, m int) {
	w := codes[0]&0x3f | (codes[1]&0x3f)<<6 | (codes[2]&0x3f)<<12
	for i := range int6Bytes(m) {
		q[i] = byte(w >> (8 * i))
	}
}

// encodeInt6Block writes the scale of x into sc (4 bytes) and its packed
// codes into q (int6Bytes(len(x)) bytes).
func encodeInt6Block(sc, q []byte, x []float32) {
	m := absMaxBits(x)
	scale, r, ok := quickParams(m, int6Levels)
	pre, kind := float32(1), blockFinite
	if !ok {
		scale, r, pre, kind = blockParams(m, int6Levels)
	}
	putScale(sc, scale)
	n := len(x)
	q = q[:int6Bytes(n)]
	// code returns the 6-bit code of x[i] (two's complement in the low bits).
	code := func(v float32) uint32 {
		switch kind {
		case blockFinite:
			return quantCode(v*pre, r)
		case blockInf:
			return uint32(infCode(v, int6Levels))
		}
		return 0
	}
	i := 0
	if kind == blockFinite && pre == 1 {
		for ; i+8 <= n; i += 8 {
			s := x[i : i+8 : i+8]
			d := q[i/4*3 : i/4*3+6 : i/4*3+6]
			// The two groups as one 48-bit word, stored as 4 + 2 bytes.
			w := uint64(quantCode(s[0], r)&0x3f) | uint64(quantCode(s[1], r)&0x3f)<<6 |
				uint64(quantCode(s[2], r)&0x3f)<<12 | uint64(quantCode(s[3], r)&0x3f)<<18 |
				uint64(quantCode(s[4], r)&0x3f)<<24 | uint64(quantCode(s[5], r)&0x3f)<<30 |
				uint64(quantCode(s[6], r)&0x3f)<<36 | uint64(quantCode(s[7], r)&0x3f)<<42
			binary.LittleEndian.PutUint32(d[0:4], uint32(w))
			binary.LittleEndian.PutUint16(d[4:6], uint16(w>>32))
		}
	} else if kind == blockZero || kind == blockNaN {
		clear(q)
		return
	}
	for ; i+4 <= n; i += 4 {
		int6Pack(q[i/4*3:], code(x[i]), code(x[i+1]), code(x[i+2]), code(x[i+3]))
	}
	if i < n {
		var codes [3]uint32
		for j := range n - i {
			codes[j] = code(x[i+j])
		}
		int6PackTail(q[i/4*3:], codes, n-i)
	}
}

// int6Values maps a 6-bit code to its value -32..31 as a float32.
var int6Values = func() (t [64]float32) {
	for c := range 64 {
		t[c] = float32(int8(c<<2) >> 2)
	}
	return t
}()

// int6Codes returns the values of the four codes of the 24-bit group w.
func int6Codes(w uint32) (a, b, c, d float32) {
	t := &int6Values
	return t[w&0x3f], t[w>>6&0x3f], t[w>>12&0x3f], t[w>>18&0x3f]
}

// int6Tail returns the 24-bit group of the last m < 4 codes of a block,
// from its int6Bytes(m) bytes.
func int6Tail(q []byte, m int) uint32 {
	var w uint32
	for i := range int6Bytes(m) {
		w |= uint32(q[i]) << (8 * i)
	}
	return w
}

func (c int6Codec) Decode(dst []float32, src []byte) {
	checkDecodeLen(c.Kind(), "Decode", src, len(dst), c.EncodedLen(len(dst)))
	off := 0
	for start := 0; start < len(dst); start += c.block {
		d := dst[start:min(start+c.block, len(dst))]
		n := len(d)
		s := getScale(src[off : off+4])
		q := src[off+4 : off+4+int6Bytes(n)]
		off += 4 + len(q)
		i := 0
		for ; i+8 <= n; i += 8 {
			qq := q[i/4*3 : i/4*3+6 : i/4*3+6]
			dd := d[i : i+8 : i+8]
			w0 := uint32(qq[0]) | uint32(qq[1])<<8 | uint32(qq[2])<<16
			w1 := uint32(qq[3]) | uint32(qq[4])<<8 | uint32(qq[5])<<16
			c0, c1, c2, c3 := int6Codes(w0)
			c4, c5, c6, c7 := int6Codes(w1)
			dd[0], dd[1], dd[2], dd[3] = c0*s, c1*s, c2*s, c3*s
			dd[4], dd[5], dd[6], dd[7] = c4*s, c5*s, c6*s, c7*s
		}
		for ; i < n; i += 4 {
			m := min(4, n-i)
			var w uint32
			if m == 4 {
				w = uint32(q[i/4*3]) | uint32(q[i/4*3+1])<<8 | uint32(q[i/4*3+2])<<16
			} else {
				w = int6Tail(q[i/4*3:], m)
			}
			c0, c1, c2, c3 := int6Codes(w)
			cs := [4]float32{c0, c1, c2, c3}
			for j := range m {
				d[i+j] = cs[j] * s
			}
		}
	}
}

func (c int6Codec) DecodeAdd(dst []float32, src []byte) {
	checkDecodeLen(c.Kind(), "DecodeAdd", src, len(dst), c.EncodedLen(len(dst)))
	off := 0
	for start := 0; start < len(dst); start += c.block {
		d := dst[start:min(start+c.block, len(dst))]
		n := len(d)
		s := getScale(src[off : off+4])
		q := src[off+4 : off+4+int6Bytes(n)]
		off += 4 + len(q)
		i := 0
		// The explicit float32 conversions keep the product rounded on its
		// own (no fused multiply-add), so DecodeAdd equals Decode then add.
		for ; i+8 <= n; i += 8 {
			qq := q[i/4*3 : i/4*3+6 : i/4*3+6]
			dd := d[i : i+8 : i+8]
			w0 := uint32(qq[0]) | uint32(qq[1])<<8 | uint32(qq[2])<<16
			w1 := uint32(qq[3]) | uint32(qq[4])<<8 | uint32(qq[5])<<16
			c0, c1, c2, c3 := int6Codes(w0)
			c4, c5, c6, c7 := int6Codes(w1)
			dd[0] += float32(c0 * s)
			dd[1] += float32(c1 * s)
			dd[2] += float32(c2 * s)
			dd[3] += float32(c3 * s)
			dd[4] += float32(c4 * s)
			dd[5] += float32(c5 * s)
			dd[6] += float32(c6 * s)
			dd[7] += float32(c7 * s)
		}
		for ; i < n; i += 4 {
			m := min(4, n-i)
			var w uint32
			if m == 4 {
				w = uint32(q[i/4*3]) | uint32(q[i/4*3+1])<<8 | uint32(q[i/4*3+2])<<16
			} else {
				w = int6Tail(q[i/4*3:], m)
			}
			c0, c1, c2, c3 := int6Codes(w)
			cs := [4]float32{c0, c1, c2, c3}
			for j := range m {
				d[i+j] += float32(cs[j] * s)
			}
		}
	}
}
