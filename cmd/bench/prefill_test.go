package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/equarx/equarx/collective"
	"github.com/google/go-cmp/cmp"
)

// TestPrefillCommand runs the command on the real stories260K engine and
// checks the JSON contract, the labels of the table and that the engine's
// simulated time equals the dry-run estimate.
func TestPrefillCommand(t *testing.T) {
	dir := t.TempDir()
	js, png := filepath.Join(dir, "out.json"), filepath.Join(dir, "out.png")
	var out bytes.Buffer
	err := runPrefillCmd([]string{"--model", "stories260k", "--tpu", "v5e", "--topology", "ring:1,ring:2",
		"--tokens", "64", "--codecs", "bf16,int8", "--overlap", "--json", js, "--plot", png}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{"sim us", "wall s (CPU)", "simulated TPU microseconds", "measured CPU seconds"} {
		if !strings.Contains(out.String(), label) {
			t.Errorf("table lacks %q:\n%s", label, out.String())
		}
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4 (2 topologies x 2 codecs)", len(rows))
	}
	for _, k := range []string{"codec", "model", "tpu", "topology", "tokens", "sim_seconds", "allreduce_seconds",
		"speedup_vs_bf16", "wall_seconds", "wall_tokens_per_sec", "overlap_sim_seconds", "matmul_seconds", "attention_seconds"} {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("row lacks %q: %v", k, rows[0])
		}
	}
	for _, r := range rows {
		sim, est := r["sim_seconds"].(float64), r["estimate_sim_seconds"].(float64)
		if math.Abs(sim-est) > 1e-9*sim {
			t.Errorf("%v %v: engine %.12g s vs estimate %.12g s", r["topology"], r["codec"], sim, est)
		}
		if r["codec"] == "bf16" && r["speedup_vs_bf16"].(float64) != 1 {
			t.Errorf("bf16 row speedup %v", r["speedup_vs_bf16"])
		}
	}
	if st, err := os.Stat(png); err != nil || st.Size() == 0 {
		t.Errorf("plot not written: %v", err)
	}
}

// TestPrefillDryRunLargeModel prices Gemma 3 27B from shapes and checks the
// breakdown and the codec ordering; a real run of it must be refused.
func TestPrefillDryRunLargeModel(t *testing.T) {
	rows, skipped, err := runPrefillSweep(context.Background(), pfConfig{Models: []string{"gemma3-27b", "gemma3-1b"},
		TPUs: []string{"v5e"}, Topologies: []string{"ring:8"}, Tokens: []int{1024}, Seqs: 1,
		Codecs: []collective.CodecKind{"bf16", "int8"}, DryRun: true, Reps: 1, MaxWeight: defaultMaxWeightBytes})
	if err != nil {
		t.Fatal(err)
	}
	// gemma3-1b has 4 query heads: tp 8 is impossible and skipped, said so.
	if len(rows) != 2 || len(skipped) != 1 || !strings.Contains(skipped[0], "gemma-3-1b") {
		t.Fatalf("rows %d, skipped %q", len(rows), skipped)
	}
	bf, i8 := rows[0], rows[1]
	sum := bf.MatmulSeconds + bf.AttentionSeconds + bf.ElementwiseSeconds + bf.AllReduceSeconds
	if math.Abs(sum-bf.SimSeconds) > 1e-9*bf.SimSeconds {
		t.Errorf("breakdown sums to %g, total %g", sum, bf.SimSeconds)
	}
	if !(i8.AllReduceSeconds < bf.AllReduceSeconds) || !(i8.SpeedupVsBF16 > 1) {
		t.Errorf("int8 allreduce %g s vs bf16 %g s, speedup %g", i8.AllReduceSeconds, bf.AllReduceSeconds, i8.SpeedupVsBF16)
	}
	if diff := cmp.Diff(bf.MatmulSeconds, i8.MatmulSeconds); diff != "" {
		t.Errorf("matmul time depends on the codec: %s", diff)
	}

	_, _, err = runPrefillSweep(context.Background(), pfConfig{Models: []string{"gemma3-27b"},
		TPUs: []string{"v5e"}, Topologies: []string{"ring:8"}, Tokens: []int{16}, Seqs: 1,
		Codecs: []collective.CodecKind{"int8"}, Reps: 1, MaxWeight: defaultMaxWeightBytes})
	if err == nil || !strings.Contains(err.Error(), "--dry-run") {
		t.Errorf("real run of 27B: error %v, want a refusal that points to --dry-run", err)
	}
}

func TestPrefillCommandErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown model", []string{"--model", "nope", "--dry-run"}, "nope"},
		{"bad codec", []string{"--codecs", "int3", "--dry-run"}, "int3"},
		{"bad topology", []string{"--topology", "ring", "--dry-run"}, "ring"},
		{"too many seqs", []string{"--tokens", "4", "--seqs", "5", "--dry-run"}, "--seqs"},
		{"too long", []string{"--tokens", "1000", "--dry-run"}, "max_seq_len"},
		{"missing config file", []string{"--model", "./missing.json", "--dry-run"}, "missing.json"},
	}
	for _, tc := range tests {
		err := runPrefillCmd(tc.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestSeqLengths(t *testing.T) {
	tests := []struct {
		n, k int
		want []int
	}{
		{10, 1, []int{10}}, {10, 3, []int{4, 3, 3}}, {4, 4, []int{1, 1, 1, 1}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, seqLengths(tc.n, tc.k)); diff != "" {
			t.Errorf("seqLengths(%d, %d) (-want +got):\n%s", tc.n, tc.k, diff)
		}
	}
}
