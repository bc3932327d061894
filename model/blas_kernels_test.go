//go:build !openblas

package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/equarx/equarx/kernels"
)

// TestTensorMatMulRunsKernels: in the default build, tensor.MatMul (which
// MatMulT and MatMulNN call) runs the kernels package's Sgemm, and a packed
// Weight gives the same bits: all three are compared bitwise with a direct
// kernels.Gemm call. gonum's Sgemm sums in another order, so it would fail.
func TestTensorMatMulRunsKernels(t *testing.T) {
	if want := "kernels/" + kernels.Variant(); BLAS != want {
		t.Fatalf("BLAS = %q, want %q", BLAS, want)
	}
	const n, k, m = 37, 300, 70
	r := rand.New(rand.NewPCG(1, 1))
	x, w, y := make([]float32, n*k), make([]float32, m*k), make([]float32, k*m)
	for _, s := range [][]float32{x, w, y} {
		for i := range s {
			s[i] = float32(r.NormFloat64())
		}
	}
	same := func(what string, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: element %d = %v, kernels.Gemm gives %v", what, i, got[i], want[i])
			}
		}
	}
	want := make([]float32, n*m)
	kernels.Gemm(false, true, n, m, k, x, k, w, k, want, m, false)
	got := make([]float32, n*m)
	if _, err := MatMulT(x, n, k, w, m, got); err != nil {
		t.Fatal(err)
	}
	same("MatMulT", got, want)
	wt, err := NewWeight(w, m, k)
	if err != nil {
		t.Fatal(err)
	}
	clear(got)
	if _, err := wt.MulT(x, n, got); err != nil {
		t.Fatal(err)
	}
	same("Weight.MulT", got, want)
	kernels.Gemm(false, false, n, m, k, x, k, y, m, want, m, false)
	if _, err := MatMulNN(x, n, k, y, m, got); err != nil {
		t.Fatal(err)
	}
	same("MatMulNN", got, want)
}
