package collective

import "time"

// CodecKind names how values travel on the wire during an AllReduce.
type CodecKind string

const (
	CodecF32  CodecKind = "f32"  // exact float32 wire
	CodecBF16 CodecKind = "bf16" // bfloat16, round-to-nearest-even per hop
	CodecInt8 CodecKind = "int8" // dynamic block-wise int8 with a per-block scale
	CodecInt4 CodecKind = "int4" // dynamic block-wise int4, two values per byte
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
	// FallbackElems: int8/int4 buffers with fewer values than this use bf16
	// instead. 0 = the measured crossover: the estimator prices both codecs
	// for this topology, profile and size, and bf16 is used wherever it is
	// at least as fast. Negative = never fall back.
	FallbackElems int
	// Timeout bounds the whole call; 0 = the communicator's default.
	Timeout time.Duration
}

// Stats describe one completed AllReduce as seen by one rank.
type Stats struct {
	Codec      CodecKind // the codec actually used (after any fallback)
	Algorithm  Algorithm // the algorithm actually used
	Elements   int
	WireBytes  int64   // bytes this rank sent
	SimSeconds float64 // duration on this device's simulated TPU clock
	// QuantErrSq and QuantRefSq measure the final quantization of the
	// values this rank owns in the all-gather: the sum over them of
	// (exact reduced value - the value every rank ends with)^2, and of the
	// exact reduced value^2. Both are 0 for the f32 codec. Errors added by
	// re-quantization during reduce-scatter are not included.
	QuantErrSq, QuantRefSq float64
}
