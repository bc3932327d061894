package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"

	"github.com/equarx/equarx/model"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

func testOptions() Options {
	o := DefaultOptions()
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	o.BatchWait = 0
	o.RequestTimeout = 5 * time.Second
	o.MaxBodyBytes = 4096
	o.MaxPrompts = 4
	return o
}

func newTestServer(t *testing.T, eng *fakeEngine, mod func(*Options)) *Server {
	t.Helper()
	o := testOptions()
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if eng != nil {
		if err := s.SetBackend(Backend{Name: "fake-model", Engine: eng, Tokenizer: byteTok{panicOn: "PANIC"}, Classify: fakeClassify}); err != nil {
			t.Fatalf("SetBackend: %v", err)
		}
	}
	t.Cleanup(s.Close)
	return s
}

func do(t *testing.T, h http.Handler, method, path, body string) (int, []byte) {
	t.Helper()
	return doCtx(t, context.Background(), h, method, path, body)
}

func doCtx(t *testing.T, ctx context.Context, h http.Handler, method, path, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r).WithContext(ctx)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code, w.Body.Bytes()
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %T from %s: %v", v, b, err)
	}
	return v
}

func ids(text string, bos bool) []int {
	v, _ := byteTok{}.Encode(text, bos)
	return v
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Options)
		want string // substring of the error; "" = valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"codec", func(o *Options) { o.DefaultCodec = "fp16" }, "unknown allreduce codec"},
		{"block", func(o *Options) { o.DefaultBlockSize = -1 }, "block size"},
		{"budget", func(o *Options) { o.BatchTokenBudget = 0 }, "batch token budget"},
		{"batch", func(o *Options) { o.MaxBatchSize = 0 }, "max batch size"},
		{"queue", func(o *Options) { o.QueueLimit = -3 }, "queue limit"},
		{"body", func(o *Options) { o.MaxBodyBytes = 0 }, "max body bytes"},
		{"prompts", func(o *Options) { o.MaxPrompts = 0 }, "max prompts"},
		{"wait", func(o *Options) { o.BatchWait = -time.Second }, "batch wait"},
		{"timeout", func(o *Options) { o.RequestTimeout = 0 }, "request timeout"},
		{"logger", func(o *Options) { o.Logger = nil }, "logger"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.mod(&o)
			err := o.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestHealthLoadingThenReady(t *testing.T) {
	s := newTestServer(t, nil, nil)
	h := s.Handler()
	if code, body := do(t, h, "GET", "/health", ""); code != 503 || !strings.Contains(string(body), "loading") {
		t.Fatalf("health before load = %d %s, want 503 loading", code, body)
	}
	for _, route := range []struct{ method, path, body string }{
		{"POST", "/v1/prefill", `{"prompt":"a"}`},
		{"POST", "/v1/completions", `{"prompt":"a"}`},
		{"GET", "/v1/models", ""},
		{"GET", "/tokenizer_info", ""},
		{"POST", "/tokenize", `{"prompt":"a"}`},
		{"POST", "/detokenize", `{"tokens":[5]}`},
	} {
		code, body := do(t, h, route.method, route.path, route.body)
		e := decode[ErrorBody](t, body)
		if code != 503 || e.Error.Type != TypeUnavailable {
			t.Errorf("%s %s before load = %d %s, want 503 %s", route.method, route.path, code, body, TypeUnavailable)
		}
	}
	if err := s.SetBackend(Backend{Name: "fake-model", Engine: &fakeEngine{}, Tokenizer: byteTok{}}); err != nil {
		t.Fatal(err)
	}
	code, body := do(t, h, "GET", "/health", "")
	if diff := cmp.Diff(HealthResponse{Status: "ok", Model: "fake-model"}, decode[HealthResponse](t, body)); code != 200 || diff != "" {
		t.Fatalf("health after load = %d, diff (-want +got):\n%s", code, diff)
	}
	if err := s.SetBackend(Backend{Name: "again", Engine: &fakeEngine{}, Tokenizer: byteTok{}}); err == nil {
		t.Fatal("second SetBackend succeeded")
	}
	s.Drain()
	if code, body := do(t, h, "GET", "/health", ""); code != 503 || !strings.Contains(string(body), "draining") {
		t.Fatalf("health while draining = %d %s, want 503 draining", code, body)
	}
}

func TestSetBackendRejects(t *testing.T) {
	s := newTestServer(t, nil, nil)
	tests := []struct {
		name string
		b    Backend
	}{
		{"no engine", Backend{Name: "m", Tokenizer: byteTok{}}},
		{"no tokenizer", Backend{Name: "m", Engine: &fakeEngine{}}},
		{"no name", Backend{Engine: &fakeEngine{}, Tokenizer: byteTok{}}},
		{"tokenizer larger than model", Backend{Name: "m", Engine: &bigVocabEngine{}, Tokenizer: byteTok{}}},
	}
	for _, tc := range tests {
		if err := s.SetBackend(tc.b); err == nil {
			t.Errorf("%s: SetBackend succeeded", tc.name)
		}
	}
}

type bigVocabEngine struct{ fakeEngine }

func (e *bigVocabEngine) Config() (c model.Config) {
	c = e.fakeEngine.Config()
	c.Vocab = 100
	return c
}

func TestPrefill(t *testing.T) {
	eng := &fakeEngine{}
	h := newTestServer(t, eng, nil).Handler()
	lp := func(x, y int) *float32 { v := fakeLogprob(x, y); return &v }
	info := func(x, j int) TokenInfo {
		id := x + 1 + j
		return TokenInfo{ID: id, Token: byteTok{}.Token(id), Logprob: fakeLogprob(x, id)}
	}
	hi := ids("hi", true) // 1, 107, 108
	tests := []struct {
		name  string
		body  string
		want  PrefillResponse
		codec string
	}{
		{
			name: "prompt with top-2",
			body: `{"prompt":"hi","logprobs":2,"allreduce":"f32"}`,
			want: PrefillResponse{
				AllReduce: "f32", Tokens: hi,
				TokenLogprobs: []*float32{nil, lp(hi[0], hi[1]), lp(hi[1], hi[2])},
				TopLogprobs:   [][]TokenInfo{nil, {info(hi[0], 0), info(hi[0], 1)}, {info(hi[1], 0), info(hi[1], 1)}},
				NextToken:     info(hi[2], 0),
				Usage:         Usage{PromptTokens: 3, TotalTokens: 3, PromptTokensAdded: 1},
			},
		},
		{
			name: "tokens, default codec, no top-k",
			body: `{"tokens":[5,6,299]}`,
			want: PrefillResponse{
				AllReduce: "int8", Tokens: []int{5, 6, 299},
				TokenLogprobs: []*float32{nil, lp(5, 6), lp(6, 299)},
				NextToken:     TokenInfo{ID: 0, Token: "<unk>", Logprob: fakeLogprob(299, 0)},
				Usage:         Usage{PromptTokens: 3, TotalTokens: 3},
			},
		},
		{
			name: "tokens with add_bos",
			body: `{"tokens":[5],"add_bos":true,"allreduce":"bf16"}`,
			want: PrefillResponse{
				AllReduce: "bf16", Tokens: []int{1, 5},
				TokenLogprobs: []*float32{nil, lp(1, 5)},
				NextToken:     info(5, 0),
				Usage:         Usage{PromptTokens: 2, TotalTokens: 2, PromptTokensAdded: 1},
			},
		},
		{
			name: "prompt without bos, int4",
			body: `{"prompt":"hi","add_bos":false,"allreduce":"int4","block_size":64}`,
			want: PrefillResponse{
				AllReduce: "int4", Tokens: hi[1:],
				TokenLogprobs: []*float32{nil, lp(hi[1], hi[2])},
				NextToken:     info(hi[2], 0),
				Usage:         Usage{PromptTokens: 2, TotalTokens: 2},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, h, "POST", "/v1/prefill", tc.body)
			if code != 200 {
				t.Fatalf("status %d: %s", code, body)
			}
			got := decode[PrefillResponse](t, body)
			tc.want.Model = "fake-model"
			if got.Timing.BatchSequences != 1 || got.Timing.BatchTokens != len(tc.want.Tokens) || got.Timing.AllReduceWireBytes != 1000 ||
				got.Timing.AllReduceCodec != tc.want.AllReduce {
				t.Errorf("timing = %+v, want one sequence of %d tokens, 1000 wire bytes of %s", got.Timing, len(tc.want.Tokens), tc.want.AllReduce)
			}
			got.Timing = Timing{}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
	last := eng.opts[len(eng.opts)-1]
	if last.Codec != "int4" || last.BlockSize != 64 {
		t.Errorf("engine options of the last call = %+v, want int4 with block 64", last)
	}
}

func TestBadInput(t *testing.T) {
	h := newTestServer(t, &fakeEngine{}, nil).Handler()
	long := "[" + strings.Repeat("5,", 64) + "5]"
	big := `{"prompt":"` + strings.Repeat("a", 5000) + `"}`
	tests := []struct {
		name, method, path, body string
		status                   int
		typ                      string
		msg                      string // substring of the message
	}{
		{"malformed json", "POST", "/v1/prefill", `{"prompt":`, 400, TypeInvalidRequest, "unexpected end"},
		{"syntax error", "POST", "/v1/prefill", `{"prompt" "x"}`, 400, TypeInvalidRequest, "malformed JSON"},
		{"empty body", "POST", "/v1/prefill", ``, 400, TypeInvalidRequest, "empty"},
		{"not an object", "POST", "/v1/prefill", `[1,2]`, 400, TypeInvalidRequest, "want server.PrefillRequest"},
		{"trailing data", "POST", "/v1/prefill", `{"prompt":"a"} {}`, 400, TypeInvalidRequest, "after the top-level"},
		{"unknown field", "POST", "/v1/prefill", `{"prompt":"a","temprature":0}`, 400, TypeInvalidRequest, "temprature"},
		{"wrong type tokens", "POST", "/v1/prefill", `{"tokens":"abc"}`, 400, TypeInvalidRequest, `"tokens"`},
		{"fractional id", "POST", "/v1/prefill", `{"tokens":[1.5]}`, 400, TypeInvalidRequest, "tokens"},
		{"huge id", "POST", "/v1/prefill", `{"tokens":[99999999999999999999]}`, 400, TypeInvalidRequest, "tokens"},
		{"wrong type logprobs", "POST", "/v1/prefill", `{"prompt":"a","logprobs":"3"}`, 400, TypeInvalidRequest, "logprobs"},
		{"both prompt and tokens", "POST", "/v1/prefill", `{"prompt":"a","tokens":[3]}`, 400, TypeInvalidRequest, "not both"},
		{"neither", "POST", "/v1/prefill", `{}`, 400, TypeInvalidRequest, "required"},
		{"empty prompt", "POST", "/v1/prefill", `{"prompt":""}`, 400, TypeInvalidRequest, "empty"},
		{"empty tokens", "POST", "/v1/prefill", `{"tokens":[]}`, 400, TypeInvalidRequest, "empty"},
		{"negative id", "POST", "/v1/prefill", `{"tokens":[5,-1]}`, 400, TypeInvalidRequest, "outside the vocabulary"},
		{"id past vocab", "POST", "/v1/prefill", `{"tokens":[300]}`, 400, TypeInvalidRequest, "outside the vocabulary"},
		{"too long", "POST", "/v1/prefill", `{"tokens":` + long + `}`, 413, TypeTooLarge, "context is 64"},
		{"too long prompt", "POST", "/v1/prefill", `{"prompt":"` + strings.Repeat("x", 64) + `"}`, 413, TypeTooLarge, "65 tokens"},
		{"unknown codec", "POST", "/v1/prefill", `{"prompt":"a","allreduce":"int3"}`, 400, TypeInvalidRequest, "unknown allreduce codec"},
		{"logprobs too big", "POST", "/v1/prefill", `{"prompt":"a","logprobs":21}`, 400, TypeInvalidRequest, "0..20"},
		{"logprobs negative", "POST", "/v1/prefill", `{"prompt":"a","logprobs":-1}`, 400, TypeInvalidRequest, "0..20"},
		{"block size negative", "POST", "/v1/prefill", `{"prompt":"a","block_size":-4}`, 400, TypeInvalidRequest, "block_size"},
		{"block size not a multiple", "POST", "/v1/prefill", `{"prompt":"a","allreduce":"int8","block_size":100}`, 400, TypeInvalidRequest, "multiple of 8"},
		{"block size too small", "POST", "/v1/prefill", `{"prompt":"a","allreduce":"int8","block_size":7}`, 400, TypeInvalidRequest, "block_size 7"},
		{"block size too large", "POST", "/v1/prefill", `{"prompt":"a","block_size":131072}`, 400, TypeInvalidRequest, "block_size"},
		{"body too large", "POST", "/v1/prefill", big, 413, TypeTooLarge, "4096 bytes"},
		{"c: temperature", "POST", "/v1/completions", `{"prompt":"a","temperature":0.7}`, 400, TypeInvalidRequest, "temperature"},
		{"c: max_tokens 2", "POST", "/v1/completions", `{"prompt":"a","max_tokens":2}`, 400, TypeInvalidRequest, "max_tokens"},
		{"c: max_tokens negative", "POST", "/v1/completions", `{"prompt":"a","max_tokens":-1}`, 400, TypeInvalidRequest, "max_tokens"},
		{"c: logprobs 21", "POST", "/v1/completions", `{"prompt":"a","logprobs":21}`, 400, TypeInvalidRequest, "0..20"},
		{"c: missing prompt", "POST", "/v1/completions", `{"max_tokens":0}`, 400, TypeInvalidRequest, "prompt is required"},
		{"c: null prompt", "POST", "/v1/completions", `{"prompt":null}`, 400, TypeInvalidRequest, "prompt is required"},
		{"c: empty list", "POST", "/v1/completions", `{"prompt":[]}`, 400, TypeInvalidRequest, "empty list"},
		{"c: empty string", "POST", "/v1/completions", `{"prompt":""}`, 400, TypeInvalidRequest, "empty"},
		{"c: empty id list", "POST", "/v1/completions", `{"prompt":[[5],[]]}`, 400, TypeInvalidRequest, "prompt[1] is empty"},
		{"c: mixed list", "POST", "/v1/completions", `{"prompt":[5,"a"]}`, 400, TypeInvalidRequest, "integer ids"},
		{"c: mixed lists", "POST", "/v1/completions", `{"prompt":["a",[5]]}`, 400, TypeInvalidRequest, "only strings"},
		{"c: number prompt", "POST", "/v1/completions", `{"prompt":5}`, 400, TypeInvalidRequest, "prompt must be"},
		{"c: object prompt", "POST", "/v1/completions", `{"prompt":{"a":1}}`, 400, TypeInvalidRequest, "prompt must be"},
		{"c: id out of range", "POST", "/v1/completions", `{"prompt":[[5,300]]}`, 400, TypeInvalidRequest, "outside the vocabulary"},
		{"c: too long", "POST", "/v1/completions", `{"prompt":[` + long + `]}`, 413, TypeTooLarge, "context"},
		{"c: too many prompts", "POST", "/v1/completions", `{"prompt":["a","b","c","d","e"]}`, 413, TypeTooLarge, "limit is 4"},
		{"c: n", "POST", "/v1/completions", `{"prompt":"a","n":2}`, 400, TypeInvalidRequest, "n must be 1"},
		{"c: stream", "POST", "/v1/completions", `{"prompt":"a","stream":true}`, 400, TypeInvalidRequest, "stream"},
		{"c: unknown codec", "POST", "/v1/completions", `{"prompt":"a","allreduce":"int2"}`, 400, TypeInvalidRequest, "unknown allreduce codec"},
		{"c: unknown field", "POST", "/v1/completions", `{"prompt":"a","best_of":3}`, 400, TypeInvalidRequest, "best_of"},
		{"c: other model", "POST", "/v1/completions", `{"prompt":"a","model":"gpt-9"}`, 404, TypeNotFound, "gpt-9"},
		{"tokenize: wrong type", "POST", "/tokenize", `{"prompt":5}`, 400, TypeInvalidRequest, "prompt"},
		{"tokenize: malformed", "POST", "/tokenize", `{`, 400, TypeInvalidRequest, "malformed"},
		{"detokenize: missing tokens", "POST", "/detokenize", `{}`, 400, TypeInvalidRequest, "tokens is required"},
		{"detokenize: out of range", "POST", "/detokenize", `{"tokens":[1,300]}`, 400, TypeInvalidRequest, "outside the vocabulary"},
		{"detokenize: wrong type", "POST", "/detokenize", `{"tokens":"ab"}`, 400, TypeInvalidRequest, "tokens"},
		{"unknown route", "GET", "/v2/nothing", "", 404, TypeNotFound, "/v2/nothing"},
		{"wrong method", "GET", "/v1/prefill", "", 405, TypeMethod, "GET"},
		{"handler panic", "POST", "/v1/prefill", `{"prompt":"PANIC"}`, 500, TypeInternal, "tokenizer exploded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, h, tc.method, tc.path, tc.body)
			e := decode[ErrorBody](t, body)
			if code != tc.status || e.Error.Type != tc.typ || !strings.Contains(e.Error.Message, tc.msg) {
				t.Errorf("got %d %+v, want %d type %s with message containing %q", code, e.Error, tc.status, tc.typ, tc.msg)
			}
		})
	}
	// The server still answers after every bad request.
	if code, body := do(t, h, "POST", "/v1/prefill", `{"prompt":"ok"}`); code != 200 {
		t.Fatalf("after bad input: %d %s", code, body)
	}
}
