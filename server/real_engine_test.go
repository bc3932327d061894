package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/tokenizer"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/weights"
)

// newRealServer serves the built-in stories260K at tp 2.
func newRealServer(t *testing.T, mod func(*Options)) *Server {
	t.Helper()
	src, err := weights.ReadLlama2C(assets.Stories260K())
	if err != nil {
		t.Fatal(err)
	}
	eng, err := tp.NewEngine(src, tp.EngineConfig{TP: 2, TPU: "v5e"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	tok, err := tokenizer.LoadLlama2C(assets.Tok512())
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions()
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	classify := func(err error) int {
		if errors.Is(err, tp.ErrTooLong) {
			return 413
		}
		if errors.Is(err, tp.ErrInvalidInput) {
			return 400
		}
		return 0
	}
	if err := s.SetBackend(Backend{Name: "stories260K", Engine: eng, Tokenizer: tok, Classify: classify}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestRealEngineRoutesAgree checks, on the real model, that the prompt
// encodes as llama2.c does, and that /v1/completions (lm-eval's request)
// reports the same log-probabilities as /v1/prefill.
func TestRealEngineRoutesAgree(t *testing.T) {
	h := newRealServer(t, nil).Handler()
	code, raw := do(t, h, "POST", "/v1/prefill", `{"prompt":"Once upon a time","logprobs":1,"allreduce":"f32"}`)
	if code != 200 {
		t.Fatalf("prefill: %d %s", code, raw)
	}
	p := decode[PrefillResponse](t, raw)
	if diff := cmp.Diff([]int{1, 403, 407, 261, 378}, p.Tokens); diff != "" {
		t.Fatalf("tokens (-llama2.c +served):\n%s", diff)
	}
	body := fmt.Sprintf(`{"model":"stories260K","prompt":[%s],"max_tokens":1,"temperature":0,"logprobs":1,"echo":true,"allreduce":"f32"}`, mustJSON(p.Tokens))
	code, raw = do(t, h, "POST", "/v1/completions", body)
	if code != 200 {
		t.Fatalf("completions: %d %s", code, raw)
	}
	c := decode[CompletionResponse](t, raw)
	lp := c.Choices[0].Logprobs
	if diff := cmp.Diff(p.TokenLogprobs, lp.TokenLogprobs[:len(p.Tokens)]); diff != "" {
		t.Errorf("completions vs prefill token_logprobs (-prefill +completions):\n%s", diff)
	}
	if *lp.TokenLogprobs[len(p.Tokens)] != p.NextToken.Logprob || c.Choices[0].Text != "Once upon a time," {
		t.Errorf("generated %q with %v, prefill's next token %+v", c.Choices[0].Text, *lp.TokenLogprobs[len(p.Tokens)], p.NextToken)
	}
}

// TestRealEngineBatchingKeepsAnswers sends different prompts concurrently so
// that they are packed into one ragged call, and compares every answer with
// the same prompt served alone. Packing changes only how the f32 AllReduce
// chunks the buffer, so the summation order of a value may change: answers
// agree to float32 rounding (bound 1e-5 on log-probabilities of order 1-10,
// a few hundred ulps), and the argmax at every position is the same.
func TestRealEngineBatchingKeepsAnswers(t *testing.T) {
	prompts := []string{
		"Once upon a time", "The little dog ran to the park and", "Lily saw a big red ball.",
		"One day, Tom went to the store with his mom. He wanted", "The sun was hot.",
		"Sara and Ben played in the garden", "A bird sat on the tree and sang a happy song", "Max was sad",
	}
	solo := newRealServer(t, func(o *Options) { o.MaxBatchSize = 1 })
	packed := newRealServer(t, func(o *Options) { o.BatchWait = 200 * time.Millisecond }) // all arrive in one window
	run := func(s *Server) []PrefillResponse {
		out := make([]PrefillResponse, len(prompts))
		var wg sync.WaitGroup
		for i, p := range prompts {
			wg.Go(func() {
				code, raw := do(t, s.Handler(), "POST", "/v1/prefill", fmt.Sprintf(`{"prompt":%q,"logprobs":1,"allreduce":"f32"}`, p))
				if code != 200 {
					t.Errorf("%q: %d %s", p, code, raw)
					return
				}
				out[i] = decode[PrefillResponse](t, raw)
			})
		}
		wg.Wait()
		return out
	}
	a, b := run(solo), run(packed)
	maxSeqs := 0
	for i := range prompts {
		maxSeqs = max(maxSeqs, b[i].Timing.BatchSequences)
		if a[i].Timing.BatchSequences != 1 {
			t.Errorf("solo server packed %d sequences", a[i].Timing.BatchSequences)
		}
		for j := 1; j < len(a[i].Tokens); j++ {
			if d := math.Abs(float64(*a[i].TokenLogprobs[j] - *b[i].TokenLogprobs[j])); d > 1e-5 {
				t.Errorf("prompt %d position %d: solo %v packed %v", i, j, *a[i].TokenLogprobs[j], *b[i].TokenLogprobs[j])
			}
			if a[i].TopLogprobs[j][0].ID != b[i].TopLogprobs[j][0].ID {
				t.Errorf("prompt %d position %d: argmax %d solo, %d packed", i, j, a[i].TopLogprobs[j][0].ID, b[i].TopLogprobs[j][0].ID)
			}
		}
		if a[i].NextToken.ID != b[i].NextToken.ID {
			t.Errorf("prompt %d: next token %d solo, %d packed", i, a[i].NextToken.ID, b[i].NextToken.ID)
		}
	}
	if maxSeqs < 2 {
		t.Errorf("the packed server never packed: at most %d sequences per call", maxSeqs)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
