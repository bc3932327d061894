package collective

import (
	"fmt"
	"hash/crc32"
	"time"

	"github.com/equarx/equarx/tpu"
)

// LocalWork is the CPU time one rank's local steps of an AllReduce take on
// this machine, measured by ReplayLocalWork without any transport.
type LocalWork struct {
	EncodeSeconds float64 // Encode of every range the rank sends
	DecodeSeconds float64 // Decode and DecodeAdd of every range it receives or keeps
	CRCSeconds    float64 // CRC32-C of every payload it encodes or receives
	EncodedValues int64   // values encoded
	DecodedValues int64   // values decoded or decoded-and-added
}

// ReplayLocalWork runs rank's encode, decode and decode-add steps of the
// AllReduce that Options select for len(buf) values on topo, in schedule
// order, on a copy of buf, twice, and times each one of the second pass; the checksums the executor
// computes are timed too. Payloads the rank would receive are stood in for
// by the encoding of the same range of buf (made untimed), so every kernel
// runs on bytes of the right length and realistic content. It tells how
// much of an AllReduce's wall time the codec kernels account for.
func ReplayLocalWork(topo tpu.Topology, prof tpu.Profile, rank int, buf []float32, opts Options) (LocalWork, error) {
	if rank < 0 || rank >= topo.Size() {
		return LocalWork{}, fmt.Errorf("collective: replay: rank %d of %d", rank, topo.Size())
	}
	nw, err := cachedNetwork(topo, prof)
	if err != nil {
		return LocalWork{}, fmt.Errorf("collective: replay: %w", err)
	}
	p, err := resolve(nw, len(buf), opts)
	if err != nil {
		return LocalWork{}, fmt.Errorf("collective: replay: %w", err)
	}
	s, err := buildSchedule(topo, p)
	if err != nil {
		return LocalWork{}, fmt.Errorf("collective: replay: %w", err)
	}
	ops := s.ops[rank]
	// Every payload gets its own range of one arena, written in an
	// untimed first pass and reused by the timed second one: the executor
	// over a copying transport also reuses its arena between calls, so
	// first-touch page faults are not the kernels' cost.
	total := 0
	for _, o := range ops {
		if o.kind == opEncode || o.kind == opRecv {
			total += o.encLen
		}
	}
	arena := make([]byte, total)
	work := make([]float32, len(buf))
	if p.stripes > 1 {
		// The executor runs on the batch-invariant layout's reordering
		// (its two copies are not timed here).
		striped := make([]float32, len(buf))
		stripe(striped, buf, p.rowElems, p.stripes)
		buf = striped
	}
	codec := s.codec
	var w LocalWork
	for pass := 0; pass < 2; pass++ {
		copy(work, buf)
		w = LocalWork{}
		slots := make([][]byte, s.slots[rank])
		fill := make([]bool, len(slots)) // slot stands in for a received payload
		off := 0
		for _, o := range ops {
			switch o.kind {
			case opEncode:
				b := arena[off : off+o.encLen]
				off += o.encLen
				t0 := time.Now()
				codec.Encode(b, work[o.lo:o.hi])
				t1 := time.Now()
				crc32.Checksum(b, castagnoli)
				t2 := time.Now()
				w.EncodeSeconds += t1.Sub(t0).Seconds()
				w.CRCSeconds += t2.Sub(t1).Seconds()
				w.EncodedValues += int64(o.hi - o.lo)
				slots[o.slot] = b
			case opRecv:
				// The executor checks the payload's CRC32-C on arrival;
				// the range it holds is known at the decode that reads
				// it, which fills in real content first (untimed).
				b := arena[off : off+o.encLen]
				off += o.encLen
				t0 := time.Now()
				crc32.Checksum(b, castagnoli)
				w.CRCSeconds += time.Since(t0).Seconds()
				slots[o.slot], fill[o.slot] = b, true
			case opDecode, opDecodeAdd:
				b := slots[o.slot]
				if fill[o.slot] {
					codec.Encode(b, buf[o.lo:o.hi])
					fill[o.slot] = false
				}
				t0 := time.Now()
				if o.kind == opDecode {
					codec.Decode(work[o.lo:o.hi], b)
				} else {
					codec.DecodeAdd(work[o.lo:o.hi], b)
				}
				w.DecodeSeconds += time.Since(t0).Seconds()
				w.DecodedValues += int64(o.hi - o.lo)
			}
			if o.last {
				slots[o.slot] = nil
			}
		}
	}
	return w, nil
}
