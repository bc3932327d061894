package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// blockFirstCall holds the engine's first call until release is called, so
// that later requests pile up in the queue.
func blockFirstCall(eng *fakeEngine) (release func()) {
	gate := make(chan struct{})
	eng.gate = gate
	eng.started = make(chan struct{}, 1024)
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

func pending(s *Server) int64 { return s.backend.Load().b.pending.Load() }

// fire sends n requests concurrently and returns their status codes.
func fire(t *testing.T, h http.Handler, bodies []string) []int {
	t.Helper()
	codes := make([]int, len(bodies))
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Go(func() {
			req := httptest.NewRequest("POST", "/v1/prefill", strings.NewReader(b))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			codes[i] = w.Code
		})
	}
	wg.Wait()
	return codes
}

func TestBatchingPacks(t *testing.T) {
	tests := []struct {
		name        string
		maxBatch    int
		budget      int
		bodies      []string
		wantBatches [][]int // sequence lengths per engine call after the blocking first one
	}{
		{
			name:     "all in one call",
			maxBatch: 8, budget: 1000,
			bodies:      repeat(`{"tokens":[5,6,7]}`, 8),
			wantBatches: [][]int{{3, 3, 3, 3, 3, 3, 3, 3}},
		},
		{
			name:     "max batch size",
			maxBatch: 3, budget: 1000,
			bodies:      repeat(`{"tokens":[5,6]}`, 7),
			wantBatches: [][]int{{2, 2, 2}, {2, 2, 2}, {2}},
		},
		{
			name:     "token budget",
			maxBatch: 32, budget: 10,
			bodies:      repeat(`{"tokens":[5,6,7,8]}`, 5),
			wantBatches: [][]int{{4, 4}, {4, 4}, {4}},
		},
		{
			name:     "a sequence larger than the budget runs alone",
			maxBatch: 32, budget: 4,
			bodies:      []string{`{"tokens":[1,2,3,4,5,6]}`, `{"tokens":[5]}`},
			wantBatches: [][]int{{6}, {1}},
		},
		{
			name:     "batching off",
			maxBatch: 1, budget: 1000,
			bodies:      repeat(`{"tokens":[5,6,7]}`, 4),
			wantBatches: [][]int{{3}, {3}, {3}, {3}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eng := &fakeEngine{}
			release := blockFirstCall(eng)
			s := newTestServer(t, eng, func(o *Options) { o.MaxBatchSize = tc.maxBatch; o.BatchTokenBudget = tc.budget })
			h := s.Handler()
			done := make(chan int)
			go func() { c, _ := do(t, h, "POST", "/v1/prefill", `{"tokens":[9]}`); done <- c }()
			<-eng.started
			var codes []int
			var wg sync.WaitGroup
			wg.Go(func() { codes = fire(t, h, tc.bodies) })
			if !waitFor(5*time.Second, func() bool { return pending(s) == int64(len(tc.bodies)) }) {
				t.Fatalf("queue holds %d, want %d", pending(s), len(tc.bodies))
			}
			release()
			wg.Wait()
			if c := <-done; c != 200 {
				t.Errorf("first request: %d", c)
			}
			for i, c := range codes {
				if c != 200 {
					t.Errorf("request %d: %d", i, c)
				}
			}
			// Concurrent arrivals have no order: compare the calls as a multiset.
			byShape := cmpopts.SortSlices(func(a, b []int) bool { return fmt.Sprint(a) < fmt.Sprint(b) })
			if diff := cmp.Diff(tc.wantBatches, eng.batchLens()[1:], byShape); diff != "" {
				t.Errorf("engine calls (-want +got):\n%s", diff)
			}
		})
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestBatchingSeparatesCodecs(t *testing.T) {
	eng := &fakeEngine{}
	release := blockFirstCall(eng)
	s := newTestServer(t, eng, nil)
	h := s.Handler()
	go do(t, h, "POST", "/v1/prefill", `{"tokens":[9]}`)
	<-eng.started
	bodies := []string{
		`{"tokens":[5],"allreduce":"int8"}`, `{"tokens":[5,6],"allreduce":"f32"}`,
		`{"tokens":[5],"allreduce":"int8"}`, `{"tokens":[5,6],"allreduce":"f32"}`,
		`{"tokens":[5,6,7],"allreduce":"f32","block_size":32}`,
	}
	var wg sync.WaitGroup
	var codes []int
	wg.Go(func() { codes = fire(t, h, bodies) })
	if !waitFor(5*time.Second, func() bool { return pending(s) == int64(len(bodies)) }) {
		t.Fatalf("queue holds %d, want %d", pending(s), len(bodies))
	}
	release()
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("request %d: %d", i, c)
		}
	}
	eng.mu.Lock()
	defer eng.mu.Unlock()
	type call struct {
		Codec string
		Block int
		Lens  []int
	}
	var got []call
	for i := 1; i < len(eng.batches); i++ {
		got = append(got, call{string(eng.opts[i].Codec), eng.opts[i].BlockSize, eng.batches[i]})
	}
	// Every call holds one codec and block size; arrival order decides which
	// group goes first, so compare as a set.
	want := map[string][]int{"int8/0": {1, 1}, "f32/0": {2, 2}, "f32/32": {3}}
	gotSet := map[string][]int{}
	for _, c := range got {
		gotSet[fmt.Sprintf("%s/%d", c.Codec, c.Block)] = c.Lens
	}
	if diff := cmp.Diff(want, gotSet); diff != "" || len(got) != 3 {
		t.Errorf("calls %+v (-want +got):\n%s", got, diff)
	}
}

func TestQueueFull429(t *testing.T) {
	eng := &fakeEngine{}
	release := blockFirstCall(eng)
	s := newTestServer(t, eng, func(o *Options) { o.QueueLimit = 2; o.MaxBatchSize = 1 })
	h := s.Handler()
	go do(t, h, "POST", "/v1/prefill", `{"tokens":[9]}`)
	<-eng.started
	var wg sync.WaitGroup
	var codes []int
	wg.Go(func() { codes = fire(t, h, repeat(`{"tokens":[5]}`, 2)) })
	if !waitFor(5*time.Second, func() bool { return pending(s) == 2 }) {
		t.Fatalf("queue holds %d, want 2", pending(s))
	}
	code, body := do(t, h, "POST", "/v1/prefill", `{"tokens":[5]}`)
	if e := decode[ErrorBody](t, body); code != 429 || e.Error.Type != TypeQueueFull {
		t.Errorf("with a full queue: %d %s, want 429 %s", code, body, TypeQueueFull)
	}
	// A multi-prompt completion that does not fit is refused as a whole.
	code, _ = do(t, h, "POST", "/v1/completions", `{"prompt":[[5],[6]]}`)
	if code != 429 {
		t.Errorf("completion with a full queue: %d, want 429", code)
	}
	release()
	wg.Wait()
	if diff := cmp.Diff([]int{200, 200}, codes); diff != "" {
		t.Errorf("queued requests (-want +got):\n%s", diff)
	}
	if code, _ := do(t, h, "POST", "/v1/prefill", `{"tokens":[5]}`); code != 200 {
		t.Errorf("after the queue drained: %d", code)
	}
}

func TestRequestTimeout(t *testing.T) {
	eng := &fakeEngine{gate: make(chan struct{})} // never released
	s := newTestServer(t, eng, func(o *Options) { o.RequestTimeout = 50 * time.Millisecond })
	code, body := do(t, s.Handler(), "POST", "/v1/prefill", `{"prompt":"slow"}`)
	if e := decode[ErrorBody](t, body); code != 504 || e.Error.Type != TypeTimeout {
		t.Fatalf("got %d %s, want 504 %s", code, body, TypeTimeout)
	}
	// The engine call is cancelled once its only request has gone.
	if !waitFor(5*time.Second, func() bool { return len(eng.seenCtxErrs()) == 1 }) {
		t.Fatalf("engine saw context errors %v, want one cancellation", eng.seenCtxErrs())
	}
}

func TestClientCancelCancelsEngine(t *testing.T) {
	eng := &fakeEngine{gate: make(chan struct{}), started: make(chan struct{}, 8)}
	s := newTestServer(t, eng, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { c, _ := doCtx(t, ctx, s.Handler(), "POST", "/v1/prefill", `{"prompt":"bye"}`); done <- c }()
	<-eng.started
	cancel()
	if c := <-done; c != StatusClientClosed {
		t.Errorf("cancelled request: %d, want %d", c, StatusClientClosed)
	}
	if !waitFor(5*time.Second, func() bool { return len(eng.seenCtxErrs()) == 1 }) {
		t.Fatal("engine call was not cancelled")
	}
	if !errors.Is(eng.seenCtxErrs()[0], context.Canceled) {
		t.Errorf("engine saw %v, want context.Canceled", eng.seenCtxErrs()[0])
	}
	_, metrics := do(t, s.Handler(), "GET", "/metrics", "")
	if want := `equarx_http_requests_total{code="499",route="/v1/prefill"} 1`; !strings.Contains(string(metrics), want) {
		t.Errorf("metrics lack %q", want)
	}
}

func TestCancelOneOfABatchKeepsTheOthers(t *testing.T) {
	eng := &fakeEngine{}
	release := blockFirstCall(eng)
	s := newTestServer(t, eng, nil)
	h := s.Handler()
	go do(t, h, "POST", "/v1/prefill", `{"tokens":[9]}`)
	<-eng.started
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan int)
	go func() { c, _ := doCtx(t, ctx, h, "POST", "/v1/prefill", `{"tokens":[5]}`); cancelled <- c }()
	var wg sync.WaitGroup
	var codes []int
	wg.Go(func() { codes = fire(t, h, repeat(`{"tokens":[6]}`, 3)) })
	if !waitFor(5*time.Second, func() bool { return pending(s) == 4 }) {
		t.Fatalf("queue holds %d, want 4", pending(s))
	}
	cancel()
	if c := <-cancelled; c != StatusClientClosed {
		t.Errorf("cancelled: %d", c)
	}
	release()
	wg.Wait()
	if diff := cmp.Diff([]int{200, 200, 200}, codes); diff != "" {
		t.Errorf("others (-want +got):\n%s", diff)
	}
}

func TestEngineFailuresKeepServing(t *testing.T) {
	tests := []struct {
		name   string
		eng    *fakeEngine
		status int
		typ    string
		msg    string
	}{
		{"device error", &fakeEngine{fail: func(call int) error {
			if call == 1 {
				return errors.New("device 3: link timeout")
			}
			return nil
		}}, 500, TypeEngine, "device 3: link timeout"},
		{"device panic", &fakeEngine{panicAt: 1}, 500, TypeEngine, "device 2 fell over"},
		{"engine input error", &fakeEngine{fail: func(call int) error {
			if call == 1 {
				return fmt.Errorf("sequence 0: %w", errFakeInput)
			}
			return nil
		}}, 400, TypeInvalidRequest, "invalid input"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestServer(t, tc.eng, nil).Handler()
			code, body := do(t, h, "POST", "/v1/prefill", `{"prompt":"x"}`)
			if e := decode[ErrorBody](t, body); code != tc.status || e.Error.Type != tc.typ || !strings.Contains(e.Error.Message, tc.msg) {
				t.Errorf("failing call: %d %+v, want %d %s %q", code, e.Error, tc.status, tc.typ, tc.msg)
			}
			if code, body := do(t, h, "POST", "/v1/prefill", `{"prompt":"x"}`); code != 200 {
				t.Errorf("next call: %d %s", code, body)
			}
			if code, _ := do(t, h, "GET", "/health", ""); code != 200 {
				t.Errorf("health after a failure: %d", code)
			}
		})
	}
}

func TestMetricsContent(t *testing.T) {
	s := newTestServer(t, &fakeEngine{}, nil)
	h := s.Handler()
	for _, b := range []string{`{"prompt":"ab"}`, `{"prompt":"ab","allreduce":"f32"}`, `{"prompt":""}`} {
		do(t, h, "POST", "/v1/prefill", b)
	}
	do(t, h, "GET", "/nowhere", "")
	code, raw := do(t, h, "GET", "/metrics", "")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	text := string(raw)
	for _, want := range []string{
		`equarx_http_requests_total{code="200",route="/v1/prefill"} 2`,
		`equarx_http_requests_total{code="400",route="/v1/prefill"} 1`,
		`equarx_http_requests_total{code="404",route="unmatched"} 1`,
		`equarx_http_request_duration_seconds_bucket{route="/v1/prefill",le="+Inf"} 3`,
		`equarx_prompt_tokens_total{codec="int8"} 3`,
		`equarx_prompt_tokens_total{codec="f32"} 3`,
		`equarx_batch_sequences_count 2`,
		`equarx_batch_tokens_sum 6`,
		`equarx_allreduce_calls_total{codec="int8"} 10`,
		`equarx_allreduce_wire_bytes_total{codec="f32"} 1000`,
		`equarx_sim_tpu_seconds_total{codec="int8"} 0.001`,
		`equarx_sim_tpu_allreduce_seconds_total{codec="f32"} 0.0004`,
		`equarx_engine_wall_seconds_count{codec="int8"} 1`,
		`equarx_allreduce_quant_rel_rms_error_count{codec="int8"} 1`,
		`equarx_allreduce_quant_rel_rms_error_sum{codec="int8"} 0.007`,
		`equarx_queue_depth 0`,
		`equarx_ready 1`,
		`equarx_request_prompt_tokens_count 2`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(text, `equarx_allreduce_quant_rel_rms_error_count{codec="f32"}`) {
		t.Error("exact f32 calls must not be observed in the quantization-error histogram")
	}
}

// TestNoGoroutineLeak sends many requests that time out, are cancelled or
// are slow, over real connections, and checks the goroutine count returns to
// where it started.
func TestNoGoroutineLeak(t *testing.T) {
	eng := &fakeEngine{fail: func(int) error { time.Sleep(200 * time.Microsecond); return nil }}
	s := newTestServer(t, eng, func(o *Options) { o.RequestTimeout = 20 * time.Millisecond; o.QueueLimit = 16 })
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	settle := func() int {
		client.CloseIdleConnections()
		n := runtime.NumGoroutine()
		for range 200 {
			time.Sleep(5 * time.Millisecond)
			m := runtime.NumGoroutine()
			if m == n {
				return m
			}
			n = m
		}
		return n
	}
	do := func(ctx context.Context, body string) {
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/prefill", strings.NewReader(body))
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	do(context.Background(), `{"prompt":"warm"}`)
	before := settle()
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*time.Millisecond)
			defer cancel()
			do(ctx, `{"prompt":"some text to prefill"}`)
		})
	}
	wg.Wait()
	var after int
	if !waitFor(5*time.Second, func() bool { after = settle(); return after <= before+2 }) {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before, %d after\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

// TestShutdownDrains starts a real http.Server, shuts it down with a request
// in flight, and checks that request is answered.
func TestShutdownDrains(t *testing.T) {
	eng := &fakeEngine{}
	release := blockFirstCall(eng)
	s := newTestServer(t, eng, nil)
	ts := httptest.NewServer(s.Handler())
	url := ts.URL
	result := make(chan int, 1)
	go func() {
		resp, err := http.Post(url+"/v1/prefill", "application/json", strings.NewReader(`{"prompt":"in flight"}`))
		if err != nil {
			result <- -1
			return
		}
		resp.Body.Close()
		result <- resp.StatusCode
	}()
	<-eng.started
	s.Drain()
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- ts.Config.Shutdown(ctx)
	}()
	time.Sleep(20 * time.Millisecond) // Shutdown is now waiting for the handler
	release()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if c := <-result; c != 200 {
		t.Fatalf("in-flight request: %d, want 200", c)
	}
	s.Close()
	// After Close, the batcher refuses work.
	if code, _ := do(t, s.Handler(), "POST", "/v1/prefill", `{"prompt":"late"}`); code != 503 {
		t.Errorf("after Close: %d, want 503", code)
	}
}
