package collective

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The call header on the wire, little endian:
//
//	u8  version (headerVersion)
//	u64 seq
//	u64 n (values)
//	u8  len + codec name
//	u32 block size
//	u8  len + algorithm name
//	i64 segment values
//	i64 fallback values
//	i64 row values (batch-invariant layout; 0 = off)
//	i64 plan rows
//	f64 sender's simulated clock (seconds)
//	u16 number of outgoing links, then f64 free time of each
//
// Names are at most 32 bytes; a header is at most 1 KiB with 64 links.
const headerVersion = 2

const maxHeaderName = 32

func (h header) marshal() []byte {
	b := make([]byte, 0, 64+8*len(h.linkFree))
	b = append(b, headerVersion)
	b = binary.LittleEndian.AppendUint64(b, h.seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(h.n))
	b = appendName(b, string(h.opts.Codec))
	b = binary.LittleEndian.AppendUint32(b, uint32(h.opts.BlockSize))
	b = appendName(b, string(h.opts.Algorithm))
	b = binary.LittleEndian.AppendUint64(b, uint64(int64(h.opts.SegmentElems)))
	b = binary.LittleEndian.AppendUint64(b, uint64(int64(h.opts.FallbackElems)))
	b = binary.LittleEndian.AppendUint64(b, uint64(int64(h.opts.RowElems)))
	b = binary.LittleEndian.AppendUint64(b, uint64(int64(h.opts.PlanRows)))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(h.clock))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(h.linkFree)))
	for _, t := range h.linkFree {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(t))
	}
	return b
}

func appendName(b []byte, s string) []byte {
	if len(s) > maxHeaderName {
		s = s[:maxHeaderName] // never valid: the peer's options check fails
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

var errShortHeader = errors.New("header too short")

// unmarshalHeader decodes a header whose sender has wantLinks outgoing
// links. It checks every length before reading and rejects trailing bytes.
func unmarshalHeader(b []byte, wantLinks int) (header, error) {
	var h header
	r := reader{b: b}
	if v := r.u8(); v != headerVersion {
		if r.err != nil {
			return h, r.err
		}
		return h, fmt.Errorf("header version %d, want %d", v, headerVersion)
	}
	h.seq = r.u64()
	n := r.u64()
	h.opts.Codec = CodecKind(r.name())
	h.opts.BlockSize = int(int32(r.u32()))
	h.opts.Algorithm = Algorithm(r.name())
	h.opts.SegmentElems = int(int64(r.u64()))
	h.opts.FallbackElems = int(int64(r.u64()))
	h.opts.RowElems = int(int64(r.u64()))
	h.opts.PlanRows = int(int64(r.u64()))
	h.clock = math.Float64frombits(r.u64())
	links := int(r.u16())
	if r.err != nil {
		return h, r.err
	}
	if n > math.MaxInt32 {
		return h, fmt.Errorf("header announces %d values", n)
	}
	h.n = int(n)
	if links != wantLinks {
		return h, fmt.Errorf("header has %d link times, the sender has %d links: %w", links, wantLinks, ErrMismatch)
	}
	if len(r.b) != 8*links {
		return h, fmt.Errorf("header has %d bytes of link times, want %d", len(r.b), 8*links)
	}
	h.linkFree = make([]float64, links)
	for i := range h.linkFree {
		h.linkFree[i] = math.Float64frombits(r.u64())
	}
	if math.IsNaN(h.clock) || math.IsInf(h.clock, 0) || h.clock < 0 {
		return h, fmt.Errorf("header clock %v", h.clock)
	}
	return h, nil
}

// reader reads little-endian fields, remembering the first short read.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = errShortHeader
		r.b = nil
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8   { return r.take(1)[0] }
func (r *reader) u16() uint16 { return binary.LittleEndian.Uint16(r.take(2)) }
func (r *reader) u32() uint32 { return binary.LittleEndian.Uint32(r.take(4)) }
func (r *reader) u64() uint64 { return binary.LittleEndian.Uint64(r.take(8)) }

func (r *reader) name() string {
	n := int(r.u8())
	if n > maxHeaderName {
		r.err = fmt.Errorf("header name of %d bytes", n)
		return ""
	}
	return string(r.take(n))
}
