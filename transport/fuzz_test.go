package transport

import (
	"bytes"
	"testing"
)

// A frame header off the wire either fails its checks or round-trips
// exactly; it never panics.
func FuzzParseFrameHeader(f *testing.F) {
	var b [frameHeaderLen]byte
	(&frameHeader{kind: frameData, from: 1, to: 2, epoch: 3, seq: 4, id: 5, n: 6, sum: 7}).put(b[:])
	f.Add(b[:])
	f.Add(bytes.Repeat([]byte{0xff}, frameHeaderLen))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := parseFrameHeader(in)
		if err != nil {
			return
		}
		var out [frameHeaderLen]byte
		h.put(out[:])
		if !bytes.Equal(out[:], in[:frameHeaderLen]) {
			t.Fatalf("accepted header does not round-trip: %x vs %x", out, in[:frameHeaderLen])
		}
		if h.kind == frameAbort && h.n > maxAbortCause {
			t.Fatalf("accepted an abort cause of %d bytes", h.n)
		}
	})
}
