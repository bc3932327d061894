package server

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// lmEvalScore reproduces how lm-evaluation-harness's local-completions model
// reads a loglikelihood answer: the continuation's summed logprob over
// token_logprobs[ctxlen:-1], and whether each token equals the top of its
// top_logprobs map.
func lmEvalScore(t *testing.T, ch CompletionChoice, ctxlen int) (float64, bool) {
	t.Helper()
	lp := ch.Logprobs
	n := len(lp.TokenLogprobs)
	sum, greedy := 0.0, true
	for i := ctxlen; i < n-1; i++ {
		v := float64(*lp.TokenLogprobs[i])
		sum += v
		best := float32(-1e30)
		for _, x := range lp.TopLogprobs[i] {
			best = max(best, x.Logprob)
		}
		if *lp.TokenLogprobs[i] != best {
			greedy = false
		}
	}
	return sum, greedy
}

func TestCompletionsLmEvalLoglikelihood(t *testing.T) {
	h := newTestServer(t, &fakeEngine{}, nil).Handler()
	// Context [1, 10], continuation [11, 13]: 11 is the greedy choice after 10, 13 is not after 11.
	body := `{"model":"fake-model","prompt":[[1,10,11,13],[1,10,11,12]],"max_tokens":1,"temperature":0,"logprobs":1,"seed":1234,"echo":true}`
	code, raw := do(t, h, "POST", "/v1/completions", body)
	if code != 200 {
		t.Fatalf("status %d: %s", code, raw)
	}
	resp := decode[CompletionResponse](t, raw)
	if len(resp.Choices) != 2 || resp.Object != "text_completion" || resp.Model != "fake-model" || resp.AllReduce != "int8" {
		t.Fatalf("response header = %+v", resp)
	}
	if diff := cmp.Diff(Usage{PromptTokens: 8, CompletionTokens: 2, TotalTokens: 10}, resp.Usage); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}
	wantSum := []float64{
		float64(fakeLogprob(10, 11)) + float64(fakeLogprob(11, 13)),
		float64(fakeLogprob(10, 11)) + float64(fakeLogprob(11, 12)),
	}
	wantGreedy := []bool{false, true}
	for i, ch := range resp.Choices {
		if ch.Index != i {
			t.Errorf("choice %d has index %d", i, ch.Index)
		}
		lp := ch.Logprobs
		if lp == nil {
			t.Fatalf("choice %d: no logprobs", i)
		}
		// 4 prompt tokens + 1 generated.
		for name, n := range map[string]int{"tokens": len(lp.Tokens), "token_logprobs": len(lp.TokenLogprobs), "top_logprobs": len(lp.TopLogprobs), "text_offset": len(lp.TextOffset)} {
			if n != 5 {
				t.Errorf("choice %d: %d %s, want 5", i, n, name)
			}
		}
		if lp.TokenLogprobs[0] != nil || lp.TopLogprobs[0] != nil {
			t.Errorf("choice %d: first position has a logprob", i)
		}
		sum, greedy := lmEvalScore(t, ch, 2)
		if sum != wantSum[i] || greedy != wantGreedy[i] {
			t.Errorf("choice %d: lm-eval score = %v greedy %v, want %v %v", i, sum, greedy, wantSum[i], wantGreedy[i])
		}
		// The generated token is the argmax after the last prompt token.
		last := []int{13, 12}[i]
		gen := byteTok{}.Token(last + 1)
		if lp.Tokens[4] != gen || *lp.TokenLogprobs[4] != fakeLogprob(last, last+1) {
			t.Errorf("choice %d: generated %q %v, want %q %v", i, lp.Tokens[4], *lp.TokenLogprobs[4], gen, fakeLogprob(last, last+1))
		}
		if !strings.HasSuffix(ch.Text, gen) {
			t.Errorf("choice %d: text %q does not end with the generated %q", i, ch.Text, gen)
		}
	}
}

func TestCompletionsPromptShapes(t *testing.T) {
	h := newTestServer(t, &fakeEngine{}, nil).Handler()
	tests := []struct {
		name      string
		body      string
		wantTexts []string
		wantToks  [][]string // logprobs.tokens per choice; nil = no logprobs object
	}{
		{"string, max_tokens 0, echo", `{"prompt":"ab","max_tokens":0,"echo":true,"logprobs":0}`,
			[]string{"ab"}, [][]string{{"<s>", "a", "b"}}},
		{"string, generate, no echo", `{"prompt":"ab","max_tokens":1}`,
			[]string{"c"}, nil},
		{"strings", `{"prompt":["ab","x"],"max_tokens":1,"echo":true,"logprobs":2}`,
			[]string{"abc", "xy"}, [][]string{{"<s>", "a", "b", "c"}, {"<s>", "x", "y"}}},
		{"ids without bos", `{"prompt":[100,101],"max_tokens":1,"logprobs":1}`,
			[]string{"c"}, [][]string{{"c"}}},
		{"ids with add_bos: the added BOS is not echoed", `{"prompt":[[100]],"max_tokens":0,"echo":true,"logprobs":1,"add_bos":true}`,
			[]string{"a"}, [][]string{{"a"}}},
		{"string without bos, f32", `{"prompt":"ab","add_bos":false,"allreduce":"f32","echo":true,"logprobs":1}`,
			[]string{"abc"}, [][]string{{"a", "b", "c"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, raw := do(t, h, "POST", "/v1/completions", tc.body)
			if code != 200 {
				t.Fatalf("status %d: %s", code, raw)
			}
			resp := decode[CompletionResponse](t, raw)
			var texts []string
			var toks [][]string
			for _, ch := range resp.Choices {
				texts = append(texts, ch.Text)
				if ch.Logprobs != nil {
					toks = append(toks, ch.Logprobs.Tokens)
				}
				if ch.Logprobs != nil && strings.Contains(tc.body, `"echo":true`) {
					// text_offset is where each token's text starts in the
					// echoed text; BOS contributes no text.
					for j, off := range ch.Logprobs.TextOffset {
						name := ch.Logprobs.Tokens[j]
						if off > len(ch.Text) || (j > 0 && off < ch.Logprobs.TextOffset[j-1]) ||
							(name != "<s>" && !strings.HasPrefix(ch.Text[off:], name)) {
							t.Errorf("text_offset %v does not follow tokens %q in %q", ch.Logprobs.TextOffset, ch.Logprobs.Tokens, ch.Text)
						}
					}
				}
			}
			if diff := cmp.Diff(tc.wantTexts, texts); diff != "" {
				t.Errorf("texts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantToks, toks); diff != "" {
				t.Errorf("logprobs.tokens (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompletionsTopLogprobsMaps(t *testing.T) {
	h := newTestServer(t, &fakeEngine{}, nil).Handler()
	code, raw := do(t, h, "POST", "/v1/completions", `{"prompt":[[100,101]],"echo":true,"logprobs":3,"max_tokens":1}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, raw)
	}
	// OpenAI style: a list of {token: logprob} maps.
	var generic struct {
		Choices []struct {
			Logprobs struct {
				TopLogprobs []map[string]float32 `json:"top_logprobs"`
			} `json:"logprobs"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	got := generic.Choices[0].Logprobs.TopLogprobs
	tok := byteTok{}.Token
	// Written best first, not in Go's sorted map-key order: after 257 the
	// best are 258 ("bytes:\xff"), 259 and 260 ("<extra_N>"), which sort
	// the other way round.
	code, raw2 := do(t, h, "POST", "/v1/completions", `{"prompt":[[257,258]],"echo":true,"logprobs":3,"max_tokens":0}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, raw2)
	}
	if want := fmt.Sprintf(`{%q:%v,%q:%v,%q:%v}`, `bytes:\xff`, fakeLogprob(257, 258), "<extra_259>", fakeLogprob(257, 259),
		"<extra_260>", fakeLogprob(257, 260)); !strings.Contains(string(raw2), want) {
		t.Errorf("top_logprobs are not best first: want %s in %s", want, raw2)
	}
	want := []map[string]float32{
		nil,
		{tok(101): fakeLogprob(100, 101), tok(102): fakeLogprob(100, 102), tok(103): fakeLogprob(100, 103)},
		{tok(102): fakeLogprob(101, 102), tok(103): fakeLogprob(101, 103), tok(104): fakeLogprob(101, 104)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("top_logprobs (-want +got):\n%s", diff)
	}
}

func TestTokenizeInfoModels(t *testing.T) {
	h := newTestServer(t, &fakeEngine{}, nil).Handler()

	code, raw := do(t, h, "POST", "/tokenize", `{"prompt":"hi"}`)
	want := TokenizeResponse{Tokens: ids("hi", true), TokenStrs: []string{"<s>", "h", "i"}, Count: 3, MaxModelLen: 64}
	if diff := cmp.Diff(want, decode[TokenizeResponse](t, raw)); code != 200 || diff != "" {
		t.Errorf("tokenize: %d (-want +got):\n%s", code, diff)
	}
	code, raw = do(t, h, "POST", "/tokenize", `{"prompt":"hi","add_special_tokens":false}`)
	want = TokenizeResponse{Tokens: ids("hi", false), TokenStrs: []string{"h", "i"}, Count: 2, MaxModelLen: 64}
	if diff := cmp.Diff(want, decode[TokenizeResponse](t, raw)); code != 200 || diff != "" {
		t.Errorf("tokenize without BOS: %d (-want +got):\n%s", code, diff)
	}

	// lm-eval's remote tokenizer finds the EOS id by tokenizing its text.
	code, raw = do(t, h, "POST", "/tokenize", `{"prompt":"</s>","add_special_tokens":false}`)
	want = TokenizeResponse{Tokens: []int{2}, TokenStrs: []string{"</s>"}, Count: 1, MaxModelLen: 64}
	if diff := cmp.Diff(want, decode[TokenizeResponse](t, raw)); code != 200 || diff != "" {
		t.Errorf("tokenize EOS text: %d (-want +got):\n%s", code, diff)
	}
	code, raw = do(t, h, "POST", "/detokenize", `{"tokens":[1,110,111]}`)
	if diff := cmp.Diff(DetokenizeResponse{Prompt: "kl"}, decode[DetokenizeResponse](t, raw)); code != 200 || diff != "" {
		t.Errorf("detokenize: %d (-want +got):\n%s", code, diff)
	}

	code, raw = do(t, h, "GET", "/tokenizer_info", "")
	info := decode[TokenizerInfo](t, raw)
	wantInfo := TokenizerInfo{TokenizerClass: "server.byteTok", BOSToken: "<s>", EOSToken: "</s>", BOSTokenID: 1,
		EOSTokenID: 2, AddBOSToken: true, VocabSize: 259, ModelMaxLength: 64}
	if diff := cmp.Diff(wantInfo, info); code != 200 || diff != "" {
		t.Errorf("tokenizer_info: %d (-want +got):\n%s", code, diff)
	}

	code, raw = do(t, h, "GET", "/v1/models", "")
	wantModels := ModelList{Object: "list", Data: []ModelCard{{ID: "fake-model", Object: "model", OwnedBy: "equarx",
		MaxModelLen: 64, VocabSize: 300, Arch: "llama", DefaultCodec: "int8"}}}
	if diff := cmp.Diff(wantModels, decode[ModelList](t, raw)); code != 200 || diff != "" {
		t.Errorf("models: %d (-want +got):\n%s", code, diff)
	}
}

func TestTokenPieces(t *testing.T) {
	got := tokenPieces(byteTok{}, []int{1, 100, 101, 2})
	if want := []string{"", "a", "b", ""}; !slices.Equal(got, want) {
		t.Errorf("tokenPieces = %q, want %q", got, want)
	}
}

func TestCompletionsIDPromptsAddBOS(t *testing.T) {
	eng := &fakeEngine{}
	h := newTestServer(t, eng, func(o *Options) { o.IDPromptsAddBOS = true }).Handler()
	for _, tc := range []struct {
		body string
		want []int // sequence lengths the engine saw
	}{
		{`{"prompt":[[100,101]],"max_tokens":0}`, []int{3}},                 // BOS prepended
		{`{"prompt":[[1,100,101]],"max_tokens":0}`, []int{3}},               // already starts with BOS
		{`{"prompt":[[100,101]],"max_tokens":0,"add_bos":false}`, []int{2}}, // the request wins
		{`{"prompt":[[1,100]],"max_tokens":0,"add_bos":true}`, []int{3}},    // asked for explicitly
	} {
		if code, raw := do(t, h, "POST", "/v1/completions", tc.body); code != 200 {
			t.Fatalf("%s: %d %s", tc.body, code, raw)
		}
		got := eng.batchLens()
		if diff := cmp.Diff(tc.want, got[len(got)-1]); diff != "" {
			t.Errorf("%s: engine saw (-want +got):\n%s", tc.body, diff)
		}
	}
}

// TestCompletionsServerBOSIsNotEchoed checks that a BOS the server prepends
// to client ids conditions the answer without shifting it: lm-eval slices
// token_logprobs[ctxlen:-1] by its own ids.
func TestCompletionsServerBOSIsNotEchoed(t *testing.T) {
	h := newTestServer(t, &fakeEngine{}, func(o *Options) { o.IDPromptsAddBOS = true }).Handler()
	code, raw := do(t, h, "POST", "/v1/completions", `{"prompt":[[100,101,102]],"max_tokens":1,"echo":true,"logprobs":1}`)
	if code != 200 {
		t.Fatalf("%d %s", code, raw)
	}
	lp := decode[CompletionResponse](t, raw).Choices[0].Logprobs
	f := func(x, y int) *float32 { v := fakeLogprob(x, y); return &v }
	want := []*float32{f(1, 100), f(100, 101), f(101, 102), f(102, 103)}
	if diff := cmp.Diff(want, lp.TokenLogprobs); diff != "" {
		t.Errorf("token_logprobs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "d"}, lp.Tokens); diff != "" {
		t.Errorf("tokens (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{0, 1, 2, 3}, lp.TextOffset); diff != "" {
		t.Errorf("text_offset (-want +got):\n%s", diff)
	}
	sum, _ := lmEvalScore(t, CompletionChoice{Logprobs: lp}, 2)
	if want := float64(fakeLogprob(101, 102)); sum != want {
		t.Errorf("lm-eval continuation score %v, want %v", sum, want)
	}
}
