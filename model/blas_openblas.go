//go:build openblas

package model

/*
void openblas_set_num_threads(int num_threads);
*/
import "C"

import (
	"gonum.org/v1/netlib/blas/netlib"
	"gorgonia.org/gorgonia"
)

// BLAS names the BLAS behind the linear layers and the LM head of this
// build; attention tiles run on the kernels package in every build.
const BLAS = "openblas"

// RowInvariant reports whether a row's matrix products are bitwise the
// same whatever the number of rows multiplied with it. OpenBLAS picks its
// kernels and blocking by shape, so not in this build.
const RowInvariant = false

// With the openblas build tag, OpenBLAS (through gonum's netlib cgo binding)
// replaces gonum's pure-Go BLAS under gorgonia and its tensor engine. Each
// emulated device is one goroutine, so OpenBLAS runs one thread per call:
// the devices are the parallelism. Build with CGO_LDFLAGS=-lopenblas.
func init() {
	C.openblas_set_num_threads(1)
	gorgonia.Use(netlib.Implementation{})
}

// setOpenBLASThreads sets OpenBLAS's thread count (benchmarks compare one
// and all cores; the engine runs one).
func setOpenBLASThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// mulT goes through the tensor engine, and so through OpenBLAS.
func (w *Weight) mulT(x []float32, n int, out []float32) (float64, error) {
	return MatMulT(x, n, w.In, w.Data, w.Out, out)
}
