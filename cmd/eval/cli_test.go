package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/server"
	"github.com/equarx/equarx/tokenizer"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/weights"
)

// evalJSON runs the eval command and decodes its JSON report.
func evalJSON(t *testing.T, args ...string) (map[string]any, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "report.json")
	var so, se bytes.Buffer
	args = append([]string{"--tasks", "../../configs/eval/tinystories_mc.jsonl", "--limit", "4", "--quiet", "--json", out}, args...)
	if err := run(context.Background(), args, &so, &se); err != nil {
		t.Fatalf("eval %q: %v\n%s", args, err, se.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return rep, so.String()
}

func TestEvalReportShape(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real model")
	}
	rep, md := evalJSON(t, "--allreduce", "f32,int8", "--tp", "2")
	for _, k := range []string{"model", "task", "task_version", "split", "n", "shots", "tp", "block_sizes", "wall_seconds", "results", "comparisons"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
	if rep["n"] != 4.0 || rep["task"] != "tinystories_mc" || rep["model"] != "stories260K" || rep["shots"] != 0.0 {
		t.Errorf("header: n %v task %v model %v shots %v", rep["n"], rep["task"], rep["model"], rep["shots"])
	}
	res := rep["results"].(map[string]any)
	for _, c := range []string{"f32", "int8"} {
		m, ok := res[c].(map[string]any)
		if !ok {
			t.Fatalf("no results for %s", c)
		}
		for _, k := range []string{"acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "acc_bytes", "acc_bytes_stderr"} {
			if _, ok := m[k].(float64); !ok {
				t.Errorf("results.%s.%s = %v", c, k, m[k])
			}
		}
	}
	cmpMap, ok := rep["comparisons"].(map[string]any)["int8_vs_f32"].(map[string]any)
	if !ok {
		t.Fatal("no int8_vs_f32 comparison")
	}
	for _, k := range []string{"agreement", "acc_delta", "acc_delta_stderr", "mean_kl", "max_kl", "mean_kl_topk", "flips_correct_to_wrong", "flips_wrong_to_correct", "mean_abs_delta_logprob"} {
		if _, ok := cmpMap[k].(float64); !ok {
			t.Errorf("comparisons.int8_vs_f32.%s = %v", k, cmpMap[k])
		}
	}
	if !strings.Contains(md, "| int8_vs_f32 |") {
		t.Errorf("markdown lacks the comparison row:\n%s", md)
	}
}

// --server scores through the real server and reproduces the in-process
// f32 figures.
func TestEvalThroughServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real model")
	}
	src, err := weights.ReadLlama2C(assets.Stories260K())
	if err != nil {
		t.Fatal(err)
	}
	eng, err := tp.NewEngine(src, tp.EngineConfig{TP: 2, TPU: "v5e", FallbackElems: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	tok, err := tokenizer.LoadLlama2C(assets.Tok512())
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.TestMode)
	opts := server.DefaultOptions()
	opts.BatchWait = 500 * time.Millisecond
	opts.Logger = slog.New(slog.DiscardHandler)
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetBackend(server.Backend{Name: "stories260K", Engine: eng, Tokenizer: tok}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	defer srv.Close()
	viaHTTP, _ := evalJSON(t, "--allreduce", "f32", "--server", hs.URL)
	inProc, _ := evalJSON(t, "--allreduce", "f32", "--tp", "2")
	if viaHTTP["scorer"] != "http" || inProc["scorer"] != "engine" {
		t.Errorf("scorers %v and %v", viaHTTP["scorer"], inProc["scorer"])
	}
	// The report names the server's real tp, read from /v1/models.
	if viaHTTP["tp"] != 2.0 || inProc["tp"] != 2.0 {
		t.Errorf("tp in the reports: http %v, engine %v; want 2", viaHTTP["tp"], inProc["tp"])
	}
	a := inProc["results"].(map[string]any)["f32"].(map[string]any)
	b := viaHTTP["results"].(map[string]any)["f32"].(map[string]any)
	delete(a, "prefill_wall_seconds")
	delete(b, "prefill_wall_seconds")
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("f32 results (-engine +http):\n%s", diff)
	}
}

// The progress bar is drawn on terminals only: not into a file, a pipe or
// a buffer.
func TestProgressOnlyOnTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]io.Writer{"file": f, "pipe": w, "buffer": new(bytes.Buffer)} {
		if isTerminal(out) {
			t.Errorf("%s counted as a terminal", name)
		}
		c := common{}
		if upd, _ := c.progress(out); upd != nil {
			t.Errorf("%s: a progress bar would be drawn", name)
		}
	}
}
