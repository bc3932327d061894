package evalharness

import (
	"context"
	"fmt"

	"github.com/equarx/equarx/tp"
)

// Prefiller is the part of the tensor-parallel engine the harness uses.
type Prefiller interface {
	Prefill(ctx context.Context, seqs [][]int, opts tp.PrefillOptions) (*tp.PrefillResult, error)
}

// EngineBackend scores in process through a tensor-parallel engine.
type EngineBackend struct {
	Engine Prefiller
	Model  string
	Window int // the model's max_seq_len
	// Token names an id as the server's completions route does
	// (tokenizer.Name), so top-K lists match the HTTP scorer's.
	Token func(id int) string
}

var _ Backend = (*EngineBackend)(nil)

// Name implements Backend.
func (e *EngineBackend) Name() string { return e.Model }

// MaxSeqLen implements Backend.
func (e *EngineBackend) MaxSeqLen() int { return e.Window }

// FullRows implements Backend: the engine returns whole log-softmax rows.
func (e *EngineBackend) FullRows() bool { return true }

// Prefill implements Backend.
func (e *EngineBackend) Prefill(ctx context.Context, spec PrefillSpec, seqs [][]int) ([]SeqOutput, error) {
	if e.Token == nil {
		return nil, fmt.Errorf("engine backend: no token renderer")
	}
	opts := tp.PrefillOptions{Codec: spec.Codec.Kind, BlockSize: spec.Codec.BlockSize, TopK: spec.TopK, FullLogprobs: spec.Full}
	if spec.Codec.Policy != nil {
		opts.Codec, opts.BlockSize, opts.Policy = "", 0, spec.Codec.Policy
	}
	res, err := e.Engine.Prefill(ctx, seqs, opts)
	if err != nil {
		return nil, fmt.Errorf("engine prefill: %w", err)
	}
	if len(res.Seqs) != len(seqs) {
		return nil, fmt.Errorf("engine returned %d sequences for %d", len(res.Seqs), len(seqs))
	}
	out := make([]SeqOutput, len(seqs))
	for j, s := range res.Seqs {
		n := len(seqs[j])
		if len(s.TokenLogprobs) != n || len(s.TopK) != n {
			return nil, fmt.Errorf("engine sequence %d: %d logprobs, %d top-k lists for %d tokens", j, len(s.TokenLogprobs), len(s.TopK), n)
		}
		o := SeqOutput{TokenLogprobs: s.TokenLogprobs, Top: make([][]TopEntry, n)}
		from := 1
		if spec.TopFrom != nil {
			from = max(1, spec.TopFrom[j])
		}
		for i := from; i < n; i++ {
			ids := make([]int, len(s.TopK[i]))
			lps := make([]float32, len(s.TopK[i]))
			for k, t := range s.TopK[i] {
				ids[k], lps[k] = t.ID, t.Logprob
			}
			o.Top[i] = CollapseTop(ids, lps, e.Token)
		}
		if spec.Full {
			if len(s.Logprobs) != n {
				return nil, fmt.Errorf("engine sequence %d: %d full rows for %d tokens", j, len(s.Logprobs), n)
			}
			// The engine's row i predicts token i+1; ours predicts token i.
			o.Rows = make([][]float32, n)
			for i := 1; i < n; i++ {
				o.Rows[i] = s.Logprobs[i-1]
			}
		}
		out[j] = o
	}
	return out, nil
}
