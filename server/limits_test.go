package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// settledGoroutines closes the client's idle connections and waits until
// the goroutine count is at most want (or 5 s pass); it returns the count.
func settledGoroutines(client *http.Client, want int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 500 && n > want; i++ {
		if client != nil {
			client.CloseIdleConnections()
		}
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// padTo pads a JSON object body with spaces before its closing brace to
// exactly n bytes.
func padTo(t *testing.T, body string, n int) string {
	t.Helper()
	if len(body) > n || !strings.HasSuffix(body, "}") {
		t.Fatalf("cannot pad %q to %d bytes", body, n)
	}
	return body[:len(body)-1] + strings.Repeat(" ", n-len(body)) + "}"
}

// TestBodyLimitBoundary: a body of exactly MaxBodyBytes is served, one byte
// more is refused with 413 and the error shape, on both routes.
func TestBodyLimitBoundary(t *testing.T) {
	s := newTestServer(t, &fakeEngine{}, nil) // MaxBodyBytes 4096
	h := s.Handler()
	limit := int(testOptions().MaxBodyBytes)
	tests := []struct {
		route, body string
	}{
		{"/v1/prefill", `{"prompt":"ab"}`},
		{"/v1/completions", `{"prompt":[[1,5,6]],"max_tokens":1,"logprobs":1,"echo":true,"temperature":0}`},
	}
	for _, tc := range tests {
		for _, size := range []int{limit - 1, limit, limit + 1, 4 * limit} {
			t.Run(fmt.Sprintf("%s/%d", tc.route, size), func(t *testing.T) {
				code, raw := do(t, h, "POST", tc.route, padTo(t, tc.body, size))
				if size <= limit {
					if code != 200 {
						t.Errorf("%d-byte body: %d %s, want 200", size, code, raw)
					}
					return
				}
				if e := decode[ErrorBody](t, raw); code != 413 || e.Error.Type != TypeTooLarge {
					t.Errorf("%d-byte body: %d %s, want 413 %s", size, code, raw, TypeTooLarge)
				}
			})
		}
	}
}

// TestBatchTokenBudget queues requests behind a held engine call and checks
// that no engine call packs more prompt tokens than the budget, except a
// single sequence longer than the budget on its own, which is still served.
func TestBatchTokenBudget(t *testing.T) {
	const budget = 12
	eng := &fakeEngine{}
	release := blockFirstCall(eng)
	s := newTestServer(t, eng, func(o *Options) { o.BatchTokenBudget = budget; o.MaxBatchSize = 8; o.QueueLimit = 64 })
	h := s.Handler()
	go do(t, h, "POST", "/v1/prefill", `{"tokens":[9]}`)
	<-eng.started
	bodies := append(repeat(`{"tokens":[5,6,7,8,9]}`, 7), `{"tokens":[`+strings.Repeat("5,", 29)+`5]}`) // 7 x 5 tokens, 1 x 30
	var codes []int
	var wg sync.WaitGroup
	wg.Go(func() { codes = fire(t, h, bodies) })
	if !waitFor(5*time.Second, func() bool { return pending(s) == int64(len(bodies)) }) {
		t.Fatalf("queue holds %d, want %d", pending(s), len(bodies))
	}
	release()
	wg.Wait()
	if d := cmp.Diff(repeat200(len(bodies)), codes); d != "" {
		t.Errorf("statuses (-want +got):\n%s", d)
	}
	for _, lens := range eng.batchLens()[1:] {
		sum := 0
		for _, n := range lens {
			sum += n
		}
		if sum > budget && len(lens) > 1 {
			t.Errorf("engine call with sequences %v packs %d tokens, budget %d", lens, sum, budget)
		}
	}
}

func repeat200(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 200
	}
	return out
}

// TestDisconnectStorm opens many raw connections that send a whole request
// and hang up at once (half of them with a reset) while the engine is held,
// so their requests sit in the queue or are refused. After the engine is
// released the queue must drain to zero, no goroutine may be left behind,
// and the server must answer normally.
func TestDisconnectStorm(t *testing.T) {
	eng := &fakeEngine{}
	release := blockFirstCall(eng)
	s := newTestServer(t, eng, func(o *Options) { o.QueueLimit = 16; o.MaxBatchSize = 4 })
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	client := &http.Client{}
	addr := strings.TrimPrefix(ts.URL, "http://")

	first := make(chan int, 1)
	go func() {
		resp, err := client.Post(ts.URL+"/v1/prefill", "application/json", strings.NewReader(`{"tokens":[9]}`))
		if err != nil {
			first <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-eng.started
	before := runtime.NumGoroutine()

	const storm = 120
	body := `{"prompt":"a prompt whose client will not wait"}`
	req := fmt.Sprintf("POST /v1/prefill HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body)
	var wg sync.WaitGroup
	for i := range storm {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			if _, err := io.WriteString(c, req); err != nil {
				t.Errorf("write: %v", err)
			}
			if i%2 == 0 {
				c.(*net.TCPConn).SetLinger(0) // close with a reset
			} else {
				time.Sleep(time.Duration(i%7) * time.Millisecond)
			}
			c.Close()
		})
	}
	wg.Wait()
	release()
	if code := <-first; code != 200 {
		t.Errorf("the request held in the engine got %d, want 200", code)
	}
	if !waitFor(5*time.Second, func() bool { return pending(s) == 0 }) {
		t.Errorf("queue holds %d after the storm, want 0", pending(s))
	}
	if after := settledGoroutines(client, before); after > before {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before the storm, %d after\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
	resp, err := client.Post(ts.URL+"/v1/prefill", "application/json", strings.NewReader(`{"prompt":"ab"}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after the storm: %d, want 200", resp.StatusCode)
	}
}

// TestSlowReaderIsCutOff asks for a large response on a connection whose
// client never reads it: the server's WriteTimeout must end the handler and
// the connection, other clients are served meanwhile, and no goroutine is
// left behind.
func TestSlowReaderIsCutOff(t *testing.T) {
	s := newTestServer(t, &fakeEngine{}, func(o *Options) { o.MaxPrompts = 64; o.MaxBodyBytes = 1 << 20; o.QueueLimit = 1024 })
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Config.WriteTimeout = 300 * time.Millisecond
	ts.Config.ReadTimeout = 300 * time.Millisecond
	ts.Start()
	defer ts.Close()
	client := &http.Client{}
	addr := strings.TrimPrefix(ts.URL, "http://")
	before := runtime.NumGoroutine()

	// 64 prompts of 63 tokens with 20 alternatives each: megabytes of JSON.
	prompt := "[1" + strings.Repeat(",7", 62) + "]"
	body := `{"prompt":[` + strings.Repeat(prompt+",", 63) + prompt + `],"max_tokens":1,"logprobs":20,"echo":true,"temperature":0}`
	req := fmt.Sprintf("POST /v1/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body)
	code, full := do(t, s.Handler(), "POST", "/v1/completions", body)
	if code != 200 {
		t.Fatalf("the large request itself: %d %.200s", code, full)
	}
	const slow = 3
	conns := make([]net.Conn, slow)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).SetReadBuffer(1024)
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	// Meanwhile a normal client is served.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hreq, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/prefill", strings.NewReader(`{"prompt":"ab"}`))
	resp, err := client.Do(hreq)
	if err != nil {
		t.Fatalf("normal request next to slow readers: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("normal request next to slow readers: %d", resp.StatusCode)
	}
	// The slow readers' handlers end by the write timeout while their
	// clients still hold the connections open without reading.
	if after := settledGoroutines(client, before); after > before {
		t.Errorf("goroutines: %d before, %d with %d unread connections still open: handlers are stuck writing", before, after, slow)
	}
	// What the slow reader can still read is less than the whole answer:
	// the server gave up writing it.
	conns[0].SetReadDeadline(time.Now().Add(time.Second))
	got, _ := io.Copy(io.Discard, conns[0])
	if got >= int64(len(full)) {
		t.Errorf("the slow reader still received %d bytes, the whole %d-byte answer: the write was not cut off", got, len(full))
	}
	t.Logf("slow reader received %d of %d bytes when the server gave up writing", got, len(full))
	for _, c := range conns {
		c.Close()
	}
	if after := settledGoroutines(client, before); after > before {
		t.Errorf("goroutines: %d before the slow readers, %d after", before, after)
	}
}
