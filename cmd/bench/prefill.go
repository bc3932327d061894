package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/cost"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/perfmodel"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/tpu"
	"github.com/equarx/equarx/weights"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

func init() {
	register("prefill", "price a tensor-parallel prefill on the TPU cost model (and run it on the CPU unless --dry-run)", runPrefillCmd)
}

// defaultMaxWeightBytes bounds the weights (in --weights-dtype) a real (not
// dry) run may hold: the engine keeps every rank's slices in memory.
const defaultMaxWeightBytes = 1 << 30

// pfConfig is one prefill sweep: every model x TPU x topology x tokens x
// codec.
type pfConfig struct {
	Models     []string
	TPUs       []string
	Topologies []string
	Tokens     []int
	Seqs       int // sequences the tokens are split into
	Codecs     []collective.CodecKind
	Algorithm  collective.Algorithm
	Segment    int
	Fallback   int
	DryRun     bool
	Overlap    bool
	Invariant  bool // batch-invariant reductions (EngineConfig.BatchInvariant)
	Reps       int
	MaxWeight  int64
	DType      string // weights dtype of real runs: f32 or bf16
	Seed       int64
	RepoRoot   string    // where configs/models lives; "" = search upward from the working directory
	Exec       cost.Exec // how the simulated TPU executes the operations
}

// pfRow is one result row. sim_* and *_seconds without "wall" are
// simulated TPU seconds; wall_seconds is CPU wall time on this machine.
type pfRow struct {
	Model     string `json:"model"`
	Params    int64  `json:"params"`
	TPU       string `json:"tpu"`
	Topology  string `json:"topology"`
	TP        int    `json:"tp"`
	Tokens    int    `json:"tokens"`
	Seqs      int    `json:"seqs"`
	Codec     string `json:"codec"`      // requested
	CodecUsed string `json:"codec_used"` // per AllReduce after fallback, e.g. "bf16+int8"
	DryRun    bool   `json:"dry_run"`
	Overlap   bool   `json:"overlap"`
	Exec      string `json:"exec"` // execution model (cost.Exec)
	// SimSeconds: simulated TPU seconds of the prefill as the engine runs
	// it (serial schedule): PrefillResult.SimSeconds on a real run, the
	// perfmodel estimate on a dry run.
	SimSeconds float64 `json:"sim_seconds"`
	// EstimateSimSeconds: the perfmodel estimate of the same (equal to the
	// engine's when Exact).
	EstimateSimSeconds float64 `json:"estimate_sim_seconds"`
	Exact              bool    `json:"exact"`
	// Breakdown of the serial schedule (simulated, critical rank).
	MatmulSeconds      float64 `json:"matmul_seconds"`
	AttentionSeconds   float64 `json:"attention_seconds"`
	ElementwiseSeconds float64 `json:"elementwise_seconds"`
	AllReduceSeconds   float64 `json:"allreduce_seconds"`
	OverheadSeconds    float64 `json:"overhead_seconds"`
	AllReduceShare     float64 `json:"allreduce_share"`
	// SpeedupVsBF16: the bf16 row's SimSeconds / this row's (same model,
	// TPU, topology and tokens).
	SpeedupVsBF16 float64 `json:"speedup_vs_bf16"`
	// With --overlap: the two-micro-batch overlapped schedule's estimate,
	// OverlapGain = EstimateSimSeconds / OverlapSimSeconds, and the
	// overlapped bf16 row's time over this row's.
	OverlapSimSeconds    float64 `json:"overlap_sim_seconds,omitempty"`
	OverlapGain          float64 `json:"overlap_gain,omitempty"`
	OverlapSpeedupVsBF16 float64 `json:"overlap_speedup_vs_bf16,omitempty"`
	// WallSeconds: measured CPU wall seconds of one prefill on this machine
	// (median of --reps), real runs only; WallTokensPerSec = tokens / it.
	WallSeconds      *float64 `json:"wall_seconds,omitempty"`
	WallTokensPerSec *float64 `json:"wall_tokens_per_sec,omitempty"`
}

func runPrefillCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("prefill", flag.ContinueOnError)
	models := fs.String("model", "stories260k", "models, comma-separated: names in configs/models (stories260k, gemma3-1b, gemma3-4b, gemma3-12b, gemma3-27b) or paths to config JSON files")
	tpus := fs.String("tpu", "v5e", "TPU profiles, comma-separated ("+strings.Join(tpu.ProfileNames(), ", ")+")")
	topos := fs.String("topology", "ring:8", "topologies, comma-separated (ring:N, torus:XxY); tp = devices of the topology")
	tokens := fs.String("tokens", "2048", "total tokens of the batch, comma-separated (K = 1024)")
	seqs := fs.Int("seqs", 1, "split the tokens into this many sequences of (nearly) equal length")
	codecs := fs.String("codecs", "bf16,int8", "AllReduce codecs, comma-separated (f32, bf16, int8, fp8, int6, int4)")
	algo := fs.String("algorithm", "auto", "AllReduce algorithm (auto, ring, biring, torus2d, twoshot), as the engine's EngineConfig.Algorithm")
	seg := fs.Int("segment", 0, "AllReduce segment size in values (0 = default, negative = none)")
	fallback := fs.Int("fallback", 0, "small-buffer fallback to bf16: 0 = estimator crossover (the engine's default), negative = never, positive = threshold in values")
	dry := fs.Bool("dry-run", false, "price from shapes only; without it the model also runs on the emulated devices")
	invariant := fs.Bool("batch-invariant", false, "batch-invariant reductions (the server's --batch-invariant): row-aligned blocks, stripe layout, plans fixed at the batch's token count")
	overlap := fs.Bool("overlap", false, "also price the two-micro-batch schedule in which AllReduces overlap independent compute (perfmodel.OverlapPrice)")
	reps := fs.Int("reps", 1, "real runs: prefills per row; the median wall time is reported")
	maxWeight := fs.Int64("max-weight-bytes", defaultMaxWeightBytes, "real runs: refuse models whose weights (in --weights-dtype) exceed this many bytes")
	dtype := fs.String("weights-dtype", "f32", "real runs: hold the synthetic weights as f32 or bf16")
	seed := fs.Int64("seed", 1, "seed of synthetic weights and of the token ids")
	jsonOut := fs.String("json", "", "write rows as a JSON array to this file")
	mdOut := fs.String("markdown", "", "write the rows as Markdown tables to this file (a pivot of speedup vs bf16 by tp degree, then every row)")
	plotOut := fs.String("plot", "", "write a PNG plot of the simulated speedup vs bf16 over tp degree, one line per model, TPU and codec")
	execFlag := fs.String("exec", "xla", "TPU execution model (package cost): xla (bf16 activations, fusion, matmul efficiency curve, fused attention, launch overheads, derated ICI), baseline (float32, unfused, peak FLOP/s), or a comma list of parts (bf16, fuse, curve, flash, overheads, ici) added to the baseline; -part removes one from xla (\"xla,-fuse\")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	exec, err := cost.ParseExec(*execFlag)
	if err != nil {
		return fmt.Errorf("--exec: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg := pfConfig{Models: splitList(*models), TPUs: splitList(*tpus), Topologies: splitList(*topos), Seqs: *seqs,
		Algorithm: collective.Algorithm(*algo), Segment: *seg, Fallback: *fallback, DryRun: *dry, Overlap: *overlap, Invariant: *invariant,
		Reps: *reps, MaxWeight: *maxWeight, DType: *dtype, Seed: *seed, Exec: exec}
	for _, s := range splitList(*tokens) {
		n, err := parseCount(s)
		if err != nil {
			return fmt.Errorf("--tokens: %w", err)
		}
		cfg.Tokens = append(cfg.Tokens, n)
	}
	for _, c := range splitList(*codecs) {
		cfg.Codecs = append(cfg.Codecs, collective.CodecKind(c))
	}
	rows, skipped, err := runPrefillSweep(context.Background(), cfg)
	if err != nil {
		return err
	}
	if err := writePrefillTable(stdout, rows, skipped); err != nil {
		return err
	}
	if *jsonOut != "" {
		if rows == nil {
			rows = []pfRow{}
		}
		b, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			return err
		}
		if err := writeFile(*jsonOut, append(b, '\n')); err != nil {
			return err
		}
	}
	if *mdOut != "" {
		var b strings.Builder
		writePrefillMarkdown(&b, rows, skipped)
		if err := os.WriteFile(*mdOut, []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", *mdOut, err)
		}
	}
	if *plotOut != "" {
		if err := writePrefillPlot(*plotOut, rows); err != nil {
			return err
		}
	}
	return nil
}

func (c pfConfig) validate() error {
	if len(c.Models) == 0 || len(c.TPUs) == 0 || len(c.Topologies) == 0 || len(c.Tokens) == 0 || len(c.Codecs) == 0 {
		return errors.New("empty --model, --tpu, --topology, --tokens or --codecs list")
	}
	for _, n := range c.Tokens {
		if n < 1 {
			return fmt.Errorf("--tokens %d: want at least 1", n)
		}
		if c.Seqs < 1 || c.Seqs > n {
			return fmt.Errorf("--seqs %d: want 1..tokens (%d)", c.Seqs, n)
		}
	}
	for _, k := range c.Codecs {
		if _, err := collective.NewCodec(k, 0); err != nil {
			return fmt.Errorf("--codecs: %w", err)
		}
	}
	if c.Reps < 1 {
		return fmt.Errorf("--reps %d: want at least 1", c.Reps)
	}
	if c.DType != "" && c.DType != weights.DTypeF32 && c.DType != weights.DTypeBF16 {
		return fmt.Errorf("--weights-dtype %q: want f32 or bf16", c.DType)
	}
	return nil
}

// findRepoRoot is model.FindRepoRoot.
func findRepoRoot() (string, error) { return model.FindRepoRoot() }

// loadModel resolves a --model entry with model.LoadNamed.
func loadModel(arg, root string) (model.Config, error) { return model.LoadNamed(arg, root) }

// seqLengths splits n tokens into k sequences whose lengths differ by at
// most one.
func seqLengths(n, k int) []int {
	out := make([]int, k)
	for i := range out {
		out[i] = n / k
		if i < n%k {
			out[i]++
		}
	}
	return out
}

// tokenIDs returns deterministic token ids in [0, vocab) for each sequence.
func tokenIDs(lengths []int, vocab int, seed int64) [][]int {
	x := uint64(seed)*0x9E3779B97F4A7C15 + 1
	out := make([][]int, len(lengths))
	for i, L := range lengths {
		out[i] = make([]int, L)
		for j := range out[i] {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			out[i][j] = int(x % uint64(vocab))
		}
	}
	return out
}

func isStories(c model.Config) bool {
	return strings.EqualFold(c.Name, "stories260K")
}

// weightSource returns the real stories260K checkpoint (embedded assets)
// for stories260K and synthetic weights for any other config.
func weightSource(c model.Config, seed int64) (weights.Source, error) {
	if isStories(c) {
		src, err := weights.ReadLlama2C(assets.Stories260K())
		if err != nil {
			return nil, fmt.Errorf("stories260K: %w", err)
		}
		return src, nil
	}
	return weights.Synthetic(c, seed)
}

func runPrefillSweep(ctx context.Context, cfg pfConfig) ([]pfRow, []string, error) {
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	var rows []pfRow
	var skipped []string
	for _, mname := range cfg.Models {
		mc, err := loadModel(mname, cfg.RepoRoot)
		if err != nil {
			return nil, nil, err
		}
		per := int64(4)
		if cfg.DType == weights.DTypeBF16 {
			per = 2
		}
		weightBytes := per * mc.Params()
		if !cfg.DryRun && weightBytes > cfg.MaxWeight {
			return nil, nil, fmt.Errorf("model %s: %d parameters = %d bytes of %s weights exceed --max-weight-bytes %d; use --dry-run to price it from shapes",
				mc.Name, mc.Params(), weightBytes, cfg.DType, cfg.MaxWeight)
		}
		for _, tname := range cfg.TPUs {
			prof, err := tpu.LoadProfile(tname)
			if err != nil {
				return nil, nil, err
			}
			for _, ts := range cfg.Topologies {
				topo, err := tpu.ParseTopology(ts)
				if err != nil {
					return nil, nil, err
				}
				size := topo.Size()
				if mc.Heads%size != 0 {
					skipped = append(skipped, fmt.Sprintf("%s on %s: n_heads %d is not divisible by tp %d", mc.Name, ts, mc.Heads, size))
					continue
				}
				for _, n := range cfg.Tokens {
					lengths := seqLengths(n, cfg.Seqs)
					if lengths[0] > mc.MaxSeqLen {
						return nil, nil, fmt.Errorf("model %s: sequences of %d tokens exceed max_seq_len %d (use --seqs)", mc.Name, lengths[0], mc.MaxSeqLen)
					}
					rs, err := prefillGroup(ctx, cfg, mc, prof, topo, lengths)
					if err != nil {
						return nil, nil, fmt.Errorf("%s %s %s %d tokens: %w", mc.Name, tname, ts, n, err)
					}
					rows = append(rows, rs...)
				}
			}
		}
	}
	return rows, skipped, nil
}

// prefillGroup prices (and unless dry, runs) every codec for one model,
// TPU, topology and batch, and fills in the speedups over bf16.
func prefillGroup(ctx context.Context, cfg pfConfig, mc model.Config, prof tpu.Profile, topo tpu.Topology, lengths []int) ([]pfRow, error) {
	size := topo.Size()
	tokens := 0
	for _, L := range lengths {
		tokens += L
	}
	ecfg := tp.EngineConfig{TP: size, Topology: topo.String(), TPU: prof.Name, Algorithm: cfg.Algorithm,
		SegmentElems: cfg.Segment, FallbackElems: cfg.Fallback, Exec: cfg.Exec, BatchInvariant: cfg.Invariant, PlanRows: tokens, WeightsDType: cfg.DType}
	var eng *tp.Engine
	if !cfg.DryRun {
		src, err := weightSource(mc, cfg.Seed)
		if err != nil {
			return nil, err
		}
		defer src.Close()
		if eng, err = tp.NewEngine(src, ecfg); err != nil {
			return nil, err
		}
		defer eng.Close()
	}
	ids := tokenIDs(lengths, mc.Vocab, cfg.Seed)
	price := func(c collective.CodecKind) (*perfmodel.Estimate, error) {
		opts := ecfg.AllReduceOptions(tp.PrefillOptions{Codec: c})
		if cfg.Invariant {
			// As the engine plans it: rows of the model width, plans fixed
			// for a batch of this many tokens.
			opts.RowElems, opts.PlanRows = mc.Dim, tokens
		}
		return perfmodel.Price(mc, lengths, perfmodel.Setup{TP: size, Topology: topo, Profile: prof, AllReduce: opts,
			Overlap: cfg.Overlap, Exec: cfg.Exec})
	}
	var rows []pfRow
	for _, c := range cfg.Codecs {
		est, err := price(c)
		if err != nil {
			return nil, err
		}
		r := pfRow{Model: mc.Name, Params: mc.Params(), TPU: prof.Name, Topology: topo.String(), TP: size,
			Tokens: tokens, Seqs: len(lengths), Codec: string(c), CodecUsed: codecsUsed(est), DryRun: cfg.DryRun,
			Overlap: cfg.Overlap, Exec: cfg.Exec.String(), SimSeconds: est.SerialSeconds, EstimateSimSeconds: est.SerialSeconds,
			Exact: est.Exact, MatmulSeconds: est.MatmulSeconds, AttentionSeconds: est.AttentionSeconds,
			ElementwiseSeconds: est.ElementwiseSeconds, AllReduceSeconds: est.AllReduceSeconds,
			OverheadSeconds: est.OverheadSeconds, AllReduceShare: est.AllReduceShare}
		if est.Overlapped != nil {
			r.OverlapSimSeconds = est.Overlapped.SimSeconds
			r.OverlapGain = est.SerialSeconds / est.Overlapped.SimSeconds
		}
		if eng != nil {
			walls := make([]float64, cfg.Reps)
			var sim float64
			for i := range walls {
				res, err := eng.Prefill(ctx, ids, tp.PrefillOptions{Codec: c})
				if err != nil {
					return nil, err
				}
				walls[i], sim = res.WallSeconds, res.SimSeconds
			}
			sort.Float64s(walls)
			w := walls[len(walls)/2]
			tps := float64(tokens) / w
			r.WallSeconds, r.WallTokensPerSec = &w, &tps
			r.SimSeconds = sim
		}
		rows = append(rows, r)
	}
	base, obase := 0.0, 0.0
	for _, r := range rows {
		if r.Codec == string(collective.CodecBF16) {
			base, obase = r.SimSeconds, r.OverlapSimSeconds
		}
	}
	if base == 0 {
		// No bf16 row: price the baseline (on a real run it is the
		// estimate, equal to the engine's time when Exact).
		est, err := price(collective.CodecBF16)
		if err != nil {
			return nil, err
		}
		base = est.SerialSeconds
		if est.Overlapped != nil {
			obase = est.Overlapped.SimSeconds
		}
	}
	for i := range rows {
		rows[i].SpeedupVsBF16 = base / rows[i].SimSeconds
		if rows[i].OverlapSimSeconds > 0 {
			rows[i].OverlapSpeedupVsBF16 = obase / rows[i].OverlapSimSeconds
		}
	}
	return rows, nil
}

// codecsUsed lists the codecs the AllReduces of an estimate use after
// fallback ("-" with one device: no AllReduce runs).
func codecsUsed(e *perfmodel.Estimate) string {
	if e.TP == 1 {
		return "-"
	}
	seen := map[string]bool{}
	for _, l := range e.Layers {
		seen[string(l.AttnAllReduce.Codec)] = true
		seen[string(l.MLPAllReduce.Codec)] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, "+")
}

func fmtUS(s float64) string { return strconv.FormatFloat(s*1e6, 'f', 1, 64) }

func writePrefillTable(w io.Writer, rows []pfRow, skipped []string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\ttpu\ttopology\ttokens\tcodec\tused\tsim us\tmatmul us\tattention us\telementwise us\tallreduce us\tdispatch us\tAR share\tspeedup vs bf16\toverlap sim us\toverlap gain\toverlap speedup vs bf16\twall s (CPU)\twall tok/s (CPU)\t")
	for _, r := range rows {
		ov, gain, osp := "-", "-", "-"
		if r.OverlapSimSeconds > 0 {
			ov, gain, osp = fmtUS(r.OverlapSimSeconds), fmt.Sprintf("%.3f", r.OverlapGain), fmt.Sprintf("%.3f", r.OverlapSpeedupVsBF16)
		}
		wall, tps := "-", "-"
		if r.WallSeconds != nil {
			wall, tps = fmt.Sprintf("%.3f", *r.WallSeconds), fmt.Sprintf("%.0f", *r.WallTokensPerSec)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%.3f\t%s\t%s\t%s\t%s\t%s\t\n",
			r.Model, r.TPU, r.Topology, r.Tokens, r.Codec, r.CodecUsed, fmtUS(r.SimSeconds), fmtUS(r.MatmulSeconds),
			fmtUS(r.AttentionSeconds), fmtUS(r.ElementwiseSeconds), fmtUS(r.AllReduceSeconds), fmtUS(r.OverheadSeconds), r.AllReduceShare,
			r.SpeedupVsBF16, ov, gain, osp, wall, tps)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rows) > 0 {
		fmt.Fprintf(w, "execution model: %s\n", rows[0].Exec)
	}
	fmt.Fprintln(w, "sim / matmul / attention / elementwise / allreduce / dispatch / overlap: simulated TPU microseconds (cost model); wall: measured CPU seconds on this machine.")
	for _, r := range rows {
		if !r.Exact {
			fmt.Fprintf(w, "note: %s %s %s %s: ranks reach some AllReduce at different times; the estimate prices those calls from the last rank's arrival (an upper bound).\n", r.Model, r.TPU, r.Topology, r.Codec)
			break
		}
	}
	for _, s := range skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
	return nil
}

// writePrefillPlot draws the simulated speedup over bf16 against the tp
// degree, one line per model, TPU and codec.
func writePrefillPlot(path string, rows []pfRow) error {
	p := plot.New()
	p.Title.Text = "Prefill speedup over bf16 AllReduce (simulated TPU time)"
	p.X.Label.Text = "tensor-parallel degree (devices)"
	p.Y.Label.Text = "prefill speedup vs bf16 (simulated)"
	series := map[string]plotter.XYs{}
	var ticks []plot.Tick
	seenTP := map[int]bool{}
	for _, r := range rows {
		if r.Codec == string(collective.CodecBF16) || r.SpeedupVsBF16 <= 0 || r.TP < 2 {
			continue
		}
		if !seenTP[r.TP] {
			seenTP[r.TP] = true
			ticks = append(ticks, plot.Tick{Value: float64(r.TP), Label: strconv.Itoa(r.TP)})
		}
		k := fmt.Sprintf("%s %s %s", r.Model, r.TPU, r.Codec)
		series[k] = append(series[k], plotter.XY{X: float64(r.TP), Y: r.SpeedupVsBF16})
	}
	if len(series) == 0 {
		return errors.New("plot: no rows with tp >= 2 and a codec other than bf16")
	}
	if err := addSeries(p, series); err != nil {
		return err
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	if err := p.Save(9*vg.Inch, 6*vg.Inch, path); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// writePrefillMarkdown renders a pivot (model and TPU by tp degree: serial
// and overlapped speedup over bf16 per codec) and the full rows.
func writePrefillMarkdown(w io.Writer, rows []pfRow, skipped []string) {
	var tps []int
	seenTP := map[int]bool{}
	type key struct{ model, tpu, codec string }
	var keys []key
	seenKey := map[key]bool{}
	cell := map[key]map[int]pfRow{}
	for _, r := range rows {
		if !seenTP[r.TP] {
			seenTP[r.TP] = true
			tps = append(tps, r.TP)
		}
		if r.Codec == string(collective.CodecBF16) {
			continue
		}
		k := key{r.Model, r.TPU, r.Codec}
		if !seenKey[k] {
			seenKey[k] = true
			keys = append(keys, k)
			cell[k] = map[int]pfRow{}
		}
		cell[k][r.TP] = r
	}
	sort.Ints(tps)
	if len(keys) > 0 {
		fmt.Fprintf(w, "Prefill speedup over the bf16 AllReduce (simulated TPU time; serial schedule, with the overlapped schedule's in parentheses when priced; * = approximate, see Exact):\n\n")
		fmt.Fprint(w, "| model | TPU | codec |")
		for _, t := range tps {
			fmt.Fprintf(w, " tp %d |", t)
		}
		fmt.Fprint(w, "\n|---|---|---|")
		for range tps {
			fmt.Fprint(w, "---|")
		}
		fmt.Fprintln(w)
		for _, k := range keys {
			fmt.Fprintf(w, "| %s | %s | %s |", k.model, k.tpu, k.codec)
			for _, t := range tps {
				r, ok := cell[k][t]
				if !ok {
					fmt.Fprint(w, " - |")
					continue
				}
				star := ""
				if !r.Exact {
					star = "*"
				}
				if r.OverlapSimSeconds > 0 {
					fmt.Fprintf(w, " %.3f%s (%.3f) |", r.SpeedupVsBF16, star, r.OverlapSpeedupVsBF16)
				} else {
					fmt.Fprintf(w, " %.3f%s |", r.SpeedupVsBF16, star)
				}
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	wall := false
	for _, r := range rows {
		wall = wall || r.WallSeconds != nil
	}
	fmt.Fprint(w, "| model | TPU | topology | tokens | codec | used | sim ms | matmul ms | attention ms | elementwise ms | allreduce ms | dispatch ms | AR share | speedup vs bf16 | overlap sim ms | overlap gain |")
	if wall {
		fmt.Fprint(w, " CPU wall s (measured) | CPU tokens/s (measured) |")
	}
	fmt.Fprint(w, "\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	if wall {
		fmt.Fprint(w, "---|---|")
	}
	fmt.Fprintln(w)
	ms := func(s float64) string { return strconv.FormatFloat(s*1e3, 'f', 3, 64) }
	for _, r := range rows {
		star := ""
		if !r.Exact {
			star = "*"
		}
		ov, gain := "-", "-"
		if r.OverlapSimSeconds > 0 {
			ov, gain = ms(r.OverlapSimSeconds), fmt.Sprintf("%.3f", r.OverlapGain)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d | %s | %s | %s%s | %s | %s | %s | %s | %s | %.3f | %.3f | %s | %s |",
			r.Model, r.TPU, r.Topology, r.Tokens, r.Codec, r.CodecUsed, ms(r.SimSeconds), star, ms(r.MatmulSeconds),
			ms(r.AttentionSeconds), ms(r.ElementwiseSeconds), ms(r.AllReduceSeconds), ms(r.OverheadSeconds),
			r.AllReduceShare, r.SpeedupVsBF16, ov, gain)
		if wall {
			if r.WallSeconds != nil {
				fmt.Fprintf(w, " %.4f | %.0f |", *r.WallSeconds, *r.WallTokensPerSec)
			} else {
				fmt.Fprint(w, " - | - |")
			}
		}
		fmt.Fprintln(w)
	}
	for _, s := range skipped {
		fmt.Fprintf(w, "\nSkipped: %s.", s)
	}
	if len(skipped) > 0 {
		fmt.Fprintln(w)
	}
}
