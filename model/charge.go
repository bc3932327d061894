package model

import "github.com/equarx/equarx/cost"

// charges are the block's operations on this rank (cost.Block.Phases): what
// runs before the O projection's AllReduce, before the down projection's,
// and after it. Forward hands each list to the meter at that point.
func (b *decoderBlock) charges(st *State) (attn, mlp, close []cost.Op) {
	return cost.Block{Pos: st.Batch.Pos, Dim: b.cfg.Dim, HeadDim: b.cfg.HeadDim,
		QHeads: b.w.Heads.QHeads, KVHeads: b.w.Heads.KVHeads, Hidden: b.w.Gate.OutDim(),
		Window: b.f.window, QKNorm: b.f.qkNorm, Sandwich: b.f.sandwich}.Phases()
}
