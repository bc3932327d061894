package model

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/equarx/equarx/kernels"
)

// Linear maps each of n rows of x (width InDim) to a row of out (width
// OutDim). Tensor-parallel implementations hold one rank's slice of the
// weight; a row-parallel one also sums the partial outputs over the group, so
// a block never knows whether, or how, a reduction happens.
type Linear interface {
	InDim() int
	OutDim() int
	Forward(ctx context.Context, x []float32, n int, out []float32) error
}

// HeadShard says which attention heads one rank computes: query heads
// [QFirst, QFirst+QHeads) and key/value heads [KVFirst, KVFirst+KVHeads),
// which must include every kv head those query heads read.
type HeadShard struct {
	QHeads, QFirst   int
	KVHeads, KVFirst int
}

// LayerWeights are the bound weights of one decoder layer on one rank.
// Norm vectors are replicated; projections are Linear slices.
type LayerWeights struct {
	AttnNorm []float32 // [dim], before attention (Gemma: input_layernorm)
	FFNNorm  []float32 // [dim], before the MLP (Gemma: pre_feedforward_layernorm)
	Q, K, V  Linear    // column-parallel by heads
	O        Linear    // row-parallel, reduced
	Gate, Up Linear    // column-parallel
	Down     Linear    // row-parallel, reduced

	// Gemma 3 only.
	QNorm, KNorm []float32 // [head_dim], per-head norm of queries and keys
	PostAttnNorm []float32 // [dim], on the attention output before the residual add
	PostFFNNorm  []float32 // [dim], on the MLP output before the residual add

	Heads HeadShard
}

// Batch describes a ragged batch: several sequences concatenated row after
// row into one token matrix. Every token attends causally to the earlier
// tokens of its own sequence only.
type Batch struct {
	N     int   // total tokens
	Pos   []int // position of each token within its sequence
	Start []int // row of the first token of each token's sequence
}

// NewBatch lays out sequences of the given lengths back to back.
func NewBatch(lengths []int) *Batch {
	b := &Batch{}
	for _, n := range lengths {
		start := b.N
		for p := 0; p < n; p++ {
			b.Pos = append(b.Pos, p)
			b.Start = append(b.Start, start)
		}
		b.N += n
	}
	return b
}

// State is the activation state of one rank while a batch runs through the
// blocks. X is the residual stream [N, dim], updated in place by each block.
type State struct {
	Batch *Batch
	X     []float32
	Meter Meter

	scratch map[string][]float32
	rope    map[[2]float64][2][]float32 // keyed by (theta, scaling factor)
}

// NewState prepares a state for batch with residual x ([N, dim]).
func NewState(b *Batch, x []float32, m Meter) *State {
	if m == nil {
		m = NopMeter{}
	}
	return &State{Batch: b, X: x, Meter: m, scratch: map[string][]float32{}, rope: map[[2]float64][2][]float32{}}
}

func (s *State) buf(name string, n int) []float32 {
	b := s.scratch[name]
	if cap(b) < n {
		b = make([]float32, n)
		s.scratch[name] = b
	}
	return b[:n]
}

func (s *State) ropeFor(theta, factor float64, hd int) (cos, sin []float32) {
	key := [2]float64{theta, factor}
	if t, ok := s.rope[key]; ok && len(t[0]) == s.Batch.N*hd/2 {
		return t[0], t[1]
	}
	cos, sin = ropeTable(s.Batch.Pos, hd, theta, factor)
	s.rope[key] = [2][]float32{cos, sin}
	return cos, sin
}

// Block is one decoder layer on one rank.
type Block interface {
	Forward(ctx context.Context, st *State) error
}

// decoderBlock is the pre-norm decoder layer shared by llama and gemma3; the
// flavor holds what differs between them.
type decoderBlock struct {
	layer int
	cfg   Config
	w     LayerWeights
	f     flavor
}

type flavor struct {
	onePlusNorm bool       // norm weights applied as (1+w)
	qkNorm      bool       // per-head RMSNorm of q and k before RoPE
	sandwich    bool       // post-attention and post-MLP norms
	act         Activation // gate nonlinearity
	theta       float64    // RoPE base of this layer
	ropeFactor  float64    // linear RoPE scaling of this layer (1: none)
	window      int        // tokens a query may attend to (itself included); 0 = all
	qScale      float32    // multiplier of q·k
}

var _ Block = (*decoderBlock)(nil)

func newDecoderBlock(cfg Config, layer int, w LayerWeights, f flavor) (*decoderBlock, error) {
	missing := func(what string) error { return fmt.Errorf("layer %d: missing %s", layer, what) }
	vec := func(name string, v []float32, n int) error {
		if v == nil {
			return missing(name)
		}
		if len(v) != n {
			return fmt.Errorf("layer %d: %s has %d values, want %d", layer, name, len(v), n)
		}
		return nil
	}
	hs := w.Heads
	if hs.QHeads <= 0 || hs.KVHeads <= 0 || hs.QFirst < 0 || hs.KVFirst < 0 ||
		hs.QFirst+hs.QHeads > cfg.Heads || hs.KVFirst+hs.KVHeads > cfg.KVHeads {
		return nil, fmt.Errorf("layer %d: head shard %+v out of range for %d heads / %d kv heads", layer, hs, cfg.Heads, cfg.KVHeads)
	}
	group := cfg.Heads / cfg.KVHeads
	if hs.QFirst/group < hs.KVFirst || (hs.QFirst+hs.QHeads-1)/group >= hs.KVFirst+hs.KVHeads {
		return nil, fmt.Errorf("layer %d: head shard %+v lacks kv heads its query heads read", layer, hs)
	}
	if err := vec("attn_norm", w.AttnNorm, cfg.Dim); err != nil {
		return nil, err
	}
	if err := vec("ffn_norm", w.FFNNorm, cfg.Dim); err != nil {
		return nil, err
	}
	hd := cfg.HeadDim
	lin := []struct {
		name    string
		l       Linear
		in, out int // -1: any
	}{
		{"wq", w.Q, cfg.Dim, hs.QHeads * hd},
		{"wk", w.K, cfg.Dim, hs.KVHeads * hd},
		{"wv", w.V, cfg.Dim, hs.KVHeads * hd},
		{"wo", w.O, hs.QHeads * hd, cfg.Dim},
		{"w_gate", w.Gate, cfg.Dim, -1},
		{"w_up", w.Up, cfg.Dim, -1},
		{"w_down", w.Down, -1, cfg.Dim},
	}
	for _, l := range lin {
		if l.l == nil {
			return nil, missing(l.name)
		}
		if l.in >= 0 && l.l.InDim() != l.in || l.out >= 0 && l.l.OutDim() != l.out {
			return nil, fmt.Errorf("layer %d: %s maps %d -> %d, want %d -> %d", layer, l.name, l.l.InDim(), l.l.OutDim(), l.in, l.out)
		}
	}
	if w.Gate.OutDim() != w.Up.OutDim() || w.Down.InDim() != w.Gate.OutDim() {
		return nil, fmt.Errorf("layer %d: MLP widths disagree: gate %d, up %d, down in %d", layer, w.Gate.OutDim(), w.Up.OutDim(), w.Down.InDim())
	}
	if f.qkNorm {
		if err := vec("q_norm", w.QNorm, hd); err != nil {
			return nil, err
		}
		if err := vec("k_norm", w.KNorm, hd); err != nil {
			return nil, err
		}
	}
	if f.sandwich {
		if err := vec("post_attn_norm", w.PostAttnNorm, cfg.Dim); err != nil {
			return nil, err
		}
		if err := vec("post_ffn_norm", w.PostFFNNorm, cfg.Dim); err != nil {
			return nil, err
		}
	}
	return &decoderBlock{layer: layer, cfg: cfg, w: w, f: f}, nil
}

// Forward runs attention and the MLP on st.X in place.
func (b *decoderBlock) Forward(ctx context.Context, st *State) error {
	n, d, hd := st.Batch.N, b.cfg.Dim, b.cfg.HeadDim
	if len(st.X) != n*d {
		return fmt.Errorf("layer %d: residual has %d values, want %d", b.layer, len(st.X), n*d)
	}
	m := st.Meter
	eps := b.cfg.NormEps
	nq, nkv := b.w.Heads.QHeads, b.w.Heads.KVHeads
	attnOps, mlpOps, closeOps := b.charges(st)

	h := st.buf("h", n*d)
	rmsNorm(h, st.X, n, d, b.w.AttnNorm, eps, b.f.onePlusNorm)

	q := st.buf("q", n*nq*hd)
	k := st.buf("k", n*nkv*hd)
	v := st.buf("v", n*nkv*hd)
	if err := b.w.Q.Forward(ctx, h, n, q); err != nil {
		return fmt.Errorf("layer %d: wq: %w", b.layer, err)
	}
	if err := b.w.K.Forward(ctx, h, n, k); err != nil {
		return fmt.Errorf("layer %d: wk: %w", b.layer, err)
	}
	if err := b.w.V.Forward(ctx, h, n, v); err != nil {
		return fmt.Errorf("layer %d: wv: %w", b.layer, err)
	}
	if b.f.qkNorm {
		rmsNorm(q, q, n*nq, hd, b.w.QNorm, eps, b.f.onePlusNorm)
		rmsNorm(k, k, n*nkv, hd, b.w.KNorm, eps, b.f.onePlusNorm)
	}
	cos, sin := st.ropeFor(b.f.theta, b.f.ropeFactor, hd)
	applyRope(q, n, nq, hd, cos, sin, b.cfg.RopeStyle)
	applyRope(k, n, nkv, hd, cos, sin, b.cfg.RopeStyle)

	att := st.buf("att", n*nq*hd)
	b.attention(st, q, k, v, att)

	m.Charge(attnOps...) // before wo: its AllReduce follows the charges
	o := st.buf("o", n*d)
	if err := b.w.O.Forward(ctx, att, n, o); err != nil {
		return fmt.Errorf("layer %d: wo: %w", b.layer, err)
	}
	if b.f.sandwich {
		rmsNorm(o, o, n, d, b.w.PostAttnNorm, eps, b.f.onePlusNorm)
	}
	// The residual add and the MLP's norm in one pass over the rows (the
	// simulated clock charges the two steps as the TPU model prices them).
	addRMSNorm(h, st.X, o, n, d, b.w.FFNNorm, eps, b.f.onePlusNorm)
	hid := b.w.Gate.OutDim()
	g := st.buf("g", n*hid)
	u := st.buf("u", n*hid)
	if err := b.w.Gate.Forward(ctx, h, n, g); err != nil {
		return fmt.Errorf("layer %d: w_gate: %w", b.layer, err)
	}
	if err := b.w.Up.Forward(ctx, h, n, u); err != nil {
		return fmt.Errorf("layer %d: w_up: %w", b.layer, err)
	}
	// Row by row: the SIMD kernels leave a scalar tail, and which values
	// fall in it must depend on the column only, never on the row count,
	// so a token's activations do not change with its batch.
	act := kernels.SiLUMul
	if b.f.act == ActGELUTanh {
		act = kernels.GELUTanhMul
	}
	for r := 0; r < n; r++ {
		act(g[r*hid:(r+1)*hid], u[r*hid:(r+1)*hid])
	}
	m.Charge(mlpOps...) // before w_down and its AllReduce
	if err := b.w.Down.Forward(ctx, g, n, o); err != nil {
		return fmt.Errorf("layer %d: w_down: %w", b.layer, err)
	}
	if b.f.sandwich {
		rmsNorm(o, o, n, d, b.w.PostFFNNorm, eps, b.f.onePlusNorm)
	}
	addResidual(st.X, o)
	m.Charge(closeOps...)
	return nil
}

// Attention tiles: a task is one query head and a block of attnQBlock query
// rows of one sequence; it walks the keys it may see in tiles of attnKTile.
const (
	attnQBlock = 128
	attnKTile  = 128
)

// attnScratch is one task's space: a tile of scores and the running max
// and sum of each query row.
type attnScratch struct {
	s    []float32
	m, l []float32
}

var attnPool = sync.Pool{New: func() any {
	return &attnScratch{s: make([]float32, attnQBlock*attnKTile), m: make([]float32, attnQBlock), l: make([]float32, attnQBlock)}
}}

type attnTask struct{ s0, j, a, e int }

// attention computes causal (optionally sliding-window) softmax attention
// for the rank's query heads and returns the number of (query, key, head)
// pairs that enter the softmax. Tasks (head, block of query rows) run on the
// kernels pool. Each walks its key tiles with an online softmax: per tile,
// scores S = Q·Kᵀ (one GEMM, reading q and k in place), a running max m and
// sum l per row, out = out·e^(m_old-m_new) + e^(S-m_new)·V (one GEMM
// accumulating into the output rows), and out/l at the end.
func (b *decoderBlock) attention(st *State, q, k, v, out []float32) int {
	n := st.Batch.N
	nq := b.w.Heads.QHeads
	pairs := 0
	var tasks []attnTask
	for s0 := 0; s0 < n; {
		s1 := s0 + 1
		for s1 < n && st.Batch.Start[s1] == s0 {
			s1++
		}
		L := s1 - s0
		for t := 0; t < L; t++ {
			lo := 0
			if b.f.window > 0 {
				lo = max(0, t-b.f.window+1)
			}
			pairs += (t - lo + 1) * nq
		}
		for j := 0; j < nq; j++ {
			for a := 0; a < L; a += attnQBlock {
				tasks = append(tasks, attnTask{s0: s0, j: j, a: a, e: min(a+attnQBlock, L)})
			}
		}
		s0 = s1
	}
	kernels.ParallelFor(len(tasks), func(i int) {
		sc := attnPool.Get().(*attnScratch)
		b.attnTile(tasks[i], q, k, v, out, sc)
		attnPool.Put(sc)
	})
	return pairs
}

// attnTile computes the output rows of query rows [a, e) (positions within
// the sequence starting at row s0) of query head j.
func (b *decoderBlock) attnTile(tk attnTask, q, k, v, out []float32, sc *attnScratch) {
	hd := b.cfg.HeadDim
	nq, nkv := b.w.Heads.QHeads, b.w.Heads.KVHeads
	group := b.cfg.Heads / b.cfg.KVHeads
	kv := (b.w.Heads.QFirst+tk.j)/group - b.w.Heads.KVFirst
	s0, a, e := tk.s0, tk.a, tk.e
	rows := e - a
	ka := 0
	if b.f.window > 0 {
		ka = max(0, a-b.f.window+1)
	}
	ldq, ldk := nq*hd, nkv*hd
	qA := q[(s0+a)*ldq+tk.j*hd:]
	o := out[(s0+a)*ldq+tk.j*hd:]
	m, l := sc.m[:rows], sc.l[:rows]
	negInf := float32(math.Inf(-1))
	for i := range m {
		m[i], l[i] = negInf, 0
	}
	scale := b.f.qScale
	for t0 := ka; t0 < e; t0 += attnKTile {
		t1 := min(t0+attnKTile, e)
		span := t1 - t0
		s := sc.s[:rows*span]
		kB := k[(s0+t0)*ldk+kv*hd:]
		kernels.GemmSerial(false, true, rows, span, hd, qA, ldq, kB, ldk, s, span, false)
		for i := 0; i < rows; i++ {
			tq := a + i
			lo := ka
			if b.f.window > 0 {
				lo = max(lo, tq-b.f.window+1)
			}
			row := s[i*span : (i+1)*span]
			c0, c1 := max(lo-t0, 0), min(tq-t0+1, span) // valid columns
			if c0 >= c1 {
				clear(row) // no key of this tile: p = 0, m and l unchanged
				continue
			}
			mNew := max(m[i], kernels.Max(row[c0:c1])*scale)
			// Keys outside the causal (and window) range get p = 0.
			clear(row[:c0])
			clear(row[c1:])
			sum := kernels.ExpScaleShiftSum(row[c0:c1], row[c0:c1], scale, mNew)
			alpha := kernels.Exp(m[i] - mNew) // 0 on the first tile (m = -inf)
			l[i] = l[i]*alpha + sum
			m[i] = mNew
			if t0 != ka && alpha != 1 {
				or := o[i*ldq : i*ldq+hd]
				for c := range or {
					or[c] *= alpha
				}
			}
		}
		vB := v[(s0+t0)*ldk+kv*hd:]
		kernels.GemmSerial(false, false, rows, hd, span, s, span, vB, ldk, o, ldq, t0 != ka)
	}
	for i := 0; i < rows; i++ {
		inv := 1 / l[i]
		or := o[i*ldq : i*ldq+hd]
		for c := range or {
			or[c] *= inv
		}
	}
}
