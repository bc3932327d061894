package collective

import "unsafe"

// codecKernels is one set of vector kernels for the codecs' hot loops. The
// plain Go loops in codec_int8.go, codec_int4.go and codec_bf16.go are the
// reference semantics and the fallback: a nil field means "use the Go loop",
// and every kernel hands the cases it does not handle back to the Go code,
// so the wire bytes and decoded values are bitwise the same whichever set
// runs (the differential tests in codec_kernel_test.go check this for every
// set the machine can run).
//
// The quantized kernels work on whole blocks only (the Go code encodes and
// decodes a short final block). The encoders stop before the first block
// whose absmax bits m fall outside the quickParams range [2^-64,
// MaxFloat32), i.e. blocks holding NaN, ±Inf, ±MaxFloat32, only zeros or
// only values below 2^-64, and return how many blocks they wrote; the Go
// code encodes that block and calls them again for the rest.
type codecKernels struct {
	name string

	// encInt8 and encInt4 encode up to blocks whole blocks of block values.
	encInt8, encInt4 func(dst *byte, src *float32, blocks, block int) (done int)
	// decInt8, decAddInt8, decInt4 and decAddInt4 decode (and add) blocks
	// whole blocks.
	decInt8, decAddInt8, decInt4, decAddInt4 func(dst *float32, src *byte, blocks, block int)
	// encBF16 rounds n values (n a multiple of 16); decBF16 and decAddBF16
	// widen (and add) n values.
	encBF16    func(dst *byte, src *float32, n int)
	decBF16    func(dst *float32, src *byte, n int)
	decAddBF16 func(dst *float32, src *byte, n int)
}

// goKernels is the set without vector kernels: every loop runs in Go.
var goKernels = &codecKernels{name: "go"}

// activeKernels is the set the codecs use, chosen once at start-up from the
// CPU features (see codec_kernel_amd64.go); it never changes afterwards.
var activeKernels = selectKernels()

// CodecKernel names the kernel set the int8, int4 and bf16 codecs run on
// this machine: "avx512" or "avx2" (Go assembly, amd64), or "go" (the plain
// Go loops: other architectures, CPUs without AVX2, or a build with the
// purego tag). The choice never changes the wire bytes or decoded values.
// The fp8 and int6 codecs have no vector kernels and always run their Go
// loops.
func CodecKernel() string { return activeKernels.name }

// f32p and bytep return the address of s[i] for a kernel call; the callers
// have checked i < len(s).
func f32p(s []float32, i int) *float32 {
	return (*float32)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(s)), 4*i))
}
func bytep(s []byte, i int) *byte { return (*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(s)), i)) }
