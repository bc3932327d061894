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

// BLAS names the BLAS behind every matrix product of this build.
const BLAS = "openblas"

// With the openblas build tag, OpenBLAS (through gonum's netlib cgo binding)
// replaces gonum's pure-Go BLAS under gorgonia and its tensor engine. Each
// emulated device is one goroutine, so OpenBLAS runs one thread per call:
// the devices are the parallelism. Build with CGO_LDFLAGS=-lopenblas.
func init() {
	C.openblas_set_num_threads(1)
	gorgonia.Use(netlib.Implementation{})
}

// mulT goes through the tensor engine, and so through OpenBLAS.
func (w *Weight) mulT(x []float32, n int, out []float32) (float64, error) {
	return MatMulT(x, n, w.In, w.Data, w.Out, out)
}
