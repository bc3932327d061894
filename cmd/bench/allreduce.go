package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/tpu"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

func init() {
	register("allreduce", "sweep AllReduce over TPU profiles, topologies, sizes, codecs and algorithms", runAllReduceCmd)
}

// arConfig is one allreduce sweep.
type arConfig struct {
	TPUs       []string
	Topologies []string
	Elements   []int
	Codecs     []collective.CodecKind
	Algorithms []collective.Algorithm
	BlockSize  int
	Segment    int
	Fallback   int
	RowElems   int  // > 0: batch-invariant layout, rows of this many values
	Execute    bool // run on data (wall time, errors); false: estimate only
	Input      string
	Seed       uint64
	// Cost-model overrides for ablations (negative: the profile's figure).
	HopLatency float64
	HBM        float64
}

// arRow is one result row. Times are simulated TPU seconds (sim_*) or CPU
// wall seconds (wall_seconds).
type arRow struct {
	// Transport: "emulated" (ranks are goroutines on tpu.Mesh devices) or
	// "tcp" (one OS process per rank; the tcp-only fields follow).
	Transport     string `json:"transport"`
	TPU           string `json:"tpu"`
	Topology      string `json:"topology"`
	Devices       int    `json:"devices"`
	Elements      int    `json:"elements"`
	Codec         string `json:"codec"`          // requested
	CodecUsed     string `json:"codec_used"`     // after fallback
	Algorithm     string `json:"algorithm"`      // requested
	AlgorithmUsed string `json:"algorithm_used"` // after auto
	BlockSize     int    `json:"block_size"`
	RowElems      int    `json:"row_elems,omitempty"` // batch-invariant layout: values per row (0 = off)
	Stripes       int    `json:"stripes,omitempty"`   // its stripes per row
	SegmentElems  int    `json:"segment_elems"`
	// WireBytes is the largest number of bytes one rank sends.
	WireBytes int64 `json:"wire_bytes"`
	// SimSeconds: simulated TPU seconds on the profile, from idle clocks to
	// the last rank finishing.
	SimSeconds float64 `json:"sim_seconds"`
	// BF16SimSeconds: the same AllReduce with the bf16 codec (simulated).
	BF16SimSeconds float64 `json:"bf16_sim_seconds"`
	SpeedupVsBF16  float64 `json:"speedup_vs_bf16"`
	// WireRatioVsBF16: bf16 wire bytes / this row's wire bytes, the ceiling
	// of the speedup when transfers dominate.
	WireRatioVsBF16 float64 `json:"wire_ratio_vs_bf16"`
	// AlgoBWBytesPerSec and BusBWBytesPerSec follow NCCL's definitions on the
	// bf16 payload (2 bytes per element): algbw = payload / sim time,
	// busbw = algbw * 2(N-1)/N.
	AlgoBWBytesPerSec float64 `json:"algo_bw_bytes_per_sec"`
	BusBWBytesPerSec  float64 `json:"bus_bw_bytes_per_sec"`
	// WallSeconds: CPU wall seconds of the emulated AllReduce on this
	// machine (0 when not executed).
	WallSeconds float64 `json:"wall_seconds"`
	// RelErrRMS = ||out - exact||_2 / ||exact||_2 against the float64 sum
	// (rank 0's output; all ranks are checked to be bitwise identical).
	RelErrRMS float64 `json:"rel_err_rms"`
	// MaxErrOverBlockAbsmax = max over elements of |out - exact| divided by
	// the absmax of the exact sum over the element's block of block_size
	// values (256 for the f32/bf16 rows).
	MaxErrOverBlockAbsmax float64 `json:"max_err_over_block_absmax"`
	Executed              bool    `json:"executed"`
	*TCPFields
}

// parseCount reads 1000, 64K, 16M or 1G (K, M, G are powers of 1024).
func parseCount(s string) (int, error) {
	mult := 1
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty count")
	}
	switch t[len(t)-1] {
	case 'k', 'K':
		mult, t = 1<<10, t[:len(t)-1]
	case 'm', 'M':
		mult, t = 1<<20, t[:len(t)-1]
	case 'g', 'G':
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("count %q: want a non-negative integer with an optional K, M or G suffix", s)
	}
	if n > math.MaxInt32/mult {
		return 0, fmt.Errorf("count %q too large", s)
	}
	return n * mult, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func runAllReduceCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("allreduce", flag.ContinueOnError)
	tpus := fs.String("tpu", "v5e", "TPU profiles, comma-separated ("+strings.Join(tpu.ProfileNames(), ", ")+")")
	topos := fs.String("topology", "ring:8", "topologies, comma-separated (ring:N, torus:XxY)")
	elems := fs.String("elements", "16M", "element counts, comma-separated (K, M, G = 2^10, 2^20, 2^30)")
	codecs := fs.String("codecs", "bf16,int8", "codecs, comma-separated (f32, bf16, int8, fp8, int6, int4)")
	algos := fs.String("algorithms", "auto", "algorithms, comma-separated (auto, ring, biring, torus2d, twoshot); torus2d rows are skipped on ring topologies")
	block := fs.Int("block", 0, "quantization block size (0 = codec default)")
	seg := fs.Int("segment", 0, "segment size in values (0 = default, negative = no segmenting)")
	fallback := fs.Int("fallback", -1, "fallback threshold in values (-1 = never fall back, 0 = estimator crossover)")
	rowElems := fs.Int("row-elems", 0, "batch-invariant layout: the buffer is rows of this many values (a model's width); 0 = off. Element counts must be multiples")
	execute := fs.Bool("execute", true, "run the AllReduce on data over the emulated devices (wall time, errors); false = price with the estimator only")
	input := fs.String("input", "normal", "input values: normal or heavy (normal with a few 1000x outliers)")
	seed := fs.Uint64("seed", 1, "input seed")
	hopLat := fs.Float64("hop-latency-seconds", -1, "override the profile's per-hop latency (ablation; negative = profile value)")
	hbm := fs.Float64("hbm-bytes-per-sec", -1, "override the profile's HBM bandwidth (ablation; negative = profile value)")
	jsonOut := fs.String("json", "", "write rows as a JSON array to this file")
	csvOut := fs.String("csv", "", "write rows as CSV to this file")
	plotOut := fs.String("plot", "", "write a PNG plot of simulated speedup vs bf16 over message size, per topology")
	transportKind := fs.String("transport", "emulated", "emulated (ranks as goroutines on the emulated mesh) or tcp (one OS process per rank over TCP; ring:<ranks> on the first --tpu profile)")
	ranks := fs.Int("ranks", 4, "tcp: ranks (processes)")
	linkGbps := fs.Float64("link-gbps", 0, "tcp: run each rank in its own network namespace behind a link shaped to this many Gbit/s each way (root, iproute2); 0 = unshaped loopback")
	linkDelay := fs.Float64("link-delay-us", 0, "tcp: one-way delay added to each host's link, microseconds (needs the kernel's netem qdisc)")
	iters := fs.Int("iters", 5, "tcp: timed calls per row (the row's wall time is their median)")
	warmup := fs.Int("warmup", 1, "tcp: untimed warm-up calls per row")
	callTimeout := fs.Duration("call-timeout", 2*time.Minute, "tcp: bound on each collective call")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *transportKind != "emulated" && *transportKind != "tcp" {
		return fmt.Errorf("--transport %q: want emulated or tcp", *transportKind)
	}
	cfg := arConfig{BlockSize: *block, Segment: *seg, Fallback: *fallback, RowElems: *rowElems, Execute: *execute, Input: *input, Seed: *seed,
		HopLatency: *hopLat, HBM: *hbm}
	cfg.TPUs = splitList(*tpus)
	cfg.Topologies = splitList(*topos)
	for _, e := range splitList(*elems) {
		n, err := parseCount(e)
		if err != nil {
			return err
		}
		cfg.Elements = append(cfg.Elements, n)
	}
	for _, c := range splitList(*codecs) {
		cfg.Codecs = append(cfg.Codecs, collective.CodecKind(c))
	}
	for _, a := range splitList(*algos) {
		cfg.Algorithms = append(cfg.Algorithms, collective.Algorithm(a))
	}
	var rows []arRow
	if *transportKind == "tcp" {
		if !*execute {
			return errors.New("--transport tcp always executes; drop --execute=false")
		}
		if len(cfg.TPUs) == 0 {
			return errors.New("empty --tpu list")
		}
		tc := tcpConfig{Ranks: *ranks, TPU: cfg.TPUs[0], Elements: cfg.Elements, Codecs: cfg.Codecs, Algorithms: cfg.Algorithms,
			BlockSize: cfg.BlockSize, Segment: cfg.Segment, Fallback: cfg.Fallback, RowElems: cfg.RowElems, Input: cfg.Input, Seed: cfg.Seed,
			Warmup: *warmup, Iters: *iters, CallTimeout: *callTimeout}
		var err error
		if rows, err = runAllReduceTCP(context.Background(), tc, tcpLink{Gbps: *linkGbps, DelayUS: *linkDelay}, os.Stderr); err != nil {
			return err
		}
		if err := writeTCPTable(stdout, rows); err != nil {
			return err
		}
	} else {
		if *linkGbps != 0 || *linkDelay != 0 {
			return errors.New("--link-gbps and --link-delay-us need --transport tcp")
		}
		var err error
		if rows, err = runAllReduceSweep(context.Background(), cfg); err != nil {
			return err
		}
		if err := writeTable(stdout, rows); err != nil {
			return err
		}
	}
	if *jsonOut != "" {
		if err := writeJSON(*jsonOut, rows); err != nil {
			return err
		}
	}
	if *csvOut != "" {
		if err := writeCSV(*csvOut, rows); err != nil {
			return err
		}
	}
	if *plotOut != "" {
		if err := writePlot(*plotOut, rows); err != nil {
			return err
		}
	}
	return nil
}

func (c arConfig) validate() error {
	if len(c.TPUs) == 0 || len(c.Topologies) == 0 || len(c.Elements) == 0 || len(c.Codecs) == 0 || len(c.Algorithms) == 0 {
		return errors.New("empty --tpu, --topology, --elements, --codecs or --algorithms list")
	}
	if c.Input != "normal" && c.Input != "heavy" {
		return fmt.Errorf("--input %q: want normal or heavy", c.Input)
	}
	return nil
}

func runAllReduceSweep(ctx context.Context, cfg arConfig) ([]arRow, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var rows []arRow
	for _, tn := range cfg.TPUs {
		prof, err := tpu.LoadProfile(tn)
		if err != nil {
			return nil, err
		}
		if cfg.HopLatency >= 0 {
			prof.HopLatencySeconds = cfg.HopLatency
			prof.Name += fmt.Sprintf("(lat=%g)", cfg.HopLatency)
		}
		if cfg.HBM > 0 {
			prof.HBMBytesPerSec = cfg.HBM
			prof.Name += fmt.Sprintf("(hbm=%g)", cfg.HBM)
		}
		for _, ts := range cfg.Topologies {
			topo, err := tpu.ParseTopology(ts)
			if err != nil {
				return nil, err
			}
			for _, n := range cfg.Elements {
				var in [][]float32
				var exact []float64
				if cfg.Execute {
					in, exact = benchInputs(cfg.Input, topo.Size(), n, cfg.Seed)
				}
				for _, algo := range cfg.Algorithms {
					if algo == collective.AlgoTorus2D && topo.Kind != tpu.KindTorus {
						continue
					}
					for _, ck := range cfg.Codecs {
						r, err := benchOne(ctx, cfg, prof, topo, n, ck, algo, in, exact)
						if err != nil {
							return nil, fmt.Errorf("%s %s %d %s %s: %w", tn, ts, n, ck, algo, err)
						}
						rows = append(rows, r)
					}
				}
			}
		}
	}
	return rows, nil
}

func benchInputs(kind string, size, n int, seed uint64) ([][]float32, []float64) {
	in := make([][]float32, size)
	exact := make([]float64, n)
	for r := range in {
		in[r] = benchInput(kind, r, n, seed)
		for i, v := range in[r] {
			exact[i] += float64(v)
		}
	}
	return in, exact
}

// benchInput is rank r's input: seeded normal values (heavy: with three
// 1000x outliers), the same in every process that draws it.
func benchInput(kind string, r, n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, uint64(r)))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	if kind == "heavy" && n > 0 {
		for k := 0; k < 3; k++ {
			x[rng.IntN(n)] = float32(1000 * rng.NormFloat64())
		}
	}
	return x
}

func benchOne(ctx context.Context, cfg arConfig, prof tpu.Profile, topo tpu.Topology, n int,
	ck collective.CodecKind, algo collective.Algorithm, in [][]float32, exact []float64) (arRow, error) {
	opts := collective.Options{Codec: ck, BlockSize: cfg.BlockSize, Algorithm: algo, SegmentElems: cfg.Segment, FallbackElems: cfg.Fallback, RowElems: cfg.RowElems}
	est, err := collective.Estimate(topo, prof, n, opts)
	if err != nil {
		return arRow{}, err
	}
	bfOpts := opts
	bfOpts.Codec = collective.CodecBF16
	bf, err := collective.Estimate(topo, prof, n, bfOpts)
	if err != nil {
		return arRow{}, err
	}
	row := arRow{
		Transport: "emulated", TPU: prof.Name, Topology: topo.String(), Devices: topo.Size(), Elements: n,
		Codec: string(ck), CodecUsed: string(est.Codec), Algorithm: string(algo), AlgorithmUsed: string(est.Algorithm),
		BlockSize: est.BlockSize, SegmentElems: est.SegmentElems, WireBytes: est.WireBytes,
		SimSeconds: est.SimSeconds, BF16SimSeconds: bf.SimSeconds, RowElems: cfg.RowElems, Stripes: est.Stripes,
	}
	if est.SimSeconds > 0 {
		row.SpeedupVsBF16 = bf.SimSeconds / est.SimSeconds
		row.AlgoBWBytesPerSec = 2 * float64(n) / est.SimSeconds
		row.BusBWBytesPerSec = row.AlgoBWBytesPerSec * 2 * float64(topo.Size()-1) / float64(topo.Size())
	}
	if est.WireBytes > 0 {
		row.WireRatioVsBF16 = float64(bf.WireBytes) / float64(est.WireBytes)
	}
	if !cfg.Execute {
		return row, nil
	}
	m, err := tpu.NewMesh(topo, prof)
	if err != nil {
		return arRow{}, err
	}
	comms, err := collective.NewGroup(m)
	if err != nil {
		return arRow{}, err
	}
	bufs := make([][]float32, topo.Size())
	for r := range bufs {
		bufs[r] = append([]float32(nil), in[r]...)
	}
	stats := make([]collective.Stats, topo.Size())
	errs := make([]error, topo.Size())
	opts.Timeout = 10 * time.Minute
	var wg sync.WaitGroup
	start := time.Now()
	for r := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[r], errs[r] = comms[r].AllReduce(ctx, bufs[r], opts)
		}()
	}
	wg.Wait()
	row.WallSeconds = time.Since(start).Seconds()
	if err := errors.Join(errs...); err != nil {
		return arRow{}, err
	}
	sim := 0.0
	for _, s := range stats {
		sim = max(sim, s.SimSeconds)
	}
	if sim != est.SimSeconds {
		return arRow{}, fmt.Errorf("executed %g simulated s but the estimator priced %g s", sim, est.SimSeconds)
	}
	for r := 1; r < len(bufs); r++ {
		for i := range bufs[r] {
			if math.Float32bits(bufs[r][i]) != math.Float32bits(bufs[0][i]) {
				return arRow{}, fmt.Errorf("rank %d differs from rank 0 at element %d", r, i)
			}
		}
	}
	b := est.BlockSize
	if b <= 1 {
		b = collective.DefaultBlockSize
	}
	row.RelErrRMS, row.MaxErrOverBlockAbsmax = errorStats(bufs[0], exact, b)
	row.Executed = true
	return row, nil
}

func errorStats(out []float32, exact []float64, block int) (relRMS, maxOverAbsmax float64) {
	var num, den float64
	for lo := 0; lo < len(out); lo += block {
		hi := min(lo+block, len(out))
		am := 0.0
		for i := lo; i < hi; i++ {
			am = max(am, math.Abs(exact[i]))
		}
		for i := lo; i < hi; i++ {
			d := float64(out[i]) - exact[i]
			num += d * d
			den += exact[i] * exact[i]
			if am > 0 {
				maxOverAbsmax = max(maxOverAbsmax, math.Abs(d)/am)
			}
		}
	}
	if den > 0 {
		relRMS = math.Sqrt(num / den)
	}
	return relRMS, maxOverAbsmax
}

func writeTable(w io.Writer, rows []arRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tpu\ttopology\tN\telements\tcodec\talgorithm\twire bytes/rank\tsim TPU us\tspeedup vs bf16 (sim)\twire ratio\talgbw GB/s (sim)\tbusbw GB/s (sim)\tCPU wall ms\trel err rms\tmax err/block absmax\t")
	for _, r := range rows {
		codec := r.CodecUsed
		if r.CodecUsed != r.Codec {
			codec = r.Codec + "->" + r.CodecUsed
		}
		wall, rel, mx := "-", "-", "-"
		if r.Executed {
			wall = fmt.Sprintf("%.1f", r.WallSeconds*1e3)
			rel = fmt.Sprintf("%.2e", r.RelErrRMS)
			mx = fmt.Sprintf("%.2e", r.MaxErrOverBlockAbsmax)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%d\t%.2f\t%.3f\t%.3f\t%.1f\t%.1f\t%s\t%s\t%s\t\n",
			r.TPU, r.Topology, r.Devices, r.Elements, codec, r.AlgorithmUsed, r.WireBytes, r.SimSeconds*1e6,
			r.SpeedupVsBF16, r.WireRatioVsBF16, r.AlgoBWBytesPerSec/1e9, r.BusBWBytesPerSec/1e9, wall, rel, mx)
	}
	return tw.Flush()
}

func writeJSON(path string, rows []arRow) error {
	if rows == nil {
		rows = []arRow{}
	}
	b, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(path, append(b, '\n'))
}

// writeFile writes an output file, creating its directory (--json
// out/x.json works in a fresh clone).
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeCSV(path string, rows []arRow) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"tpu", "topology", "devices", "elements", "codec", "codec_used", "algorithm", "algorithm_used",
		"block_size", "segment_elems", "wire_bytes", "sim_seconds", "bf16_sim_seconds", "speedup_vs_bf16",
		"wire_ratio_vs_bf16", "algo_bw_bytes_per_sec", "bus_bw_bytes_per_sec", "wall_seconds", "rel_err_rms",
		"max_err_over_block_absmax", "executed", "transport", "link_gbps", "link_delay_us", "codec_seconds",
		"crc_seconds", "send_seconds", "recv_wait_seconds", "wire_floor_seconds", "socket_bytes", "goodput_gbps",
		"sim_speedup_vs_bf16", "wall_min_seconds", "loadavg", "cpu_seconds", "cpu_floor_seconds", "encode_seconds", "decode_seconds", "codec_seconds_all_ranks"})
	g := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, r := range rows {
		rec := []string{r.TPU, r.Topology, strconv.Itoa(r.Devices), strconv.Itoa(r.Elements), r.Codec, r.CodecUsed,
			r.Algorithm, r.AlgorithmUsed, strconv.Itoa(r.BlockSize), strconv.Itoa(r.SegmentElems),
			strconv.FormatInt(r.WireBytes, 10), g(r.SimSeconds), g(r.BF16SimSeconds), g(r.SpeedupVsBF16),
			g(r.WireRatioVsBF16), g(r.AlgoBWBytesPerSec), g(r.BusBWBytesPerSec), g(r.WallSeconds), g(r.RelErrRMS),
			g(r.MaxErrOverBlockAbsmax), strconv.FormatBool(r.Executed), r.Transport}
		if t := r.TCPFields; t != nil {
			rec = append(rec, g(t.LinkGbps), g(t.LinkDelayUS), g(t.CodecSeconds), g(t.CRCSeconds), g(t.SendSeconds),
				g(t.RecvWaitSeconds), g(t.WireFloorSeconds), strconv.FormatInt(t.SocketBytes, 10), g(t.GoodputGbps),
				g(t.SimSpeedupVsBF16), g(t.WallMinSeconds), t.LoadAvg, g(t.CPUSeconds), g(t.CPUFloorSeconds),
				g(t.EncodeSeconds), g(t.DecodeSeconds), g(t.CodecSecondsAllRanks))
		} else {
			rec = append(rec, make([]string, 17)...)
		}
		w.Write(rec)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// writePlot draws simulated speedup vs bf16 over message size: one line per
// (tpu, topology, codec, algorithm) for codecs other than bf16.
func writePlot(path string, rows []arRow) error {
	p := plot.New()
	p.Title.Text = "AllReduce speedup over bf16 (simulated TPU time)"
	p.X.Label.Text = "elements (log scale)"
	p.Y.Label.Text = "speedup vs bf16 (simulated)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	series := map[string]plotter.XYs{}
	for _, r := range rows {
		if r.Codec == string(collective.CodecBF16) || r.Elements <= 0 || r.SpeedupVsBF16 <= 0 {
			continue
		}
		k := fmt.Sprintf("%s %s %s %s", r.TPU, r.Topology, r.Codec, r.Algorithm)
		series[k] = append(series[k], plotter.XY{X: float64(r.Elements), Y: r.SpeedupVsBF16})
	}
	if len(series) == 0 {
		return errors.New("plot: no rows with a codec other than bf16 and a positive size")
	}
	if err := addSeries(p, series); err != nil {
		return err
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	if err := p.Save(9*vg.Inch, 6*vg.Inch, path); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// addSeries draws one line with point markers per series, in key order, each
// sorted by X, with a legend entry.
func addSeries(p *plot.Plot, series map[string]plotter.XYs) error {
	keys := make([]string, 0, len(series))
	for k := range series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		xy := series[k]
		sort.Slice(xy, func(a, b int) bool { return xy[a].X < xy[b].X })
		l, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i / 7)
		pts.Color = plotutil.Color(i)
		pts.Shape = plotutil.Shape(i)
		p.Add(l, pts)
		p.Legend.Add(k, l, pts)
	}
	return nil
}
