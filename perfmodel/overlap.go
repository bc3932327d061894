package perfmodel

import (
	"fmt"

	"github.com/equarx/equarx/model"
)

// OverlapPrice is the overlapped schedule of a prefill.
//
// What may overlap, and nothing else:
//
//   - An AllReduce with independent compute. The batch's rows are split
//     into two micro-batches: the first ceil(N/2) rows of the concatenated
//     batch and the rest. Each device then has a compute stream and a
//     communication stream. Per layer the compute stream runs, in this order,
//     A0, A1, B0, B1, where Am is micro-batch m's part from the previous
//     layer's post-MLP norm and residual add through the O projection, and
//     Bm its part from the post-attention norm through the down projection;
//     the communication stream runs the AllReduce after A0, after A1, after
//     B0, after B1. An AllReduce starts when its input is computed and the
//     previous AllReduce has finished; Bm starts when micro-batch m's
//     attention AllReduce has finished, and the next layer's Am when its MLP
//     AllReduce has. So micro-batch 0's AllReduce runs while micro-batch 1
//     computes, and the other way round. Micro-batch 1's attention reads
//     micro-batch 0's keys and values, which A0 produced before A1 starts.
//     The embedding precedes, and the final norm and LM head follow, per
//     micro-batch on the compute stream.
//   - Quantization with transfer inside one AllReduce: the collective
//     schedule's segment pipelining, priced by collective.Estimate in both
//     the serial and the overlapped schedule.
//
// Assumptions: each part's duration is that of the slowest rank, and each
// AllReduce's is collective.Estimate's from idle links; an AllReduce's own
// encode/decode HBM traffic does not slow the compute it overlaps (HBM
// contention is not modelled, so the gain is an upper bound of what this
// schedule gets); each micro-batch's operations are priced at their own
// shapes (under the matmul curve, halving M can cost efficiency and adds
// kernel launches). The engine itself runs the serial schedule.
type OverlapPrice struct {
	MicroBatchTokens [2]int `json:"micro_batch_tokens"`
	// SimSeconds: the overlapped schedule, from the start until the last
	// micro-batch's LM head is done.
	SimSeconds float64 `json:"sim_seconds"`
	// ComputeSeconds and AllReduceSeconds: the busy time of the two streams;
	// their sum is the micro-batched schedule without overlap.
	ComputeSeconds   float64 `json:"compute_seconds"`
	AllReduceSeconds float64 `json:"allreduce_seconds"`
	// HiddenAllReduceSeconds = ComputeSeconds + AllReduceSeconds - SimSeconds:
	// AllReduce time spent behind compute.
	HiddenAllReduceSeconds float64 `json:"hidden_allreduce_seconds"`
}

// overlapped prices the two-micro-batch schedule of OverlapPrice.
func overlapped(cfg *model.Config, shards []shard, all rows, p *pricer) (*OverlapPrice, error) {
	n := all.n()
	h := (n + 1) / 2
	mbs := [2]rows{{pos: all.pos[:h]}, {pos: all.pos[h:]}}
	op := &OverlapPrice{MicroBatchTokens: [2]int{mbs[0].n(), mbs[1].n()}}

	// slowest returns the longest duration over ranks of one part.
	slowest := func(part func(c *clock, sh shard) Breakdown) float64 {
		var d float64
		for _, sh := range shards {
			c := clock{m: p.m}
			part(&c, sh)
			d = max(d, c.now)
		}
		return d
	}
	arTime := func(m int) (float64, error) {
		if len(shards) == 1 || mbs[m].n() == 0 {
			return 0, nil
		}
		e, err := p.price(mbs[m].n()*cfg.Dim, 0)
		if err != nil {
			return 0, err
		}
		return e.SimSeconds, nil
	}

	var computeFree, commFree float64
	runCompute := func(ready, d float64) float64 {
		start := max(ready, computeFree)
		computeFree = start + d
		op.ComputeSeconds += d
		return computeFree
	}
	runComm := func(ready, d float64) float64 {
		start := max(ready, commFree)
		commFree = start + d
		op.AllReduceSeconds += d
		return commFree
	}

	var ready [2]float64 // when micro-batch m's residual stream is reduced
	for m := range mbs {
		r := mbs[m]
		ready[m] = runCompute(0, slowest(func(c *clock, _ shard) Breakdown { return embed(c, cfg, r.n(), m == 0) }))
	}
	for l := 0; l < cfg.Layers; l++ {
		var done [2]float64
		for m := range mbs {
			r := mbs[m]
			done[m] = runCompute(ready[m], slowest(func(c *clock, sh shard) Breakdown {
				var b Breakdown
				if l > 0 {
					b.add(closePart(c, cfg, p.f, l-1, sh, r))
				}
				b.add(attnPart(c, cfg, p.f, l, sh, r))
				return b
			}))
		}
		for m := range mbs {
			d, err := arTime(m)
			if err != nil {
				return nil, fmt.Errorf("layer %d: %w", l, err)
			}
			ready[m] = runComm(done[m], d)
		}
		for m := range mbs {
			r := mbs[m]
			done[m] = runCompute(ready[m], slowest(func(c *clock, sh shard) Breakdown {
				return mlpPart(c, cfg, p.f, l, sh, r)
			}))
		}
		for m := range mbs {
			d, err := arTime(m)
			if err != nil {
				return nil, fmt.Errorf("layer %d: %w", l, err)
			}
			ready[m] = runComm(done[m], d)
		}
	}
	for m := range mbs {
		r := mbs[m]
		runCompute(ready[m], slowest(func(c *clock, sh shard) Breakdown {
			var b Breakdown
			if cfg.Layers > 0 {
				b.add(closePart(c, cfg, p.f, cfg.Layers-1, sh, r))
			}
			norm, head := tail(c, cfg, sh, r)
			b.add(norm)
			b.add(head)
			return b
		}))
	}
	op.SimSeconds = computeFree
	op.HiddenAllReduceSeconds = op.ComputeSeconds + op.AllReduceSeconds - op.SimSeconds
	return op, nil
}
