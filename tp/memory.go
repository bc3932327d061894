package tp

import (
	"fmt"

	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/weights"
)

// RankMemory is what one rank holds, in bytes.
type RankMemory struct {
	// Weights: the rank's shards of the layer matrices and its vocab
	// rows of the embedding and LM head (one matrix when tied), in the
	// weight dtype, as the matmul kernels hold them (model.WeightBytes).
	Weights int64 `json:"weights"`
	// Activations: the residual stream and the layer scratch buffers of a
	// batch of the largest token count (q, k, v, attention output, the
	// MLP's gate and up shards, RoPE tables).
	Activations int64 `json:"activations"`
	// Logits: one chunk of HeadChunkRows rows over the rank's vocab range
	// and the per-row log-softmax statistics.
	Logits int64 `json:"logits"`
	// Collective: the AllReduce working set for a batch: the
	// batch-invariant layout's reordered copy and the encoded payloads
	// (f32 at worst: the embedding exchange, or f32 requests).
	Collective int64 `json:"collective"`
}

// Total is the sum of the parts.
func (m RankMemory) Total() int64 { return m.Weights + m.Activations + m.Logits + m.Collective }

// MemoryEstimate is the memory a tensor-parallel engine needs in one
// process holding all its ranks.
type MemoryEstimate struct {
	TP             int          `json:"tp"`
	DType          string       `json:"weights_dtype"`
	MaxBatchTokens int          `json:"max_batch_tokens"`
	Ranks          []RankMemory `json:"ranks"`
	// Shared: norm vectors, read once and shared by the ranks.
	Shared int64 `json:"shared"`
	// Runtime: the Go runtime, the binary and the goroutine stacks, a
	// fixed allowance.
	Runtime int64 `json:"runtime"`
}

// runtimeBytes is the allowance for what is not the model: the binary's
// text and data, the runtime's own structures, stacks, the HTTP server.
const runtimeBytes = 64 << 20

// Weights is the weight bytes of every rank plus the shared vectors.
func (m *MemoryEstimate) Weights() int64 {
	n := m.Shared
	for _, r := range m.Ranks {
		n += r.Weights
	}
	return n
}

// Working is the bytes of a batch in flight on every rank: activations,
// logit chunks and collective buffers.
func (m *MemoryEstimate) Working() int64 {
	var n int64
	for _, r := range m.Ranks {
		n += r.Activations + r.Logits + r.Collective
	}
	return n
}

// Total is everything: weights, a batch in flight and the runtime.
func (m *MemoryEstimate) Total() int64 { return m.Weights() + m.Working() + m.Runtime }

// EstimateMemory computes what an engine for cfg at tp ranks needs with
// weights held in dtype ("f32" or "bf16") and batches of at most
// maxBatchTokens tokens, from the config alone: nothing is read. The
// figures follow the engine's allocations (bindRank, runRank, model's
// decoder block); a full-logprobs request adds tokens x vocab float32
// values on top (bounded by the engine at 512 MiB).
func EstimateMemory(cfg model.Config, tp int, dtype string, maxBatchTokens int) (*MemoryEstimate, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tp: memory estimate: %w", err)
	}
	if tp < 1 {
		return nil, fmt.Errorf("tp: memory estimate: tp must be >= 1, got %d", tp)
	}
	if maxBatchTokens < 1 {
		return nil, fmt.Errorf("tp: memory estimate: batch tokens must be >= 1, got %d", maxBatchTokens)
	}
	switch dtype {
	case weights.DTypeF32, weights.DTypeBF16:
	default:
		return nil, fmt.Errorf("tp: memory estimate: weights dtype %q: want f32 or bf16", dtype)
	}
	d, hd, n := int64(cfg.Dim), int64(cfg.HeadDim), int64(maxBatchTokens)
	est := &MemoryEstimate{TP: tp, DType: dtype, MaxBatchTokens: maxBatchTokens, Runtime: runtimeBytes}
	// Shared vectors: per-layer norms and the final norm, float32.
	perLayer := 2 * d
	if cfg.Arch == "gemma3" {
		perLayer += 2*hd + 2*d
	}
	est.Shared = 4 * (int64(cfg.Layers)*perLayer + d)
	thetas := int64(1)
	if cfg.RopeLocalTheta != 0 && cfg.RopeLocalTheta != cfg.RopeTheta {
		thetas = 2
	}
	for r := range tp {
		hs, err := HeadShard(cfg, tp, r)
		if err != nil {
			return nil, fmt.Errorf("tp: memory estimate: %w", err)
		}
		hlo, hhi := SplitRange(cfg.HiddenDim, tp, r)
		vlo, vhi := SplitRange(cfg.Vocab, tp, r)
		q, kv, hid, vs := hs.QHeads*cfg.HeadDim, hs.KVHeads*cfg.HeadDim, hhi-hlo, vhi-vlo
		w := func(out, in int) int64 { return model.WeightBytes(out, in, dtype) }
		var m RankMemory
		layer := w(q, cfg.Dim) + 2*w(kv, cfg.Dim) + w(cfg.Dim, q) + 2*w(hid, cfg.Dim) + w(cfg.Dim, hid)
		m.Weights = int64(cfg.Layers)*layer + w(vs, cfg.Dim)
		if !cfg.TiedEmbeddings {
			// A separate embedding shard serves lookups only; it is held
			// packed like the other weights (float32 ones from the first
			// lookup on, when the row-major copy is dropped).
			m.Weights += w(vs, cfg.Dim)
		}
		// x, h, o: [n, dim]; q and attention output [n, q]; k, v [n, kv];
		// gate and up [n, hid]; cos and sin per RoPE base [n, head_dim/2].
		m.Activations = 4 * n * (3*d + 2*int64(q) + 2*int64(kv) + 2*int64(hid) + thetas*hd)
		m.Activations += model.ProductScratchBytes(maxBatchTokens, max(cfg.Dim, q, hid), dtype)
		m.Logits = 4*int64(HeadChunkRows)*int64(vs) + n*(64+16*MaxTopK)
		if tp > 1 {
			m.Collective = 3 * 4 * n * d
		}
		est.Ranks = append(est.Ranks, m)
	}
	return est, nil
}
