package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/equarx/equarx/server"
)

// freePort returns a TCP port that was free a moment ago on loopback.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// worker is a cmd/serve worker process.
type worker struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	log    bytes.Buffer
	exited chan error
	lines  chan string
}

func (w *worker) Log() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.String()
}

// startWorker starts node rank of a group whose master listens on port.
func startWorker(t *testing.T, rank, nodes, tpDeg, port int, token string, extra ...string) *worker {
	t.Helper()
	bin := buildBinary(t)
	args := append([]string{"--tp", strconv.Itoa(tpDeg), "--nnodes", strconv.Itoa(nodes), "--node-rank", strconv.Itoa(rank),
		"--master-port", strconv.Itoa(port), "--log-format", "json", "--log-level", "debug"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "EQUARX_CLUSTER_TOKEN="+token)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &worker{cmd: cmd, exited: make(chan error, 1), lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			w.mu.Lock()
			w.log.Write(sc.Bytes())
			w.log.WriteByte('\n')
			w.mu.Unlock()
			select {
			case w.lines <- sc.Text():
			default:
			}
		}
		w.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-w.exited:
		case <-time.After(10 * time.Second):
		}
	})
	return w
}

// waitLine waits for a log line containing s.
func (w *worker) waitLine(t *testing.T, s string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case l := <-w.lines:
			if strings.Contains(l, s) {
				return
			}
		case <-deadline:
			t.Fatalf("worker did not log %q within %v:\n%s", s, within, w.Log())
		}
	}
}

// sameAnswer tells whether two /v1/prefill bodies carry the same tokens
// and log-probabilities (timings differ from call to call).
func sameAnswer(a, b []byte) bool {
	var x, y server.PrefillResponse
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil || len(x.TokenLogprobs) != len(y.TokenLogprobs) || len(x.TokenLogprobs) == 0 {
		return false
	}
	for i := range x.TokenLogprobs {
		if (x.TokenLogprobs[i] == nil) != (y.TokenLogprobs[i] == nil) || (x.TokenLogprobs[i] != nil && *x.TokenLogprobs[i] != *y.TokenLogprobs[i]) {
			return false
		}
	}
	return true
}

func health(t *testing.T, base string) (int, server.HealthResponse) {
	t.Helper()
	resp, err := http.Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h server.HealthResponse
	json.NewDecoder(resp.Body).Decode(&h)
	return resp.StatusCode, h
}

func post(base string, req map[string]any) (int, []byte, error) {
	body, _ := json.Marshal(req)
	resp, err := http.Post(base+"/v1/prefill", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// Ranks as OS processes on loopback: a driver and three workers at tp 4
// answer as the single-process server does (f32 within 1e-5 with the same
// argmax; int8 bitwise), and report simulated TPU time.
func TestDistributedServeMatchesSingleProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const token = "e2e-token"
	t.Setenv("EQUARX_CLUSTER_TOKEN", token)
	port := freePort(t)
	var ws []*worker
	for k := 1; k < 4; k++ {
		ws = append(ws, startWorker(t, k, 4, 4, port, token, "--fallback-elems", "-1"))
	}
	defer func() {
		if t.Failed() {
			for _, w := range ws {
				t.Log(w.Log())
			}
		}
	}()
	dist, stopDist := servedBinary(t, "--tp", "4", "--nnodes", "4", "--node-rank", "0", "--master-port", strconv.Itoa(port), "--fallback-elems", "-1")
	defer stopDist()
	single, stopSingle := servedBinary(t, "--tp", "4", "--fallback-elems", "-1")
	defer stopSingle()
	waitHealthy(t, dist)
	waitHealthy(t, single)
	ids := greedyIDs(t)[:200]
	for _, codec := range []string{"f32", "int8"} {
		req := map[string]any{"tokens": ids, "allreduce": codec, "logprobs": 1}
		a, b := postPrefill(t, dist, req), postPrefill(t, single, req)
		for j := 1; j < len(ids); j++ {
			x, y := *a.TokenLogprobs[j], *b.TokenLogprobs[j]
			d := float64(x - y)
			if d < 0 {
				d = -d
			}
			if d > 1e-5 || (codec == "int8" && x != y) {
				t.Fatalf("%s position %d: distributed %v, single process %v", codec, j, x, y)
			}
			if a.TopLogprobs[j][0].ID != b.TopLogprobs[j][0].ID {
				t.Fatalf("%s position %d: argmax %d vs %d", codec, j, a.TopLogprobs[j][0].ID, b.TopLogprobs[j][0].ID)
			}
		}
		if a.Timing.SimTPUSeconds <= 0 || a.Timing.AllReduceWireBytes != b.Timing.AllReduceWireBytes {
			t.Fatalf("%s: distributed timing %+v, single %+v", codec, a.Timing, b.Timing)
		}
	}
}

// Fault drills across processes: a worker with the wrong token is refused
// on both sides; a peer that sends garbage is cut off; a worker killed with
// SIGKILL mid-batch fails that batch with a 5xx engine_error in bounded
// time and /health turns 503; a stalled worker (SIGSTOP) is a timeout that
// names it; a worker started again with the same rank re-forms the group
// and the driver serves the same answers again, with no goroutine or
// connection left behind.
func TestDistributedFaultDrills(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const token = "drill-token"
	t.Setenv("EQUARX_CLUSTER_TOKEN", token)
	port := freePort(t)
	w := startWorker(t, 1, 2, 2, port, token, "--fallback-elems", "-1")
	base, stop := servedBinary(t, "--tp", "2", "--nnodes", "2", "--node-rank", "0", "--master-port", strconv.Itoa(port),
		"--allreduce-timeout", "2s", "--fallback-elems", "-1")
	defer stop()
	waitHealthy(t, base)
	w.waitLine(t, "joined the group", 10*time.Second)
	ids := greedyIDs(t)[:128]
	req := map[string]any{"tokens": ids, "allreduce": "int8"}
	st, good, err := post(base, req)
	if err != nil || st != 200 {
		t.Fatalf("first request: %d %s %v", st, good, err)
	}
	goroutines0, fds0 := serverGoroutines(t, base), -1

	// A worker with the wrong token: refused, and it says why.
	bad := startWorker(t, 1, 2, 2, port, "not-the-token", "--join-timeout", "5s", "--fallback-elems", "-1")
	select {
	case err := <-bad.exited:
		if err == nil || !strings.Contains(bad.Log(), "cluster token") {
			t.Fatalf("wrong-token worker: exit %v\n%s", err, bad.Log())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("wrong-token worker still running")
	}

	// Garbage on the data plane: the connection is closed, service goes on.
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	c.Write(bytes.Repeat([]byte("GET / HTTP/1.1\r\n"), 64))
	c.SetReadDeadline(time.Now().Add(40 * time.Second))
	io.Copy(io.Discard, c) // returns when the driver closes it
	c.Close()
	if st, raw, _ := post(base, req); st != 200 || !sameAnswer(raw, good) {
		t.Fatalf("after garbage: %d %s", st, raw)
	}

	// A stalled worker: the batch times out naming rank 1.
	w.cmd.Process.Signal(syscall.SIGSTOP)
	start := time.Now()
	st, raw, _ := post(base, req)
	w.cmd.Process.Signal(syscall.SIGCONT)
	if st != 500 || !strings.Contains(string(raw), "engine_error") || !strings.Contains(string(raw), "from 1") {
		t.Fatalf("stalled worker: %d %s", st, raw)
	}
	if el := time.Since(start); el > 6*time.Second {
		t.Fatalf("stalled worker: failing took %v", el)
	}
	if st, raw, _ := post(base, req); st != 200 || !sameAnswer(raw, good) {
		t.Fatalf("after the stall: %d %s", st, raw)
	}

	// SIGKILL mid-batch: a batch long enough to be caught running.
	long := make([][]int, 24)
	for i := range long {
		long[i] = greedyIDs(t)[:256]
	}
	w.waitLine(t, "batch done", 5*time.Second)
	results := make(chan int, len(long))
	start = time.Now()
	for i := range long {
		go func() {
			st, _, _ := post(base, map[string]any{"tokens": long[i], "allreduce": "int8"})
			results <- st
		}()
	}
	w.waitLine(t, "batch announced", 5*time.Second)
	w.cmd.Process.Kill()
	failed := 0
	for range long {
		select {
		case st := <-results:
			if st >= 500 {
				failed++
			} else if st != 200 {
				t.Fatalf("status %d after the kill", st)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a request hung after the worker was killed")
		}
	}
	if failed == 0 {
		t.Fatal("no request failed although the worker was killed mid-batch")
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("killed worker: requests took %v", el)
	}
	if code, h := health(t, base); code != 503 || !strings.Contains(h.Error, "not connected") {
		t.Fatalf("/health with the worker dead: %d %+v", code, h)
	}
	if st, raw, _ := post(base, req); st != 503 {
		t.Fatalf("request with the worker dead: %d %s", st, raw)
	}

	// The worker comes back with the same rank: the group re-forms.
	w2 := startWorker(t, 1, 2, 2, port, token, "--fallback-elems", "-1")
	w2.waitLine(t, "joined the group", 15*time.Second)
	waitHealthy(t, base)
	if st, raw, _ := post(base, req); st != 200 || !sameAnswer(raw, good) {
		t.Fatalf("after rejoin: %d %s\nwant %s", st, raw, good)
	}

	// Nothing left behind: goroutines back to where they were.
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := serverGoroutines(t, base)
		if g <= goroutines0+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server goroutines %d, %d before the drills", g, goroutines0)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = fds0
}

// serverGoroutines reads go_goroutines from the server's /metrics.
func serverGoroutines(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
	}
	t.Fatal("no go_goroutines in /metrics")
	return 0
}
