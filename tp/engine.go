package tp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/cost"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/tpu"
	"github.com/equarx/equarx/weights"
)

var (
	// ErrInvalidInput is wrapped by errors about a request the engine cannot
	// run: an empty batch or sequence, a token id out of range, bad options.
	ErrInvalidInput = errors.New("invalid input")
	// ErrTooLong is wrapped when a sequence is longer than max_seq_len.
	ErrTooLong = errors.New("sequence too long")
	// ErrClosed is returned by calls on a closed engine.
	ErrClosed = errors.New("engine closed")
)

// MaxTopK bounds PrefillOptions.TopK.
const MaxTopK = 20

// maxFullLogprobValues bounds n·vocab of a batch that asks for FullLogprobs
// (2^27 float32 values = 512 MiB).
const maxFullLogprobValues = 1 << 27

// HeadChunkRows is how many rows of logits a rank holds at once.
const HeadChunkRows = 64

// EngineConfig selects the mesh an engine runs on. The codec and block size
// are not here: they are chosen per Prefill call.
type EngineConfig struct {
	TP       int    // tensor-parallel degree = number of devices; must be >= 1
	Topology string // tpu topology, e.g. "ring:4" or "torus:2x2"; "" means "ring:<TP>"
	TPU      string // TPU generation profile name, e.g. "v5e"; required

	// AllReduce settings that stay fixed for the engine's life; their zero
	// values mean the collective package's defaults.
	Algorithm     collective.Algorithm
	SegmentElems  int
	FallbackElems int
	Timeout       time.Duration
	// BatchInvariant runs every AllReduce in the batch-invariant layout
	// (collective.Options.RowElems = the model width): a sequence's
	// answer is then bitwise independent of the other sequences of its
	// batch. PlanRows is the row count at which its algorithm and
	// fallback are decided (0 = collective.DefaultPlanRows).
	BatchInvariant bool
	PlanRows       int

	// Exec is how the simulated TPU executes the model's operations (package
	// cost); the zero value is the baseline execution.
	Exec cost.Exec

	// WeightsDType is the dtype the linear layers and the LM head are held
	// in: "f32", "bf16" (products widen to float32 and sum in float32), or
	// "" for the source's stored dtype (weights.StoredDType).
	WeightsDType string
}

// AllReduceOptions are the options every AllReduce of a prefill with opts
// runs with: the call's codec ("" = int8) and block size, the engine's
// algorithm, segmenting, fallback and timeout.
func (c EngineConfig) AllReduceOptions(opts PrefillOptions) collective.Options {
	codec := opts.Codec
	if codec == "" {
		codec = collective.CodecInt8
	}
	return collective.Options{
		Codec: codec, BlockSize: opts.BlockSize, Algorithm: c.Algorithm,
		SegmentElems: c.SegmentElems, FallbackElems: c.FallbackElems, Timeout: c.Timeout,
	}
}

// siteOptions returns the AllReduce options of every reduction site of a
// prefill with opts (index 2*layer for attention, 2*layer+1 for the MLP)
// and the settings they come from. opts must have been validated.
func (e *Engine) siteOptions(opts PrefillOptions) ([]collective.Options, []Setting) {
	pol := opts.Policy
	if pol == nil {
		codec := opts.Codec
		if codec == "" {
			codec = collective.CodecInt8
		}
		pol = Uniform(Setting{Codec: codec, BlockSize: opts.BlockSize})
	}
	sets := pol.Sites(e.cfg.Layers)
	out := make([]collective.Options, len(sets))
	for i, st := range sets {
		o := e.ecfg.AllReduceOptions(PrefillOptions{Codec: st.Codec, BlockSize: st.BlockSize})
		if e.ecfg.BatchInvariant {
			o.RowElems, o.PlanRows = e.cfg.Dim, e.ecfg.PlanRows
		}
		out[i] = o
	}
	return out, sets
}

// checkInvariant makes sure every codec can run in the batch-invariant
// layout on this mesh and model width (the stripes of the algorithm the
// engine is configured with must divide the row), so a misconfiguration
// fails at start instead of in a request.
func (e *Engine) checkInvariant() error {
	if !e.ecfg.BatchInvariant {
		return nil
	}
	if !model.RowInvariant {
		return fmt.Errorf("tp: batch-invariant prefill needs row-count-invariant matrix products; this build's BLAS (%s) is not", model.BLAS)
	}
	if e.ecfg.TP == 1 {
		return nil
	}
	m := e.cl.Mesh()
	for _, k := range collective.Codecs() {
		o, _ := e.siteOptions(PrefillOptions{Codec: k})
		if _, err := collective.Estimate(m.Topology(), m.Profile(), e.cfg.Dim, o[0]); err != nil {
			return fmt.Errorf("tp: batch-invariant reductions on %s with width %d: %w", m.Topology(), e.cfg.Dim, err)
		}
	}
	return nil
}

// device is what a rank needs of an emulated TPU device.
type device interface {
	Advance(seconds float64)
	Now() float64
}

// communicator is what a rank needs of a collective communicator.
type communicator interface {
	AllReduce(ctx context.Context, buf []float32, o collective.Options) (collective.Stats, error)
}

// cluster is the set of devices the engine runs on and their "tp" group.
type cluster interface {
	Size() int
	// Local returns the ranks this process runs, in the order of the
	// communicators NewGroup returns.
	Local() []int
	Device(r int) device
	// NewGroup returns one communicator per rank, a fresh group whose
	// sequence numbers are in step.
	NewGroup() ([]communicator, error)
	// SyncClocks sets every device clock to the latest and returns it.
	SyncClocks() float64
	// Mesh describes the whole group (topology and network profile).
	Mesh() *tpu.Mesh
}

type rankStats struct {
	flops float64 // charged by the rank's operations (cost.Op.FLOPs)
	// matmulFlops: the charged matmuls' FLOPs; kernelFlops: what the
	// matmul kernels the rank ran report (model.MatMulT). Equal when the
	// charge lists describe the work that ran.
	matmulFlops, kernelFlops float64
	calls                    int
	wireBytes                int64
	simSeconds               float64
	codecs                   map[collective.CodecKind]int
	siteCodecs               []collective.CodecKind // per site, the codec its last AllReduce ran
	// Squared final-quantization error of the values this rank owned in
	// its AllReduces, and the squared values (collective.Stats).
	quantErrSq, quantRefSq float64
}

// rank is one device of the engine with its shard of the weights.
type rank struct {
	id, size int
	dev      device
	comm     communicator
	blocks   []model.Block
	head     *model.Weight // LM head rows [vlo, vhi), [vhi-vlo, dim]
	emb      *model.Weight // embedding rows [vlo, vhi); head itself when tied
	vlo, vhi int

	opts  []collective.Options // of the running batch, per reduction site
	stats rankStats
	cost  *cost.Model
}

// Charge advances the rank's simulated clock by its operations' times under
// the engine's execution model (it is the rank's model.Meter).
func (rk *rank) Charge(ops ...cost.Op) {
	for _, o := range ops {
		rk.dev.Advance(rk.cost.Seconds(o))
		rk.stats.flops += o.FLOPs()
		if o.Kind == cost.Matmul {
			rk.stats.matmulFlops += o.FLOPs()
		}
	}
}

var _ model.Meter = (*rank)(nil)

// Engine runs batched prefill of one model sharded over TP emulated devices.
// It is safe for concurrent use; batches run one at a time.
type Engine struct {
	mu      sync.Mutex
	cfg     model.Config
	arch    model.Architecture
	ecfg    EngineConfig
	cl      cluster
	ranks   []*rank
	dtype   string    // of the weight matrices: weights.DTypeF32 or DTypeBF16
	final   []float32 // [dim]
	closed  bool
	broken  error // set when the group could not be rebuilt after a failure
	onLayer func(rank, layer int) error
	dist    *driver // set when ranks run in other processes too
	load    LoadStats
}

// Config returns the model configuration the engine serves.
func (e *Engine) Config() model.Config { return e.cfg }

// WeightsDType returns the dtype the weight matrices are held in.
func (e *Engine) WeightsDType() string { return e.dtype }

// TP returns the tensor-parallel degree.
func (e *Engine) TP() int { return e.ecfg.TP }

// Close releases the engine; later calls return ErrClosed. The weight
// source stays open: it belongs to the caller.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	return nil
}

// newEngine binds the weights of src to the ranks of cl.
func newEngine(src weights.Source, ecfg EngineConfig, cl cluster, cm *cost.Model) (*Engine, error) {
	cfg := src.Config()
	arch, err := model.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("tp: %w", err)
	}
	size := cl.Size()
	if size != ecfg.TP {
		return nil, fmt.Errorf("tp: mesh has %d devices, tp is %d", size, ecfg.TP)
	}
	for r := 0; r < size; r++ {
		if _, err := HeadShard(cfg, size, r); err != nil {
			return nil, fmt.Errorf("tp: %w (query heads are split evenly over ranks)", err)
		}
	}
	e := &Engine{cfg: cfg, arch: arch, ecfg: ecfg, cl: cl}
	if e.dtype, err = weights.ParseDType(ecfg.WeightsDType); err != nil {
		return nil, fmt.Errorf("tp: %w", err)
	}
	if e.dtype == "" {
		e.dtype = weights.StoredDType(src)
	}
	if err := e.checkInvariant(); err != nil {
		return nil, err
	}
	shared := startLoad(src) // the replicated tensors are read through shared.src
	fn, err := readVec(shared.src, "final_norm", cfg.Dim)
	if err != nil {
		return nil, err
	}
	e.final = fn

	// Norm vectors are replicated: read once, shared read-only by all ranks.
	norms := make([]layerNorms, cfg.Layers)
	for l := range norms {
		if norms[l], err = readNorms(shared.src, arch, l, cfg); err != nil {
			return nil, err
		}
	}

	e.load = LoadStats{Counted: shared.counted, Shared: shared.done(-1)}

	comms, err := cl.NewGroup()
	if err != nil {
		return nil, fmt.Errorf("tp: communicator group: %w", err)
	}
	local := cl.Local()
	e.ranks = make([]*rank, len(local))
	e.load.Ranks = make([]RankLoad, len(local))
	errs := make([]error, len(local))
	var wg sync.WaitGroup
	for i, r := range local {
		rk := &rank{id: r, size: size, dev: cl.Device(r), comm: comms[i], cost: cm}
		e.ranks[i] = rk
		wg.Go(func() {
			l := startLoad(src)
			errs[i] = e.bindRank(l.src, rk, norms)
			e.load.Ranks[i] = l.done(r)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	e.load.Seconds = time.Since(shared.start).Seconds()
	return e, nil
}

type layerNorms struct {
	attn, ffn, q, k, postAttn, postFFN []float32
}

func readVec(src weights.Source, name string, n int) ([]float32, error) {
	t, err := src.Tensor(name)
	if err != nil {
		return nil, fmt.Errorf("tp: %s: %w", name, err)
	}
	if len(t.Data) != n {
		return nil, fmt.Errorf("tp: %s has %d values, want %d", name, len(t.Data), n)
	}
	return t.Data, nil
}

func readNorms(src weights.Source, arch model.Architecture, l int, cfg model.Config) (layerNorms, error) {
	var n layerNorms
	type want struct {
		short string
		dst   *[]float32
		size  int
		need  bool
	}
	for _, w := range []want{
		{"attn_norm", &n.attn, cfg.Dim, true},
		{"ffn_norm", &n.ffn, cfg.Dim, true},
		{"q_norm", &n.q, cfg.HeadDim, arch.HasQKNorm()},
		{"k_norm", &n.k, cfg.HeadDim, arch.HasQKNorm()},
		{"post_attn_norm", &n.postAttn, cfg.Dim, arch.HasSandwichNorms()},
		{"post_ffn_norm", &n.postFFN, cfg.Dim, arch.HasSandwichNorms()},
	} {
		if !w.need {
			continue
		}
		v, err := readVec(src, fmt.Sprintf("layers.%d.%s", l, w.short), w.size)
		if err != nil {
			return n, fmt.Errorf("layer %d: missing %s: %w", l, w.short, err)
		}
		*w.dst = v
	}
	return n, nil
}

// bindRank reads rank rk's slices of every layer and of the LM head.
func (e *Engine) bindRank(src weights.Source, rk *rank, norms []layerNorms) error {
	cfg := e.cfg
	hd := cfg.HeadDim
	hs, err := HeadShard(cfg, rk.size, rk.id)
	if err != nil {
		return err
	}
	hlo, hhi := SplitRange(cfg.HiddenDim, rk.size, rk.id)
	bf16 := e.dtype == weights.DTypeBF16
	rows := func(l int, short string, lo, hi int) (*model.Weight, error) {
		name := fmt.Sprintf("layers.%d.%s", l, short)
		if bf16 {
			w, err := bf16Rows(src, name, lo, hi, cfg.Dim)
			if err != nil {
				return nil, fmt.Errorf("layer %d: missing %s: %w", l, short, err)
			}
			return w, nil
		}
		w, err := f32Rows(src, name, lo, hi, cfg.Dim)
		if err != nil {
			return nil, fmt.Errorf("layer %d: missing %s: %w", l, short, err)
		}
		return w, nil
	}
	cols := func(l int, short string, lo, hi int) (*model.Weight, error) {
		name := fmt.Sprintf("layers.%d.%s", l, short)
		if bf16 {
			h, err := weights.ColsBF16(src, name, lo, hi)
			if err != nil {
				return nil, fmt.Errorf("layer %d: missing %s: %w", l, short, err)
			}
			return model.NewWeightBF16(h, cfg.Dim, hi-lo)
		}
		t, err := src.Cols(name, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("layer %d: missing %s: %w", l, short, err)
		}
		return model.NewWeight(t.Data, cfg.Dim, hi-lo)
	}
	rk.blocks = make([]model.Block, cfg.Layers)
	for l := 0; l < cfg.Layers; l++ {
		var ws [7]*model.Weight
		specs := []struct {
			get    func(int, string, int, int) (*model.Weight, error)
			short  string
			lo, hi int
		}{
			{rows, "wq", hs.QFirst * hd, (hs.QFirst + hs.QHeads) * hd},
			{rows, "wk", hs.KVFirst * hd, (hs.KVFirst + hs.KVHeads) * hd},
			{rows, "wv", hs.KVFirst * hd, (hs.KVFirst + hs.KVHeads) * hd},
			{cols, "wo", hs.QFirst * hd, (hs.QFirst + hs.QHeads) * hd},
			{rows, "w_gate", hlo, hhi},
			{rows, "w_up", hlo, hhi},
			{cols, "w_down", hlo, hhi},
		}
		for i, s := range specs {
			if ws[i], err = s.get(l, s.short, s.lo, s.hi); err != nil {
				return fmt.Errorf("tp rank %d: %w", rk.id, err)
			}
		}
		col := func(w *model.Weight) *ColumnParallelLinear { return &ColumnParallelLinear{w: w, rk: rk} }
		row := func(w *model.Weight, site int) *RowParallelLinear {
			return &RowParallelLinear{w: w, rk: rk, ReduceResults: true, site: site}
		}
		n := norms[l]
		lw := model.LayerWeights{
			AttnNorm: n.attn, FFNNorm: n.ffn,
			Q: col(ws[0]), K: col(ws[1]), V: col(ws[2]), O: row(ws[3], 2*l),
			Gate: col(ws[4]), Up: col(ws[5]), Down: row(ws[6], 2*l+1),
			QNorm: n.q, KNorm: n.k, PostAttnNorm: n.postAttn, PostFFNNorm: n.postFFN,
			Heads: hs,
		}
		if rk.blocks[l], err = e.arch.NewBlock(l, lw); err != nil {
			return fmt.Errorf("tp rank %d: %w", rk.id, err)
		}
	}
	// LM head and embedding: vocab-parallel, each rank owns a contiguous
	// range of vocab rows of both (the same rows, one matrix, when they are
	// tied); the log-softmax statistics are combined exactly afterwards, the
	// embeddings by an exact exchange at the start of each batch (embed).
	rk.vlo, rk.vhi = SplitRange(cfg.Vocab, rk.size, rk.id)
	vocabRows := func(name string) (*model.Weight, error) {
		if bf16 {
			return bf16Rows(src, name, rk.vlo, rk.vhi, cfg.Dim)
		}
		// A Weight, so the kernels pack it once rather than per row chunk.
		return f32Rows(src, name, rk.vlo, rk.vhi, cfg.Dim)
	}
	if rk.emb, err = vocabRows("embed"); err != nil {
		return fmt.Errorf("tp rank %d: embed: %w", rk.id, err)
	}
	if cfg.TiedEmbeddings {
		rk.head = rk.emb
	} else if rk.head, err = vocabRows("lm_head"); err != nil {
		return fmt.Errorf("tp rank %d: lm_head: %w", rk.id, err)
	}
	return nil
}

// f32Rows reads rows [lo, hi) of a matrix as a float32 weight, packed
// piece by piece as it is read (a rank never holds a whole unpacked shard).
func f32Rows(src weights.Source, name string, lo, hi, in int) (*model.Weight, error) {
	return model.NewWeightFrom(hi-lo, in, func(a, b int) ([]float32, error) {
		t, err := src.Rows(name, lo+a, lo+b)
		if err != nil {
			return nil, err
		}
		return t.Data, nil
	})
}

// bf16Rows reads rows [lo, hi) of a matrix as a bfloat16 weight, packed
// piece by piece as it is read.
func bf16Rows(src weights.Source, name string, lo, hi, in int) (*model.Weight, error) {
	return model.NewWeightBF16From(hi-lo, in, func(a, b int) ([]uint16, error) {
		return weights.RowsBF16(src, name, lo+a, lo+b)
	})
}

// embed writes the input embeddings of ids into x ([len(ids), dim]). Each
// rank holds the embedding rows of its vocab range only (Megatron's
// VocabParallelEmbedding): it writes the rows of the ids it owns (scaled as
// the architecture scales them) and -0 elsewhere, and an f32 AllReduce sums
// the ranks' buffers. Every value is then its owner's value plus -0 from
// every other rank, which IEEE addition leaves bitwise unchanged (x + -0 = x
// for every x, signed zeros included), so the result is bitwise the
// replicated lookup whatever codec or policy the batch's other reductions
// use. The exchange is untimed: the simulated devices price the lookup as
// a replicated gather (cost.Embed), as a TPU holding the whole table would
// run it.
func (e *Engine) embed(ctx context.Context, rk *rank, x []float32, ids []int) error {
	d := e.cfg.Dim
	row := make([]float32, d)
	negZero := float32(math.Copysign(0, -1))
	for i, id := range ids {
		o := x[i*d : (i+1)*d]
		if id < rk.vlo || id >= rk.vhi {
			for j := range o {
				o[j] = negZero
			}
			continue
		}
		rk.emb.Row(id-rk.vlo, row)
		e.arch.Embed(o, row, []int{0})
	}
	if rk.size == 1 {
		return nil
	}
	o := collective.Options{
		Codec: collective.CodecF32, Algorithm: e.ecfg.Algorithm, SegmentElems: e.ecfg.SegmentElems,
		FallbackElems: -1, Timeout: e.ecfg.Timeout, Untimed: true,
	}
	if e.ecfg.BatchInvariant {
		o.RowElems, o.PlanRows = d, e.ecfg.PlanRows
	}
	if _, err := rk.comm.AllReduce(ctx, x, o); err != nil {
		return fmt.Errorf("tp rank %d: embedding exchange (%d values): %w", rk.id, len(x), err)
	}
	return nil
}

// batchIn is the validated, concatenated input of one batch.
type batchIn struct {
	b       *model.Batch
	ids     []int
	targets []int // token each row predicts, -1 for the last row of a sequence
	seqs    [][2]int
}

func (e *Engine) validate(seqs [][]int, opts PrefillOptions) (*batchIn, error) {
	if len(seqs) == 0 {
		return nil, fmt.Errorf("%w: empty batch", ErrInvalidInput)
	}
	if opts.TopK < 0 || opts.TopK > MaxTopK {
		return nil, fmt.Errorf("%w: top_k %d out of range [0, %d]", ErrInvalidInput, opts.TopK, MaxTopK)
	}
	if opts.Codec != "" {
		if _, err := collective.ParseCodec(string(opts.Codec)); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidInput, err)
		}
	}
	if opts.BlockSize < 0 {
		return nil, fmt.Errorf("%w: block size %d is negative", ErrInvalidInput, opts.BlockSize)
	}
	if opts.Policy != nil {
		if opts.Codec != "" || opts.BlockSize != 0 {
			return nil, fmt.Errorf("%w: a reduction policy and a codec or block size in the same call", ErrInvalidInput)
		}
		if err := opts.Policy.Validate(e.cfg.Layers); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidInput, err)
		}
	} else if opts.BlockSize != 0 {
		codec := opts.Codec
		if codec == "" {
			codec = collective.CodecInt8
		}
		if err := collective.CheckCodec(codec, opts.BlockSize); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidInput, err)
		}
	}
	in := &batchIn{}
	lens := make([]int, len(seqs))
	for i, s := range seqs {
		if len(s) == 0 {
			return nil, fmt.Errorf("%w: sequence %d is empty", ErrInvalidInput, i)
		}
		if len(s) > e.cfg.MaxSeqLen {
			return nil, fmt.Errorf("%w: sequence %d has %d tokens, max_seq_len is %d", ErrTooLong, i, len(s), e.cfg.MaxSeqLen)
		}
		for j, id := range s {
			if id < 0 || id >= e.cfg.Vocab {
				return nil, fmt.Errorf("%w: sequence %d, position %d: token id %d out of range [0, %d)", ErrInvalidInput, i, j, id, e.cfg.Vocab)
			}
		}
		lens[i] = len(s)
		start := len(in.ids)
		in.ids = append(in.ids, s...)
		for j := range s {
			if j+1 < len(s) {
				in.targets = append(in.targets, s[j+1])
			} else {
				in.targets = append(in.targets, -1)
			}
		}
		in.seqs = append(in.seqs, [2]int{start, len(in.ids)})
	}
	if opts.FullLogprobs && len(in.ids)*e.cfg.Vocab > maxFullLogprobValues {
		return nil, fmt.Errorf("%w: full logprobs of %d tokens x %d vocab exceed %d values", ErrInvalidInput, len(in.ids), e.cfg.Vocab, maxFullLogprobValues)
	}
	in.b = model.NewBatch(lens)
	return in, nil
}

// rowStats are one rank's log-softmax statistics of one row of logits over
// its vocab range.
type rowStats struct {
	max    float32
	sumExp float64 // Σ exp(logit - max)
	target float32 // logit of the row's target when this rank owns it
	hasTgt bool
	top    []TokenLogprob // best logits of the range (Logprob holds the logit)
}

// Prefill runs a ragged batch of token sequences through the model and
// returns per-position log-probabilities. Batches are serialized.
func (e *Engine) Prefill(ctx context.Context, seqs [][]int, opts PrefillOptions) (*PrefillResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	if e.broken != nil {
		return nil, fmt.Errorf("tp: engine unusable: %w", e.broken)
	}
	in, err := e.validate(seqs, opts)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tp: prefill: %w", err)
	}
	if e.dist != nil {
		return e.prefillDist(ctx, in, opts)
	}
	copts, _ := e.siteOptions(opts)
	n := in.b.N
	var full []float32
	if opts.FullLogprobs {
		full = make([]float32, n*e.cfg.Vocab)
	}
	k := max(1, opts.TopK)

	wall := time.Now()
	t0 := e.cl.SyncClocks()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stats := make([][]rowStats, len(e.ranks))
	errs := make([]error, len(e.ranks))
	var wg sync.WaitGroup
	for r, rk := range e.ranks {
		rk.opts = copts
		rk.stats = newRankStats(len(copts))
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					errs[r] = fmt.Errorf("tp rank %d: panic: %v", r, p)
					cancel()
				}
			}()
			stats[r], errs[r] = e.runRank(rctx, rk, in, k, full, e.cfg.Vocab, rk.vlo)
			if errs[r] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	if err := firstCause(errs); err != nil {
		// Ranks may have stopped at different collective steps: start the
		// next batch on a fresh group so sequence numbers are in step.
		if comms, gerr := e.cl.NewGroup(); gerr != nil {
			e.broken = gerr
		} else {
			for r, rk := range e.ranks {
				rk.comm = comms[r]
			}
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("tp: prefill: %w", cerr)
		}
		return nil, fmt.Errorf("tp: prefill: %w", err)
	}

	res := &PrefillResult{}
	e.summarize(res, opts, e.ranks[0].stats.siteCodecs)
	var simEnd, qErr, qRef float64
	codecs := map[collective.CodecKind]int{}
	for _, rk := range e.ranks {
		qErr += rk.stats.quantErrSq
		qRef += rk.stats.quantRefSq
		simEnd = max(simEnd, rk.dev.Now())
		res.SimAllReduceSeconds = max(res.SimAllReduceSeconds, rk.stats.simSeconds)
		res.WireBytes += rk.stats.wireBytes
		for c, m := range rk.stats.codecs {
			codecs[c] += m
		}
	}
	res.AllReduceCalls = e.ranks[0].stats.calls
	if qRef > 0 {
		res.QuantRelErrRMS = math.Sqrt(qErr / qRef)
	}
	if len(codecs) > 0 {
		names := make([]string, 0, len(codecs))
		for c := range codecs {
			names = append(names, string(c))
		}
		sort.Strings(names)
		res.Codec = collective.CodecKind(strings.Join(names, "+"))
	}
	res.SimSeconds = simEnd - t0
	res.Seqs = e.assemble(in, stats, opts, full)
	res.WallSeconds = time.Since(wall).Seconds()
	return res, nil
}

func newRankStats(sites int) rankStats {
	return rankStats{codecs: map[collective.CodecKind]int{}, siteCodecs: make([]collective.CodecKind, sites)}
}

// summarize fills the result's codec fields: what each site ran (rank 0's
// record; every rank runs the same plan), or with one rank what it would
// have asked for.
func (e *Engine) summarize(res *PrefillResult, opts PrefillOptions, ran []collective.CodecKind) {
	_, sets := e.siteOptions(opts)
	res.Codec = sets[0].Codec
	if e.ecfg.TP > 1 && len(ran) == len(sets) {
		res.SiteCodecs = make([]Setting, len(sets))
		for i, st := range sets {
			if ran[i] != "" && ran[i] != st.Codec {
				st = Setting{Codec: ran[i]} // fell back
			}
			res.SiteCodecs[i] = st
		}
		sets = res.SiteCodecs
	}
	res.Reductions = Summary(sets)
}

// firstCause returns the first error that is not a mere consequence of the
// cancellation that another rank's failure triggered.
func firstCause(errs []error) error {
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if first == nil {
			first = err
		}
		if !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return first
}

// runRank runs the whole model for one rank and returns its log-softmax
// statistics per row of the batch.
// Rows of logits are copied into full (when not nil) at
// full[t·stride + off:], so a rank can fill its columns of a [n, vocab]
// matrix (stride vocab, off its first id) or a [n, its vocab range] one.
func (e *Engine) runRank(ctx context.Context, rk *rank, in *batchIn, k int, full []float32, stride, off int) ([]rowStats, error) {
	cfg := e.cfg
	n, d := in.b.N, cfg.Dim
	x := make([]float32, n*d)
	if err := e.embed(ctx, rk, x, in.ids); err != nil {
		return nil, err
	}
	rk.Charge(cost.Program()...)
	rk.Charge(cost.Embed(n, d)...)
	st := model.NewState(in.b, x, rk)
	for l, blk := range rk.blocks {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("tp rank %d: layer %d: %w", rk.id, l, err)
		}
		if e.onLayer != nil {
			if err := e.onLayer(rk.id, l); err != nil {
				return nil, fmt.Errorf("tp rank %d: layer %d: %w", rk.id, l, err)
			}
		}
		if err := blk.Forward(ctx, st); err != nil {
			return nil, fmt.Errorf("tp rank %d: %w", rk.id, err)
		}
	}
	e.arch.FinalNorm(x, x, n, e.final)
	rk.Charge(cost.FinalNorm(n, d)...)

	vs := rk.vhi - rk.vlo
	out := make([]rowStats, n)
	logits := make([]float32, HeadChunkRows*vs)
	for r0 := 0; r0 < n; r0 += HeadChunkRows {
		rows := min(HeadChunkRows, n-r0)
		flops, err := rk.head.MulT(x[r0*d:], rows, logits)
		if err != nil {
			return nil, fmt.Errorf("tp rank %d: lm_head: %w", rk.id, err)
		}
		rk.stats.kernelFlops += flops
		rk.Charge(cost.HeadChunk(rows, vs, d)...)
		for i := 0; i < rows; i++ {
			t := r0 + i
			row := logits[i*vs : (i+1)*vs]
			out[t] = rowStatsOf(row, rk.vlo, in.targets[t], k)
			if full != nil {
				copy(full[t*stride+off:], row)
			}
		}
	}
	return out, nil
}

func rowStatsOf(row []float32, vlo, target, k int) rowStats {
	s := rowStats{max: float32(math.Inf(-1))}
	for _, v := range row {
		if v > s.max {
			s.max = v
		}
	}
	for _, v := range row {
		s.sumExp += float64(model.ExpNeg(v - s.max))
	}
	if target >= vlo && target < vlo+len(row) {
		s.target, s.hasTgt = row[target-vlo], true
	}
	s.top = topK(row, vlo, k)
	return s
}

// topK returns the k largest entries of row (ids offset by vlo), best
// first, ties broken by the smaller id. Logprob holds the raw logit.
func topK(row []float32, vlo, k int) []TokenLogprob {
	top := make([]TokenLogprob, 0, k+1)
	for i, v := range row {
		if len(top) == k && !(v > top[k-1].Logprob) {
			continue
		}
		j := len(top)
		if j == k {
			j--
		} else {
			top = append(top, TokenLogprob{})
		}
		for j > 0 && v > top[j-1].Logprob {
			top[j] = top[j-1]
			j--
		}
		top[j] = TokenLogprob{ID: vlo + i, Logprob: v}
	}
	return top
}

func better(a, b TokenLogprob) bool {
	if a.Logprob != b.Logprob {
		return a.Logprob > b.Logprob
	}
	return a.ID < b.ID
}

// assemble combines the ranks' statistics into per-sequence results:
// lse = M + log Σ_r s_r·exp(m_r − M) over ranks, in float64.
func (e *Engine) assemble(in *batchIn, stats [][]rowStats, opts PrefillOptions, full []float32) []SeqResult {
	n := in.b.N
	lse := make([]float64, n)
	tgt := make([]float32, n)
	tops := make([][]TokenLogprob, n)
	k := max(1, opts.TopK)
	for t := 0; t < n; t++ {
		m := float32(math.Inf(-1))
		for r := range stats {
			m = max(m, stats[r][t].max)
		}
		var s float64
		var cand []TokenLogprob
		for r := range stats {
			rs := &stats[r][t]
			s += rs.sumExp * math.Exp(float64(rs.max-m))
			if rs.hasTgt {
				tgt[t] = rs.target
			}
			cand = append(cand, rs.top...)
		}
		lse[t] = float64(m) + math.Log(s)
		sort.Slice(cand, func(i, j int) bool { return better(cand[i], cand[j]) })
		cand = cand[:min(k, len(cand))]
		for i := range cand {
			cand[i].Logprob = float32(float64(cand[i].Logprob) - lse[t])
		}
		tops[t] = cand
	}
	out := make([]SeqResult, len(in.seqs))
	for i, sp := range in.seqs {
		lo, hi := sp[0], sp[1]
		sr := SeqResult{TokenLogprobs: make([]float32, hi-lo)}
		if opts.TopK > 0 {
			sr.TopK = make([][]TokenLogprob, hi-lo)
		}
		for j := 1; j < hi-lo; j++ {
			row := lo + j - 1
			sr.TokenLogprobs[j] = float32(float64(tgt[row]) - lse[row])
			if opts.TopK > 0 {
				sr.TopK[j] = tops[row][:min(opts.TopK, len(tops[row]))]
			}
		}
		sr.Next = tops[hi-1]
		if full != nil {
			sr.Logprobs = make([][]float32, hi-lo)
			V := e.cfg.Vocab
			for j := range sr.Logprobs {
				row := full[(lo+j)*V : (lo+j+1)*V]
				for v := range row {
					row[v] = float32(float64(row[v]) - lse[lo+j])
				}
				sr.Logprobs[j] = row
			}
		}
		out[i] = sr
	}
	return out
}
