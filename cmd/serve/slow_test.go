package main

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/equarx/equarx/server"
)

// TestSlowClientsAreCutOff opens many connections that stall in the middle
// of their headers or body, and checks that the read timeouts close them,
// that a normal request is still served meanwhile, and that no goroutine
// outlives them.
func TestSlowClientsAreCutOff(t *testing.T) {
	cfg := defaultConfig()
	cfg.ReadTimeout = Duration(300 * time.Millisecond)
	cfg.ReadHeaderTimeout = Duration(200 * time.Millisecond)
	cfg.IdleTimeout = Duration(300 * time.Millisecond)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(cfg.serverOptions(log))
	if err != nil {
		t.Fatal(err)
	}
	be, closeModel, err := loadBackend(&cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closeModel()
	if err := srv.SetBackend(be); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := newHTTPServer(&cfg, srv.Handler(), log)
	go hs.Serve(ln)
	defer hs.Close()
	addr := ln.Addr().String()

	settle := func() int {
		n := runtime.NumGoroutine()
		for range 100 {
			time.Sleep(10 * time.Millisecond)
			if m := runtime.NumGoroutine(); m == n {
				return m
			} else {
				n = m
			}
		}
		return n
	}
	before := settle()

	stalls := []string{
		"POST /v1/prefill HTTP/1.1\r\nHost: x\r\nContent-Le",                                       // mid-header
		"POST /v1/prefill HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\":\"Once up", // mid-body
		"", // connects and says nothing
	}
	var wg sync.WaitGroup
	closed := make([]time.Duration, 60)
	for i := range closed {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			start := time.Now()
			io.WriteString(c, stalls[i%len(stalls)])
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, c) // returns when the server closes the connection
			closed[i] = time.Since(start)
		})
	}
	// A well-behaved client is served while the slow ones hang on.
	resp, err := http.Post("http://"+addr+"/v1/prefill", "application/json", strings.NewReader(`{"prompt":"Once upon a time"}`))
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("normal request during the stall: %d %s", resp.StatusCode, line)
	}
	wg.Wait()
	for i, d := range closed {
		if d == 0 || d >= 5*time.Second {
			t.Errorf("slow connection %d was not closed by the server (%v)", i, d)
		}
	}
	http.DefaultClient.CloseIdleConnections()
	if after := settle(); after > before+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}
