//go:build !openblas

package model

import (
	"fmt"

	"github.com/equarx/equarx/kernels"
	"gorgonia.org/gorgonia"
)

// BLAS names the BLAS behind every matrix product of this build: this
// project's kernels package and the micro-kernel it runs on this CPU
// ("kernels/avx512", "kernels/avx2" or "kernels/go").
var BLAS = "kernels/" + kernels.Variant()

// RowInvariant reports whether a row's matrix products are bitwise the
// same whatever the number of rows multiplied with it: true for the
// kernels package (fixed K order, no splitting by row count; its tests
// prove it for every micro-kernel).
const RowInvariant = true

// In the default build the kernels package's Sgemm replaces gonum's pure-Go
// one under gorgonia and its tensor engine (gonum still serves every other
// BLAS routine).
func init() {
	gorgonia.Use(kernels.BLAS{})
}

// mulT multiplies by the weight packed once into the micro-kernel's panel
// layout. Going through tensor.MatMul would pack the [Out, In] weight on
// every call: O(Out·In) work that, for the 64-row calls of small batches,
// costs as much as the product itself (kernels BenchmarkGemmT, path=gemm vs
// path=prepacked).
func (w *Weight) mulT(x []float32, n int, out []float32) (float64, error) {
	if len(x) < n*w.In || len(out) < n*w.Out {
		return 0, fmt.Errorf("matmul [%d,%d]x[%d,%d]^T: buffers too small (x %d, out %d)", n, w.In, w.Out, w.In, len(x), len(out))
	}
	if n == 0 || w.Out == 0 {
		return 0, nil
	}
	w.prepareRows()
	w.packed.Mul(n, x, w.In, out, w.Out, false)
	return 2 * float64(n) * float64(w.Out) * float64(w.In), nil
}

// prepareRows packs a float32 weight (NewWeight calls it) and drops the
// row-major copy: the packed panels serve products and Row, so a weight is
// held once.
func (w *Weight) prepareRows() {
	w.packOnce.Do(func() {
		w.packed = kernels.PackT(w.Data, w.Out, w.In)
		w.Data = nil
	})
}

// prepareBF16 packs a bfloat16 weight now and drops the unpacked bits: the
// packed copy serves products and Row.
func (w *Weight) prepareBF16() {
	w.packOnce.Do(func() { w.packed = kernels.PackTBF16(w.BF16, w.Out, w.In) })
	w.BF16 = nil
}

func newWeightFrom(out, in int, rows func(lo, hi int) ([]float32, error)) (*Weight, error) {
	p, err := kernels.PackTFrom(out, in, bf16Piece, rows)
	if err != nil {
		return nil, err
	}
	w := &Weight{Out: out, In: in, packed: p}
	w.packOnce.Do(func() {})
	return w, nil
}

// bf16Piece is how many values NewWeightBF16From and NewWeightFrom read at
// a time.
const bf16Piece = 4 << 20

func newWeightBF16From(out, in int, rows func(lo, hi int) ([]uint16, error)) (*Weight, error) {
	p, err := kernels.PackTBF16From(out, in, bf16Piece, rows)
	if err != nil {
		return nil, err
	}
	w := &Weight{Out: out, In: in, half: true, packed: p}
	w.packOnce.Do(func() {})
	return w, nil
}

// WeightBytes returns the memory an [out, in] weight of dtype ("f32" or
// "bf16") holds: its packed copy only (a float32 weight drops its
// row-major values when it is packed, at its first use; the packed copy is
// never smaller than them).
func WeightBytes(out, in int, dtype string) int64 {
	packed := int64(kernels.PackedLen(out, in))
	if dtype == "bf16" {
		return 2 * packed
	}
	return 4 * packed
}

// ProductScratchBytes bounds the scratch the products of one rank hold at
// once with weights of dtype, for n rows and inputs of at most maxIn
// values: the bf16 widening blocks of the kernels' goroutines.
func ProductScratchBytes(n, maxIn int, dtype string) int64 {
	if dtype != "bf16" {
		return 0
	}
	return kernels.BF16ScratchBytes()
}
