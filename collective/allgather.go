package collective

import (
	"fmt"

	"github.com/equarx/equarx/tpu"
)

// AllGatherResult is a priced all-gather.
type AllGatherResult struct {
	Algorithm  Algorithm // AlgoRing or AlgoBiRing, the faster
	Elements   int       // values after the gather (every rank's shards)
	SimSeconds float64   // from idle clocks until the last rank has every shard
}

// EstimateAllGather prices an all-gather of bf16 values on a topology: each
// rank starts with its 1/size share of `elements` values and ends with all
// of them. It builds the all-gather phase of the AllReduce's ring schedules
// (unidirectional ring, and the bidirectional ring with half of each shard
// going each way round), one message per shard piece (no segmenting), and
// prices both with the same simulator as Estimate; the faster is reported.
// bf16 pieces land in place, so there is no local work.
func EstimateAllGather(topo tpu.Topology, prof tpu.Profile, elements int) (AllGatherResult, error) {
	if elements < 0 {
		return AllGatherResult{}, fmt.Errorf("collective: estimate all-gather: negative length %d", elements)
	}
	nw, err := cachedNetwork(topo, prof)
	if err != nil {
		return AllGatherResult{}, fmt.Errorf("collective: estimate all-gather: %w", err)
	}
	c, err := NewCodec(CodecBF16, 0)
	if err != nil {
		return AllGatherResult{}, err
	}
	best := AllGatherResult{Elements: elements}
	for i, algo := range []Algorithm{AlgoRing, AlgoBiRing} {
		size := topo.Size()
		b := newBuilder(size, elements, c, algo, 0)
		if size > 1 && elements > 0 {
			order := topo.RingOrder()
			var rings []*ring
			if algo == AlgoRing {
				rings = []*ring{newRing(b, order, span{0, elements}, 1, 0)}
			} else {
				halves := splitBlocks(0, elements, 2, 1)
				rev := make([]int, len(order))
				for j, r := range order {
					rev[len(order)-1-j] = r
				}
				rings = []*ring{newRing(b, order, halves[0], 1, 0), newRing(b, rev, halves[1], 1, 0)}
			}
			owns := make([][][]piece, len(rings))
			for j, g := range rings {
				owns[j] = g.ownPieces()
			}
			for t := 0; t < size; t++ {
				for j, g := range rings {
					g.agStep(t, owns[j])
				}
			}
		}
		s := b.finish()
		res, err := simulate(s, nw, make([]float64, size), make([]float64, nw.NumLinks()))
		if err != nil {
			return AllGatherResult{}, fmt.Errorf("collective: estimate all-gather: %w", err)
		}
		if t := maxOf(res.end); i == 0 || t < best.SimSeconds {
			best.Algorithm, best.SimSeconds = algo, t
		}
	}
	return best, nil
}
