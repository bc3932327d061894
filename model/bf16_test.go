package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/equarx/equarx/kernels"
)

func roundBF16(x []float32) []uint16 {
	h := make([]uint16, len(x))
	for i, v := range x {
		b := math.Float32bits(v)
		h[i] = uint16((b + 0x7fff + (b>>16)&1) >> 16)
	}
	return h
}

// TestWeightBF16 checks a bfloat16 weight against the float32 weight
// holding the same (widened) values: bitwise in builds whose products are
// row invariant (the default), within float32 rounding otherwise; a row's
// output is bitwise the same alone or among 512 rows; Row returns the
// widened values.
func TestWeightBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 9))
	const n, out, in = 512, 1100, 300
	x := make([]float32, n*in)
	wf := make([]float32, out*in)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	for i := range wf {
		wf[i] = float32(r.NormFloat64() * 0.02)
	}
	h := roundBF16(wf)
	kernels.BF16ToF32(wf, h)
	w32, err := NewWeight(wf, out, in)
	if err != nil {
		t.Fatal(err)
	}
	w16, err := NewWeightBF16(h, out, in)
	if err != nil {
		t.Fatal(err)
	}
	if !w16.IsBF16() || w32.IsBF16() {
		t.Fatalf("IsBF16: bf16 weight %v, f32 weight %v", w16.IsBF16(), w32.IsBF16())
	}
	want := make([]float32, n*out)
	got := make([]float32, n*out)
	if _, err := w32.MulT(x, n, want); err != nil {
		t.Fatal(err)
	}
	if _, err := w16.MulT(x, n, got); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if RowInvariant && math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("element %d: bf16 weight %v, widened f32 weight %v", i, got[i], want[i])
		}
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("element %d: bf16 weight %v, widened f32 weight %v", i, got[i], want[i])
		}
	}
	if RowInvariant {
		for _, row := range []int{0, 1, 257, 511} {
			one := make([]float32, out)
			if _, err := w16.MulT(x[row*in:], 1, one); err != nil {
				t.Fatal(err)
			}
			for j := range one {
				if math.Float32bits(one[j]) != math.Float32bits(got[row*out+j]) {
					t.Fatalf("row %d col %d: %v alone, %v among %d rows", row, j, one[j], got[row*out+j], n)
				}
			}
		}
	}
	row := make([]float32, in)
	for _, i := range []int{0, 7, out - 1} {
		w16.Row(i, row)
		for j := range row {
			if row[j] != wf[i*in+j] {
				t.Fatalf("Row(%d)[%d] = %v, want %v", i, j, row[j], wf[i*in+j])
			}
		}
	}
	if _, err := NewWeightBF16(h[:10], out, in); err == nil {
		t.Errorf("NewWeightBF16 with 10 values for [%d, %d]: no error", out, in)
	}
}

func TestWeightBF16From(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	const out, in = 700, 33
	wf := make([]float32, out*in)
	for i := range wf {
		wf[i] = float32(r.NormFloat64())
	}
	h := roundBF16(wf)
	a, err := NewWeightBF16(h, out, in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewWeightBF16From(out, in, func(lo, hi int) ([]uint16, error) { return h[lo*in : hi*in], nil })
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 5*in)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	ya, yb := make([]float32, 5*out), make([]float32, 5*out)
	a.MulT(x, 5, ya)
	b.MulT(x, 5, yb)
	for i := range ya {
		if math.Float32bits(ya[i]) != math.Float32bits(yb[i]) {
			t.Fatalf("element %d: %v from one piece, %v piecewise", i, ya[i], yb[i])
		}
	}
	ra, rb := make([]float32, in), make([]float32, in)
	a.Row(699, ra)
	b.Row(699, rb)
	for i := range ra {
		if ra[i] != rb[i] {
			t.Fatalf("Row(699)[%d]: %v vs %v", i, ra[i], rb[i])
		}
	}
}

func TestWeightFrom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	const out, in = 700, 33
	wf := make([]float32, out*in)
	for i := range wf {
		wf[i] = float32(r.NormFloat64())
	}
	a, err := NewWeight(slices.Clone(wf), out, in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewWeightFrom(out, in, func(lo, hi int) ([]float32, error) { return wf[lo*in : hi*in], nil })
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 5*in)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	ya, yb := make([]float32, 5*out), make([]float32, 5*out)
	a.MulT(x, 5, ya)
	b.MulT(x, 5, yb)
	for i := range ya {
		if math.Float32bits(ya[i]) != math.Float32bits(yb[i]) {
			t.Fatalf("element %d: %v from one piece, %v piecewise", i, ya[i], yb[i])
		}
	}
	for _, i := range []int{0, 350, 699} {
		ra, rb := make([]float32, in), make([]float32, in)
		a.Row(i, ra)
		b.Row(i, rb)
		for j := range ra {
			if ra[j] != wf[i*in+j] || rb[j] != wf[i*in+j] {
				t.Fatalf("Row(%d)[%d]: %v and %v, want %v", i, j, ra[j], rb[j], wf[i*in+j])
			}
		}
	}
}
