package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCheckLoopback(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://localhost:8080", true},
		{"http://[::1]:8080", true},
		{"http://10.0.0.7:8080", false},
		{"http://example.com", false},
	} {
		if err := checkLoopback(tc.url); (err == nil) != tc.ok {
			t.Errorf("checkLoopback(%s) = %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
}

func TestRunCountsByStatus(t *testing.T) {
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/prefill" {
			http.NotFound(w, r)
			return
		}
		if n.Add(1)%4 == 0 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Write([]byte(`{"usage":{"prompt_tokens":7}}`))
	}))
	defer ts.Close()
	rep, err := run(config{url: ts.URL, route: "prefill", clients: 8, duration: 10 * time.Second, requests: 100, logprobs: 1, timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"200": 75, "429": 25}, rep.ByStatus); diff != "" {
		t.Errorf("by status (-want +got):\n%s", diff)
	}
	if rep.Sent != 100 || rep.OK != 75 || rep.Errors != 25 || rep.PromptTokens != 75*7 {
		t.Errorf("report %+v", rep)
	}
	if rep.P50Seconds <= 0 || rep.P99Seconds < rep.P50Seconds {
		t.Errorf("latency quantiles p50 %g p99 %g", rep.P50Seconds, rep.P99Seconds)
	}
}

func TestRunMix(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if err := json.NewDecoder(r.Body).Decode(&v); err != nil || v["allreduce"] == "fp16" || v["unknown_field"] != nil ||
			v["logprobs"] == 99.0 || v["prompt"] == "" || v["tokens"] != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		time.Sleep(20 * time.Millisecond)
		w.Write([]byte(`{"usage":{"prompt_tokens":3}}`))
	}))
	defer ts.Close()
	rep, err := run(config{url: ts.URL, route: "prefill", clients: 8, duration: 20 * time.Second, requests: 200, logprobs: 1,
		timeout: 5 * time.Second, invalidFrac: 0.3, cancelFrac: 0.2, cancelAfter: 2 * time.Millisecond, seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Unexpected != 0 || rep.Invalid == 0 || rep.Cancelled == 0 || rep.OK+rep.Invalid+rep.Cancelled != rep.Sent {
		t.Errorf("report %+v", rep)
	}
	if rep.ByStatus["400"] != rep.Invalid || rep.ByStatus["client gave up"] != rep.Cancelled {
		t.Errorf("by status %v with %d invalid and %d cancelled", rep.ByStatus, rep.Invalid, rep.Cancelled)
	}
}
