package server

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/tokenizer"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/tpu"
	"github.com/equarx/equarx/weights"
)

// storiesBackend is stories260K on a real tp=4 engine with the given
// AllReduce timeout, and its tokenizer.
func storiesBackend(t *testing.T, timeout time.Duration) (Backend, *tp.Engine) {
	t.Helper()
	src, err := weights.ReadLlama2C(assets.Stories260K())
	if err != nil {
		t.Fatal(err)
	}
	eng, err := tp.NewEngine(src, tp.EngineConfig{TP: 4, TPU: "v5e", FallbackElems: -1, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	tok, err := tokenizer.LoadLlama2C(assets.Tok512())
	if err != nil {
		t.Fatal(err)
	}
	return Backend{Name: "stories260K", Engine: eng, Tokenizer: tok}, eng
}

// TestDeviceFaultFailsOneRequest runs the real engine behind the HTTP
// handler, injects a device fault into the first engine call, and sends
// concurrent requests one per batch: exactly the request whose batch hit the
// fault gets a 5xx with the JSON error shape naming the fault; the others,
// and every request after it, get 200 with the answer of a clean run.
func TestDeviceFaultFailsOneRequest(t *testing.T) {
	const timeout = 200 * time.Millisecond
	errCrash := errors.New("injected device crash")
	cases := []struct {
		name string
		hook tpu.FaultHook
		msg  string // in the error message
	}{
		{"corrupt", tpu.CorruptFault(tpu.Once(tpu.PayloadFrom(2))), "payload corrupted in transit"},
		{"panic", tpu.PanicFault(tpu.Once(tpu.PayloadFrom(2)), errCrash), "injected device crash"},
		{"drop", tpu.DropFault(tpu.Once(tpu.PayloadFrom(2))), "deadline exceeded"},
		{"stall", tpu.StallFault(tpu.Once(tpu.PayloadFrom(2)), 3*timeout), "deadline exceeded"},
	}
	const body = `{"prompt":"Once upon a time, there was a little girl","logprobs":2,"allreduce":"int8"}`
	clean := func() PrefillResponse {
		be, _ := storiesBackend(t, 20*time.Second)
		s := newTestServer(t, nil, nil)
		if err := s.SetBackend(be); err != nil {
			t.Fatal(err)
		}
		code, raw := do(t, s.Handler(), "POST", "/v1/prefill", body)
		if code != 200 {
			t.Fatalf("clean run: %d %s", code, raw)
		}
		return decode[PrefillResponse](t, raw)
	}()
	ignore := cmpopts.IgnoreFields(PrefillResponse{}, "Timing")
	const concurrent = 6
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			be, eng := storiesBackend(t, timeout)
			s := newTestServer(t, nil, func(o *Options) { o.MaxBatchSize = 1; o.QueueLimit = 64 })
			if err := s.SetBackend(be); err != nil {
				t.Fatal(err)
			}
			h := s.Handler()
			if err := eng.SetFaultHook(tc.hook); err != nil {
				t.Fatal(err)
			}
			codes := make([]int, concurrent)
			bodies := make([][]byte, concurrent)
			var wg sync.WaitGroup
			for i := range concurrent {
				wg.Go(func() { codes[i], bodies[i] = do(t, h, "POST", "/v1/prefill", body) })
			}
			wg.Wait()
			failed := 0
			for i, code := range codes {
				if code == 200 {
					if d := cmp.Diff(clean, decode[PrefillResponse](t, bodies[i]), ignore); d != "" {
						t.Errorf("request %d: answer differs from a clean run (-clean +got):\n%s", i, d)
					}
					continue
				}
				failed++
				e := decode[ErrorBody](t, bodies[i])
				if code != 500 && code != 503 {
					t.Errorf("request %d: status %d, want 500 or 503: %s", i, code, bodies[i])
				}
				if e.Error.Type != TypeEngine || !strings.Contains(e.Error.Message, tc.msg) {
					t.Errorf("request %d: error %+v, want type %s mentioning %q", i, e.Error, TypeEngine, tc.msg)
				}
			}
			if failed != 1 {
				t.Errorf("%d of %d concurrent requests failed, want exactly the one that hit the fault: %v", failed, concurrent, codes)
			}
			for i := range 2 {
				code, raw := do(t, h, "POST", "/v1/prefill", body)
				if code != 200 {
					t.Fatalf("request %d after the fault: %d %s", i, code, raw)
				}
				if d := cmp.Diff(clean, decode[PrefillResponse](t, raw), ignore); d != "" {
					t.Errorf("request %d after the fault differs from a clean run (-clean +got):\n%s", i, d)
				}
			}
			if code, raw := do(t, h, "GET", "/health", ""); code != 200 {
				t.Errorf("health after the fault: %d %s", code, raw)
			}
		})
	}
}
