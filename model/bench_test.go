package model

import (
	"fmt"
	"sync"
	"testing"

	"github.com/equarx/equarx/kernels"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// sgemmImpl is one BLAS to compare; threads sets how many threads it may
// use (nil: fixed).
type sgemmImpl struct {
	name    string
	sgemm   func(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
	threads func(n int) (restore func())
}

// sgemmImpls: gonum's pure-Go Sgemm (gorgonia's default, and this
// project's before the kernels package) and the kernels package; the
// openblas build tag adds OpenBLAS (bench_openblas_test.go).
var sgemmImpls = []sgemmImpl{
	{name: "gonum", sgemm: gonum.Implementation{}.Sgemm},
	{name: "kernels", sgemm: kernels.BLAS{}.Sgemm, threads: func(n int) func() {
		prev := kernels.SetThreads(n)
		return func() { kernels.SetThreads(prev) }
	}},
}

var benchPeak = sync.OnceValues(func() (float64, float64) {
	return kernels.PeakFLOPS(1), kernels.PeakFLOPS(kernels.Threads())
})

// BenchmarkSgemm compares the BLAS implementations on the engine's
// projection shapes, out[n, m] = x[n, k]·W[m, k]ᵀ, as gorgonia calls them
// (Sgemm NoTrans/Trans, the weight packed per call), and the default
// build's path for weights (impl=kernels-prepacked: Weight.MulT, packed
// once). threads=1 is one core; gonum picks its own thread count. pct_peak
// is against the FMA peak measured in this process on as many threads;
// GFLOP/cpu-s divides by the process's CPU time instead of wall time (the
// work per busy core, which other processes sharing the machine do not
// distort).
func BenchmarkSgemm(b *testing.B) {
	p1, pAll := benchPeak()
	shapes := [][3]int{ // n, k, m
		{64, 768, 768}, {512, 768, 768}, {512, 768, 2048}, {512, 2048, 768},
		{512, 1152, 1024}, {512, 1152, 256}, {512, 1152, 6912}, {512, 6912, 1152},
		{2048, 768, 2048},
	}
	for _, sh := range shapes {
		n, k, m := sh[0], sh[1], sh[2]
		x := make([]float32, n*k)
		w := make([]float32, m*k)
		for i := range x {
			x[i] = float32(i%7) * 0.1
		}
		for i := range w {
			w[i] = float32(i%5) * 0.1
		}
		out := make([]float32, n*m)
		wt, err := NewWeight(w, m, k)
		if err != nil {
			b.Fatal(err)
		}
		impls := append(sgemmImpls, sgemmImpl{name: "kernels-prepacked", threads: sgemmImpls[1].threads})
		for _, im := range impls {
			ths := []int{0}
			if im.threads != nil {
				ths = []int{1, kernels.Threads()}
			}
			for _, th := range ths {
				b.Run(fmt.Sprintf("%dx%dx%d/impl=%s/threads=%d", n, k, m, im.name, th), func(b *testing.B) {
					if im.threads != nil {
						defer im.threads(th)()
					}
					cpu0 := cpuTime()
					for b.Loop() {
						if im.sgemm == nil {
							if _, err := wt.MulT(x, n, out); err != nil {
								b.Fatal(err)
							}
						} else {
							im.sgemm(blas.NoTrans, blas.Trans, n, m, k, 1, x, k, w, k, 0, out, m)
						}
					}
					cpu := (cpuTime() - cpu0).Seconds()
					flops := 2 * float64(n*k*m) * float64(b.N)
					gf := flops / b.Elapsed().Seconds()
					b.ReportMetric(gf/1e9, "GFLOP/s")
					if cpu > 0 {
						b.ReportMetric(flops/cpu/1e9, "GFLOP/cpu-s")
					}
					if pk := map[bool]float64{true: p1, false: pAll}[th == 1]; pk > 0 {
						b.ReportMetric(100*gf/pk, "pct_peak")
					}
				})
			}
		}
	}
}

// BenchmarkTensorWrapper: the cost of going through tensor.MatMul (MatMulT)
// rather than calling the kernel, on a product small enough (4x16x16) that
// the wrapper shows.
func BenchmarkTensorWrapper(b *testing.B) {
	const n, k, m = 4, 16, 16
	x, w, out := make([]float32, n*k), make([]float32, m*k), make([]float32, n*m)
	b.Run("path=tensor.MatMul", func(b *testing.B) {
		for b.Loop() {
			if _, err := MatMulT(x, n, k, w, m, out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("path=kernels.Gemm", func(b *testing.B) {
		for b.Loop() {
			kernels.Gemm(false, true, n, m, k, x, k, w, k, out, m, false)
		}
	})
}
