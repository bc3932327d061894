package main

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/equarx/equarx/tp"
)

// cheapestWithin is exact: it matches a brute force over every assignment
// on random instances.
func TestCheapestWithinMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		n, k := 1+rng.IntN(5), 1+rng.IntN(4)
		sites := make([][]choice, n)
		for i := range sites {
			sites[i] = []choice{{cost: 10 + rng.Float64()}} // exact: no error, dearest
			for j := 1; j < k; j++ {
				sites[i] = append(sites[i], choice{cost: rng.Float64() * 10, kl: rng.Float64()})
			}
		}
		budget := rng.Float64() * float64(n) * 0.5
		bestCost := math.Inf(1)
		idx := make([]int, n)
		var walk func(i int, c, kl float64)
		walk = func(i int, c, kl float64) {
			if kl > budget {
				return
			}
			if i == n {
				bestCost = min(bestCost, c)
				return
			}
			for j := range sites[i] {
				idx[i] = j
				walk(i+1, c+sites[i][j].cost, kl+sites[i][j].kl)
			}
		}
		walk(0, 0, 0)
		pick, c, kl, ok := cheapestWithin(sites, budget)
		if !ok || math.Abs(c-bestCost) > 1e-9 || kl > budget {
			t.Fatalf("trial %d: got cost %g kl %g ok %v, brute force %g (budget %g)", trial, c, kl, ok, bestCost, budget)
		}
		var c2 float64
		for i, j := range pick {
			c2 += sites[i][j].cost
		}
		if math.Abs(c2-c) > 1e-9 {
			t.Fatalf("picks cost %g, reported %g", c2, c)
		}
	}
}

// sensitivity -> autopolicy -> policy-table on the built-in model: the
// report has a row per layer, site and codec; the policy fits its budget
// and prices between all-int4 and all-bf16.
func TestPolicyCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	dir := t.TempDir()
	sens, pols := filepath.Join(dir, "sens.json"), filepath.Join(dir, "pol.json")
	var so, se bytes.Buffer
	if err := run(context.Background(), []string{"sensitivity", "--tasks", "../../configs/eval/tinystories_mc.jsonl", "--limit", "3",
		"--codecs", "int8,int4", "--tp", "2", "--quiet", "--json", sens, "--plot", filepath.Join(dir, "s.png")}, &so, &se); err != nil {
		t.Fatalf("sensitivity: %v\n%s", err, se.String())
	}
	rep, err := loadSensReport(sens)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != rep.Layers*2*2 {
		t.Fatalf("%d rows for %d layers", len(rep.Rows), rep.Layers)
	}
	var sum8, sum4 float64
	for _, r := range rep.Rows {
		if !(r.MeanKL > 0) || r.Positions == 0 {
			t.Fatalf("row %+v", r)
		}
		if r.Codec == "int8" {
			sum8 += r.MeanKL
		} else {
			sum4 += r.MeanKL
		}
	}
	if !(sum4 > sum8) {
		t.Fatalf("int4 total KL %g not above int8's %g", sum4, sum8)
	}
	budget := (sum8 + sum4) / 2
	so.Reset()
	if err := run(context.Background(), []string{"autopolicy", "--sensitivity", sens, "--budget-kl", strconv.FormatFloat(budget, 'g', -1, 64), "--name", "mid", "--out", pols,
		"--price-model", "gemma3-12b"}, &so, &se); err != nil {
		t.Fatalf("autopolicy: %v\n%s", err, se.String())
	}
	ps, err := tp.LoadPolicies(pols)
	if err != nil || len(ps) != 1 || ps[0].Name != "mid" {
		t.Fatalf("policies %v, %v", ps, err)
	}
	var kl float64
	for i, s := range ps[0].Sites(rep.Layers) {
		for _, r := range rep.Rows {
			if 2*r.Layer+map[string]int{"attn": 0, "mlp": 1}[r.Site] == i && r.Codec == string(s.Codec) {
				kl += r.MeanKL
			}
		}
	}
	if kl > budget*0.9 || !strings.Contains(tp.Summary(ps[0].Sites(rep.Layers)), "int4") {
		t.Fatalf("policy %+v predicts %g (budget %g less the default headroom 0.1) or uses no int4", ps[0], kl, budget)
	}
	for _, h := range []string{"1", "-0.1", "NaN"} {
		if err := run(context.Background(), []string{"autopolicy", "--sensitivity", sens, "--budget-kl", "1", "--headroom", h}, &so, &se); err == nil || !strings.Contains(err.Error(), "headroom") {
			t.Fatalf("--headroom %s: err %v", h, err)
		}
	}
	so.Reset()
	if err := run(context.Background(), []string{"policy-table", "--policies", pols, "--names", "bf16,int4,mid", "--source-layers",
		"5", "--price-models", "gemma3-12b"}, &so, &se); err != nil {
		t.Fatalf("policy-table: %v\n%s", err, se.String())
	}
	if !strings.Contains(so.String(), "mid") || !strings.Contains(so.String(), "1.000") {
		t.Fatalf("table:\n%s", so.String())
	}
}
