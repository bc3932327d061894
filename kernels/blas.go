package kernels

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// BLAS is gonum's native BLAS with Sgemm replaced by this package's kernel.
// Plug it into gorgonia with gorgonia.Use(kernels.BLAS{}) (or tensor.Use):
// every float32 matrix product of the tensor engine then runs here.
type BLAS struct {
	gonum.Implementation
}

var _ blas.Float32Level3 = BLAS{}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C, row-major, as
// blas.Float32Level3 specifies. alpha = 1 with beta = 0 or 1 (what gorgonia
// passes) runs the kernel directly; other values scale around it.
func (BLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic("kernels: Sgemm with a negative dimension")
	}
	transA, transB := tA != blas.NoTrans, tB != blas.NoTrans
	checkAC(transA, m, n, k, a, lda, c, ldc)
	checkB(transB, k, n, b, ldb)
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		scaleC(c, m, n, ldc, beta)
		return
	}
	if alpha == 1 {
		if beta != 0 && beta != 1 {
			scaleC(c, m, n, ldc, beta)
		}
		Gemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, beta != 0)
		return
	}
	t := make([]float32, m*n)
	Gemm(transA, transB, m, n, k, a, lda, b, ldb, t, n, false)
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		for j, v := range t[i*n : (i+1)*n] {
			if beta == 0 {
				row[j] = alpha * v
			} else {
				row[j] = alpha*v + beta*row[j]
			}
		}
	}
}

func scaleC(c []float32, m, n, ldc int, beta float32) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}
