package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/equarx/equarx/model"
)

// syncBuffer is a bytes.Buffer safe for the handler goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAccessLogJSON(t *testing.T) {
	var buf syncBuffer
	h := newTestServer(t, &fakeEngine{}, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	}).Handler()
	code, raw := do(t, h, "POST", "/v1/prefill", `{"tokens":[1,5,6],"allreduce":"bf16"}`)
	if code != 200 {
		t.Fatalf("prefill: %d %s", code, raw)
	}
	p := decode[PrefillResponse](t, raw)
	// Two prompts of one request: counted together.
	if code, raw := do(t, h, "POST", "/v1/completions", `{"prompt":[[1,5],[7,8,9]],"max_tokens":0,"echo":true,"logprobs":0}`); code != 200 {
		t.Fatalf("completions: %d %s", code, raw)
	}
	do(t, h, "GET", "/nowhere", "")
	do(t, h, "POST", "/v1/prefill", `{"tokens":[]}`)

	type line struct {
		Level, Msg, Method, Route string
		Status                    int
		Wall                      *float64 `json:"wall_seconds"`
		PromptTokens              *int     `json:"prompt_tokens"`
		Codec                     string   `json:"allreduce_codec_used"`
		Sim                       *float64 `json:"sim_tpu_seconds"`
	}
	var got []line
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var x line
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if x.Msg == "request" {
			got = append(got, x)
		}
	}
	if len(got) != 4 {
		t.Fatalf("%d access lines, want 4:\n%s", len(got), buf.String())
	}
	for _, x := range got {
		if x.Level != "INFO" || x.Wall == nil || *x.Wall < 0 {
			t.Errorf("line %+v: want level INFO and wall_seconds", x)
		}
	}
	pre, cmpl, miss, bad := got[0], got[1], got[2], got[3]
	if pre.Method != "POST" || pre.Route != "/v1/prefill" || pre.Status != 200 || pre.PromptTokens == nil || *pre.PromptTokens != 3 ||
		pre.Codec != p.Timing.AllReduceCodec || pre.Sim == nil || *pre.Sim != p.Timing.SimTPUSeconds {
		t.Errorf("prefill line %+v, want POST /v1/prefill 200, 3 tokens, codec %s, sim %g", pre, p.Timing.AllReduceCodec, p.Timing.SimTPUSeconds)
	}
	if cmpl.Route != "/v1/completions" || cmpl.Status != 200 || cmpl.PromptTokens == nil || *cmpl.PromptTokens != 5 || cmpl.Codec != "int8" {
		t.Errorf("completions line %+v, want 5 tokens of int8", cmpl)
	}
	if miss.Method != "GET" || miss.Route != "unmatched" || miss.Status != 404 || miss.PromptTokens != nil {
		t.Errorf("404 line %+v", miss)
	}
	if bad.Status != 400 || bad.PromptTokens != nil {
		t.Errorf("400 line %+v, want no engine fields", bad)
	}
}

func TestAccessLogTextAndOff(t *testing.T) {
	var buf syncBuffer
	h := newTestServer(t, &fakeEngine{}, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	}).Handler()
	do(t, h, "POST", "/v1/prefill", `{"tokens":[1,5,6]}`)
	s := buf.String()
	for _, want := range []string{"level=INFO msg=request method=POST route=/v1/prefill status=200 wall_seconds=", "prompt_tokens=3 allreduce_codec_used=int8 sim_tpu_seconds="} {
		if !strings.Contains(s, want) {
			t.Errorf("text log %q lacks %q", s, want)
		}
	}

	var off syncBuffer
	h = newTestServer(t, &fakeEngine{}, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&off, nil))
		o.AccessLog = false
	}).Handler()
	do(t, h, "POST", "/v1/prefill", `{"tokens":[1,5,6]}`)
	if strings.Contains(off.String(), "msg=request") {
		t.Errorf("AccessLog false still logs requests: %q", off.String())
	}
}

func TestVersionRoute(t *testing.T) {
	s := newTestServer(t, nil, nil)
	code, raw := do(t, s.Handler(), "GET", "/version", "")
	v := decode[VersionInfo](t, raw)
	if code != 200 || v.GoVersion != runtime.Version() || v.BLAS != model.BLAS || v.Model != "" {
		t.Errorf("/version before a model: %d %s", code, raw)
	}
	if err := s.SetBackend(Backend{Name: "fake-model", Engine: &fakeEngine{}, Tokenizer: byteTok{}, TP: 4, Topology: "ring:4", TPU: "v5e"}); err != nil {
		t.Fatal(err)
	}
	code, raw = do(t, s.Handler(), "GET", "/version", "")
	v = decode[VersionInfo](t, raw)
	if code != 200 || v.Model != "fake-model" || v.TP != 4 || v.Topology != "ring:4" || v.TPU != "v5e" {
		t.Errorf("/version with a model: %d %s", code, raw)
	}
	code, raw = do(t, s.Handler(), "GET", "/v1/models", "")
	m := decode[ModelList](t, raw)
	if code != 200 || len(m.Data) != 1 || m.Data[0].TP != 4 || m.Data[0].Topology != "ring:4" || m.Data[0].TPU != "v5e" {
		t.Errorf("/v1/models: %d %s", code, raw)
	}
}
