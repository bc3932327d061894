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
//   - A send starts when its data is ready and every link of its route is
//     free; it occupies each of those links for bytes / link bandwidth (cut
//     through) and arrives hops x hop latency after it leaves the last one.
//     Sends do not use the compute timeline (DMA), so encoding segment k+1
//     overlaps sending segment k.
//   - A receive completes when its message arrives.
//   - Among the next ops of all ranks, the one that can start earliest is
//     priced first (ties: lowest rank), so links serve transfers in the order
//     they become ready.
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
				t = max(start[r], opEnd[r][o.dep])
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
			route := nw.Route(r, o.peer)
			for _, l := range route {
				t = max(t, lf[l])
			}
			t += nw.TransferSeconds(o.bytes)
			for _, l := range route {
				lf[l] = t
			}
			arrival[o.msg] = t + nw.LatencySeconds(len(route))
			sent[o.msg] = true
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
