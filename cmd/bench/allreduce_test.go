package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCount(t *testing.T) {
	cases := []struct {
		in   string
		want int
		err  bool
	}{
		{"1000", 1000, false}, {"64K", 65536, false}, {"16M", 16 << 20, false}, {"1G", 1 << 30, false},
		{"0", 0, false}, {"", 0, true}, {"-3", 0, true}, {"3X", 0, true}, {"9999G", 0, true},
	}
	for _, c := range cases {
		got, err := parseCount(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("parseCount(%q) = %d, %v; want %d, error %v", c.in, got, err, c.want, c.err)
		}
	}
}

// TestAllReduceCommand runs the command's contract on a small size and
// checks the JSON rows, the CSV and the plot.
func TestAllReduceCommand(t *testing.T) {
	dir := t.TempDir()
	js, cs, png := filepath.Join(dir, "out.json"), filepath.Join(dir, "out.csv"), filepath.Join(dir, "out.png")
	var out bytes.Buffer
	err := runAllReduceCmd([]string{"--tpu", "v5e", "--topology", "ring:8,torus:2x4", "--elements", "4K,5000",
		"--codecs", "bf16,int8", "--algorithms", "auto,torus2d", "--json", js, "--csv", cs, "--plot", png}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "sim TPU us") || !strings.Contains(out.String(), "CPU wall ms") {
		t.Errorf("table does not label its clocks:\n%s", out.String())
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	// ring:8: 2 sizes x 2 codecs (torus2d skipped); torus:2x4: 2 x 2 x 2.
	if len(rows) != 12 {
		t.Fatalf("%d rows, want 12", len(rows))
	}
	for _, k := range []string{"codec", "topology", "devices", "elements", "wire_bytes", "sim_seconds", "wall_seconds",
		"speedup_vs_bf16", "rel_err_rms", "algo_bw_bytes_per_sec", "bus_bw_bytes_per_sec", "max_err_over_block_absmax", "algorithm"} {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("row lacks %q", k)
		}
	}
	for _, r := range rows {
		if r["sim_seconds"].(float64) <= 0 || r["wall_seconds"].(float64) <= 0 {
			t.Errorf("row without times: %v", r)
		}
		if r["codec"] == "bf16" && r["speedup_vs_bf16"].(float64) != 1 {
			t.Errorf("bf16 row speedup %v, want 1", r["speedup_vs_bf16"])
		}
		if r["codec"] == "bf16" && r["rel_err_rms"].(float64) > 0.01 {
			t.Errorf("bf16 relative error %v", r["rel_err_rms"])
		}
	}
	f, err := os.Open(cs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 13 || recs[0][0] != "tpu" {
		t.Errorf("csv: %d records, header %v", len(recs), recs[0])
	}
	if st, err := os.Stat(png); err != nil || st.Size() == 0 {
		t.Errorf("plot: %v", err)
	}
}

func TestAllReduceCommandErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--tpu", "v9"},
		{"--topology", "ring:0"},
		{"--elements", "12Q"},
		{"--codecs", "fp3", "--elements", "10"},
		{"--algorithms", "star", "--elements", "10"},
		{"--input", "weird", "--elements", "10"},
		{"extra"},
	} {
		if err := runAllReduceCmd(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestErrorStats(t *testing.T) {
	out := []float32{1, 2, 3, 5}
	exact := []float64{1, 2, 4, 4}
	rel, mx := errorStats(out, exact, 2)
	want := []float64{0.23249527748763857, 0.25} // sqrt(2/37); |1|/4
	if d := cmp.Diff(want, []float64{rel, mx}); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
