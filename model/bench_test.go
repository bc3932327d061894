package model

import (
	"fmt"
	"testing"
)

// BenchmarkMatMulT measures the matmul the linears run, x[n,k]·W[m,k]ᵀ, on
// one goroutine, in GFLOP/s (compare: 1-core fp32 FMA peak 274 GFLOP/s).
func BenchmarkMatMulT(b *testing.B) {
	for _, sh := range [][3]int{{512, 64, 172}, {512, 768, 768}, {512, 768, 2048}} {
		n, k, m := sh[0], sh[1], sh[2]
		b.Run(fmt.Sprintf("%dx%dx%d/blas=%s", n, k, m, BLAS), func(b *testing.B) {
			x := make([]float32, n*k)
			w := make([]float32, m*k)
			for i := range x {
				x[i] = float32(i%7) * 0.1
			}
			for i := range w {
				w[i] = float32(i%5) * 0.1
			}
			out := make([]float32, n*m)
			for b.Loop() {
				if _, err := MatMulT(x, n, k, w, m, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(2*float64(n*k*m)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
