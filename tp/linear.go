package tp

import (
	"context"
	"fmt"

	"github.com/equarx/equarx/model"
)

// ColumnParallelLinear is Y = X·Aᵀ with A ([out, in]) split by output rows:
// each rank holds rows [lo, hi) and produces its own columns of Y. No
// communication (gather_output = false: the next layer consumes the shard).
type ColumnParallelLinear struct {
	w  *model.Weight
	rk *rank
}

var _ model.Linear = (*ColumnParallelLinear)(nil)

func (l *ColumnParallelLinear) InDim() int  { return l.w.In }
func (l *ColumnParallelLinear) OutDim() int { return l.w.Out }

// Forward computes the rank's columns; the block charges the matmul
// (cost.Block).
func (l *ColumnParallelLinear) Forward(ctx context.Context, x []float32, n int, out []float32) error {
	flops, err := l.w.MulT(x, n, out)
	l.rk.stats.kernelFlops += flops
	return err
}

// RowParallelLinear is Y = X·Aᵀ with A ([out, in]) split by input columns.
// Its input is already parallel (InputIsParallel: each rank holds the
// columns of X that match its columns of A), so each rank computes a partial
// Y; with ReduceResults the partials are summed over the tensor-parallel
// group by allReduce. There is no bias.
type RowParallelLinear struct {
	w             *model.Weight
	rk            *rank
	ReduceResults bool
	site          int // reduction site: 2*layer (attention) or 2*layer+1 (MLP)
}

var _ model.Linear = (*RowParallelLinear)(nil)

func (l *RowParallelLinear) InDim() int  { return l.w.In }
func (l *RowParallelLinear) OutDim() int { return l.w.Out }

// Forward computes the rank's partial output (the block charges the matmul,
// cost.Block) and, with ReduceResults, sums it over the group.
func (l *RowParallelLinear) Forward(ctx context.Context, x []float32, n int, out []float32) error {
	flops, err := l.w.MulT(x, n, out)
	l.rk.stats.kernelFlops += flops
	if err != nil {
		return err
	}
	if !l.ReduceResults {
		return nil
	}
	return allReduce(ctx, l.rk, out[:n*l.w.Out], l.site)
}

// allReduce sums buf over the tensor-parallel ("tp") group in place with
// the options of the running batch for the reduction site. It is the only
// place that calls Communicator.AllReduce; with one rank it returns at once.
func allReduce(ctx context.Context, rk *rank, buf []float32, site int) error {
	if rk.size == 1 {
		return nil
	}
	st, err := rk.comm.AllReduce(ctx, buf, rk.opts[site])
	if err != nil {
		return fmt.Errorf("tp allreduce (rank %d, %d values): %w", rk.id, len(buf), err)
	}
	rk.stats.calls++
	rk.stats.wireBytes += st.WireBytes
	rk.stats.simSeconds += st.SimSeconds
	rk.stats.codecs[st.Codec]++
	rk.stats.siteCodecs[site] = st.Codec
	rk.stats.quantErrSq += st.QuantErrSq
	rk.stats.quantRefSq += st.QuantRefSq
	return nil
}
