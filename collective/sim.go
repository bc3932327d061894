package collective

import (
	"fmt"

	"github.com/equarx/equarx/tpu"
)

// simResult is the priced schedule.
type simResult struct {
	end      []float64 // per rank: simulated time its last step completes
	linkFree []float64 // per link id: when the link is next free
}

// simulate prices a schedule on the network's cost model, starting from each
// rank's clock and each link's busy-until time. It is a deterministic
// discrete-event run: it depends only on its inputs, never on how the
// executor's goroutines were scheduled.
//
// Rules:
//   - Local ops (encode, decode, decode-add) run one at a time per device in
//     program order on its compute timeline, each taking hbm bytes / HBM
//     bandwidth, and start no earlier than the op that produced their input.
//   - A send starts when its data is ready and the first link of its route
//     is free. It occupies each link of its route, one at a time per link
//     direction, for bytes / link bandwidth; it enters each further link one
//     hop latency after the previous one, or later if that link is busy
//     (virtual cut-through), and arrives one hop latency after its last
//     byte left the last link. Sends do not use the compute timeline (DMA),
//     so encoding segment k+1 overlaps sending segment k.
//   - A receive completes when its message arrives.
//   - Among the next ops of all ranks, the one that can start earliest (for
//     a send: data ready and every link of its route free) is priced first
//     (ties: lowest rank), so a link serves transfers in the order they can
//     start and no rank monopolises a shared link.
func simulate(s *schedule, nw *tpu.Network, start, linkFree []float64) (simResult, error) {
	size := s.size
	if len(start) != size || len(linkFree) != nw.NumLinks() {
		return simResult{}, fmt.Errorf("collective: simulate: %d clocks and %d link times for %d ranks and %d links",
			len(start), len(linkFree), size, nw.NumLinks())
	}
	lf := append([]float64(nil), linkFree...)
	compute := append([]float64(nil), start...)
	end := append([]float64(nil), start...)
	opEnd := make([][]float64, size)
	for r := range opEnd {
		opEnd[r] = make([]float64, len(s.ops[r]))
	}
	arrival := make([]float64, len(s.msgs))
	sent := make([]bool, len(s.msgs))
	head := make([]int, size)
	remaining := 0
	for r := range s.ops {
		remaining += len(s.ops[r])
	}
	for remaining > 0 {
		best, bestT := -1, 0.0
		for r := 0; r < size; r++ {
			if head[r] >= len(s.ops[r]) {
				continue
			}
			o := &s.ops[r][head[r]]
			var t float64
			switch o.kind {
			case opRecv:
				if !sent[o.msg] {
					continue
				}
				t = arrival[o.msg]
			case opSend:
				t = max(start[r], opEnd[r][o.dep], lf[nw.Route(r, o.peer)[0]])
			default:
				t = compute[r]
				if o.dep >= 0 {
					t = max(t, opEnd[r][o.dep])
				}
			}
			if best < 0 || t < bestT {
				best, bestT = r, t
			}
		}
		if best < 0 {
			return simResult{}, fmt.Errorf("collective: simulate: schedule deadlocks with %d steps left", remaining)
		}
		r := best
		i := head[r]
		o := &s.ops[r][i]
		t := bestT
		switch o.kind {
		case opRecv:
		case opSend:
			// Virtual cut-through: the message enters each link of its
			// route one hop latency after entering the previous one, or
			// when that link is free, and occupies it for the
			// serialisation time.
			ser := nw.TransferSeconds(o.bytes)
			hop := nw.LatencySeconds(1)
			at := t
			for h, l := range nw.Route(r, o.peer) {
				if h > 0 {
					at = max(at+hop, lf[l])
				}
				lf[l] = at + ser
			}
			arrival[o.msg] = at + ser + hop
			sent[o.msg] = true
			t += ser
		default:
			t += nw.ElementwiseSeconds(float64(o.hbm))
			compute[r] = t
		}
		opEnd[r][i] = t
		end[r] = max(end[r], t)
		head[r]++
		remaining--
	}
	return simResult{end: end, linkFree: lf}, nil
}
