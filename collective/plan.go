package collective

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/equarx/equarx/tpu"
)

// DefaultSegmentElems is the segment size (values, rounded up to whole
// blocks) used when Options.SegmentElems is 0. See docs/ALLREDUCE.md for
// the estimator sweep it comes from.
const DefaultSegmentElems = 64 << 10

// DefaultTimeout bounds an AllReduce whose Options.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// plan is a fully resolved AllReduce setting.
type plan struct {
	codec     Codec
	algorithm Algorithm
	segElems  int // 0: no segmenting
	n         int
	// rowElems > 0: batch-invariant layout (Options.RowElems) with
	// stripes stripes per row.
	rowElems, stripes int
}

// unit is the granularity at which the schedule cuts the buffer into
// chunks and segments: a quantization block, or in the batch-invariant
// layout one row stripe.
func (p plan) unit() int {
	if p.rowElems > 0 {
		return p.rowElems / p.stripes
	}
	return p.codec.BlockSize()
}

// stripesFor is the number of final chunks of an algorithm on size ranks:
// the stripes per row of its batch-invariant layout.
func stripesFor(a Algorithm, size int) int {
	switch {
	case size == 1 || a == AlgoOneShot:
		return 1
	case a == AlgoBiRing:
		return 2 * size
	}
	return size
}

// stripeBlock is the largest valid block size (a multiple of
// BlockSizeMultiple, at least MinBlockSize) not above b that divides a
// stripe of w values, or 0 if there is none.
func stripeBlock(w, b int) int {
	for nb := (w + b - 1) / b; nb <= w/MinBlockSize; nb++ {
		if eb := w / nb; w%nb == 0 && eb%BlockSizeMultiple == 0 && eb >= MinBlockSize {
			return eb
		}
	}
	return 0
}

// maxPlanElems bounds the buffer a batch-invariant call plans for.
const maxPlanElems = 1 << 28

// profKey identifies a profile's cost figures.
type profKey struct {
	name                string
	flops, hbm, ici, lt float64
	wrap                string
	pod                 int
}

func keyOf(p tpu.Profile) profKey {
	return profKey{p.Name, p.PeakBF16FLOPS, p.HBMBytesPerSec, p.ICIBytesPerSecPerLinkDir, p.HopLatencySeconds, p.Wraparound, p.PodDim}
}

type schedKey struct {
	topo              tpu.Topology
	n                 int
	codec             CodecKind
	block             int
	algorithm         Algorithm
	seg               int
	rowElems, stripes int
}

func schedKeyOf(topo tpu.Topology, p plan) schedKey {
	return schedKey{topo, p.n, p.codec.Kind(), p.codec.BlockSize(), p.algorithm, p.segElems, p.rowElems, p.stripes}
}

type priceKey struct {
	sk   schedKey
	prof profKey
}

// caches shared by all groups: schedules are immutable.
var cache = struct {
	sync.Mutex
	sched map[schedKey]*schedule
	price map[priceKey]float64
	nets  map[struct {
		topo tpu.Topology
		prof profKey
	}]*tpu.Network
}{}

const maxCached = 512

func cachedNetwork(topo tpu.Topology, prof tpu.Profile) (*tpu.Network, error) {
	k := struct {
		topo tpu.Topology
		prof profKey
	}{topo, keyOf(prof)}
	cache.Lock()
	nw, ok := cache.nets[k]
	cache.Unlock()
	if ok {
		return nw, nil
	}
	nw, err := tpu.NewNetwork(topo, prof)
	if err != nil {
		return nil, err
	}
	cache.Lock()
	if cache.nets == nil || len(cache.nets) > maxCached {
		cache.nets = map[struct {
			topo tpu.Topology
			prof profKey
		}]*tpu.Network{}
	}
	cache.nets[k] = nw
	cache.Unlock()
	return nw, nil
}

// resolve turns Options into a plan for n values on a network.
//
// Fallback: with FallbackElems > 0, quantized-codec buffers shorter than it
// use bf16; with FallbackElems == 0 the estimator decides per call: the
// quantized codec is used only where it prices faster than bf16 on this
// topology, profile and size (the measured crossover), so the quantized
// path is never slower than bf16 on the cost model.
//
// With Options.RowElems > 0 the codec after fallback and the algorithm are
// decided once for a buffer of PlanRows rows, then used for n.
func resolve(nw *tpu.Network, n int, opts Options) (plan, error) {
	if n < 0 {
		return plan{}, fmt.Errorf("negative length %d", n)
	}
	if opts.RowElems < 0 || opts.PlanRows < 0 {
		return plan{}, fmt.Errorf("row values %d and plan rows %d must not be negative", opts.RowElems, opts.PlanRows)
	}
	if opts.RowElems == 0 {
		return resolveSized(nw, n, opts)
	}
	w := opts.RowElems
	if n%w != 0 {
		return plan{}, fmt.Errorf("batch-invariant call of %d values: not a whole number of rows of %d", n, w)
	}
	rows := opts.PlanRows
	if rows == 0 {
		rows = DefaultPlanRows
	}
	if rows > maxPlanElems/w {
		return plan{}, fmt.Errorf("batch-invariant plan of %d rows of %d values exceeds %d values", rows, w, maxPlanElems)
	}
	d, err := resolveSized(nw, rows*w, opts)
	if err != nil {
		return plan{}, err
	}
	fixed := opts
	fixed.Codec, fixed.Algorithm, fixed.FallbackElems = d.codec.Kind(), d.algorithm, -1
	return resolveCodec(nw, n, fixed.Codec, fixed)
}

// resolveSized is resolve with the fallback and the automatic algorithm
// decided for n values.
func resolveSized(nw *tpu.Network, n int, opts Options) (plan, error) {
	kind := opts.Codec
	if kind == "" {
		kind = CodecInt8
	}
	p, err := resolveCodec(nw, n, kind, opts)
	if err != nil {
		return plan{}, err
	}
	if !kind.Quantized() {
		return p, nil
	}
	switch thr := opts.FallbackElems; {
	case thr > 0 && n < thr:
		return resolveCodec(nw, n, CodecBF16, opts)
	case thr == 0:
		q, err := resolveCodec(nw, n, CodecBF16, opts)
		if err != nil {
			return plan{}, err
		}
		tp, err := price(nw, p)
		if err != nil {
			return plan{}, err
		}
		tq, err := price(nw, q)
		if err != nil {
			return plan{}, err
		}
		if tq <= tp {
			return q, nil
		}
	}
	return p, nil
}

// resolveCodec resolves block size, segment size and algorithm for a codec.
func resolveCodec(nw *tpu.Network, n int, kind CodecKind, opts Options) (plan, error) {
	c, err := NewCodec(kind, opts.BlockSize)
	if err != nil {
		return plan{}, err
	}
	seg := opts.SegmentElems
	switch {
	case seg == 0:
		seg = DefaultSegmentElems
	case seg < 0:
		seg = 0
	}
	p := plan{codec: c, segElems: seg, n: n, rowElems: opts.RowElems}
	topo := nw.Topology()
	switch opts.Algorithm {
	case "", AlgoAuto:
		return chooseAuto(nw, p)
	case AlgoRing, AlgoBiRing, AlgoTwoShot, AlgoOneShot:
	case AlgoTorus2D:
		if topo.Kind != tpu.KindTorus {
			return plan{}, fmt.Errorf("algorithm %q needs a torus topology, have %s", opts.Algorithm, topo)
		}
	default:
		return plan{}, fmt.Errorf("unknown algorithm %q (want %q, %q, %q, %q, %q or %q)",
			opts.Algorithm, AlgoAuto, AlgoRing, AlgoBiRing, AlgoTorus2D, AlgoTwoShot, AlgoOneShot)
	}
	return withAlgorithm(p, topo, opts.Algorithm)
}

// withAlgorithm completes a plan for an algorithm: in the batch-invariant
// layout the stripes per row and the codec that restarts blocks at every
// stripe; then the segment size in whole units.
func withAlgorithm(p plan, topo tpu.Topology, a Algorithm) (plan, error) {
	p.algorithm = a
	if p.rowElems > 0 {
		p.stripes = stripesFor(a, topo.Size())
		if p.rowElems%p.stripes != 0 {
			return plan{}, fmt.Errorf("batch-invariant %s on %d ranks cuts rows into %d stripes, which does not divide the row of %d values (algorithm %q always can)",
				a, topo.Size(), p.stripes, p.rowElems, AlgoOneShot)
		}
		if w, b := p.unit(), p.codec.BlockSize(); w%b != 0 {
			// Blocks restart at every stripe: use the largest block size
			// that divides the stripe (whole blocks run on the vector
			// kernels); without one, blocks of b and a short last one.
			if eb := stripeBlock(w, b); eb > 0 {
				c, err := NewCodec(p.codec.Kind(), eb)
				if err != nil {
					return plan{}, err
				}
				p.codec = c
			} else {
				p.codec = rowCodec{inner: p.codec, width: w}
			}
		}
	}
	if u := p.unit(); p.segElems > 0 {
		p.segElems = (p.segElems + u - 1) / u * u
	}
	return p, nil
}

// price is the simulated time of a plan from idle clocks (cached).
func price(nw *tpu.Network, p plan) (float64, error) {
	topo := nw.Topology()
	k := priceKey{schedKeyOf(topo, p), keyOf(nw.Profile())}
	cache.Lock()
	t, ok := cache.price[k]
	cache.Unlock()
	if ok {
		return t, nil
	}
	s, err := buildSchedule(topo, p)
	if err != nil {
		return 0, err
	}
	res, err := simulate(s, nw, make([]float64, topo.Size()), make([]float64, nw.NumLinks()))
	if err != nil {
		return 0, err
	}
	t = maxOf(res.end)
	cache.Lock()
	if cache.price == nil || len(cache.price) > maxCached {
		cache.price = map[priceKey]float64{}
	}
	cache.price[k] = t
	cache.Unlock()
	return t, nil
}

// candidates are the algorithms auto considers on a topology.
func candidates(topo tpu.Topology) []Algorithm {
	as := []Algorithm{AlgoRing, AlgoBiRing}
	if topo.Kind == tpu.KindTorus && topo.X > 1 && topo.Y > 1 {
		as = append(as, AlgoTorus2D)
	}
	return append(as, AlgoTwoShot)
}

// chooseAuto prices every candidate with the estimator and returns the
// plan of the fastest (ties: the earlier candidate). In the batch-invariant
// layout candidates whose stripes do not divide the row are skipped, and
// oneshot (one stripe) is the last resort.
func chooseAuto(nw *tpu.Network, p plan) (plan, error) {
	topo := nw.Topology()
	if topo.Size() == 1 {
		return withAlgorithm(p, topo, AlgoRing)
	}
	var best plan
	bestT := math.Inf(1)
	for _, cand := range candidates(topo) {
		q, err := withAlgorithm(p, topo, cand)
		if err != nil {
			continue
		}
		t, err := price(nw, q)
		if err != nil {
			return plan{}, err
		}
		if t < bestT {
			best, bestT = q, t
		}
	}
	if math.IsInf(bestT, 1) {
		return withAlgorithm(p, topo, AlgoOneShot)
	}
	return best, nil
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// buildSchedule returns the (cached) schedule of a plan on a topology.
func buildSchedule(topo tpu.Topology, p plan) (*schedule, error) {
	k := schedKeyOf(topo, p)
	cache.Lock()
	s, ok := cache.sched[k]
	cache.Unlock()
	if ok {
		return s, nil
	}
	size := topo.Size()
	b := newBuilder(size, p.n, p.codec, p.algorithm, p.segElems)
	block := p.unit()
	if size > 1 && p.n > 0 {
		switch p.algorithm {
		case AlgoRing:
			buildRing(b, topo.RingOrder(), p.n, block, p.segElems)
		case AlgoBiRing:
			buildBiRing(b, topo.RingOrder(), p.n, block, p.segElems)
		case AlgoTorus2D:
			buildTorus2D(b, topo.Rows(), topo.Cols(), p.n, block, p.segElems)
		case AlgoTwoShot:
			buildTwoShot(b, size, p.n, block, p.segElems)
		case AlgoOneShot:
			buildOneShot(b, size, p.n, p.segElems)
		default:
			return nil, fmt.Errorf("no schedule for algorithm %q", p.algorithm)
		}
	}
	s = b.finish()
	cache.Lock()
	if cache.sched == nil || len(cache.sched) > maxCached {
		cache.sched = map[schedKey]*schedule{}
	}
	cache.sched[k] = s
	cache.Unlock()
	return s, nil
}

// EstimateResult is the priced schedule of one AllReduce.
type EstimateResult struct {
	Codec        CodecKind // after any fallback
	Algorithm    Algorithm // after auto
	BlockSize    int       // values per block (1 for f32 and bf16)
	Stripes      int       // stripes per row of the batch-invariant layout; 0 = not invariant
	SegmentElems int       // 0: no segmenting
	Elements     int
	// SimSeconds is the simulated TPU time from a common start (all clocks
	// and links idle at 0) until the last rank finishes.
	SimSeconds  float64
	RankSeconds []float64 // per rank: when it finishes
	// WireBytes is the largest number of bytes one rank sends;
	// RankWireBytes has every rank's.
	WireBytes     int64
	RankWireBytes []int64
	Messages      int // messages in the schedule
}

// Estimate prices an AllReduce of `elements` values on a topology and
// profile without data: it builds the same schedule the executor runs and
// simulates it from idle clocks.
func Estimate(topo tpu.Topology, prof tpu.Profile, elements int, opts Options) (EstimateResult, error) {
	nw, err := cachedNetwork(topo, prof)
	if err != nil {
		return EstimateResult{}, fmt.Errorf("collective: estimate: %w", err)
	}
	p, err := resolve(nw, elements, opts)
	if err != nil {
		return EstimateResult{}, fmt.Errorf("collective: estimate: %w", err)
	}
	s, err := buildSchedule(topo, p)
	if err != nil {
		return EstimateResult{}, fmt.Errorf("collective: estimate: %w", err)
	}
	res, err := simulate(s, nw, make([]float64, topo.Size()), make([]float64, nw.NumLinks()))
	if err != nil {
		return EstimateResult{}, fmt.Errorf("collective: estimate: %w", err)
	}
	e := EstimateResult{
		Codec: p.codec.Kind(), Algorithm: p.algorithm, BlockSize: p.codec.BlockSize(), Stripes: p.stripes,
		SegmentElems: p.segElems, Elements: elements, SimSeconds: maxOf(res.end),
		RankSeconds: res.end, RankWireBytes: append([]int64(nil), s.wire...), Messages: len(s.msgs),
	}
	for _, w := range s.wire {
		e.WireBytes = max(e.WireBytes, w)
	}
	return e, nil
}
