package collective

import "time"

// CodecKind names how values travel on the wire during an AllReduce.
type CodecKind string

const (
	CodecF32  CodecKind = "f32"  // exact float32 wire
	CodecBF16 CodecKind = "bf16" // bfloat16, round-to-nearest-even per hop
	CodecInt8 CodecKind = "int8" // dynamic block-wise int8 with a per-block scale
	CodecInt4 CodecKind = "int4" // dynamic block-wise int4, two values per byte
	CodecInt6 CodecKind = "int6" // dynamic block-wise int6, four values per three bytes
	CodecFP8  CodecKind = "fp8"  // dynamic block-wise FP8 E4M3FN with a per-block scale
)

// Algorithm names the AllReduce schedule.
type Algorithm string

const (
	AlgoAuto    Algorithm = "auto"    // choose by topology and message size
	AlgoRing    Algorithm = "ring"    // unidirectional ring reduce-scatter + all-gather
	AlgoBiRing  Algorithm = "biring"  // two half-buffers on rings in opposite directions
	AlgoTorus2D Algorithm = "torus2d" // reduce-scatter along X then Y, all-gather back
	AlgoTwoShot Algorithm = "twoshot" // direct reduce-scatter then direct all-gather
	// AlgoOneShot: every rank sends its whole quantized partial to every
	// peer; each decodes all partials and sums them in rank order. One
	// quantization per partial, (N-1) x the buffer sent per rank. Never
	// chosen by auto; ask for it by name.
	AlgoOneShot Algorithm = "oneshot"
)

// Options select how one AllReduce runs. The zero value means: int8 codec,
// default block size, automatic algorithm, default segmenting and fallback.
type Options struct {
	Codec     CodecKind
	BlockSize int       // values per quantization block; 0 = the codec's default
	Algorithm Algorithm // "" = AlgoAuto
	// SegmentElems splits each chunk into segments of this many values (rounded
	// to whole blocks) so encoding segment k+1 overlaps sending segment k.
	// 0 = default; negative = no segmenting.
	SegmentElems int
	// FallbackElems: quantized-codec buffers with fewer values than this use bf16
	// instead. 0 = the measured crossover: the estimator prices both codecs
	// for this topology, profile and size, and bf16 is used wherever it is
	// at least as fast. Negative = never fall back.
	FallbackElems int
	// Timeout bounds the whole call; 0 = the communicator's default.
	Timeout time.Duration

	// RowElems > 0 makes the call batch invariant: buf holds whole rows of
	// RowElems values (one token's activations each), and every value's
	// result depends only on its own row's partial sums on each rank, not
	// on how many rows the buffer holds or where its row sits in it:
	//
	//   - the call runs on a striped layout: each row is cut into S equal
	//     stripes (S = the algorithm's number of final chunks: N ranks for
	//     ring, twoshot and torus2d, 2N for biring, 1 for oneshot) and the
	//     buffer is reordered stripe-major, so chunk c of the schedule is
	//     stripe c of every row and each column is always reduced by the
	//     same ranks in the same order;
	//   - quantization blocks restart at every row stripe, so no block
	//     holds values of two tokens: when the block size B does not
	//     divide the stripe, the largest valid block size below B that
	//     does is used (672 values and B = 256: three blocks of 224), or
	//     if there is none, blocks of B and a short last one;
	//   - the automatic algorithm and the estimator's bf16 fallback are
	//     decided for a buffer of PlanRows rows, never the call's length.
	//
	// RowElems must divide len(buf), and S must divide RowElems.
	RowElems int
	// PlanRows is the buffer length, in rows, at which a batch-invariant
	// call decides its algorithm and fallback; 0 = DefaultPlanRows.
	PlanRows int

	// Untimed moves and sums the data but leaves the simulated clocks and
	// link state alone (Stats.SimSeconds is 0): for exchanges the emulation
	// makes that the simulated devices do not (tp's vocab-parallel
	// embedding, whose simulated counterpart is a replicated lookup). It is
	// not sent to peers; every rank of a call must pass the same.
	Untimed bool
}

// DefaultPlanRows is the row count at which batch-invariant calls decide
// their algorithm and fallback when Options.PlanRows is 0: a 2048-token
// batch, the server's default token budget.
const DefaultPlanRows = 2048

// Stats describe one completed AllReduce as seen by one rank.
type Stats struct {
	Codec      CodecKind // the codec actually used (after any fallback)
	Algorithm  Algorithm // the algorithm actually used
	Elements   int
	Stripes    int     // stripes per row of the batch-invariant layout; 0 = not invariant
	WireBytes  int64   // bytes this rank sent
	SimSeconds float64 // duration on this device's simulated TPU clock
	// QuantErrSq and QuantRefSq measure the final quantization of the
	// values this rank owns in the all-gather: the sum over them of
	// (exact reduced value - the value every rank ends with)^2, and of the
	// exact reduced value^2. Both are 0 for the f32 codec. Errors added by
	// re-quantization during reduce-scatter are not included.
	QuantErrSq, QuantRefSq float64
}
