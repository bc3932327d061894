package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/tokenizer"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/weights"
)

// invariantPolicy mixes codecs per site; it must be as batch invariant as
// a single codec.
var invariantPolicy = &tp.Policy{Name: "mixed", Default: tp.Setting{Codec: collective.CodecInt8},
	Rules: []tp.Rule{{Layers: "0", Site: tp.SiteMLP, Setting: tp.Setting{Codec: collective.CodecInt4}},
		{Layers: "-1", Setting: tp.Setting{Codec: collective.CodecBF16}}}}

// newInvariantHTTP serves stories260K at tp 4 with batch-invariant
// reductions over real HTTP, batching up to 32 sequences that arrive
// within 300 ms of each other.
func newInvariantHTTP(t *testing.T) *httptest.Server {
	t.Helper()
	src, err := weights.ReadLlama2C(assets.Stories260K())
	if err != nil {
		t.Fatal(err)
	}
	eng, err := tp.NewEngine(src, tp.EngineConfig{TP: 4, TPU: "v5e", BatchInvariant: true, PlanRows: 2048})
	if !model.RowInvariant {
		t.Skipf("this build's BLAS (%s) is not row-count invariant: %v", model.BLAS, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	tok, err := tokenizer.LoadLlama2C(assets.Tok512())
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions()
	o.BatchWait = 300 * time.Millisecond
	o.MaxBatchSize = 32
	o.BatchTokenBudget = 2048
	o.MaxBodyBytes = 1 << 16
	o.RequestTimeout = 30 * time.Second
	o.Policies = map[string]*tp.Policy{invariantPolicy.Name: invariantPolicy}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetBackend(Backend{Name: "stories260K", Engine: eng, Tokenizer: tok}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	return ts
}

func postPrefill(url string, body map[string]any) (*PrefillResponse, error) {
	b, _ := json.Marshal(body)
	resp, err := http.Post(url+"/v1/prefill", "application/json", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, raw)
	}
	var p PrefillResponse
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// samePrefill compares the answers bitwise (JSON carries float32 values
// in their shortest round-tripping form, so decoding restores the bits).
func samePrefill(a, b *PrefillResponse) error {
	if len(a.TokenLogprobs) != len(b.TokenLogprobs) || len(a.TopLogprobs) != len(b.TopLogprobs) {
		return fmt.Errorf("shapes differ")
	}
	for i := range a.TokenLogprobs {
		x, y := a.TokenLogprobs[i], b.TokenLogprobs[i]
		if (x == nil) != (y == nil) || x != nil && math.Float32bits(*x) != math.Float32bits(*y) {
			return fmt.Errorf("token_logprobs[%d]: %v vs %v", i, deref(x), deref(y))
		}
	}
	for i := range a.TopLogprobs {
		if len(a.TopLogprobs[i]) != len(b.TopLogprobs[i]) {
			return fmt.Errorf("top_logprobs[%d] lengths differ", i)
		}
		for j := range a.TopLogprobs[i] {
			x, y := a.TopLogprobs[i][j], b.TopLogprobs[i][j]
			if x.ID != y.ID || math.Float32bits(x.Logprob) != math.Float32bits(y.Logprob) {
				return fmt.Errorf("top_logprobs[%d][%d]: %+v vs %+v", i, j, x, y)
			}
		}
	}
	if a.NextToken.ID != b.NextToken.ID || math.Float32bits(a.NextToken.Logprob) != math.Float32bits(b.NextToken.Logprob) {
		return fmt.Errorf("next_token %+v vs %+v", a.NextToken, b.NextToken)
	}
	return nil
}

func deref(p *float32) any {
	if p == nil {
		return nil
	}
	return *p
}

// Over HTTP, with batching on: one prompt alone, then the same prompt
// among 31 concurrent requests of random lengths that the server packs
// into one batch with it, gets bitwise the same token_logprobs,
// top_logprobs and next_token, for every codec and for a mixed policy.
func TestHTTPBatchInvariance(t *testing.T) {
	ts := newInvariantHTTP(t)
	target := []int{1, 403, 407, 261, 378, 344, 270, 304, 265, 306, 274, 432, 292, 403, 407, 261}
	var cases []map[string]any
	for _, k := range collective.Codecs() {
		cases = append(cases, map[string]any{"allreduce": string(k)})
	}
	cases = append(cases, map[string]any{"allreduce_policy": invariantPolicy.Name})
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range cases {
		body := func(tokens []int) map[string]any {
			b := map[string]any{"tokens": tokens, "logprobs": 5}
			for k, v := range c {
				b[k] = v
			}
			return b
		}
		alone, err := postPrefill(ts.URL, body(target))
		if err != nil {
			t.Fatalf("%v alone: %v", c, err)
		}
		if alone.Timing.BatchSequences != 1 {
			t.Fatalf("%v: the lone request rode in a batch of %d", c, alone.Timing.BatchSequences)
		}
		const others = 31
		var wg sync.WaitGroup
		errs := make([]error, others)
		for i := 0; i < others; i++ {
			n := 1 + rng.IntN(60)
			toks := make([]int, n)
			for j := range toks {
				toks[j] = 1 + rng.IntN(511)
			}
			wg.Go(func() { _, errs[i] = postPrefill(ts.URL, body(toks)) })
		}
		time.Sleep(20 * time.Millisecond) // let some neighbours queue first
		crowd, err := postPrefill(ts.URL, body(target))
		wg.Wait()
		if err != nil {
			t.Fatalf("%v in the crowd: %v", c, err)
		}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%v neighbour %d: %v", c, i, err)
			}
		}
		if crowd.Timing.BatchSequences < 2 {
			t.Fatalf("%v: the crowded request rode alone (batch of %d)", c, crowd.Timing.BatchSequences)
		}
		if alone.Timing.AllReduceSites != crowd.Timing.AllReduceSites || crowd.Timing.AllReduceSites == "" {
			t.Fatalf("%v: sites %q alone, %q in the crowd", c, alone.Timing.AllReduceSites, crowd.Timing.AllReduceSites)
		}
		if err := samePrefill(alone, crowd); err != nil {
			t.Fatalf("%v: alone vs in a batch of %d sequences (%d tokens): %v", c, crowd.Timing.BatchSequences, crowd.Timing.BatchTokens, err)
		}
		t.Logf("%v: identical alone and in a batch of %d sequences, %d tokens (sites: %s)", c, crowd.Timing.BatchSequences, crowd.Timing.BatchTokens, crowd.Timing.AllReduceSites)
	}
}

// A request picks a configured policy by name; the engine gets it (and no
// codec); an unknown name, or a policy with a codec or block size, is a
// 400 that names the server's policies.
func TestPolicyRequests(t *testing.T) {
	eng := &fakeEngine{}
	pol := &tp.Policy{Name: "cheap", Default: tp.Setting{Codec: collective.CodecInt4}}
	h := newTestServer(t, eng, func(o *Options) { o.Policies = map[string]*tp.Policy{"cheap": pol} }).Handler()
	code, raw := do(t, h, "POST", "/v1/prefill", `{"prompt":"ab","allreduce_policy":"cheap"}`)
	if code != 200 {
		t.Fatalf("%d %s", code, raw)
	}
	if p := decode[PrefillResponse](t, raw); p.AllReducePolicy != "cheap" || p.AllReduce != "int4" {
		t.Fatalf("response names policy %q, codec %q", p.AllReducePolicy, p.AllReduce)
	}
	eng.mu.Lock()
	got := eng.opts[len(eng.opts)-1]
	eng.mu.Unlock()
	if got.Policy != pol || got.Codec != "" {
		t.Fatalf("engine got policy %v, codec %q", got.Policy, got.Codec)
	}
	for _, body := range []string{
		`{"prompt":"ab","allreduce_policy":"nope"}`,
		`{"prompt":"ab","allreduce_policy":"cheap","allreduce":"int8"}`,
		`{"prompt":"ab","allreduce_policy":"cheap","block_size":64}`,
	} {
		code, raw := do(t, h, "POST", "/v1/prefill", body)
		if code != 400 || !bytes.Contains(raw, []byte("allreduce_policy")) {
			t.Errorf("%s: %d %s", body, code, raw)
		}
	}
	code, raw = do(t, h, "POST", "/v1/completions", `{"prompt":"ab","max_tokens":0,"echo":true,"allreduce_policy":"nope"}`)
	if code != 400 || !bytes.Contains(raw, []byte(`\"cheap\"`)) {
		t.Errorf("completions with an unknown policy: %d %s", code, raw)
	}
}
