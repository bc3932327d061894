package model

import (
	"fmt"
	"sync"

	"github.com/equarx/equarx/kernels"
	"gorgonia.org/tensor"
)

// Weight is a 2-D weight matrix stored [out, in] row-major, as checkpoints
// store linear layers. In the default build its products run on the kernels
// package with the weight packed once, at its first use, into the
// micro-kernel's layout (Data must not change after that); with the openblas
// tag they run on gorgonia's tensor engine and OpenBLAS.
type Weight struct {
	Out, In int
	Data    []float32

	packOnce sync.Once
	packed   *kernels.PackedB
}

// NewWeight checks that data holds out*in values.
func NewWeight(data []float32, out, in int) (*Weight, error) {
	if out < 0 || in < 0 {
		return nil, fmt.Errorf("weight shape [%d, %d] is negative", out, in)
	}
	if len(data) != out*in {
		return nil, fmt.Errorf("weight shape [%d, %d] needs %d values, got %d", out, in, out*in, len(data))
	}
	return &Weight{Out: out, In: in, Data: data}, nil
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
