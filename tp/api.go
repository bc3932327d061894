package tp

import (
	"github.com/equarx/equarx/collective"
)

// PrefillOptions are chosen per call; changing them never reloads weights.
type PrefillOptions struct {
	Codec     collective.CodecKind // AllReduce codec for every row-parallel output
	BlockSize int                  // quantization block size; 0 = codec default
	// Policy, when set, chooses the codec and block size per reduction
	// site instead (Codec and BlockSize must then be empty).
	Policy *Policy
	TopK   int // top-k alternatives per position, 0..20
	// FullLogprobs also returns the whole log-softmax row of every position
	// (n x vocab per sequence), for KL comparisons between codecs.
	FullLogprobs bool
}

// TokenLogprob is one candidate token with its log-probability.
type TokenLogprob struct {
	ID      int     `json:"id"`
	Logprob float32 `json:"logprob"`
}

// SeqResult is the prefill output of one sequence of n tokens.
type SeqResult struct {
	// TokenLogprobs[i] = log p(tokens[i] | tokens[<i]) for i >= 1; index 0 has
	// no prediction and holds 0.
	TokenLogprobs []float32
	// TopK[i] are the TopK best tokens of the distribution that predicts
	// tokens[i] (i >= 1), best first; TopK[0] is nil.
	TopK [][]TokenLogprob
	// Next is the top max(1, TopK) of the distribution after the last token.
	Next []TokenLogprob
	// Logprobs[i] is the full log-softmax row after tokens[<=i] (only with
	// FullLogprobs): Logprobs[i] predicts tokens[i+1].
	Logprobs [][]float32
}

// PrefillResult is the output of one batched prefill.
type PrefillResult struct {
	Seqs []SeqResult
	// Simulated TPU time of the batch on the engine's TPU profile (critical
	// path over devices): total, and the part spent in AllReduce.
	SimSeconds          float64
	SimAllReduceSeconds float64
	// CPU wall time of the batch on this machine.
	WallSeconds    float64
	AllReduceCalls int
	WireBytes      int64 // AllReduce bytes sent, summed over devices
	// QuantRelErrRMS is the relative RMS error of the final quantization
	// step of every AllReduce of the batch (the all-gather encoding of the
	// reduced values, over all ranks): sqrt(sum err^2 / sum value^2). 0 for
	// f32, or with one device. Re-quantization during reduce-scatter hops is
	// not included.
	QuantRelErrRMS float64
	// Codec names the codecs the AllReduces ran (after any fallback),
	// joined by "+" when they differ.
	Codec collective.CodecKind
	// SiteCodecs[2l] and SiteCodecs[2l+1] are the codecs layer l's
	// attention and MLP reductions ran (after any fallback); nil at tp 1.
	// Reductions is their compact summary ("int8", "int8 x 10, int4 x 6").
	SiteCodecs []Setting
	Reductions string
}
