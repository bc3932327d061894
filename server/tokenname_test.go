package server

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/tokenizer"
)

// Byte-fallback pieces of multi-byte characters must get distinct, valid
// UTF-8 names, or JSON encoding collapses them all into one "\ufffd" key of
// a top_logprobs map.
func TestTokenNameByteFallbackIsUnique(t *testing.T) {
	tok, err := tokenizer.LoadLlama2C(assets.Tok512())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for b := 0x80; b <= 0xff; b++ {
		id := 3 + b // llama2.c byte-fallback ids: <0x00> is 3
		name := tokenName(tok, id)
		if !utf8.ValidString(name) {
			t.Errorf("id %d: name %q is not valid UTF-8", id, name)
		}
		if prev, ok := seen[name]; ok {
			t.Errorf("ids %d and %d share the name %q", prev, id, name)
		}
		seen[name] = id
	}
	for id, want := range map[int]string{3 + 0xe2: `bytes:\xe2`, 403: " Once", 1: "<s>", 2: "</s>", 0: "<unk>", 3 + '\n': "\n"} {
		if got := tokenName(tok, id); got != want {
			t.Errorf("tokenName(%d) = %q, want %q", id, got, want)
		}
	}
}

// TestTokenStringsAgreeAcrossRoutes pins the one naming rule on the real
// tokenizer and model: /tokenize's token_strs, /v1/completions' echoed
// tokens and top_logprobs keys, and /v1/prefill's token fields all name an
// id the same way (BOS "<s>", " Once" with its space, a lone UTF-8 lead
// byte "bytes:\xe2"), and top_logprobs objects are written best first in
// the order /v1/prefill lists them.
func TestTokenStringsAgreeAcrossRoutes(t *testing.T) {
	h := newRealServer(t, nil).Handler()
	const prompt = "Once upon a time \u2603" // the snowman is not in the 512-token vocabulary: byte fallback
	code, raw := do(t, h, "POST", "/tokenize", mustJSON(map[string]string{"prompt": prompt}))
	if code != 200 {
		t.Fatalf("tokenize: %d %s", code, raw)
	}
	tz := decode[TokenizeResponse](t, raw)
	for _, want := range []string{"<s>", " Once", `bytes:\xe2`, `bytes:\x98`, `bytes:\x83`} {
		found := false
		for _, s := range tz.TokenStrs {
			found = found || s == want
		}
		if !found {
			t.Errorf("tokenize token_strs %q lack %q", tz.TokenStrs, want)
		}
	}

	code, raw = do(t, h, "POST", "/v1/prefill", mustJSON(map[string]any{"prompt": prompt, "logprobs": 5, "allreduce": "f32"}))
	if code != 200 {
		t.Fatalf("prefill: %d %s", code, raw)
	}
	p := decode[PrefillResponse](t, raw)
	if diff := cmp.Diff(tz.Tokens, p.Tokens); diff != "" {
		t.Fatalf("prefill tokens differ from /tokenize (-tokenize +prefill):\n%s", diff)
	}

	code, raw = do(t, h, "POST", "/v1/completions", mustJSON(map[string]any{
		"prompt": prompt, "max_tokens": 1, "echo": true, "logprobs": 5, "allreduce": "f32"}))
	if code != 200 {
		t.Fatalf("completions: %d %s", code, raw)
	}
	c := decode[CompletionResponse](t, raw)
	lp := c.Choices[0].Logprobs
	want := append(append([]string{}, tz.TokenStrs...), p.NextToken.Token)
	if diff := cmp.Diff(want, lp.Tokens); diff != "" {
		t.Errorf("completions tokens vs /tokenize token_strs + prefill next_token (-want +got):\n%s", diff)
	}
	// top_logprobs[i] holds prefill's top list i under the same names, in
	// the same (best-first) order; the generated position holds next's.
	for i := 1; i <= len(p.Tokens); i++ {
		var wantTop TopLogprobs
		if i < len(p.Tokens) {
			for _, e := range p.TopLogprobs[i] {
				wantTop = append(wantTop, TopLogprob{Token: e.Token, Logprob: e.Logprob})
			}
		} else {
			wantTop = TopLogprobs{{Token: p.NextToken.Token, Logprob: p.NextToken.Logprob}}
		}
		got := lp.TopLogprobs[i]
		if i == len(p.Tokens) {
			got = got[:1]
		}
		if diff := cmp.Diff(wantTop, got); diff != "" {
			t.Errorf("position %d: completions top_logprobs vs prefill (-prefill +completions):\n%s", i, diff)
		}
		for j := 1; j < len(lp.TopLogprobs[i]); j++ {
			if lp.TopLogprobs[i][j].Logprob > lp.TopLogprobs[i][j-1].Logprob {
				t.Errorf("position %d: top_logprobs not best first: %v", i, lp.TopLogprobs[i])
			}
		}
	}
	// Every name on the wire is tokenizer.Name of its id.
	tok, _ := tokenizer.LoadLlama2C(assets.Tok512())
	for i, row := range p.TopLogprobs {
		for _, e := range row {
			if e.Token != tokenizer.Name(tok, e.ID) {
				t.Errorf("prefill top_logprobs[%d]: id %d named %q, want %q", i, e.ID, e.Token, tokenizer.Name(tok, e.ID))
			}
		}
	}
}

func TestTopLogprobsJSON(t *testing.T) {
	in := TopLogprobs{{"z", -0.25}, {"<s>", -1}, {`bytes:\xe2`, -2.5}, {" a", -3}}
	b, err := json.Marshal(struct{ T []TopLogprobs }{[]TopLogprobs{nil, {}, in}})
	if err != nil {
		t.Fatal(err)
	}
	// The keys stay in slice order; "<" is written as is when HTML
	// escaping is off (gin's PureJSON), else as \u003c: both are JSON.
	want := `{"T":[null,{},{"z":-0.25,"\u003cs\u003e":-1,"bytes:\\xe2":-2.5," a":-3}]}`
	if string(b) != want {
		t.Errorf("json = %s\nwant   %s", b, want)
	}
	var back struct{ T []TopLogprobs }
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]TopLogprobs{nil, {}, in}, back.T); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"T":[[1]]}`), &back); err == nil || !strings.Contains(err.Error(), "want an object") {
		t.Errorf("array instead of object: err = %v", err)
	}
}
