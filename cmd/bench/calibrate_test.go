package main

import (
	"math"
	"strings"
	"testing"

	"github.com/equarx/equarx/cost"
)

// TestCalibration is a regression check of the execution model against
// published TPU measurements (configs/calibration): under the xla model
// every matched row's simulated/measured ratio lies in [0.8, 1.25], every
// bound row stays at or below its measurement, at least three held-out
// ("check") rows match, and each fitted constant in configs/tpu/xla.json
// still reproduces the row it was fitted to (ratio 1 within 1%), so a change
// to the model that moves the fit shows here. It can fail: the figures are
// published ones, not outputs of this model.
func TestCalibration(t *testing.T) {
	root, err := findRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := loadCalibration(root)
	if err != nil {
		t.Fatal(err)
	}
	c := &calibrator{root: root, exec: "xla", consts: map[string]cost.Constants{}}
	res, err := c.run(rows)
	if err != nil {
		t.Fatal(err)
	}
	checks := 0
	for _, r := range res {
		t.Logf("%-22s %-30s measured %.4g s, simulated %.4g s, ratio %.3f", r.ID, r.Use, r.MeasuredSeconds, r.SimSeconds, r.Ratio)
		if !r.Pass {
			t.Errorf("%s (%s): ratio %.3f outside the band", r.ID, r.Use, r.Ratio)
		}
		if r.Use == "check" && r.Pass {
			checks++
		}
		if name := r.fitConstant(); name != "" {
			k, err := cost.ConstantsOf(r.Config.TPU)
			if err != nil {
				t.Fatal(err)
			}
			if k.Named()[name].Origin != "fitted" || !strings.Contains(k.Named()[name].Source, r.ID) {
				t.Errorf("%s fits %s, but configs/tpu/xla.json does not say it is fitted to this row", r.ID, name)
			}
			if math.Abs(r.Ratio-1) > 0.01 {
				t.Errorf("%s: fitted constant %s no longer fits its row: ratio %.4f (run bench calibrate --fit)", r.ID, name, r.Ratio)
			}
		}
	}
	if checks < 3 {
		t.Errorf("%d held-out rows match, want at least 3", checks)
	}
}

// TestCalibrationTableRejects: rows without a source, a quote, a positive
// figure or a known use are refused.
func TestCalibrationTableRejects(t *testing.T) {
	good := calRow{ID: "x", Kind: "allgather", Source: "s", Quote: "q", MeasuredSeconds: 1, Use: "check",
		Config: calConfig{TPU: "v5e", Topology: "ring:4", Elements: 8}}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*calRow){
		"no source":   func(r *calRow) { r.Source = "" },
		"no quote":    func(r *calRow) { r.Quote = "" },
		"no figure":   func(r *calRow) { r.MeasuredSeconds = 0 },
		"bad use":     func(r *calRow) { r.Use = "tune" },
		"bad kind":    func(r *calRow) { r.Kind = "decode" },
		"no elements": func(r *calRow) { r.Config.Elements = 0 },
	} {
		r := good
		mod(&r)
		if err := r.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
