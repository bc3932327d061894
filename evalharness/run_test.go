package evalharness

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/equarx/equarx/collective"
)

func TestKLRows(t *testing.T) {
	// P = (1/2, 1/2), Q = (1/4, 3/4): KL = 1/2 ln 2 + 1/2 ln(2/3).
	p := []float32{float32(math.Log(0.5)), float32(math.Log(0.5))}
	q := []float32{float32(math.Log(0.25)), float32(math.Log(0.75))}
	want := 0.5*math.Log(2) + 0.5*math.Log(2.0/3)
	if got := KLRows(p, q); math.Abs(got-want) > 1e-7 {
		t.Errorf("KLRows = %v, want %v", got, want)
	}
	if got := KLRows(p, p); got != 0 {
		t.Errorf("KL(P||P) = %v", got)
	}
}

func TestKLTopKIsALowerBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := &fakeModel{vocab: 64}
	for trial := 0; trial < 50; trial++ {
		prefix := []int{rng.IntN(64), rng.IntN(64)}
		p := m.row(prefix, 0)
		q := m.row(prefix, 0.5*rng.Float64())
		full := KLRows(p, q)
		for _, k := range []int{1, 5, 20, 64} {
			toTop := func(row []float32) []TopEntry {
				var ids []int
				var lps []float32
				for _, t := range topK(row, k) {
					ids, lps = append(ids, t.ID), append(lps, t.Logprob)
				}
				return CollapseTop(ids, lps, strconv.Itoa)
			}
			got := KLTopK(toTop(p), toTop(q))
			// With k = vocab the coarse-graining is the identity: equal up to
			// float64 rounding of the rest bins (1 - sum ~ 1e-7 relative).
			if got > full+1e-6 || (k == 64 && math.Abs(got-full) > 1e-6) {
				t.Errorf("trial %d k %d: top-k KL %v, full KL %v", trial, k, got, full)
			}
		}
	}
}

func TestBatches(t *testing.T) {
	reqs := []Request{{Tokens: make([]int, 3)}, {Tokens: make([]int, 9)}, {Tokens: make([]int, 5)}, {Tokens: make([]int, 4)}, {Tokens: make([]int, 20)}}
	got := Batches(reqs, 10, 5)
	want := [][]int{{4}, {1}, {2, 3}, {0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	got = Batches(reqs, 100, 2)
	want = [][]int{{4, 1}, {2, 3}, {0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("max 2 sequences (-want +got):\n%s", diff)
	}
}

func TestRollingWindows(t *testing.T) {
	toks := []int{1, 10, 11, 12, 13, 14, 15, 16}
	got, err := RollingWindows(toks, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []Request{
		{Tokens: []int{1, 10, 11, 12}, Start: 1},
		{Tokens: []int{12, 13, 14, 15}, Start: 1},
		{Tokens: []int{15, 16}, Start: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	scored := 0
	for _, r := range got {
		scored += len(r.Tokens) - r.Start
	}
	if scored != len(toks)-1 {
		t.Errorf("%d tokens scored, want %d", scored, len(toks)-1)
	}
}

var testDocs = []Doc{
	{ID: "0", Query: "Once upon a time", Choices: []string{"the cat sat.", "a dog.", "", "at the time."}, Gold: 0},
	{ID: "1", Query: "The dog sat ", Choices: []string{"upon the cat.", "bc.", "a time.", "Once."}, Gold: 2},
	{ID: "2", Query: "abc", Choices: []string{"at", "the dog", "ab", "c"}, Gold: 1},
}

func testCodecs(t *testing.T) []Codec {
	cs, err := ParseCodecs("f32,bf16,int8,int4", []int{32, 256})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// The in-process engine backend and the HTTP backend must give the same
// numbers on the same items: both read the same model, batches are the
// same, and the wire carries float32 values exactly.
func TestScorersAgree(t *testing.T) {
	m := &fakeModel{vocab: testTok.vocabSize()}
	srv := httptest.NewServer(fakeCompletions(m, testTok))
	defer srv.Close()
	codecs := testCodecs(t)
	opt := RunOptions{Codecs: codecs, Pairs: DefaultPairs(codecs), TokenBudget: 24, MaxSeqs: 3, TopK: 5}
	eng := &EngineBackend{Engine: m, Model: "fake", Window: 16, Token: testTok.token}
	web := &HTTPBackend{URL: srv.URL, Model: "fake", Window: 16}
	ctx := context.Background()
	a, err := EvaluateMC(ctx, eng, testTok, testDocs, opt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := EvaluateMC(ctx, web, testTok, testDocs, opt)
	if err != nil {
		t.Fatal(err)
	}
	if a.Run.Batches < 2 {
		t.Fatalf("only %d batches; the test must exercise batching", a.Run.Batches)
	}
	approx := cmpopts.EquateApprox(0, 1e-6)
	if diff := cmp.Diff(a.Run.LL, b.Run.LL, approx); diff != "" {
		t.Errorf("log-likelihoods (-engine +http):\n%s", diff)
	}
	if diff := cmp.Diff(a.Metrics, b.Metrics, approx); diff != "" {
		t.Errorf("metrics (-engine +http):\n%s", diff)
	}
	if diff := cmp.Diff(a.Compare, b.Compare, approx, cmpopts.EquateNaNs()); diff != "" {
		t.Errorf("comparisons (-engine +http):\n%s", diff)
	}
	for i := range a.Run.Stats {
		sa, sb := a.Run.Stats[i], b.Run.Stats[i]
		if sa.Positions != sb.Positions || math.Abs(float64(sa.MeanKLTopK-sb.MeanKLTopK)) > 1e-6 ||
			math.Abs(float64(sa.MeanAbsDeltaLogprob-sb.MeanAbsDeltaLogprob)) > 1e-6 {
			t.Errorf("pair %s: engine %+v, http %+v", a.Run.Pairs[i].Name(), sa, sb)
		}
		if !math.IsNaN(float64(sb.MeanKL)) || math.IsNaN(float64(sa.MeanKL)) {
			t.Errorf("pair %s: full KL engine %v http %v; want a value and n/a", a.Run.Pairs[i].Name(), sa.MeanKL, sb.MeanKL)
		}
		if float64(sa.MeanKLTopK) > float64(sa.MeanKL)+1e-6 {
			t.Errorf("pair %s: top-k KL %v above full KL %v", a.Run.Pairs[i].Name(), sa.MeanKLTopK, sa.MeanKL)
		}
	}
}

// Score must sum exactly the continuation positions, and pair statistics
// must see the codecs' differences.
func TestScoreAgainstDirectSums(t *testing.T) {
	m := &fakeModel{vocab: testTok.vocabSize()}
	codecs := testCodecs(t)
	eng := &EngineBackend{Engine: m, Model: "fake", Window: 16, Token: testTok.token}
	reqs, _, _, err := MCRequests(testTok, testDocs, 16)
	if err != nil {
		t.Fatal(err)
	}
	run, err := Score(context.Background(), eng, reqs, RunOptions{Codecs: codecs, Pairs: DefaultPairs(codecs), TokenBudget: 1000, MaxSeqs: 100, TopK: 3})
	if err != nil {
		t.Fatal(err)
	}
	for c, codec := range codecs {
		eps, _ := codecEps(codec.Kind, codec.BlockSize)
		for r, req := range reqs {
			want := 0.0
			for pos := req.Start; pos < len(req.Tokens); pos++ {
				want += float64(m.row(req.Tokens[:pos], eps)[req.Tokens[pos]])
			}
			if got := run.LL[c][r]; math.Abs(got-want) > 1e-9 {
				t.Errorf("codec %s request %d: LL %v, want %v", codec.Label(), r, got, want)
			}
		}
	}
	var names []string
	for i, p := range run.Pairs {
		names = append(names, p.Name())
		st := run.Stats[i]
		if st.Positions == 0 || !(st.MeanKL > 0) || !(st.MaxKL >= st.MeanKL) || !(st.MeanAbsDeltaLogprob > 0) {
			t.Errorf("pair %s: implausible stats %+v", p.Name(), st)
		}
	}
	want := []string{"int8_b32_vs_bf16", "int8_b256_vs_bf16", "int8_b32_vs_f32", "int8_b256_vs_f32", "bf16_vs_f32", "int4_b32_vs_bf16", "int4_b256_vs_bf16"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("default pairs (-want +got):\n%s", diff)
	}
}

func TestParseCodecs(t *testing.T) {
	got, err := ParseCodecs("f32, int8,bf16", []int{64})
	if err != nil {
		t.Fatal(err)
	}
	want := []Codec{{Kind: collective.CodecF32, Name: "f32"}, {Kind: collective.CodecInt8, BlockSize: 64, Name: "int8"}, {Kind: collective.CodecBF16, Name: "bf16"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"fp16", "int8,int8", ""} {
		if _, err := ParseCodecs(bad, nil); err == nil {
			t.Errorf("ParseCodecs(%q) succeeded", bad)
		}
	}
	if _, err := ParsePairs("int8_vs_int4", want); err == nil {
		t.Error("pair with a codec not evaluated accepted")
	}
}

func TestPerplexityFake(t *testing.T) {
	m := &fakeModel{vocab: testTok.vocabSize()}
	codecs, _ := ParseCodecs("f32,int4", nil)
	eng := &EngineBackend{Engine: m, Model: "fake", Window: 8, Token: testTok.token}
	texts := []string{"Once upon a time the cat sat.", "the dog sat at the time."}
	ev, err := EvaluatePerplexity(context.Background(), eng, testTok, texts, RunOptions{Codecs: codecs, Pairs: []Pair{{A: "int4", B: "f32"}}, TokenBudget: 16, MaxSeqs: 4, TopK: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Reference: every token after BOS scored once with its full prefix
	// clipped to the window as RollingWindows clips it.
	var sum float64
	var n int64
	for _, tx := range texts {
		ids, _ := testTok.Encode(tx, true)
		ws, _ := RollingWindows(ids, 8)
		for _, w := range ws {
			for pos := w.Start; pos < len(w.Tokens); pos++ {
				sum -= float64(m.row(w.Tokens[:pos], 0)[w.Tokens[pos]])
				n++
			}
		}
		if len(ids) <= 8 {
			t.Fatalf("text %q is too short to need two windows", tx)
		}
	}
	got := ev.Metrics[0]
	if got.Tokens != n || math.Abs(float64(got.NLLPerToken)-sum/float64(n)) > 1e-9 || math.Abs(float64(got.Perplexity)-math.Exp(sum/float64(n))) > 1e-9 {
		t.Errorf("f32 metrics %+v, want %d tokens, NLL %v", got, n, sum/float64(n))
	}
	if !(ev.Compare[0].MeanKL > 0) {
		t.Errorf("int4 vs f32 comparison %+v", ev.Compare[0])
	}
}
