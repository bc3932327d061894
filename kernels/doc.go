// Package kernels holds the CPU compute kernels of the engine: a
// cache-blocked SGEMM (packed B panels, a register-tiled FMA micro-kernel in
// Go assembly, AVX-512 or AVX2+FMA chosen at run time, a pure-Go fallback)
// that plugs into gorgonia's tensor engine as its float32 BLAS, a worker pool
// that every GEMM of the process shares, and the measured FMA peak the
// benchmarks compare against.
//
// Results do not depend on how many rows are multiplied together or on how
// many threads run: every output element is one FMA chain over k in a fixed
// order, cut into fixed K blocks of KC, and work is split over rows and
// columns of C only, never over K.
package kernels

//go:generate go run asm_gen.go
