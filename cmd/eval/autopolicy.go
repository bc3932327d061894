package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/cost"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/perfmodel"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/tpu"
)

// target is the deployment a policy is priced for: a model shape from
// configs/models on a simulated TPU mesh, a batch of tokens.
type target struct {
	cfg      model.Config
	topo     tpu.Topology
	prof     tpu.Profile
	exec     cost.Exec
	tokens   int
	fallback int
}

func (t *target) register(fs *flag.FlagSet) (model, topo, tpuName, exec *string, tokens *int) {
	model = fs.String("price-model", "gemma3-27b", "model shape the policy is priced on (a name in configs/models or a config JSON path)")
	topo = fs.String("price-topology", "ring:8", "simulated TPU topology of the priced deployment")
	tpuName = fs.String("price-tpu", "v5e", "TPU profile of the priced deployment")
	exec = fs.String("exec", "xla", "TPU execution model (as cmd/bench prefill --exec)")
	tokens = fs.Int("price-tokens", 2048, "tokens of the priced prefill")
	return
}

func (t *target) load(name, topo, tpuName, exec string, tokens int) error {
	root, err := model.FindRepoRoot()
	if err != nil {
		return err
	}
	if t.cfg, err = model.LoadNamed(name, root); err != nil {
		return err
	}
	if t.topo, err = tpu.ParseTopology(topo); err != nil {
		return err
	}
	if t.prof, err = tpu.LoadProfile(tpuName); err != nil {
		return err
	}
	if t.exec, err = cost.ParseExec(exec); err != nil {
		return fmt.Errorf("--exec: %w", err)
	}
	if tokens < 1 {
		return fmt.Errorf("--price-tokens %d must be positive", tokens)
	}
	t.tokens = tokens
	return nil
}

// options are the AllReduce options the server's engine passes for a
// setting on the target (batch invariant, plans fixed at the token count,
// the cost model's fallback).
func (t *target) options(s tp.Setting) collective.Options {
	return collective.Options{Codec: s.Codec, BlockSize: s.BlockSize, FallbackElems: t.fallback,
		RowElems: t.cfg.Dim, PlanRows: t.tokens}
}

// allReduce prices one reduction of the target's batch with a setting.
func (t *target) allReduce(s tp.Setting) (collective.EstimateResult, error) {
	return collective.Estimate(t.topo, t.prof, t.tokens*t.cfg.Dim, t.options(s))
}

// prefill prices the target's prefill with one setting per site.
func (t *target) prefill(sites []tp.Setting) (*perfmodel.Estimate, error) {
	opts := make([]collective.Options, len(sites))
	for i, s := range sites {
		opts[i] = t.options(s)
	}
	return perfmodel.Price(t.cfg, []int{t.tokens}, perfmodel.Setup{TP: t.topo.Size(), Topology: t.topo, Profile: t.prof,
		AllReduce: opts[0], SiteAllReduce: opts, Exec: t.exec})
}

// choice is one candidate setting of a source site: its predicted error
// and its priced cost on the target (weighted by the target sites it
// stands for).
type choice struct {
	set  tp.Setting
	kl   float64
	cost float64
}

// paretoPoint is a partial assignment: sites [0, i) chosen.
type paretoPoint struct {
	cost, kl float64
	pick     []int
}

// cheapestWithin returns, per site, the index of the choice that
// minimizes total cost subject to total kl <= budget (exactly, by a
// Pareto frontier over sites), and the total cost and kl; ok is false when
// no assignment fits the budget.
func cheapestWithin(sites [][]choice, budget float64) (pick []int, costSum, klSum float64, ok bool) {
	front := []paretoPoint{{}}
	for _, cs := range sites {
		var next []paretoPoint
		for _, p := range front {
			for j, c := range cs {
				kl := p.kl + c.kl
				if kl > budget*(1+1e-12) {
					continue
				}
				next = append(next, paretoPoint{cost: p.cost + c.cost, kl: kl, pick: append(append([]int(nil), p.pick...), j)})
			}
		}
		// Keep the points no other beats on both cost and kl.
		sort.Slice(next, func(a, b int) bool {
			if next[a].cost != next[b].cost {
				return next[a].cost < next[b].cost
			}
			return next[a].kl < next[b].kl
		})
		front = next[:0]
		bestKL := math.Inf(1)
		for _, p := range next {
			if p.kl < bestKL {
				front = append(front, p)
				bestKL = p.kl
			}
		}
		if len(front) == 0 {
			return nil, 0, 0, false
		}
	}
	best := front[0] // the cheapest within the budget
	return best.pick, best.cost, best.kl, true
}

func autopolicy(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval autopolicy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sensPath := fs.String("sensitivity", "", "sensitivity report (JSON from eval sensitivity; required)")
	budget := fs.Float64("budget-kl", 0, "error budget: predicted mean KL from f32 per scored token, summed over sites (required)")
	headroom := fs.Float64("headroom", 0.1, "fraction of the budget held back: the predicted KL must stay within (1-headroom) x budget, for the calibration set's sampling error and the interaction of coarse sites the sum does not see")
	name := fs.String("name", "", "policy name (default auto-<budget>)")
	out := fs.String("out", "", "policy file to write; an existing file's other policies are kept")
	var t target
	mname, topo, tpuName, exec, tokens := t.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *sensPath == "" || !(*budget > 0) {
		return errors.New("autopolicy: --sensitivity and a positive --budget-kl are required")
	}
	if !(*headroom >= 0 && *headroom < 1) {
		return fmt.Errorf("autopolicy: --headroom %g: want a fraction in [0, 1)", *headroom)
	}
	if *name == "" {
		*name = fmt.Sprintf("auto-%g", *budget)
	}
	rep, err := loadSensReport(*sensPath)
	if err != nil {
		return err
	}
	if err := t.load(*mname, *topo, *tpuName, *exec, *tokens); err != nil {
		return err
	}
	// Candidates per source site: exact f32 (no error) and every measured
	// codec. Each costs its AllReduce on the target, times the number of
	// target layers the source layer stands for.
	weight := make([]float64, rep.Layers)
	for l := 0; l < t.cfg.Layers; l++ {
		weight[l*rep.Layers/t.cfg.Layers]++
	}
	price := map[tp.Setting]float64{}
	priceOf := func(s tp.Setting) (float64, error) {
		if v, ok := price[s]; ok {
			return v, nil
		}
		e, err := t.allReduce(s)
		if err != nil {
			return 0, err
		}
		price[s] = e.SimSeconds
		return e.SimSeconds, nil
	}
	sites := make([][]choice, 2*rep.Layers)
	f32 := tp.Setting{Codec: collective.CodecF32}
	for i := range sites {
		c, err := priceOf(f32)
		if err != nil {
			return err
		}
		sites[i] = []choice{{set: f32, cost: c * weight[i/2]}}
	}
	for _, r := range rep.Rows {
		if r.Layer < 0 || r.Layer >= rep.Layers || (r.Site != string(tp.SiteAttn) && r.Site != string(tp.SiteMLP)) {
			return fmt.Errorf("sensitivity row %+v out of range", r)
		}
		s := tp.Setting{Codec: collective.CodecKind(r.Codec), BlockSize: r.BlockSize}
		c, err := priceOf(s)
		if err != nil {
			return err
		}
		i := 2 * r.Layer
		if r.Site == string(tp.SiteMLP) {
			i++
		}
		sites[i] = append(sites[i], choice{set: s, kl: max(r.MeanKL, 0), cost: c * weight[r.Layer]})
	}
	target := *budget * (1 - *headroom)
	pick, _, kl, ok := cheapestWithin(sites, target)
	if !ok {
		return fmt.Errorf("autopolicy: no assignment fits a budget of %g (%g after headroom %g)", *budget, target, *headroom)
	}
	sets := make([]tp.Setting, len(sites))
	for i, j := range pick {
		sets[i] = sites[i][j].set
	}
	pol := tp.FromSites(*name, sets)
	pol.BudgetKL = *budget
	if err := pol.Validate(rep.Layers); err != nil {
		return err
	}
	// Price the policy carried over to the target's depth against bf16.
	est, err := t.prefill(pol.CarrySites(rep.Layers, t.cfg.Layers))
	if err != nil {
		return err
	}
	bf, err := t.prefill(tp.Uniform(tp.Setting{Codec: collective.CodecBF16}).Sites(t.cfg.Layers))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "policy %s (from %s, %d layers): %s\n", pol.Name, *sensPath, rep.Layers, tp.Summary(sets))
	fmt.Fprintf(stdout, "predicted mean KL from f32: %.3e nats/token (budget %.3e, chosen within %.3e after headroom %g; sum of the measured single-site KLs)\n", kl, *budget, target, *headroom)
	fmt.Fprintf(stdout, "%s on %s %s, %d tokens (layers mapped by relative depth): simulated prefill %.1f us, %.3fx all-bf16 (%.1f us)\n",
		t.cfg.Name, t.prof.Name, t.topo, t.tokens, est.SerialSeconds*1e6, bf.SerialSeconds/est.SerialSeconds, bf.SerialSeconds*1e6)
	if *out == "" {
		b, _ := json.MarshalIndent([]*tp.Policy{pol}, "", "  ")
		_, err := fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	return savePolicy(*out, pol)
}

// savePolicy writes pol into a policy file, replacing a policy of the same
// name and keeping the others.
func savePolicy(path string, pol *tp.Policy) error {
	var ps []*tp.Policy
	if _, err := os.Stat(path); err == nil {
		if ps, err = tp.LoadPolicies(path); err != nil {
			return err
		}
	}
	kept := ps[:0]
	for _, p := range ps {
		if p.Name != pol.Name {
			kept = append(kept, p)
		}
	}
	return writeJSON(path, append(kept, pol))
}

// PolicyRow prices one policy on a target.
type PolicyRow struct {
	Policy        string  `json:"policy"`
	Sites         string  `json:"sites"` // on the source model
	Model         string  `json:"model"`
	Topology      string  `json:"topology"`
	Tokens        int     `json:"tokens"`
	WireVsBF16    float64 `json:"wire_bytes_vs_bf16"` // the policy's AllReduce bytes / all-bf16's
	SimSeconds    float64 `json:"sim_seconds"`        // simulated TPU prefill time
	SpeedupVsBF16 float64 `json:"speedup_vs_bf16"`
	BudgetKL      float64 `json:"budget_kl,omitempty"`
	// Quality measured against f32 (from --mc-report and --ppl-report,
	// when given and holding the policy's comparison with f32).
	Agreement   *float64 `json:"agreement,omitempty"`
	AccDelta    *float64 `json:"acc_delta,omitempty"`
	AccDeltaSE  *float64 `json:"acc_delta_stderr,omitempty"`
	MCMeanKL    *float64 `json:"mc_mean_kl,omitempty"`
	PPLNLLDelta *float64 `json:"ppl_nll_delta,omitempty"`
	PPLMeanKL   *float64 `json:"ppl_mean_kl,omitempty"`
}

// comparisons reads the "comparisons" object of an eval JSON report.
func comparisons(path string) (map[string]map[string]float64, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rep struct {
		Comparisons map[string]map[string]any `json:"comparisons"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]map[string]float64{}
	for k, v := range rep.Comparisons {
		out[k] = map[string]float64{}
		for f, x := range v {
			if n, ok := x.(float64); ok {
				out[k][f] = n
			}
		}
	}
	return out, nil
}

func field(m map[string]map[string]float64, pair, f string) *float64 {
	if v, ok := m[pair][f]; ok {
		return &v
	}
	return nil
}

// policyTable prices policies (files and bare codec names) on targets.
func policyTable(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval policy-table", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("policies", "", "policy file (names listed in --names come from it)")
	names := fs.String("names", "bf16,int8,int4", "policies to price, comma-separated: names in --policies, or codec names for uniform policies")
	srcLayers := fs.Int("source-layers", 5, "depth of the model the policies were written for (mapped by relative depth)")
	models := fs.String("price-models", "gemma3-27b,gemma3-12b", "model shapes, comma-separated")
	jsonOut := fs.String("json", "", "write the rows as JSON to this file")
	mdOut := fs.String("markdown", "", "write the table as Markdown to this file")
	mcReport := fs.String("mc-report", "", "eval JSON report whose POLICY_vs_f32 comparisons give the quality columns")
	pplReport := fs.String("ppl-report", "", "eval perplexity JSON report, likewise")
	var t target
	_, topo, tpuName, exec, tokens := t.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	byName := map[string]*tp.Policy{}
	if *file != "" {
		ps, err := tp.LoadPolicies(*file)
		if err != nil {
			return err
		}
		for _, p := range ps {
			byName[p.Name] = p
		}
	}
	var pols []*tp.Policy
	for _, n := range strings.Split(*names, ",") {
		n = strings.TrimSpace(n)
		if p, ok := byName[n]; ok {
			pols = append(pols, p)
			continue
		}
		k, err := collective.ParseCodec(n)
		if err != nil {
			return fmt.Errorf("--names: %q is neither a policy of %q nor a codec: %w", n, *file, err)
		}
		pols = append(pols, tp.Uniform(tp.Setting{Codec: k}))
	}
	for _, p := range pols {
		if err := p.Validate(*srcLayers); err != nil {
			return err
		}
	}
	mc, err := comparisons(*mcReport)
	if err != nil {
		return err
	}
	ppl, err := comparisons(*pplReport)
	if err != nil {
		return err
	}
	var rows []PolicyRow
	for _, m := range strings.Split(*models, ",") {
		if err := t.load(strings.TrimSpace(m), *topo, *tpuName, *exec, *tokens); err != nil {
			return err
		}
		bfSites := tp.Uniform(tp.Setting{Codec: collective.CodecBF16}).Sites(t.cfg.Layers)
		bf, err := t.prefill(bfSites)
		if err != nil {
			return err
		}
		bfWire, err := t.allReduce(bfSites[0])
		if err != nil {
			return err
		}
		for _, p := range pols {
			sites := p.CarrySites(*srcLayers, t.cfg.Layers)
			est, err := t.prefill(sites)
			if err != nil {
				return err
			}
			var wire float64
			for _, s := range sites {
				e, err := t.allReduce(s)
				if err != nil {
					return err
				}
				wire += float64(e.WireBytes)
			}
			pair := p.Name + "_vs_f32"
			rows = append(rows, PolicyRow{Policy: p.Name, Sites: tp.Summary(p.Sites(*srcLayers)), Model: t.cfg.Name,
				Topology: t.topo.String(), Tokens: t.tokens, WireVsBF16: wire / (float64(bfWire.WireBytes) * float64(len(sites))),
				SimSeconds: est.SerialSeconds, SpeedupVsBF16: bf.SerialSeconds / est.SerialSeconds, BudgetKL: p.BudgetKL,
				Agreement: field(mc, pair, "agreement"), AccDelta: field(mc, pair, "acc_delta"), AccDeltaSE: field(mc, pair, "acc_delta_stderr"),
				MCMeanKL: field(mc, pair, "mean_kl"), PPLNLLDelta: field(ppl, pair, "nll_delta"), PPLMeanKL: field(ppl, pair, "mean_kl")})
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tmodel\ttopology\ttokens\twire vs bf16\tsim prefill ms\tspeedup vs bf16 (sim)\tsites (source model)\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.3f\t%.2f\t%.3f\t%s\t\n", r.Policy, r.Model, r.Topology, r.Tokens, r.WireVsBF16, r.SimSeconds*1e3, r.SpeedupVsBF16, r.Sites)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if *mdOut != "" {
		if err := writePolicyMarkdown(*mdOut, rows); err != nil {
			return err
		}
	}
	return writeJSON(*jsonOut, rows)
}

// writePolicyMarkdown writes one row per policy: its sites, then per model
// its wire bytes and simulated speedup, then the measured quality.
func writePolicyMarkdown(path string, rows []PolicyRow) error {
	var models []string
	seen := map[string]bool{}
	byPolicy := map[string][]PolicyRow{}
	var order []string
	for _, r := range rows {
		if !seen[r.Model] {
			seen[r.Model] = true
			models = append(models, r.Model)
		}
		if _, ok := byPolicy[r.Policy]; !ok {
			order = append(order, r.Policy)
		}
		byPolicy[r.Policy] = append(byPolicy[r.Policy], r)
	}
	num := func(p *float64, f string) string {
		if p == nil {
			return "—"
		}
		return fmt.Sprintf(f, *p)
	}
	var b strings.Builder
	b.WriteString("| policy | sites | budget (KL) |")
	for _, m := range models {
		fmt.Fprintf(&b, " %s wire vs bf16 | %s speedup vs bf16 (sim) |", m, m)
	}
	b.WriteString(" agreement vs f32 | acc Δ vs f32 | mean KL vs f32 | within budget | perplexity: NLL Δ | perplexity: mean KL |\n|---|---|---|")
	for range models {
		b.WriteString("---|---|")
	}
	b.WriteString("---|---|---|---|---|---|\n")
	for _, name := range order {
		rs := byPolicy[name]
		r0 := rs[0]
		budget, within := "—", "—"
		if r0.BudgetKL > 0 {
			budget = fmt.Sprintf("%.0e", r0.BudgetKL)
			if r0.MCMeanKL != nil {
				within = "no"
				if *r0.MCMeanKL <= r0.BudgetKL {
					within = "yes"
				}
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s |", name, r0.Sites, budget)
		for _, r := range rs {
			fmt.Fprintf(&b, " %.3f | %.3fx |", r.WireVsBF16, r.SpeedupVsBF16)
		}
		acc := "—"
		if r0.AccDelta != nil && r0.AccDeltaSE != nil {
			acc = fmt.Sprintf("%+.1f ± %.1f pts", 100**r0.AccDelta, 100**r0.AccDeltaSE)
		}
		fmt.Fprintf(&b, " %s | %s | %s | %s | %s | %s |\n", num(r0.Agreement, "%.3f"), acc, num(r0.MCMeanKL, "%.2e"), within,
			num(r0.PPLNLLDelta, "%+.5f"), num(r0.PPLMeanKL, "%.2e"))
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
