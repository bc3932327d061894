package collective

// rowCodec is a block codec whose blocks restart every width values: the
// batch-invariant layout's codec when a row stripe is not a whole number of
// blocks. Values are encoded stripe by stripe with the inner codec (each
// stripe ending in a short block), back to back, so the encoding of whole
// stripes src[a:b] (a a multiple of width) is the byte range
// EncodedLen(a):EncodedLen(b) of the whole encoding. A final partial stripe
// is encoded like a short stripe.
type rowCodec struct {
	inner Codec
	width int
}

func (c rowCodec) Kind() CodecKind { return c.inner.Kind() }
func (c rowCodec) BlockSize() int  { return c.inner.BlockSize() }

func (c rowCodec) EncodedLen(n int) int {
	return n/c.width*c.inner.EncodedLen(c.width) + c.inner.EncodedLen(n%c.width)
}

// each calls f on every stripe of n values and its byte range.
func (c rowCodec) each(n int, f func(lo, hi, blo, bhi int)) {
	e := c.inner.EncodedLen(c.width)
	off := 0
	for lo := 0; lo < n; lo += c.width {
		hi := min(lo+c.width, n)
		l := e
		if hi-lo < c.width {
			l = c.inner.EncodedLen(hi - lo)
		}
		f(lo, hi, off, off+l)
		off += l
	}
}

func (c rowCodec) Encode(dst []byte, src []float32) {
	checkEncodeLen(c.Kind(), dst, len(src), c.EncodedLen(len(src)))
	c.each(len(src), func(lo, hi, blo, bhi int) { c.inner.Encode(dst[blo:bhi], src[lo:hi]) })
}

func (c rowCodec) Decode(dst []float32, src []byte) {
	checkDecodeLen(c.Kind(), "Decode", src, len(dst), c.EncodedLen(len(dst)))
	c.each(len(dst), func(lo, hi, blo, bhi int) { c.inner.Decode(dst[lo:hi], src[blo:bhi]) })
}

func (c rowCodec) DecodeAdd(dst []float32, src []byte) {
	checkDecodeLen(c.Kind(), "DecodeAdd", src, len(dst), c.EncodedLen(len(dst)))
	c.each(len(dst), func(lo, hi, blo, bhi int) { c.inner.DecodeAdd(dst[lo:hi], src[blo:bhi]) })
}

// stripe reorders rows of w = stripes*sw values stripe-major: dst's stripe
// s holds, row after row, values [s*sw, (s+1)*sw) of every row of src.
func stripe(dst, src []float32, w, stripes int) {
	sw, rows := w/stripes, len(src)/w
	for r := 0; r < rows; r++ {
		row := src[r*w : (r+1)*w]
		for s := 0; s < stripes; s++ {
			copy(dst[(s*rows+r)*sw:(s*rows+r+1)*sw], row[s*sw:(s+1)*sw])
		}
	}
}
