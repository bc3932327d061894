package main

import (
	"context"
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
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/evalharness"
	"github.com/equarx/equarx/tp"
)

// SensRow is one measurement of the sensitivity table: every reduction
// runs exactly (f32) except one site, which runs Codec; the figures compare
// the model's next-token distributions with the all-f32 run at every
// scored position of the calibration items.
type SensRow struct {
	Layer               int     `json:"layer"`
	Site                string  `json:"site"` // "attn" or "mlp"
	Codec               string  `json:"codec"`
	BlockSize           int     `json:"block_size"` // 0 = the codec's default
	MeanKL              float64 `json:"mean_kl"`    // nats per scored token, KL(f32 || this)
	MaxKL               float64 `json:"max_kl"`
	MeanKLTopK          float64 `json:"mean_kl_topk"`
	MeanAbsDeltaLogprob float64 `json:"mean_abs_delta_logprob"`
	Positions           int64   `json:"positions"`
}

// SensReport is the JSON sensitivity answers: the rows, and what they
// were measured on.
type SensReport struct {
	Model     string    `json:"model"`
	Layers    int       `json:"layers"`
	TP        int       `json:"tp"`
	Topology  string    `json:"topology"`
	Tasks     string    `json:"tasks"`
	Skip      int       `json:"skip"`
	Items     int       `json:"items"`
	Invariant bool      `json:"batch_invariant"`
	Rows      []SensRow `json:"rows"`
}

// sensPolicyName names the policy that quantizes one site.
func sensPolicyName(layer int, site tp.SiteKind, codec collective.CodecKind) string {
	return fmt.Sprintf("L%d.%s.%s", layer, site, codec)
}

func sensitivity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval sensitivity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	tasks := fs.String("tasks", "configs/eval/tinystories_mc.jsonl", "calibration items (HellaSwag-schema JSONL)")
	limit := fs.Int("limit", 0, "use N items (after --skip); 0 = all")
	skip := fs.Int("skip", 0, "skip the first N items")
	codecList := fs.String("codecs", strings.Join(quantizedCodecs(), ","), "codecs to measure at each site, comma-separated")
	block := fs.Int("block", 0, "quantization block size of the measured codecs (0 = codec default)")
	plotOut := fs.String("plot", "", "write a heat map of log10 mean KL (layer x site/codec) as PNG to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.server != "" {
		return errors.New("sensitivity: needs full next-token rows, so it runs in process (drop --server)")
	}
	if *limit < 0 || *skip < 0 {
		return fmt.Errorf("--limit %d and --skip %d must not be negative", *limit, *skip)
	}
	var codecs []collective.CodecKind
	for _, s := range strings.Split(*codecList, ",") {
		k, err := collective.ParseCodec(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("--codecs: %w", err)
		}
		if err := collective.CheckCodec(k, *block); err != nil {
			return fmt.Errorf("--codecs %s --block %d: %w", k, *block, err)
		}
		codecs = append(codecs, k)
	}
	start := time.Now()
	task, err := evalharness.LoadTask(*tasks)
	if err != nil {
		return err
	}
	docs, err := window(task.Docs, *skip, *limit)
	if err != nil {
		return err
	}
	tok, _, err := loadTokenizer(c.tokPath)
	if err != nil {
		return err
	}
	be, closeFn, err := newEngineBackend(&c, tok)
	if err != nil {
		return err
	}
	defer closeFn()
	layers := be.Engine.(*tp.Engine).Config().Layers
	// One run: f32 everywhere, then one policy per (layer, site, codec)
	// quantizing that site alone, each compared with f32.
	run := []evalharness.Codec{{Kind: collective.CodecF32, Name: "f32"}}
	var pairs []evalharness.Pair
	type key struct {
		layer int
		site  tp.SiteKind
		codec collective.CodecKind
	}
	var keys []key
	for l := 0; l < layers; l++ {
		for _, site := range []tp.SiteKind{tp.SiteAttn, tp.SiteMLP} {
			for _, k := range codecs {
				name := sensPolicyName(l, site, k)
				p := &tp.Policy{Name: name, Default: tp.Setting{Codec: collective.CodecF32},
					Rules: []tp.Rule{{Layers: fmt.Sprint(l), Site: site, Setting: tp.Setting{Codec: k, BlockSize: *block}}}}
				run = append(run, evalharness.Codec{Name: name, Kind: k, Policy: p})
				pairs = append(pairs, evalharness.Pair{A: name, B: "f32"})
				keys = append(keys, key{l, site, k})
			}
		}
	}
	upd, fin := c.progress(stderr)
	ev, err := evalharness.EvaluateMC(ctx, be, tok, docs, evalharness.RunOptions{
		Codecs: run, Pairs: pairs, TokenBudget: c.tokenBudget, MaxSeqs: c.maxSeqs, TopK: c.topK, Progress: upd, Concurrency: c.concurrency,
	})
	fin()
	if err != nil {
		return err
	}
	rep := SensReport{Model: be.Model, Layers: layers, TP: c.tp, Topology: c.topology, Tasks: *tasks, Skip: *skip,
		Items: len(docs), Invariant: c.invariant}
	if rep.Topology == "" {
		rep.Topology = fmt.Sprintf("ring:%d", c.tp)
	}
	for i, k := range keys {
		st := ev.Run.Stats[i]
		rep.Rows = append(rep.Rows, SensRow{Layer: k.layer, Site: string(k.site), Codec: string(k.codec), BlockSize: *block,
			MeanKL: float64(st.MeanKL), MaxKL: float64(st.MaxKL), MeanKLTopK: float64(st.MeanKLTopK),
			MeanAbsDeltaLogprob: float64(st.MeanAbsDeltaLogprob), Positions: st.Positions})
	}
	if err := writeSensTable(stdout, rep, codecs); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%d items of %s (from item %d), %s at tp %d, %d scored positions; %.0f s wall.\n",
		len(docs), *tasks, *skip, be.Model, c.tp, ev.Run.Stats[0].Positions, time.Since(start).Seconds())
	if *plotOut != "" {
		if err := plotSensitivity(*plotOut, rep, codecs); err != nil {
			return err
		}
	}
	return writeJSON(c.jsonOut, rep)
}

// quantizedCodecs lists the registry's quantized codecs.
func quantizedCodecs() []string {
	var out []string
	for _, k := range collective.Codecs() {
		if k.Quantized() {
			out = append(out, string(k))
		}
	}
	return out
}

// window returns docs[skip : skip+limit] (limit 0 = to the end).
func window[T any](docs []T, skip, limit int) ([]T, error) {
	if skip >= len(docs) {
		return nil, fmt.Errorf("--skip %d leaves none of the %d items", skip, len(docs))
	}
	docs = docs[skip:]
	if limit > 0 && limit < len(docs) {
		docs = docs[:limit]
	}
	return docs, nil
}

// writeSensTable prints mean KL per layer and site, one column per codec.
func writeSensTable(w io.Writer, rep SensReport, codecs []collective.CodecKind) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "layer\tsite\t")
	for _, k := range codecs {
		fmt.Fprintf(tw, "%s mean KL\t", k)
	}
	fmt.Fprintln(tw)
	at := map[string]float64{}
	for _, r := range rep.Rows {
		at[fmt.Sprintf("%d/%s/%s", r.Layer, r.Site, r.Codec)] = r.MeanKL
	}
	for l := 0; l < rep.Layers; l++ {
		for _, site := range []tp.SiteKind{tp.SiteAttn, tp.SiteMLP} {
			fmt.Fprintf(tw, "%d\t%s\t", l, site)
			for _, k := range codecs {
				fmt.Fprintf(tw, "%.3e\t", at[fmt.Sprintf("%d/%s/%s", l, site, k)])
			}
			fmt.Fprintln(tw)
		}
	}
	return tw.Flush()
}

// sensGrid is the heat map's grid: columns are site/codec, rows layers.
type sensGrid struct {
	cols []string
	z    [][]float64 // [layer][col]
}

func (g sensGrid) Dims() (c, r int)   { return len(g.cols), len(g.z) }
func (g sensGrid) Z(c, r int) float64 { return g.z[r][c] }
func (g sensGrid) X(c int) float64    { return float64(c) }
func (g sensGrid) Y(r int) float64    { return float64(r) }

func plotSensitivity(path string, rep SensReport, codecs []collective.CodecKind) error {
	var g sensGrid
	for _, site := range []tp.SiteKind{tp.SiteAttn, tp.SiteMLP} {
		for _, k := range codecs {
			g.cols = append(g.cols, fmt.Sprintf("%s %s", site, k))
		}
	}
	g.z = make([][]float64, rep.Layers)
	for l := range g.z {
		g.z[l] = make([]float64, len(g.cols))
	}
	col := map[string]int{}
	for i, c := range g.cols {
		col[c] = i
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rep.Rows {
		v := math.Log10(max(r.MeanKL, 1e-12))
		g.z[r.Layer][col[r.Site+" "+r.Codec]] = v
		lo, hi = min(lo, v), max(hi, v)
	}
	if !(hi > lo) {
		hi = lo + 1
	}
	pal := moreland.SmoothBlueRed()
	pal.SetMin(lo)
	pal.SetMax(hi)
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s, tp %d: mean KL from f32, one site quantized\nblue %.1e ... red %.1e nats/token (log scale)",
		rep.Model, rep.TP, math.Pow(10, lo), math.Pow(10, hi))
	p.X.Label.Text = "site / codec"
	p.Y.Label.Text = "layer"
	hm := plotter.NewHeatMap(g, pal.Palette(64))
	p.Add(hm)
	ticks := make([]plot.Tick, len(g.cols))
	for i, c := range g.cols {
		ticks[i] = plot.Tick{Value: float64(i), Label: c}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	var yt []plot.Tick
	for l := 0; l < rep.Layers; l++ {
		yt = append(yt, plot.Tick{Value: float64(l), Label: fmt.Sprint(l)})
	}
	p.Y.Tick.Marker = plot.ConstantTicks(yt)
	w := vg.Length(110 + 55*len(g.cols))
	return p.Save(w, vg.Length(80+40*rep.Layers)+2*vg.Inch, path)
}

// loadSensReport reads a sensitivity JSON report.
func loadSensReport(path string) (*SensReport, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rep SensReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if rep.Layers < 1 || len(rep.Rows) == 0 {
		return nil, fmt.Errorf("%s: no sensitivity rows", path)
	}
	sort.SliceStable(rep.Rows, func(i, j int) bool { return rep.Rows[i].Layer < rep.Rows[j].Layer })
	return &rep, nil
}
