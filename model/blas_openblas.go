//go:build openblas

package model

/*
void openblas_set_num_threads(int num_threads);
*/
import "C"

import (
	"fmt"

	"github.com/equarx/equarx/kernels"
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

// mulT goes through the tensor engine, and so through OpenBLAS. A bfloat16
// weight is widened bf16Block rows at a time into float32 scratch, each
// block multiplied on its own and its columns copied into out.
func (w *Weight) mulT(x []float32, n int, out []float32) (float64, error) {
	if w.BF16 == nil {
		return MatMulT(x, n, w.In, w.Data, w.Out, out)
	}
	if len(x) < n*w.In || len(out) < n*w.Out {
		return 0, fmt.Errorf("matmul [%d,%d]x[%d,%d]^T: buffers too small (x %d, out %d)", n, w.In, w.Out, w.In, len(x), len(out))
	}
	rows := min(bf16Block, w.Out)
	wf := make([]float32, rows*w.In)
	part := make([]float32, n*rows)
	var flops float64
	for r0 := 0; r0 < w.Out; r0 += rows {
		m := min(rows, w.Out-r0)
		kernels.BF16ToF32(wf[:m*w.In], w.BF16[r0*w.In:(r0+m)*w.In])
		f, err := MatMulT(x, n, w.In, wf[:m*w.In], m, part)
		if err != nil {
			return 0, err
		}
		flops += f
		for i := 0; i < n; i++ {
			copy(out[i*w.Out+r0:i*w.Out+r0+m], part[i*m:(i+1)*m])
		}
	}
	return flops, nil
}

// bf16Block is how many rows of a bfloat16 weight are widened at a time.
const bf16Block = 1024

// prepareBF16 keeps the bits: products widen them per call.
func (w *Weight) prepareBF16() {}

// prepareRows does nothing: this build multiplies the row-major values.
func (w *Weight) prepareRows() {}

func newWeightFrom(out, in int, rows func(lo, hi int) ([]float32, error)) (*Weight, error) {
	data, err := rows(0, out)
	if err != nil {
		return nil, err
	}
	return NewWeight(data, out, in)
}

func newWeightBF16From(out, in int, rows func(lo, hi int) ([]uint16, error)) (*Weight, error) {
	bits, err := rows(0, out)
	if err != nil {
		return nil, err
	}
	return NewWeightBF16(bits, out, in)
}

// WeightBytes returns the memory an [out, in] weight of dtype ("f32" or
// "bf16") holds: its values (products widen bfloat16 per call).
func WeightBytes(out, in int, dtype string) int64 {
	if dtype == "bf16" {
		return 2 * int64(out) * int64(in)
	}
	return 4 * int64(out) * int64(in)
}

// ProductScratchBytes bounds the scratch the products of one rank hold at
// once with weights of dtype, for n rows and inputs of at most maxIn
// values: one widened block of bf16Block weight rows and its output.
func ProductScratchBytes(n, maxIn int, dtype string) int64 {
	if dtype != "bf16" {
		return 0
	}
	return 4 * int64(bf16Block) * int64(maxIn+n)
}
