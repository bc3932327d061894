package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/server"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/weights"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// servedBinary builds cmd/serve and starts it on a free port; it returns the
// base URL and a function that stops the process with SIGTERM and returns
// its log.
func servedBinary(t *testing.T, args ...string) (string, func() string) {
	t.Helper()
	bin := buildBinary(t)
	cmd := exec.Command(bin, append([]string{"--addr", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	addr := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			logBuf.Write(line)
			logBuf.WriteByte('\n')
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" {
				addr <- rec.Addr
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { <-scanned; exited <- cmd.Wait() }()
	stop := func() string {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("serve exited with %v", err)
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("serve did not stop within 15 s of SIGTERM")
			<-exited
		}
		return logBuf.String()
	}
	select {
	case a := <-addr:
		return "http://" + a, stop
	case err := <-exited:
		t.Fatalf("serve exited before listening: %v\n%s", err, logBuf.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not report its address:\n%s", stop())
	}
	return "", nil
}

// buildBinary builds cmd/serve once per test run and returns its path.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "equarx-serve-e2e")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		bin := filepath.Join(dir, "serve")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		binPath = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func waitHealthy(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			if resp.StatusCode != 503 {
				t.Fatalf("/health answered %d", resp.StatusCode)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("/health did not turn 200 within 20 s")
}

func postPrefill(t *testing.T, base string, req map[string]any) server.PrefillResponse {
	t.Helper()
	body, _ := json.Marshal(req)
	resp, err := http.Post(base+"/v1/prefill", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/v1/prefill %v: %d %s", req["allreduce"], resp.StatusCode, raw)
	}
	var out server.PrefillResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func greedyIDs(t *testing.T) []int {
	t.Helper()
	var ref struct {
		IDs []int `json:"ids"`
	}
	if err := json.Unmarshal(assets.GreedyFromBOS(), &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.IDs) < 2 {
		t.Fatalf("greedy reference has %d ids", len(ref.IDs))
	}
	return ref.IDs
}

// TestServeEndToEnd builds the real binary, serves the built-in stories260K
// at tp 4, and checks llama2.c's greedy sample, per-request codec switching
// against an in-process tp-1 engine, and graceful shutdown.
func TestServeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the serve binary")
	}
	// Quantized reductions never fall back to bf16 here, so every codec
	// really travels as itself.
	base, stop := servedBinary(t, "--tp", "4", "--fallback-elems", "-1")
	defer func() {
		if log := stop(); !strings.Contains(log, `"msg":"stopped"`) {
			t.Errorf("no clean stop in the log:\n%s", log)
		}
	}()
	waitHealthy(t, base)
	ids := greedyIDs(t)

	// The greedy sample: with exact f32 reductions the argmax at every
	// position is the next token of llama2.c's own greedy decode.
	f32 := postPrefill(t, base, map[string]any{"tokens": ids, "allreduce": "f32", "logprobs": 1})
	if len(f32.TopLogprobs) != len(ids) {
		t.Fatalf("%d top_logprobs rows for %d tokens", len(f32.TopLogprobs), len(ids))
	}
	for i := 0; i+1 < len(ids); i++ {
		if got := f32.TopLogprobs[i+1][0].ID; got != ids[i+1] {
			t.Errorf("position %d: argmax %d, llama2.c's next token %d", i, got, ids[i+1])
		}
	}

	// Codec switching on the same server, then f32 again.
	wire := map[string]int64{}
	var int8Resp server.PrefillResponse
	for _, codec := range []string{"int8", "bf16", "int4", "int6", "fp8", "f32"} {
		r := postPrefill(t, base, map[string]any{"tokens": ids, "allreduce": codec, "logprobs": 1})
		if r.AllReduce != codec {
			t.Errorf("asked for %s, served %s", codec, r.AllReduce)
		}
		wire[codec] = r.Timing.AllReduceWireBytes
		if r.Timing.AllReduceCodec != codec {
			t.Errorf("asked for %s, %s travelled", codec, r.Timing.AllReduceCodec)
		}
		if codec == "int8" {
			int8Resp = r
		}
		if codec == "f32" {
			ignoreTiming := cmpopts.IgnoreFields(server.PrefillResponse{}, "Timing")
			if diff := cmp.Diff(f32, r, ignoreTiming); diff != "" {
				t.Errorf("f32 after other codecs differs from the first f32 answer (-first +later):\n%s", diff)
			}
		}
	}
	if !(wire["int4"] < wire["int6"] && wire["int6"] < wire["int8"] && wire["int8"] == wire["fp8"] &&
		wire["int8"] < wire["bf16"] && wire["bf16"] < wire["f32"]) {
		t.Errorf("wire bytes by codec %v, want int4 < int6 < int8 = fp8 < bf16 < f32", wire)
	}
	if cmp.Equal(int8Resp.TokenLogprobs, f32.TokenLogprobs) {
		t.Error("int8 and f32 answers are identical: the codec did not switch")
	}

	// The server's f32 answer against an in-process tp-1 engine.
	src, err := weights.ReadLlama2C(assets.Stories260K())
	if err != nil {
		t.Fatal(err)
	}
	eng, err := tp.NewEngine(src, tp.EngineConfig{TP: 1, TPU: "v5e"})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ref, err := eng.Prefill(context.Background(), [][]int{ids}, tp.PrefillOptions{Codec: collective.CodecF32, TopK: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := ref.Seqs[0]
	got := make([]float32, len(ids))
	for i := 1; i < len(ids); i++ {
		got[i] = *f32.TokenLogprobs[i]
		if f32.TopLogprobs[i][0].ID != want.TopK[i][0].ID {
			t.Errorf("position %d: tp-4 argmax %d, tp-1 argmax %d", i, f32.TopLogprobs[i][0].ID, want.TopK[i][0].ID)
		}
	}
	if diff := cmp.Diff(want.TokenLogprobs, got, cmpopts.EquateApprox(0, tp1Tolerance)); diff != "" {
		t.Errorf("tp-4 f32 served logprobs vs in-process tp-1 (-tp1 +served):\n%s", diff)
	}
	if f32.NextToken.ID != want.Next[0].ID {
		t.Errorf("next token: served %d, tp-1 %d", f32.NextToken.ID, want.Next[0].ID)
	}
	t.Logf("wire bytes per codec for %d tokens: %v", len(ids), wire)
	t.Logf("max |tp4 f32 - tp1 f32| logprob difference: %g", maxAbsDiff(want.TokenLogprobs, got))
}

// tp1Tolerance bounds |served tp-4 f32 - in-process tp-1| per log-probability.
// The f32 AllReduce is exact per hop but sums the row-parallel partials in a
// different order than a single device does, so each of the 10 reductions
// may round differently in the last bit (about 6e-8 relative to residual
// values of order 1-10); propagated through 5 layers and the log-softmax
// this stays far below 1e-4, the bound the engine's own tests use.
const tp1Tolerance = 1e-4

func maxAbsDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		d := float64(a[i] - b[i])
		if d < 0 {
			d = -d
		}
		m = max(m, d)
	}
	return m
}

func TestServeHealthAndBadInputOverTheWire(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the serve binary")
	}
	base, stop := servedBinary(t, "--tp", "2", "--allreduce", "bf16")
	defer stop()
	waitHealthy(t, base)
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"prompt":"Once upon a time","allreduce":"fp16"}`, 400},
		{`{"tokens":[1,512]}`, 400},
		{fmt.Sprintf(`{"tokens":[%s1]}`, strings.Repeat("1,", 512)), 413},
		{`{"prompt":"Once upon a time"}`, 200},
	} {
		resp, err := http.Post(base+"/v1/prefill", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%.60s: %d %s, want %d", tc.body, resp.StatusCode, raw, tc.status)
		}
		if tc.status == 200 && !strings.Contains(string(raw), `"allreduce":"bf16"`) {
			t.Errorf("default codec not bf16: %s", raw)
		}
	}
	// With the cost-model fallback on, an int8 request for a short prompt of
	// this tiny model travels as bf16, and the answer says so.
	resp, err := http.Post(base+"/v1/prefill", "application/json", strings.NewReader(`{"prompt":"Once","allreduce":"int8"}`))
	if err != nil {
		t.Fatal(err)
	}
	var r server.PrefillResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r.AllReduce != "int8" || r.Timing.AllReduceCodec == "" {
		t.Errorf("int8 request: allreduce %q, travelled %q", r.AllReduce, r.Timing.AllReduceCodec)
	}
}
