package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/cost"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/perfmodel"
	"github.com/equarx/equarx/tpu"
)

func init() {
	register("paper", "compare the int8 AllReduce's Gemma 3 prefill speedup with the EQuARX paper's, per TPU and tp degree", runPaperCmd)
}

// paperTarget is a prefill speedup of the int8 AllReduce over bf16 that the
// EQuARX paper reports for a model.
type paperTarget struct {
	Model   string
	Speedup float64
}

// paperTargets: the EQuARX paper's prefill speedups for Gemma 3 27B and 12B.
var paperTargets = []paperTarget{{"gemma3-27b", 1.25}, {"gemma3-12b", 1.1}}

// paperRow is one setting priced under two execution models.
type paperRow struct {
	Model    string `json:"model"`
	TPU      string `json:"tpu"`
	Topology string `json:"topology"`
	TP       int    `json:"tp"`
	// Speedup: bf16 time / int8 time of the whole prefill, per execution
	// model (cost.Exec.String()); Share: the AllReduce share of the bf16
	// prefill.
	Speedup map[string]float64 `json:"speedup"`
	Share   map[string]float64 `json:"allreduce_share_bf16"`
	Exact   bool               `json:"exact"`
}

func runPaperCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("paper", flag.ContinueOnError)
	tpus := fs.String("tpu", strings.Join(tpu.ProfileNames(), ","), "TPU profiles, comma-separated")
	topos := fs.String("topology", "ring:4,ring:8,torus:4x4", "topologies, comma-separated")
	tokens := fs.Int("tokens", 2048, "tokens of the one-sequence prefill")
	execs := fs.String("exec", "baseline;xla", "execution models to compare, separated by ';' (each in cost.ParseExec form); the last one picks the closest settings")
	jsonOut := fs.String("json", "", "write the rows as JSON to this file")
	mdOut := fs.String("markdown", "", "write the comparison as Markdown to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var ex []cost.Exec
	for _, s := range strings.Split(*execs, ";") {
		e, err := cost.ParseExec(s)
		if err != nil {
			return fmt.Errorf("--exec: %w", err)
		}
		ex = append(ex, e)
	}
	root, err := findRepoRoot()
	if err != nil {
		return err
	}
	rows, cfgs, err := paperSweep(root, splitList(*tpus), splitList(*topos), *tokens, ex)
	if err != nil {
		return err
	}
	var b strings.Builder
	writePaperMarkdown(&b, rows, cfgs, ex, *tokens)
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return err
	}
	if *mdOut != "" {
		if err := os.WriteFile(*mdOut, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	if *jsonOut != "" {
		j, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(j, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func paperSweep(root string, tpus, topos []string, tokens int, ex []cost.Exec) ([]paperRow, map[string]model.Config, error) {
	var rows []paperRow
	cfgs := map[string]model.Config{}
	for _, t := range paperTargets {
		mc, err := loadModel(t.Model, root)
		if err != nil {
			return nil, nil, err
		}
		cfgs[t.Model] = mc
		for _, tn := range tpus {
			prof, err := tpu.LoadProfile(tn)
			if err != nil {
				return nil, nil, err
			}
			for _, ts := range topos {
				topo, err := tpu.ParseTopology(ts)
				if err != nil {
					return nil, nil, err
				}
				r := paperRow{Model: t.Model, TPU: tn, Topology: ts, TP: topo.Size(), Exact: true,
					Speedup: map[string]float64{}, Share: map[string]float64{}}
				for _, e := range ex {
					var sim [2]float64
					for i, c := range []collective.CodecKind{collective.CodecBF16, collective.CodecInt8} {
						est, err := perfmodel.Price(mc, []int{tokens}, perfmodel.Setup{TP: topo.Size(), Topology: topo,
							Profile: prof, AllReduce: collective.Options{Codec: c}, Exec: e})
						if err != nil {
							return nil, nil, fmt.Errorf("%s %s %s: %w", t.Model, tn, ts, err)
						}
						sim[i] = est.SerialSeconds
						r.Exact = r.Exact && est.Exact
						if i == 0 {
							r.Share[e.String()] = est.AllReduceShare
						}
					}
					r.Speedup[e.String()] = sim[0] / sim[1]
				}
				rows = append(rows, r)
			}
		}
	}
	return rows, cfgs, nil
}

// workPerARValue is one decoder layer's matmul FLOPs per token on one rank
// over the values that rank's two AllReduces carry per token: how much
// compute hides each reduced value, the quantity that orders the models'
// gains.
func workPerARValue(c model.Config, tp int) float64 {
	attn := float64(c.Heads+2*c.KVHeads+c.Heads) * float64(c.HeadDim) * float64(c.Dim)
	mlp := 3 * float64(c.HiddenDim) * float64(c.Dim)
	return 2 * (attn + mlp) / float64(tp) / (2 * float64(c.Dim))
}

func writePaperMarkdown(w io.Writer, rows []paperRow, cfgs map[string]model.Config, ex []cost.Exec, tokens int) {
	last := ex[len(ex)-1].String()
	fmt.Fprintf(w, "Prefill of one %d-token sequence; speedup = bf16 AllReduce time / int8 AllReduce time of the whole prefill (simulated, serial schedule, the engine's default estimator-priced fallback). AR share: the AllReduces' share of the bf16 prefill. * = approximate (see Exact).\n\n", tokens)
	fmt.Fprint(w, "| model | TPU | topology | tp |")
	for _, e := range ex {
		fmt.Fprintf(w, " speedup (%s) |", e)
	}
	for _, e := range ex {
		fmt.Fprintf(w, " AR share (%s) |", e)
	}
	fmt.Fprint(w, "\n|---|---|---|---|")
	for range ex {
		fmt.Fprint(w, "---|---|")
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		star := ""
		if !r.Exact {
			star = "*"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d |", r.Model, r.TPU, r.Topology, r.TP)
		for _, e := range ex {
			fmt.Fprintf(w, " %.3f%s |", r.Speedup[e.String()], star)
		}
		for _, e := range ex {
			fmt.Fprintf(w, " %.3f |", r.Share[e.String()])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nClosest settings under the `%s` model:\n\n", last)
	for _, t := range paperTargets {
		best := -1
		for i, r := range rows {
			if r.Model == t.Model && (best < 0 || math.Abs(r.Speedup[last]-t.Speedup) < math.Abs(rows[best].Speedup[last]-t.Speedup)) {
				best = i
			}
		}
		if best >= 0 {
			r := rows[best]
			fmt.Fprintf(w, "- %s, paper %.2fx: closest %s %s (tp %d) at %.3fx.\n", t.Model, t.Speedup, r.TPU, r.Topology, r.TP, r.Speedup[last])
		}
	}
	// One setting for both models (the paper ran both on one system).
	type key struct{ tpu, topo string }
	bestK, bestErr := key{}, math.Inf(1)
	sp := map[key]map[string]float64{}
	for _, r := range rows {
		k := key{r.TPU, r.Topology}
		if sp[k] == nil {
			sp[k] = map[string]float64{}
		}
		sp[k][r.Model] = r.Speedup[last]
	}
	for _, r := range rows {
		k := key{r.TPU, r.Topology}
		e := 0.0
		for _, t := range paperTargets {
			s, ok := sp[k][t.Model]
			if !ok {
				e = math.Inf(1)
				break
			}
			e += math.Abs(s - t.Speedup)
		}
		if e < bestErr {
			bestK, bestErr = k, e
		}
	}
	if !math.IsInf(bestErr, 1) {
		fmt.Fprintf(w, "- One setting for both: %s %s, %s %.3fx and %s %.3fx (sum of distances %.3f).\n", bestK.tpu, bestK.topo,
			paperTargets[0].Model, sp[bestK][paperTargets[0].Model], paperTargets[1].Model, sp[bestK][paperTargets[1].Model], bestErr)
	}
	for _, e := range ex {
		above, both := 0, 0
		by := map[key]map[string]float64{}
		for _, r := range rows {
			k := key{r.TPU, r.Topology}
			if by[k] == nil {
				by[k] = map[string]float64{}
			}
			by[k][r.Model] = r.Speedup[e.String()]
		}
		for _, m := range by {
			a, okA := m[paperTargets[0].Model]
			b, okB := m[paperTargets[1].Model]
			if okA && okB {
				both++
				if a > b {
					above++
				}
			}
		}
		fmt.Fprintf(w, "- Settings (TPU, topology) in which %s gains more than %s, as in the paper, under `%s`: %d of %d.\n",
			paperTargets[0].Model, paperTargets[1].Model, e, above, both)
	}
	fmt.Fprintf(w, "\nMatmul FLOPs per reduced value (one layer, one rank, per token; %s):\n\n", "2·(q+k+v+o projections + gate, up, down) / tp over 2·dim")
	fmt.Fprint(w, "| model | dim | hidden | layers | tp 4 | tp 8 | tp 16 |\n|---|---|---|---|---|---|---|\n")
	for _, t := range paperTargets {
		c := cfgs[t.Model]
		fmt.Fprintf(w, "| %s | %d | %d | %d | %.0f | %.0f | %.0f |\n", t.Model, c.Dim, c.HiddenDim, c.Layers,
			workPerARValue(c, 4), workPerARValue(c, 8), workPerARValue(c, 16))
	}
}
