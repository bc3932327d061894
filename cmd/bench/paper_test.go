package main

import (
	"strings"
	"testing"

	"github.com/equarx/equarx/cost"
)

// TestPaperSweep prices one setting of the paper comparison and checks the
// work-per-reduced-value figures against hand counts: per token, layer and
// rank, (q + k + v + o widths + 3 x MLP width) / tp, i.e. (4096 + 2048 +
// 2048 + 4096 + 3 x 21504) / 4 = 19200 for 27B and (4096 + 2048 + 2048 +
// 4096 + 3 x 15360) / 4 = 14592 for 12B.
func TestPaperSweep(t *testing.T) {
	root, err := findRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ex := []cost.Exec{{}, cost.XLA()}
	rows, cfgs, err := paperSweep(root, []string{"v5e"}, []string{"ring:4"}, 256, ex)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rows))
	}
	for _, r := range rows {
		for _, e := range ex {
			if s := r.Speedup[e.String()]; !(s > 1 && s < 2) {
				t.Errorf("%s %s: speedup %g outside (1, 2)", r.Model, e, s)
			}
		}
	}
	if got := workPerARValue(cfgs["gemma3-27b"], 4); got != 19200 {
		t.Errorf("27B work per value %g, want 19200", got)
	}
	if got := workPerARValue(cfgs["gemma3-12b"], 4); got != 14592 {
		t.Errorf("12B work per value %g, want 14592", got)
	}
	var b strings.Builder
	writePaperMarkdown(&b, rows, cfgs, ex, 256)
	if !strings.Contains(b.String(), "closest v5e ring:4") {
		t.Errorf("markdown names no closest setting:\n%s", b.String())
	}
}
