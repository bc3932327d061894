// Package perfmodel prices a tensor-parallel prefill on the TPU cost model
// from shapes alone, so that models far too large for this machine can be
// priced. It charges every device exactly the operations the engine
// (package tp) charges its simulated clocks, the lists of package cost,
// priced by the same execution model (Setup.Exec), and each row-parallel
// output's AllReduce priced by collective.Estimate with the options the
// engine passes, on the execution model's network.
//
// All times are simulated TPU seconds.
package perfmodel

import (
	"errors"
	"fmt"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/cost"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/tpu"
)

// ErrInvalid is wrapped by errors about a setup the engine would refuse.
var ErrInvalid = errors.New("perfmodel: invalid setup")

// Setup is the mesh and AllReduce settings of one priced prefill.
type Setup struct {
	TP       int          // tensor-parallel degree = devices of Topology
	Topology tpu.Topology // mesh shape
	Profile  tpu.Profile  // TPU generation
	// AllReduce are the options of every row-parallel AllReduce, exactly as
	// the engine passes them (tp.Engine.Prefill: the request's codec and
	// block size, the engine's algorithm, segmenting and fallback).
	AllReduce collective.Options
	// SiteAllReduce, when set, gives the options of each reduction site
	// instead (index 2*layer for attention, 2*layer+1 for the MLP), as a
	// per-site policy makes the engine pass them.
	SiteAllReduce []collective.Options
	// Overlap prices the two-micro-batch schedule described in Overlapped
	// instead of the engine's serial one.
	Overlap bool
	// Exec is how the TPU executes the operations (package cost), as in
	// tp.EngineConfig.Exec; the zero value is the baseline.
	Exec cost.Exec
	// Constants replaces the profile's embedded execution constants
	// (cost.ConstantsOf) when set; for fitting them.
	Constants *cost.Constants
}

// Breakdown splits simulated seconds by kind of work.
type Breakdown struct {
	// MatmulSeconds: the seven projections of each layer and the LM head
	// (cost.Matmul under the execution model).
	MatmulSeconds float64 `json:"matmul_seconds"`
	// AttentionSeconds: q·k and p·v FLOPs plus the softmax's traffic (or
	// the fused kernel's).
	AttentionSeconds float64 `json:"attention_seconds"`
	// ElementwiseSeconds: embedding, norms, RoPE, gating, residual adds and
	// the LM head's pass over the logits, bytes at HBM bandwidth.
	ElementwiseSeconds float64 `json:"elementwise_seconds"`
	// AllReduceSeconds: the row-parallel AllReduces.
	AllReduceSeconds float64 `json:"allreduce_seconds"`
	// OverheadSeconds: the program's dispatch (cost.Exec.Overheads; kernel
	// launches are counted with their kernels).
	OverheadSeconds float64 `json:"overhead_seconds"`
}

// Total is the sum of the parts.
func (b Breakdown) Total() float64 {
	return b.MatmulSeconds + b.AttentionSeconds + b.ElementwiseSeconds + b.AllReduceSeconds + b.OverheadSeconds
}

func (b *Breakdown) add(o Breakdown) {
	b.MatmulSeconds += o.MatmulSeconds
	b.AttentionSeconds += o.AttentionSeconds
	b.ElementwiseSeconds += o.ElementwiseSeconds
	b.AllReduceSeconds += o.AllReduceSeconds
	b.OverheadSeconds += o.OverheadSeconds
}

// AllReducePrice is one priced AllReduce.
type AllReducePrice struct {
	Elements  int                  `json:"elements"`
	Codec     collective.CodecKind `json:"codec"`     // after any fallback
	Algorithm collective.Algorithm `json:"algorithm"` // after auto
	// SimSeconds: from the call's start until the last rank finishes.
	SimSeconds float64 `json:"sim_seconds"`
	WireBytes  int64   `json:"wire_bytes"` // the most one rank sends
}

// LayerPrice is one decoder layer on the critical rank (the rank whose
// clock ends last). Breakdown.AllReduceSeconds is the time this rank spends
// in the layer's two AllReduces.
type LayerPrice struct {
	Layer  int  `json:"layer"`
	Global bool `json:"global"` // full attention (false: sliding window)
	Breakdown
	AttnAllReduce AllReducePrice `json:"attn_allreduce"` // after the O projection
	MLPAllReduce  AllReducePrice `json:"mlp_allreduce"`  // after the down projection
}

// Estimate is a priced prefill. Without overlap, SimSeconds is what the
// engine's PrefillResult.SimSeconds reports for the same batch and setup.
type Estimate struct {
	Model    string `json:"model"`
	Tokens   int    `json:"tokens"`
	Lengths  []int  `json:"lengths"`
	TP       int    `json:"tp"`
	Topology string `json:"topology"`
	TPU      string `json:"tpu"`
	// Codec is the requested AllReduce codec (per-call fallbacks show in
	// the layers' AllReducePrice.Codec).
	Codec collective.CodecKind `json:"codec"`

	Layers []LayerPrice `json:"layers"`
	// Outside the layers, on the critical rank.
	EmbedSeconds     float64 `json:"embed_seconds"`
	FinalNormSeconds float64 `json:"final_norm_seconds"`
	LMHeadSeconds    float64 `json:"lm_head_seconds"` // matmul and logits pass

	// Totals of the serial schedule on the critical rank; they add up to
	// SerialSeconds.
	Breakdown
	// SerialSeconds: the engine's schedule, from the batch's start until the
	// last rank finishes.
	SerialSeconds float64 `json:"serial_seconds"`
	// SimSeconds: SerialSeconds, or with Overlap the overlapped schedule.
	SimSeconds float64 `json:"sim_seconds"`
	// AllReduceShare = AllReduceSeconds / SerialSeconds.
	AllReduceShare float64 `json:"allreduce_share"`
	Overlap        bool    `json:"overlap"`
	// Overlapped is the overlapped schedule's detail (nil without Overlap).
	Overlapped *OverlapPrice `json:"overlapped,omitempty"`
	// Exact reports that every AllReduce started with all ranks' clocks
	// equal, which is when the estimator's idle-start price is exactly what
	// the executor charges. Ranks drift apart when splits are uneven (a
	// hidden or vocab size not divisible by TP) or when an AllReduce ends at
	// different times on different ranks (some torus schedules); each such
	// call is then priced as if it started when the last rank got there,
	// which is an approximation.
	Exact bool `json:"exact"`
}

// shard is one rank's share of the model.
type shard struct {
	nq, nkv int // query and kv heads
	hid     int // MLP width
	vs      int // LM head vocab rows
}

// shardOf is tp's split (tp.HeadShard, tp.SplitRange): query heads
// evenly (n_heads must be divisible by tp), the kv heads those query heads
// read, MLP and vocab rows as evenly as possible.
func shardOf(cfg *model.Config, size, rank int) (shard, error) {
	hs, err := tp.HeadShard(*cfg, size, rank)
	if err != nil {
		return shard{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	hlo, hhi := tp.SplitRange(cfg.HiddenDim, size, rank)
	vlo, vhi := tp.SplitRange(cfg.Vocab, size, rank)
	return shard{nq: hs.QHeads, nkv: hs.KVHeads, hid: hhi - hlo, vs: vhi - vlo}, nil
}

// rows is a set of batch rows: their positions within their sequences.
type rows struct {
	pos []int
}

func (r rows) n() int { return len(r.pos) }

// clock is one rank's simulated clock, advanced by the operations of package
// cost priced by the execution model, exactly as the engine's ranks
// (tp's rank.Charge) advance theirs.
type clock struct {
	m   *cost.Model
	now float64
}

// charge advances the clock over ops and returns their time by kind.
func (c *clock) charge(ops []cost.Op) Breakdown {
	var b Breakdown
	for _, o := range ops {
		d := c.m.Seconds(o)
		c.now += d
		switch o.Kind {
		case cost.Matmul:
			b.MatmulSeconds += d
		case cost.Attention:
			b.AttentionSeconds += d
		case cost.Elementwise:
			b.ElementwiseSeconds += d
		case cost.Dispatch:
			b.OverheadSeconds += d
		}
	}
	return b
}

// block is the cost.Block of a layer on a rank (model/charge.go builds the
// same from the engine's bound weights).
func block(cfg *model.Config, f flavor, layer int, sh shard, r rows) cost.Block {
	return cost.Block{Pos: r.pos, Dim: cfg.Dim, HeadDim: cfg.HeadDim, QHeads: sh.nq, KVHeads: sh.nkv,
		Hidden: sh.hid, Window: window(cfg, layer), QKNorm: f.qkNorm, Sandwich: f.sandwich}
}

// embed charges the embedding lookup (engine: runRank), after the
// program's dispatch when program is set (once per prefill).
func embed(c *clock, cfg *model.Config, n int, program bool) Breakdown {
	var b Breakdown
	if program {
		b = c.charge(cost.Program())
	}
	b.add(c.charge(cost.Embed(n, cfg.Dim)))
	return b
}

// attnPart charges a layer from its attention norm to the O projection,
// before the O AllReduce.
func attnPart(c *clock, cfg *model.Config, f flavor, layer int, sh shard, r rows) Breakdown {
	ops, _, _ := block(cfg, f, layer, sh, r).Phases()
	return c.charge(ops)
}

// mlpPart charges a layer from after the O AllReduce to the down
// projection, before its AllReduce.
func mlpPart(c *clock, cfg *model.Config, f flavor, layer int, sh shard, r rows) Breakdown {
	_, ops, _ := block(cfg, f, layer, sh, r).Phases()
	return c.charge(ops)
}

// closePart charges what follows the down AllReduce in a layer.
func closePart(c *clock, cfg *model.Config, f flavor, layer int, sh shard, r rows) Breakdown {
	_, _, ops := block(cfg, f, layer, sh, r).Phases()
	return c.charge(ops)
}

// tail charges the final norm and the vocab-parallel LM head (engine:
// runRank); it returns the two parts separately.
func tail(c *clock, cfg *model.Config, sh shard, r rows) (norm, head Breakdown) {
	n, d := r.n(), cfg.Dim
	norm = c.charge(cost.FinalNorm(n, d))
	for r0 := 0; r0 < n; r0 += tp.HeadChunkRows {
		head.add(c.charge(cost.HeadChunk(min(tp.HeadChunkRows, n-r0), sh.vs, d)))
	}
	return norm, head
}

func window(cfg *model.Config, layer int) int {
	if cfg.IsGlobalLayer(layer) {
		return 0
	}
	return cfg.SlidingWindow
}

// flavor is what of the architecture changes the charges.
type flavor struct {
	qkNorm   bool // per-head q and k norms
	sandwich bool // post-attention and post-MLP norms
}

func flavorOf(cfg model.Config) (flavor, error) {
	a, err := model.New(cfg)
	if err != nil {
		return flavor{}, fmt.Errorf("perfmodel: %w", err)
	}
	return flavor{qkNorm: a.HasQKNorm(), sandwich: a.HasSandwichNorms()}, nil
}

// pricer prices AllReduces, each size once.
type pricer struct {
	s     Setup
	f     flavor
	m     *cost.Model
	net   tpu.Profile // the profile collectives run on (cost.Model.NetworkProfile)
	cache map[[2]int]collective.EstimateResult
}

// price prices an AllReduce of elements values at a reduction site (the
// site matters only with Setup.SiteAllReduce).
func (p *pricer) price(elements, site int) (collective.EstimateResult, error) {
	opts := p.s.AllReduce
	key := [2]int{elements, -1}
	if p.s.SiteAllReduce != nil {
		opts, key[1] = p.s.SiteAllReduce[site], site
	}
	if e, ok := p.cache[key]; ok {
		return e, nil
	}
	e, err := collective.Estimate(p.s.Topology, p.net, elements, opts)
	if err != nil {
		return e, fmt.Errorf("perfmodel: allreduce of %d values: %w", elements, err)
	}
	p.cache[key] = e
	return e, nil
}

// allReduce advances the ranks' clocks over one AllReduce of elements
// values and returns its price and whether the ranks started together.
// With one rank it is free (the engine skips it).
func (p *pricer) allReduce(clocks []clock, elements, site int) (AllReducePrice, []float64, bool, error) {
	spent := make([]float64, len(clocks))
	if len(clocks) == 1 {
		return AllReducePrice{Elements: elements}, spent, true, nil
	}
	e, err := p.price(elements, site)
	if err != nil {
		return AllReducePrice{}, nil, false, err
	}
	start, together := clocks[0].now, true
	for _, c := range clocks {
		if c.now != start {
			together = false
		}
		start = max(start, c.now)
	}
	for r := range clocks {
		end := start + e.RankSeconds[r]
		spent[r] = end - clocks[r].now
		clocks[r].now = end
	}
	return AllReducePrice{Elements: elements, Codec: e.Codec, Algorithm: e.Algorithm,
		SimSeconds: e.SimSeconds, WireBytes: e.WireBytes}, spent, together, nil
}

// Price prices the prefill of a batch of sequences with the given lengths
// (concatenated row after row, as the engine runs them) on setup s.
func Price(cfg model.Config, lengths []int, s Setup) (*Estimate, error) {
	f, err := flavorOf(cfg)
	if err != nil {
		return nil, err
	}
	if s.TP < 1 {
		return nil, fmt.Errorf("%w: tp must be >= 1, got %d", ErrInvalid, s.TP)
	}
	if err := s.Topology.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if s.Topology.Size() != s.TP {
		return nil, fmt.Errorf("%w: topology %s has %d devices, tp is %d", ErrInvalid, s.Topology, s.Topology.Size(), s.TP)
	}
	if s.SiteAllReduce != nil {
		if len(s.SiteAllReduce) != 2*cfg.Layers {
			return nil, fmt.Errorf("%w: %d site options for %d layers", ErrInvalid, len(s.SiteAllReduce), cfg.Layers)
		}
		if s.Overlap {
			return nil, fmt.Errorf("%w: the overlapped schedule is priced with one AllReduce setting, not per site", ErrInvalid)
		}
	}
	var cm *cost.Model
	if s.Constants != nil {
		cm, err = cost.NewModelWith(s.Exec, s.Profile, *s.Constants)
	} else {
		cm, err = cost.NewModel(s.Exec, s.Profile)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(lengths) == 0 {
		return nil, fmt.Errorf("%w: empty batch", ErrInvalid)
	}
	var all rows
	for i, L := range lengths {
		if L <= 0 {
			return nil, fmt.Errorf("%w: sequence %d has %d tokens", ErrInvalid, i, L)
		}
		if L > cfg.MaxSeqLen {
			return nil, fmt.Errorf("%w: sequence %d has %d tokens, max_seq_len is %d", ErrInvalid, i, L, cfg.MaxSeqLen)
		}
		for p := 0; p < L; p++ {
			all.pos = append(all.pos, p)
		}
	}
	shards := make([]shard, s.TP)
	for r := range shards {
		sh, err := shardOf(&cfg, s.TP, r)
		if err != nil {
			return nil, err
		}
		shards[r] = sh
	}
	codec := s.AllReduce.Codec
	if codec == "" {
		codec = collective.CodecInt8
	}
	est := &Estimate{Model: cfg.Name, Tokens: all.n(), Lengths: append([]int(nil), lengths...), TP: s.TP,
		Topology: s.Topology.String(), TPU: s.Profile.Name, Codec: codec, Overlap: s.Overlap, Exact: true}
	p := &pricer{s: s, f: f, m: cm, net: cm.NetworkProfile(), cache: map[[2]int]collective.EstimateResult{}}
	if err := serial(est, &cfg, shards, all, p); err != nil {
		return nil, err
	}
	est.SimSeconds = est.SerialSeconds
	if est.SerialSeconds > 0 {
		est.AllReduceShare = est.AllReduceSeconds / est.SerialSeconds
	}
	if s.Overlap {
		op, err := overlapped(&cfg, shards, all, p)
		if err != nil {
			return nil, err
		}
		est.Overlapped = op
		est.SimSeconds = op.SimSeconds
	}
	return est, nil
}

// serial runs the engine's schedule: every rank charges its work in
// program order and the AllReduces join the ranks.
func serial(est *Estimate, cfg *model.Config, shards []shard, all rows, p *pricer) error {
	size := len(shards)
	clocks := make([]clock, size)
	type rankParts struct {
		embed, norm, head Breakdown
		layers            []Breakdown
	}
	parts := make([]rankParts, size)
	for r := range clocks {
		clocks[r].m = p.m
		parts[r].layers = make([]Breakdown, cfg.Layers)
		parts[r].embed = embed(&clocks[r], cfg, all.n(), true)
	}
	n := all.n()
	est.Layers = make([]LayerPrice, cfg.Layers)
	for l := 0; l < cfg.Layers; l++ {
		lp := &est.Layers[l]
		lp.Layer, lp.Global = l, cfg.IsGlobalLayer(l)
		for r := range clocks {
			parts[r].layers[l].add(attnPart(&clocks[r], cfg, p.f, l, shards[r], all))
		}
		ar, spent, together, err := p.allReduce(clocks, n*cfg.Dim, 2*l)
		if err != nil {
			return fmt.Errorf("layer %d: %w", l, err)
		}
		est.Exact = est.Exact && together
		lp.AttnAllReduce = ar
		for r := range clocks {
			parts[r].layers[l].AllReduceSeconds += spent[r]
			parts[r].layers[l].add(mlpPart(&clocks[r], cfg, p.f, l, shards[r], all))
		}
		ar, spent, together, err = p.allReduce(clocks, n*cfg.Dim, 2*l+1)
		if err != nil {
			return fmt.Errorf("layer %d: %w", l, err)
		}
		est.Exact = est.Exact && together
		lp.MLPAllReduce = ar
		for r := range clocks {
			parts[r].layers[l].AllReduceSeconds += spent[r]
			parts[r].layers[l].add(closePart(&clocks[r], cfg, p.f, l, shards[r], all))
		}
	}
	for r := range clocks {
		parts[r].norm, parts[r].head = tail(&clocks[r], cfg, shards[r], all)
	}
	crit := 0
	for r := range clocks {
		if clocks[r].now > clocks[crit].now {
			crit = r
		}
	}
	cp := parts[crit]
	for l := range est.Layers {
		est.Layers[l].Breakdown = cp.layers[l]
		est.Breakdown.add(cp.layers[l])
	}
	est.EmbedSeconds = cp.embed.Total()
	est.FinalNormSeconds = cp.norm.Total()
	est.LMHeadSeconds = cp.head.Total()
	est.Breakdown.add(cp.embed)
	est.Breakdown.add(cp.norm)
	est.Breakdown.add(cp.head)
	est.SerialSeconds = clocks[crit].now
	return nil
}
