package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/cost"
	"github.com/equarx/equarx/perfmodel"
	"github.com/equarx/equarx/tpu"
)

func init() {
	register("calibrate", "compare the cost model with published TPU measurements (configs/calibration)", runCalibrateCmd)
}

// The band a matched row's simulated/measured ratio must fall in.
const (
	calBandLo = 0.8
	calBandHi = 1.25
)

// calRow is one published measurement (configs/calibration/*.json).
type calRow struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // "prefill" or "allgather"
	What string `json:"what"`
	// Source is where the figure is published; Quote the figure as
	// printed there.
	Source          string  `json:"source"`
	Quote           string  `json:"quote"`
	MeasuredSeconds float64 `json:"measured_seconds"`
	// Use: "fit:<constant>" (the row fixes that execution constant of its
	// TPU), "check" (held out: the model must match it), or "bound" (the
	// model prices only part of the measured work, so it must stay below).
	Use    string    `json:"use"`
	Config calConfig `json:"config"`
	Note   string    `json:"note,omitempty"`
}

type calConfig struct {
	Model    string `json:"model,omitempty"`
	TPU      string `json:"tpu"`
	Topology string `json:"topology"`
	Lengths  []int  `json:"lengths,omitempty"` // prefill: sequence lengths of one batch
	Repeat   int    `json:"repeat,omitempty"`  // prefill: batches run one after another (0 = 1)
	Codec    string `json:"codec,omitempty"`   // prefill: AllReduce codec
	Elements int    `json:"elements,omitempty"`
	// Exec changes the execution model where the measured implementation
	// is known to differ, as parts added to or removed from the model under
	// test (e.g. "-flash": it computed attention without a fused kernel).
	Exec string `json:"exec,omitempty"`
}

// calResult is a row priced by the model.
type calResult struct {
	calRow
	SimSeconds float64 `json:"sim_seconds"`
	Ratio      float64 `json:"ratio"` // simulated / measured
	Pass       bool    `json:"pass"`  // within the band (bound rows: ratio <= 1)
}

// fitConstant returns the constant a row fixes, or "".
func (r calRow) fitConstant() string {
	if c, ok := strings.CutPrefix(r.Use, "fit:"); ok {
		return c
	}
	return ""
}

func (r calRow) validate() error {
	switch {
	case r.ID == "" || r.Source == "" || r.Quote == "":
		return errors.New("id, source and quote are required")
	case !(r.MeasuredSeconds > 0):
		return fmt.Errorf("measured_seconds %g", r.MeasuredSeconds)
	case r.Use != "check" && r.Use != "bound" && r.fitConstant() == "":
		return fmt.Errorf("use %q (want check, bound or fit:<constant>)", r.Use)
	}
	switch r.Kind {
	case "prefill":
		if r.Config.Model == "" || len(r.Config.Lengths) == 0 {
			return errors.New("prefill needs model and lengths")
		}
	case "allgather":
		if r.Config.Elements < 1 {
			return errors.New("allgather needs elements")
		}
	default:
		return fmt.Errorf("kind %q (want prefill or allgather)", r.Kind)
	}
	return nil
}

// loadCalibration reads every configs/calibration/*.json of root (each a
// JSON array of rows), in file and row order.
func loadCalibration(root string) ([]calRow, error) {
	files, err := filepath.Glob(filepath.Join(root, "configs", "calibration", "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no configs/calibration/*.json under %s", root)
	}
	sort.Strings(files)
	var rows []calRow
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var rs []calRow
		if err := json.Unmarshal(b, &rs); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, r := range rs {
			if err := r.validate(); err != nil {
				return nil, fmt.Errorf("%s: row %q: %w", f, r.ID, err)
			}
			if seen[r.ID] {
				return nil, fmt.Errorf("%s: duplicate row id %q", f, r.ID)
			}
			seen[r.ID] = true
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// calibrator prices rows under one execution model with a set of constants
// per TPU (nil entries: the embedded ones).
type calibrator struct {
	root   string
	exec   string // cost.ParseExec form
	consts map[string]cost.Constants
}

func (c *calibrator) constants(name string) (cost.Constants, error) {
	if k, ok := c.consts[name]; ok {
		return k, nil
	}
	return cost.ConstantsOf(name)
}

// simulate is the model's time for a row's configuration.
func (c *calibrator) simulate(r calRow) (float64, error) {
	prof, err := tpu.LoadProfile(r.Config.TPU)
	if err != nil {
		return 0, err
	}
	topo, err := tpu.ParseTopology(r.Config.Topology)
	if err != nil {
		return 0, err
	}
	k, err := c.constants(r.Config.TPU)
	if err != nil {
		return 0, err
	}
	exec, err := cost.ParseExec(c.exec + "," + r.Config.Exec)
	if err != nil {
		return 0, err
	}
	switch r.Kind {
	case "allgather":
		cm, err := cost.NewModelWith(exec, prof, k)
		if err != nil {
			return 0, err
		}
		e, err := collective.EstimateAllGather(topo, cm.NetworkProfile(), r.Config.Elements)
		if err != nil {
			return 0, err
		}
		return e.SimSeconds, nil
	case "prefill":
		mc, err := loadModel(r.Config.Model, c.root)
		if err != nil {
			return 0, err
		}
		codec := collective.CodecKind(r.Config.Codec)
		if codec == "" {
			codec = collective.CodecBF16
		}
		est, err := perfmodel.Price(mc, r.Config.Lengths, perfmodel.Setup{TP: topo.Size(), Topology: topo, Profile: prof,
			AllReduce: collective.Options{Codec: codec}, Exec: exec, Constants: &k})
		if err != nil {
			return 0, err
		}
		return est.SimSeconds * float64(max(1, r.Config.Repeat)), nil
	}
	return 0, fmt.Errorf("row %q: kind %q", r.ID, r.Kind)
}

func (c *calibrator) run(rows []calRow) ([]calResult, error) {
	out := make([]calResult, len(rows))
	for i, r := range rows {
		s, err := c.simulate(r)
		if err != nil {
			return nil, fmt.Errorf("row %q: %w", r.ID, err)
		}
		ratio := s / r.MeasuredSeconds
		pass := ratio >= calBandLo && ratio <= calBandHi
		if r.Use == "bound" {
			pass = ratio <= 1
		}
		out[i] = calResult{calRow: r, SimSeconds: s, Ratio: ratio, Pass: pass}
	}
	return out, nil
}

// setConstant returns k with the named constant's value replaced.
func setConstant(k cost.Constants, name string, v float64) (cost.Constants, error) {
	var p *cost.Constant
	switch name {
	case "mxu_ceiling":
		p = &k.MXUCeiling
	case "kernel_launch_seconds":
		p = &k.KernelLaunchSeconds
	case "dispatch_seconds":
		p = &k.DispatchSeconds
	case "ici_efficiency":
		p = &k.ICIEfficiency
	case "ici_hop_latency_seconds":
		p = &k.ICIHopLatencySeconds
	default:
		return k, fmt.Errorf("constant %q cannot be fitted", name)
	}
	p.Value = v
	return k, nil
}

// fit solves, row by row in table order, each "fit:<constant>" row for the
// value of its constant (within the constant's plausible range) at which the
// simulated time equals the measured one, by bisection (the time is
// monotonic in each fitted constant). Later rows see earlier fits. It
// returns the fitted constants per TPU and, per row, the value found and
// whether the range held a solution.
func (c *calibrator) fit(rows []calRow) ([]fitResult, error) {
	var out []fitResult
	for _, r := range rows {
		name := r.fitConstant()
		if name == "" {
			continue
		}
		k, err := c.constants(r.Config.TPU)
		if err != nil {
			return nil, err
		}
		cur, ok := k.Named()[name]
		if !ok {
			return nil, fmt.Errorf("row %q: unknown constant %q", r.ID, name)
		}
		ratioAt := func(v float64) (float64, error) {
			kk, err := setConstant(k, name, v)
			if err != nil {
				return 0, err
			}
			c.consts[r.Config.TPU] = kk
			s, err := c.simulate(r)
			return s / r.MeasuredSeconds, err
		}
		lo, hi := cur.Min, cur.Max
		rlo, err := ratioAt(lo)
		if err != nil {
			return nil, err
		}
		rhi, err := ratioAt(hi)
		if err != nil {
			return nil, err
		}
		inRange := (rlo-1)*(rhi-1) <= 0
		v := lo
		if inRange {
			for range 60 {
				mid := (lo + hi) / 2
				rm, err := ratioAt(mid)
				if err != nil {
					return nil, err
				}
				if (rm-1)*(rlo-1) > 0 {
					lo, rlo = mid, rm
				} else {
					hi = mid
				}
			}
			v = (lo + hi) / 2
		} else if abs(rhi-1) < abs(rlo-1) {
			v = hi
		}
		if _, err := ratioAt(v); err != nil {
			return nil, err
		}
		out = append(out, fitResult{Row: r.ID, TPU: r.Config.TPU, Constant: name, Value: v, Stored: cur.Value, InRange: inRange})
	}
	return out, nil
}

type fitResult struct {
	Row      string  `json:"row"`
	TPU      string  `json:"tpu"`
	Constant string  `json:"constant"`
	Value    float64 `json:"value"`  // fitted
	Stored   float64 `json:"stored"` // in configs/tpu/xla.json
	InRange  bool    `json:"in_range"`
}

func abs(x float64) float64 { return max(x, -x) }

func runCalibrateCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("calibrate", flag.ContinueOnError)
	execFlag := fs.String("exec", "xla", "execution model: baseline, xla, or a comma list of parts (bf16, fuse, curve, flash, overheads, ici; -part removes one from xla)")
	doFit := fs.Bool("fit", false, "also solve each fit:<constant> row for its constant (printed; configs/tpu/xla.json holds the stored values)")
	jsonOut := fs.String("json", "", "write the rows with their simulated times as JSON to this file")
	mdOut := fs.String("markdown", "", "write the table as Markdown to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	exec, err := cost.ParseExec(*execFlag)
	if err != nil {
		return err
	}
	root, err := findRepoRoot()
	if err != nil {
		return err
	}
	rows, err := loadCalibration(root)
	if err != nil {
		return err
	}
	c := &calibrator{root: root, exec: *execFlag, consts: map[string]cost.Constants{}}
	res, err := c.run(rows)
	if err != nil {
		return err
	}
	writeCalTable(stdout, exec, res)
	if *doFit {
		f := &calibrator{root: root, exec: *execFlag, consts: map[string]cost.Constants{}}
		fits, err := f.fit(rows)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "\nfit row\ttpu\tconstant\tfitted\tstored\tsolution in range")
		for _, r := range fits {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.4g\t%.4g\t%v\n", r.Row, r.TPU, r.Constant, r.Value, r.Stored, r.InRange)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if *mdOut != "" {
		var b strings.Builder
		writeCalMarkdown(&b, exec, res)
		if err := os.WriteFile(*mdOut, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func calConfigString(r calRow) string {
	c := r.Config
	if r.Kind == "allgather" {
		return fmt.Sprintf("%s %s, %d bf16 values", c.TPU, c.Topology, c.Elements)
	}
	s := fmt.Sprintf("%s %s %s, tokens %v, %s AllReduce", c.Model, c.TPU, c.Topology, c.Lengths, c.Codec)
	if c.Repeat > 1 {
		s += fmt.Sprintf(", x%d", c.Repeat)
	}
	if c.Exec != "" {
		s += ", exec " + c.Exec
	}
	return s
}

func writeCalTable(w io.Writer, exec cost.Exec, res []calResult) {
	fmt.Fprintf(w, "execution model: %s; band %.2f-%.2f (bound rows: ratio <= 1)\n", exec, calBandLo, calBandHi)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "id\tuse\tconfiguration\tmeasured s\tsimulated s\tratio\tpass")
	for _, r := range res {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.4g\t%.4g\t%.3f\t%v\n", r.ID, r.Use, calConfigString(r.calRow),
			r.MeasuredSeconds, r.SimSeconds, r.Ratio, r.Pass)
	}
	tw.Flush()
}

func writeCalMarkdown(w io.Writer, exec cost.Exec, res []calResult) {
	fmt.Fprintf(w, "Execution model `%s`; pass = simulated/measured in [%.2f, %.2f] (bound rows: at most 1).\n\n", exec, calBandLo, calBandHi)
	fmt.Fprintln(w, "| id | measurement | use | configuration | measured | simulated | sim/measured | pass |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, r := range res {
		fmt.Fprintf(w, "| %s | %s ([source](%s)) | %s | %s | %s | %s | %.3f | %s |\n", r.ID, r.What,
			strings.Fields(r.Source)[0], r.Use, calConfigString(r.calRow), fmtSeconds(r.MeasuredSeconds),
			fmtSeconds(r.SimSeconds), r.Ratio, map[bool]string{true: "yes", false: "**no**"}[r.Pass])
	}
}

func fmtSeconds(s float64) string {
	switch {
	case s >= 1:
		return fmt.Sprintf("%.2f s", s)
	case s >= 1e-3:
		return fmt.Sprintf("%.2f ms", s*1e3)
	default:
		return fmt.Sprintf("%.1f us", s*1e6)
	}
}
