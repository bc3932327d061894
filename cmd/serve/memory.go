package main

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/weights"
)

// sizeUnits are the suffixes --max-memory accepts.
var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// parseSize reads a byte count: a number with an optional unit, B, KB, MB,
// GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024): "8GiB",
// "500MB", "1.5GiB", "1048576".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v*mult >= 1) || !(v*mult < 1<<62) {
		return 0, fmt.Errorf("size %q: want a positive number of bytes with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 8GiB or 500MB", s)
	}
	return int64(v * mult), nil
}

// meminfoField reads one "Name: N kB" line of /proc/meminfo or
// /proc/self/status-style text, in bytes.
func meminfoField(data []byte, name string) (int64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		if len(f) > 1 && f[1] == "kB" {
			n <<= 10
		}
		return n, true
	}
	return 0, false
}

// memoryMargin is what the default memory budget leaves to the rest of the
// machine: 5% of the available memory, at least 256 MiB.
func memoryMargin(avail int64) int64 { return max(avail/20, 256<<20) }

// defaultMaxMemory is MemAvailable from /proc/meminfo less the margin, or 0
// when it cannot be read (no check).
func defaultMaxMemory() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	avail, ok := meminfoField(data, "MemAvailable")
	if !ok {
		return 0
	}
	return max(avail-memoryMargin(avail), 1)
}

// peakRSS is the process's resident-set high-water mark (VmHWM), or 0.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	n, _ := meminfoField(data, "VmHWM")
	return n
}

// gib formats a byte count in GiB, or MiB below 1 GiB.
func gib(n int64) string {
	if n < 1<<30 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

// memoryPlan is the checked memory budget of this process.
type memoryPlan struct {
	est    *tp.MemoryEstimate // this process's ranks only
	budget int64              // the --max-memory in force; 0 = unchecked
	source string             // where budget comes from
}

// planMemory estimates what this process will hold (its ranks of the
// group, weights in the dtype they will be held in) and refuses, before
// any weight is read, a budget the estimate exceeds.
func (c *Config) planMemory(mc model.Config, stored string) (*memoryPlan, error) {
	dtype := c.WeightsDType
	if dtype == "" {
		dtype = stored
	}
	est, err := tp.EstimateMemory(mc, c.TP, dtype, c.BatchTokenBudget)
	if err != nil {
		return nil, usagef("%v", err)
	}
	c.keepLocalRanks(est)
	p := &memoryPlan{est: est}
	switch {
	case c.MaxMemory != "":
		n, err := parseSize(c.MaxMemory)
		if err != nil {
			return nil, usagef("--max-memory: %v", err)
		}
		p.budget, p.source = n, "--max-memory "+c.MaxMemory
	default:
		p.budget, p.source = defaultMaxMemory(), "available memory less a margin"
	}
	if p.budget > 0 && est.Total() > p.budget {
		hint := ""
		if dtype == weights.DTypeF32 {
			// Say whether bf16 weights would fit: the usual way out.
			if b, err := tp.EstimateMemory(mc, c.TP, weights.DTypeBF16, c.BatchTokenBudget); err == nil {
				c.keepLocalRanks(b)
				fits := "would fit"
				if b.Total() > p.budget {
					fits = "would not fit either"
				}
				hint = fmt.Sprintf("; with --weights-dtype bf16 it needs %s and %s", gib(b.Total()), fits)
			}
		}
		return nil, usagef("the model needs %s in this process (weights %s as %s, batch of %d tokens %s, runtime %s) at tp %d, more than %s (%s)%s",
			gib(est.Total()), gib(est.Weights()), dtype, c.BatchTokenBudget, gib(est.Working()), gib(est.Runtime), c.TP, gib(p.budget), p.source, hint)
	}
	return p, nil
}

// keepLocalRanks narrows an estimate of the whole group to the ranks this
// process runs.
func (c *Config) keepLocalRanks(est *tp.MemoryEstimate) {
	if nodes := c.Dist.NNodes; nodes > 1 && c.TP%nodes == 0 && c.Dist.NodeRank >= 0 && c.Dist.NodeRank < nodes {
		per := c.TP / nodes
		est.Ranks = est.Ranks[c.Dist.NodeRank*per : (c.Dist.NodeRank+1)*per]
	}
}

// apply logs the plan and caps the Go heap at the estimate (unless
// GOMEMLIMIT is set), so garbage from reading the weights is collected
// before it would raise the peak above what was planned.
func (p *memoryPlan) apply(log *slog.Logger) {
	e := p.est
	limit := int64(-1)
	if os.Getenv("GOMEMLIMIT") == "" {
		limit = e.Total() + e.Total()/20
		debug.SetMemoryLimit(limit)
	}
	perRank := make([]string, len(e.Ranks))
	for i, r := range e.Ranks {
		perRank[i] = fmt.Sprintf("weights=%d activations=%d logits=%d collective=%d", r.Weights, r.Activations, r.Logits, r.Collective)
	}
	log.Info("memory estimate", "weights_dtype", e.DType, "ranks", len(e.Ranks), "batch_tokens", e.MaxBatchTokens,
		"weights_bytes", e.Weights(), "batch_bytes", e.Working(), "runtime_bytes", e.Runtime, "total_bytes", e.Total(),
		"per_rank", strings.Join(perRank, "; "), "budget_bytes", p.budget, "budget_from", p.source, "go_memory_limit_bytes", limit)
}

// checkDType validates --weights-dtype.
func (c *Config) checkDType() error {
	if _, err := weights.ParseDType(c.WeightsDType); err != nil {
		return fmt.Errorf("--weights-dtype: %v", err)
	}
	return nil
}
