package evalharness

import (
	"context"
	"log/slog"
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/server"
	"github.com/equarx/equarx/tokenizer"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/weights"
)

// realSetup loads stories260K, its tokenizer and the first items of the
// committed default set.
func realSetup(t *testing.T, n int) (*tokenizer.Llama2C, []Doc) {
	t.Helper()
	tok, err := tokenizer.LoadLlama2C(assets.Tok512())
	if err != nil {
		t.Fatal(err)
	}
	task, err := LoadTask("../configs/eval/tinystories_mc.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return tok, task.Docs[:n]
}

func newRealEngine(t *testing.T, tpDeg int) *tp.Engine {
	t.Helper()
	src, err := weights.ReadLlama2C(assets.Stories260K())
	if err != nil {
		t.Fatal(err)
	}
	eng, err := tp.NewEngine(src, tp.EngineConfig{TP: tpDeg, TPU: "v5e", FallbackElems: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// The in-process scorer and the HTTP scorer against the real server, on
// the same engine, must agree to 1e-6 on every log-likelihood and give the
// same metrics and top-K statistics.
func TestRealScorersAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the real model")
	}
	tok, docs := realSetup(t, 4)
	eng := newRealEngine(t, 2)
	opts := server.DefaultOptions()
	// Quantized reductions depend on which sequences share an engine call,
	// so the server must run exactly the batches the client sends: wait
	// long enough for every prompt of a request to be queued.
	opts.BatchWait = 500 * time.Millisecond
	opts.Logger = slog.New(slog.DiscardHandler)
	gin.SetMode(gin.TestMode)
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetBackend(server.Backend{Name: "stories260K", Engine: eng, Tokenizer: tok}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	defer srv.Close()

	codecs, err := ParseCodecs("f32,bf16,int8,int4", []int{64})
	if err != nil {
		t.Fatal(err)
	}
	opt := RunOptions{Codecs: codecs, Pairs: DefaultPairs(codecs), TokenBudget: opts.BatchTokenBudget, MaxSeqs: opts.MaxBatchSize, TopK: 20}
	window := eng.Config().MaxSeqLen
	ctx := context.Background()
	a, err := EvaluateMC(ctx, &EngineBackend{Engine: eng, Model: "stories260K", Window: window, Token: func(id int) string { return tokenizer.Name(tok, id) }}, tok, docs, opt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := EvaluateMC(ctx, &HTTPBackend{URL: hs.URL, Model: "stories260K", Window: window}, tok, docs, opt)
	if err != nil {
		t.Fatal(err)
	}
	approx := cmpopts.EquateApprox(0, 1e-6)
	if diff := cmp.Diff(a.Run.LL, b.Run.LL, approx); diff != "" {
		t.Errorf("log-likelihoods (-engine +http):\n%s", diff)
	}
	if diff := cmp.Diff(a.Metrics, b.Metrics, approx); diff != "" {
		t.Errorf("metrics (-engine +http):\n%s", diff)
	}
	for i := range a.Run.Stats {
		sa, sb := a.Run.Stats[i], b.Run.Stats[i]
		if sa.Positions != sb.Positions || math.Abs(float64(sa.MeanKLTopK-sb.MeanKLTopK)) > 1e-6 ||
			math.Abs(float64(sa.MeanAbsDeltaLogprob-sb.MeanAbsDeltaLogprob)) > 1e-6 {
			t.Errorf("pair %s: engine %+v, http %+v", a.Run.Pairs[i].Name(), sa, sb)
		}
	}
}

// f32 reductions at tp 1 and tp 4 differ only in the order float32 partial
// sums are added, so log-likelihoods agree closely and predictions match.
func TestRealF32TP1MatchesTP4(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the real model")
	}
	tok, docs := realSetup(t, 8)
	codecs, _ := ParseCodecs("f32", nil)
	opt := RunOptions{Codecs: codecs, TokenBudget: 2048, MaxSeqs: 32, TopK: 1}
	var evs []*MCEval
	for _, d := range []int{1, 4} {
		eng := newRealEngine(t, d)
		ev, err := EvaluateMC(context.Background(), &EngineBackend{Engine: eng, Model: "stories260K", Window: eng.Config().MaxSeqLen, Token: func(id int) string { return tokenizer.Name(tok, id) }}, tok, docs, opt)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	maxDiff := 0.0
	for r := range evs[0].Run.LL[0] {
		maxDiff = math.Max(maxDiff, math.Abs(evs[0].Run.LL[0][r]-evs[1].Run.LL[0][r]))
	}
	t.Logf("max |LL tp1 - LL tp4| = %.3g nats", maxDiff)
	if maxDiff > 1e-4 {
		t.Errorf("max |LL tp1 - LL tp4| = %g nats, want <= 1e-4", maxDiff)
	}
	for d := range docs {
		if evs[0].Scores[0][d].Pred != evs[1].Scores[0][d].Pred {
			t.Errorf("doc %d: tp1 picks %d, tp4 picks %d", d, evs[0].Scores[0][d].Pred, evs[1].Scores[0][d].Pred)
		}
	}
}

// With batch-invariant reductions the harness's scores do not depend on
// how the sequences are batched: in-process and over HTTP (the server
// batching on, packing sequences of concurrent requests together), one
// batch at a time or four in flight, every log-likelihood is bitwise the
// same for every codec and for a per-site policy, and so are the metrics.
func TestInvariantScoresAnyBatching(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the real model")
	}
	if !model.RowInvariant {
		t.Skipf("this build's BLAS (%s) is not row-count invariant", model.BLAS)
	}
	tok, docs := realSetup(t, 12)
	src, err := weights.ReadLlama2C(assets.Stories260K())
	if err != nil {
		t.Fatal(err)
	}
	eng, err := tp.NewEngine(src, tp.EngineConfig{TP: 4, TPU: "v5e", BatchInvariant: true, PlanRows: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	mixed := &tp.Policy{Name: "mixed", Default: tp.Setting{Codec: "int8"},
		Rules: []tp.Rule{{Layers: "0", Site: tp.SiteMLP, Setting: tp.Setting{Codec: "int4", BlockSize: 32}}, {Layers: "-1", Setting: tp.Setting{Codec: "bf16"}}}}
	policies := map[string]*tp.Policy{"mixed": mixed}
	opts := server.DefaultOptions()
	opts.BatchWait = 20 * time.Millisecond
	opts.Logger = slog.New(slog.DiscardHandler)
	opts.Policies = policies
	gin.SetMode(gin.TestMode)
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetBackend(server.Backend{Name: "stories260K", Engine: eng, Tokenizer: tok}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	defer srv.Close()

	codecs, err := ParseCodecsWith("f32,bf16,int8,int4,policy:mixed", nil, policies)
	if err != nil {
		t.Fatal(err)
	}
	window := eng.Config().MaxSeqLen
	local := &EngineBackend{Engine: eng, Model: "stories260K", Window: window, Token: func(id int) string { return tokenizer.Name(tok, id) }}
	remote := &HTTPBackend{URL: hs.URL, Model: "stories260K", Window: window}
	var ref *MCEval
	for _, run := range []struct {
		name    string
		be      Backend
		maxSeqs int
		conc    int
	}{
		{"engine, batches of 32", local, 32, 1},
		{"engine, batches of 3", local, 3, 1},
		{"http, batches of 32", remote, 32, 1},
		{"http, batches of 5, 4 in flight", remote, 5, 4},
		{"http, batches of 1, 8 in flight", remote, 1, 8},
	} {
		opt := RunOptions{Codecs: codecs, Pairs: DefaultPairs(codecs), TokenBudget: 2048, MaxSeqs: run.maxSeqs, TopK: 5, Concurrency: run.conc}
		ev, err := EvaluateMC(context.Background(), run.be, tok, docs, opt)
		if err != nil {
			t.Fatalf("%s: %v", run.name, err)
		}
		if ref == nil {
			ref = ev
			// The policy really runs: its scores are not int8's.
			if cmp.Equal(ev.Run.LL[2], ev.Run.LL[4]) {
				t.Fatal("the mixed policy scored exactly as uniform int8")
			}
			continue
		}
		if diff := cmp.Diff(ref.Run.LL, ev.Run.LL); diff != "" {
			t.Errorf("%s: log-likelihoods differ from the first run (-first +this):\n%s", run.name, diff)
		}
		if diff := cmp.Diff(ref.Metrics, ev.Metrics); diff != "" {
			t.Errorf("%s: metrics differ (-first +this):\n%s", run.name, diff)
		}
	}
}
