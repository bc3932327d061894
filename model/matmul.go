package model

import (
	"fmt"
	"sync"

	"github.com/equarx/equarx/kernels"
	"gorgonia.org/tensor"
)

// Weight is a 2-D weight matrix stored [out, in] row-major, as checkpoints
// store linear layers, either as float32 (Data) or as bfloat16 bit
// patterns (NewWeightBF16). In the default build its products run on the
// kernels package with the weight packed into the micro-kernel's layout: a
// float32 weight once, at its first use (Data must not change after that),
// a bfloat16 weight when it is made, keeping only the packed bfloat16 copy;
// bfloat16 values are widened to float32 inside the product and summed in
// float32, so the result is bitwise that of the float32 weight holding the
// same values. With the openblas tag products run on gorgonia's tensor
// engine and OpenBLAS, a bfloat16 weight widened block by block per call.
type Weight struct {
	Out, In int
	Data    []float32
	// BF16 holds the bfloat16 weights while they are not packed (always
	// in the openblas build); nil for a float32 weight.
	BF16 []uint16

	packOnce sync.Once
	packed   *kernels.PackedB
	half     bool // a bfloat16 weight
}

// NewWeightBF16 makes a weight of out*in bfloat16 values (bit patterns,
// [out, in] row-major). The default build packs it at once and drops bits.
func NewWeightBF16(bits []uint16, out, in int) (*Weight, error) {
	if out < 0 || in < 0 {
		return nil, fmt.Errorf("weight shape [%d, %d] is negative", out, in)
	}
	if len(bits) != out*in {
		return nil, fmt.Errorf("weight shape [%d, %d] needs %d values, got %d", out, in, out*in, len(bits))
	}
	w := &Weight{Out: out, In: in, BF16: bits, half: true}
	w.prepareBF16()
	return w, nil
}

// NewWeightBF16From makes a bfloat16 weight read piecewise: rows(lo, hi)
// returns rows [lo, hi) as bfloat16 bits. The default build packs each
// piece as it arrives, so only the packed weight and one piece of a few MiB
// are held at once; the openblas build reads all rows in one piece.
func NewWeightBF16From(out, in int, rows func(lo, hi int) ([]uint16, error)) (*Weight, error) {
	if out < 0 || in < 0 {
		return nil, fmt.Errorf("weight shape [%d, %d] is negative", out, in)
	}
	return newWeightBF16From(out, in, rows)
}

// NewWeightFrom makes a float32 weight read piecewise: rows(lo, hi)
// returns rows [lo, hi). The default build packs each piece as it arrives,
// so only the packed weight and one piece of a few MiB are held at once;
// the openblas build reads all rows in one piece.
func NewWeightFrom(out, in int, rows func(lo, hi int) ([]float32, error)) (*Weight, error) {
	if out < 0 || in < 0 {
		return nil, fmt.Errorf("weight shape [%d, %d] is negative", out, in)
	}
	return newWeightFrom(out, in, rows)
}

// IsBF16 reports whether the weight holds bfloat16 values.
func (w *Weight) IsBF16() bool { return w.half }

// Row writes row i of the weight ([In] values) into dst as float32, from
// whichever copy the weight holds.
func (w *Weight) Row(i int, dst []float32) {
	w.prepareRows()
	switch {
	case w.Data != nil:
		copy(dst[:w.In], w.Data[i*w.In:(i+1)*w.In])
	case w.BF16 != nil:
		kernels.BF16ToF32(dst[:w.In], w.BF16[i*w.In:(i+1)*w.In])
	default: // packed by prepareRows, Data and BF16 dropped
		w.packed.Col(i, dst)
	}
}

// Bytes returns the memory the weight holds: its values and, once packed,
// the packed copy.
func (w *Weight) Bytes() int64 {
	n := 4*int64(len(w.Data)) + 2*int64(len(w.BF16))
	if w.packed != nil {
		n += w.packed.Bytes()
	}
	return n
}

// NewWeight checks that data holds out*in values. The default build packs
// the weight at once and drops data from it (the caller's slice is left
// alone); the openblas build multiplies data itself.
func NewWeight(data []float32, out, in int) (*Weight, error) {
	if out < 0 || in < 0 {
		return nil, fmt.Errorf("weight shape [%d, %d] is negative", out, in)
	}
	if len(data) != out*in {
		return nil, fmt.Errorf("weight shape [%d, %d] needs %d values, got %d", out, in, out*in, len(data))
	}
	w := &Weight{Out: out, In: in, Data: data}
	// Pack now (the default build), while the caller's loading has only
	// this weight's row-major copy in flight: packing at the first product
	// instead would hold every weight twice until then.
	w.prepareRows()
	return w, nil
}

// MulT computes out[n, Out] = x[n, In] · Wᵀ and returns the FLOPs done
// (2·n·Out·In).
func (w *Weight) MulT(x []float32, n int, out []float32) (float64, error) {
	return w.mulT(x, n, out)
}

// MatMulT computes out[n, m] = x[n, k] · w[m, k]ᵀ through gorgonia's tensor
// engine and returns the FLOPs done. Empty shapes zero the output.
func MatMulT(x []float32, n, k int, w []float32, m int, out []float32) (float64, error) {
	if len(x) < n*k || len(w) != m*k || len(out) < n*m {
		return 0, fmt.Errorf("matmul [%d,%d]x[%d,%d]^T: buffers too small (x %d, w %d, out %d)", n, k, m, k, len(x), len(w), len(out))
	}
	out = out[:n*m]
	if n == 0 || m == 0 {
		return 0, nil
	}
	if k == 0 {
		clear(out)
		return 0, nil
	}
	xt := tensor.New(tensor.WithShape(n, k), tensor.WithBacking(x[:n*k]))
	wt := tensor.New(tensor.WithShape(m, k), tensor.WithBacking(w))
	if err := wt.T(); err != nil {
		return 0, fmt.Errorf("matmul: transpose weight view: %w", err)
	}
	ot := tensor.New(tensor.WithShape(n, m), tensor.WithBacking(out))
	if _, err := tensor.MatMul(xt, wt, tensor.WithReuse(ot)); err != nil {
		return 0, fmt.Errorf("matmul [%d,%d]x[%d,%d]^T: %w", n, k, m, k, err)
	}
	return 2 * float64(n) * float64(m) * float64(k), nil
}

// MatMulNN computes out[n, m] = x[n, k] · y[k, m] through gorgonia's tensor
// engine and returns the FLOPs done.
func MatMulNN(x []float32, n, k int, y []float32, m int, out []float32) (float64, error) {
	if len(x) < n*k || len(y) < k*m || len(out) < n*m {
		return 0, fmt.Errorf("matmul [%d,%d]x[%d,%d]: buffers too small (x %d, y %d, out %d)", n, k, k, m, len(x), len(y), len(out))
	}
	out = out[:n*m]
	if n == 0 || m == 0 {
		return 0, nil
	}
	if k == 0 {
		clear(out)
		return 0, nil
	}
	xt := tensor.New(tensor.WithShape(n, k), tensor.WithBacking(x[:n*k]))
	yt := tensor.New(tensor.WithShape(k, m), tensor.WithBacking(y[:k*m]))
	ot := tensor.New(tensor.WithShape(n, m), tensor.WithBacking(out))
	if _, err := tensor.MatMul(xt, yt, tensor.WithReuse(ot)); err != nil {
		return 0, fmt.Errorf("matmul [%d,%d]x[%d,%d]: %w", n, k, k, m, err)
	}
	return 2 * float64(n) * float64(m) * float64(k), nil
}
