package cost

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/equarx/equarx/tpu"
)

// Exec selects how a TPU executes the operations. The zero value is the
// baseline: float32 activations, every element-wise op its own HBM pass,
// matmuls and attention FLOPs at peak bf16 FLOP/s, no launch overheads, ICI
// links at their nominal rate. Each field switches on one part of an
// XLA-like execution (XLA returns all of them on).
type Exec struct {
	// BF16: activations are bf16 (2 bytes) in HBM instead of float32.
	BF16 bool `json:"bf16"`
	// Fuse: element-wise ops run in the adjacent matmul's prologue or
	// epilogue, or as one pass per residual add (Op.FusedElems).
	Fuse bool `json:"fuse"`
	// MatmulCurve: a matmul runs at an achievable fraction of peak that
	// depends on its shape (mxu_ceiling times the fraction of the matrix
	// unit's tiles its dimensions fill), and never faster than its HBM
	// traffic (activations in and out, bf16 weights) allows.
	MatmulCurve bool `json:"matmul_curve"`
	// FlashAttention: attention is one fused kernel (scores stay on chip):
	// its FLOPs at the matmul ceiling or its q, k, v, output traffic at HBM
	// bandwidth, whichever is slower; otherwise the softmax makes three
	// passes over float32-or-bf16 scores.
	FlashAttention bool `json:"flash_attention"`
	// Overheads: every kernel (matmul, attention, unfused element-wise pass)
	// costs kernel_launch_seconds, and every prefill program
	// dispatch_seconds.
	Overheads bool `json:"overheads"`
	// ICIDerate: ICI links carry ici_efficiency of their nominal rate and
	// each hop costs ici_hop_latency_seconds (collectives only).
	ICIDerate bool `json:"ici_derate"`
}

// XLA is the XLA-like execution with every part on.
func XLA() Exec {
	return Exec{BF16: true, Fuse: true, MatmulCurve: true, FlashAttention: true, Overheads: true, ICIDerate: true}
}

// execParts names the switches for ParseExec and String.
var execParts = []struct {
	name string
	get  func(*Exec) *bool
}{
	{"bf16", func(e *Exec) *bool { return &e.BF16 }},
	{"fuse", func(e *Exec) *bool { return &e.Fuse }},
	{"curve", func(e *Exec) *bool { return &e.MatmulCurve }},
	{"flash", func(e *Exec) *bool { return &e.FlashAttention }},
	{"overheads", func(e *Exec) *bool { return &e.Overheads }},
	{"ici", func(e *Exec) *bool { return &e.ICIDerate }},
}

// ParseExec reads "baseline", "xla", or a comma list of parts (bf16, fuse,
// curve, flash, overheads, ici) added to the baseline; "xla,-fuse" is xla
// without one part.
func ParseExec(s string) (Exec, error) {
	var e Exec
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch f {
		case "", "baseline":
			continue
		case "xla":
			e = XLA()
			continue
		}
		on := true
		if strings.HasPrefix(f, "-") {
			on, f = false, f[1:]
		}
		found := false
		for _, p := range execParts {
			if p.name == f {
				*p.get(&e) = on
				found = true
			}
		}
		if !found {
			return Exec{}, fmt.Errorf("cost: unknown execution part %q (want baseline, xla or one of %s)", f, partNames())
		}
	}
	return e, nil
}

func partNames() string {
	var ns []string
	for _, p := range execParts {
		ns = append(ns, p.name)
	}
	return strings.Join(ns, ", ")
}

// String is the inverse of ParseExec: "baseline", "xla", or the parts on.
func (e Exec) String() string {
	if e == (Exec{}) {
		return "baseline"
	}
	if e == XLA() {
		return "xla"
	}
	var on []string
	for _, p := range execParts {
		if *p.get(&e) {
			on = append(on, p.name)
		}
	}
	return strings.Join(on, ",")
}

// Constant is one figure of the execution model with its plausible range
// and where it comes from.
type Constant struct {
	Value float64 `json:"value"`
	// Min and Max bound the values the figure may plausibly take; a fitted
	// figure outside them means the model is wrong, not the hardware.
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	// Origin is "published" (a public figure), "fitted" (chosen so that the
	// calibration row named in Source matches) or "assumed".
	Origin string `json:"origin"`
	Source string `json:"source"`
}

// Constants are one TPU generation's execution figures.
type Constants struct {
	MXUCeiling           Constant `json:"mxu_ceiling"`
	MXUTile              Constant `json:"mxu_tile"`
	KernelLaunchSeconds  Constant `json:"kernel_launch_seconds"`
	DispatchSeconds      Constant `json:"dispatch_seconds"`
	ICIEfficiency        Constant `json:"ici_efficiency"`
	ICIHopLatencySeconds Constant `json:"ici_hop_latency_seconds"`
}

// Named lists the constants by JSON name.
func (c Constants) Named() map[string]Constant {
	return map[string]Constant{
		"mxu_ceiling": c.MXUCeiling, "mxu_tile": c.MXUTile,
		"kernel_launch_seconds": c.KernelLaunchSeconds, "dispatch_seconds": c.DispatchSeconds,
		"ici_efficiency": c.ICIEfficiency, "ici_hop_latency_seconds": c.ICIHopLatencySeconds,
	}
}

// Validate reports a constant without a source or outside its range.
func (c Constants) Validate() error {
	named := c.Named()
	keys := make([]string, 0, len(named))
	for k := range named {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := named[k]
		switch v.Origin {
		case "published", "fitted", "assumed":
		default:
			return fmt.Errorf("%s: origin %q (want published, fitted or assumed)", k, v.Origin)
		}
		if v.Source == "" {
			return fmt.Errorf("%s: no source", k)
		}
		if !(v.Min <= v.Value && v.Value <= v.Max) {
			return fmt.Errorf("%s = %g outside its plausible range [%g, %g]", k, v.Value, v.Min, v.Max)
		}
	}
	if !(c.MXUCeiling.Value > 0 && c.MXUCeiling.Value <= 1) || !(c.MXUTile.Value >= 1) ||
		!(c.ICIEfficiency.Value > 0 && c.ICIEfficiency.Value <= 1) {
		return fmt.Errorf("mxu_ceiling and ici_efficiency must be in (0, 1], mxu_tile >= 1")
	}
	return nil
}

//go:embed xla.json
var xlaJSON []byte

var xlaConstants = mustParseConstants(xlaJSON)

func mustParseConstants(b []byte) map[string]Constants {
	m, err := ParseConstants(b)
	if err != nil {
		panic(err)
	}
	return m
}

// ParseConstants reads a JSON object of Constants keyed by TPU generation
// and validates each.
func ParseConstants(b []byte) (map[string]Constants, error) {
	var m map[string]Constants
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("cost: parse constants: %w", err)
	}
	for k, c := range m {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("cost: constants of %s: %w", k, err)
		}
	}
	return m, nil
}

// ConstantsOf returns the embedded execution constants of a TPU generation
// (configs/tpu/xla.json).
func ConstantsOf(tpuName string) (Constants, error) {
	c, ok := xlaConstants[tpuName]
	if !ok {
		return Constants{}, fmt.Errorf("cost: no execution constants for TPU %q", tpuName)
	}
	return c, nil
}

// Model prices operations on one TPU generation under an Exec.
type Model struct {
	exec  Exec
	prof  tpu.Profile
	c     Constants
	width float64 // bytes per activation value
}

// NewModel binds an Exec to a profile. The baseline needs no execution
// constants; any other Exec takes the profile's from ConstantsOf.
func NewModel(e Exec, p tpu.Profile) (*Model, error) {
	if !(p.PeakBF16FLOPS > 0) || !(p.HBMBytesPerSec > 0) {
		return nil, fmt.Errorf("cost: profile %q has no peak FLOP/s or HBM bandwidth", p.Name)
	}
	m := &Model{exec: e, prof: p, width: 4}
	if e.BF16 {
		m.width = 2
	}
	if e != (Exec{}) {
		c, err := ConstantsOf(p.Name)
		if err != nil {
			return nil, err
		}
		m.c = c
	}
	return m, nil
}

// NewModelWith binds an Exec to a profile with the given constants instead
// of the embedded ones (for fitting them); they are not validated.
func NewModelWith(e Exec, p tpu.Profile, c Constants) (*Model, error) {
	m, err := NewModel(Exec{}, p)
	if err != nil {
		return nil, err
	}
	m.exec, m.c = e, c
	if e.BF16 {
		m.width = 2
	}
	return m, nil
}

// Exec returns the model's execution switches.
func (m *Model) Exec() Exec { return m.exec }

// Constants returns the constants the model uses.
func (m *Model) Constants() Constants { return m.c }

// Profile returns the profile the model prices compute on.
func (m *Model) Profile() tpu.Profile { return m.prof }

// NetworkProfile is the profile collectives run on: the model's profile,
// with ICIDerate its link rate times ici_efficiency and its per-hop latency
// ici_hop_latency_seconds.
func (m *Model) NetworkProfile() tpu.Profile {
	p := m.prof
	if !m.exec.ICIDerate {
		return p
	}
	src := make(map[string]string, len(p.Sources))
	for k, v := range p.Sources {
		src[k] = v
	}
	p.ICIBytesPerSecPerLinkDir *= m.c.ICIEfficiency.Value
	p.HopLatencySeconds = m.c.ICIHopLatencySeconds.Value
	src["ici_bytes_per_sec_per_link_dir"] = fmt.Sprintf("%s; times ici_efficiency %g (%s)",
		src["ici_bytes_per_sec_per_link_dir"], m.c.ICIEfficiency.Value, m.c.ICIEfficiency.Source)
	src["hop_latency_seconds"] = fmt.Sprintf("ici_hop_latency_seconds %g (%s)",
		m.c.ICIHopLatencySeconds.Value, m.c.ICIHopLatencySeconds.Source)
	p.Sources = src
	return p
}

// tileFill is the fraction of a dimension's matrix-unit tiles it fills.
func tileFill(x int, tile float64) float64 {
	if x <= 0 {
		return 1
	}
	t := math.Ceil(float64(x)/tile) * tile
	return float64(x) / t
}

// mxuRows is how many activation rows the matrix unit takes per pass
// (bf16[8,128] @ bf16[128,128] on every generation; JAX scaling book,
// https://jax-ml.github.io/scaling-book/tpus/).
const mxuRows = 8

// MatmulEfficiency is the achievable fraction of peak of a matmul of this
// shape under MatmulCurve: mxu_ceiling x the fraction of the matrix unit's
// passes the shape fills (M in groups of 8 rows, N and K in mxu_tile).
func (m *Model) MatmulEfficiency(M, N, K int) float64 {
	t := m.c.MXUTile.Value
	return m.c.MXUCeiling.Value * tileFill(M, mxuRows) * tileFill(N, t) * tileFill(K, t)
}

// Seconds is the simulated time of one operation.
func (m *Model) Seconds(o Op) float64 {
	e := m.exec
	peak, hbm := m.prof.PeakBF16FLOPS, m.prof.HBMBytesPerSec
	launch := 0.0
	if e.Overheads {
		launch = m.c.KernelLaunchSeconds.Value
	}
	switch o.Kind {
	case Matmul:
		f := o.FLOPs()
		if f == 0 {
			return 0
		}
		if !e.MatmulCurve {
			return f/peak + launch
		}
		bytes := m.width*float64(o.M)*float64(o.K+o.N) + 2*float64(o.K)*float64(o.N)
		return max(f/(peak*m.MatmulEfficiency(o.M, o.N, o.K)), bytes/hbm) + launch
	case Attention:
		f := o.FLOPs()
		if f == 0 {
			return 0
		}
		eff := 1.0
		if e.MatmulCurve {
			eff = m.c.MXUCeiling.Value * tileFill(o.HeadDim, m.c.MXUTile.Value)
		}
		if e.FlashAttention {
			return max(f/(peak*eff), o.FusedElems*m.width/hbm) + launch
		}
		// Scores are float32 whatever the activations (a softmax in f32).
		return f/(peak*eff) + o.Elems*4/hbm + 3*launch
	case Elementwise:
		v := o.Elems
		if e.Fuse {
			v = o.FusedElems
		}
		if v == 0 {
			return 0
		}
		return v*m.width/hbm + launch
	case Dispatch:
		if e.Overheads {
			return m.c.DispatchSeconds.Value
		}
		return 0
	}
	return 0
}
