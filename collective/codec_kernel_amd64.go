//go:build amd64 && !purego

package collective

import "golang.org/x/sys/cpu"

// The kernels in codec_kernel_amd64.s (AVX-512 and AVX2 variants). Each reads and writes only the bytes
// its arguments describe.

//go:noescape
func encodeInt8AVX512(dst *byte, src *float32, blocks, block int) (done int)

//go:noescape
func encodeInt4AVX512(dst *byte, src *float32, blocks, block int) (done int)

//go:noescape
func decodeInt8AVX512(dst *float32, src *byte, blocks, block int)

//go:noescape
func decodeAddInt8AVX512(dst *float32, src *byte, blocks, block int)

//go:noescape
func decodeInt4AVX512(dst *float32, src *byte, blocks, block int)

//go:noescape
func decodeAddInt4AVX512(dst *float32, src *byte, blocks, block int)

//go:noescape
func encodeBF16AVX512(dst *byte, src *float32, n int)

//go:noescape
func decodeBF16AVX512(dst *float32, src *byte, n int)

//go:noescape
func decodeAddBF16AVX512(dst *float32, src *byte, n int)

//go:noescape
func encodeInt8AVX2(dst *byte, src *float32, blocks, block int) (done int)

//go:noescape
func encodeInt4AVX2(dst *byte, src *float32, blocks, block int) (done int)

//go:noescape
func decodeInt8AVX2(dst *float32, src *byte, blocks, block int)

//go:noescape
func decodeAddInt8AVX2(dst *float32, src *byte, blocks, block int)

//go:noescape
func decodeInt4AVX2(dst *float32, src *byte, blocks, block int)

//go:noescape
func decodeAddInt4AVX2(dst *float32, src *byte, blocks, block int)

//go:noescape
func encodeBF16AVX2(dst *byte, src *float32, n int)

//go:noescape
func decodeBF16AVX2(dst *float32, src *byte, n int)

//go:noescape
func decodeAddBF16AVX2(dst *float32, src *byte, n int)

var avx512Kernels = &codecKernels{
	name:       "avx512",
	encInt8:    encodeInt8AVX512,
	encInt4:    encodeInt4AVX512,
	decInt8:    decodeInt8AVX512,
	decAddInt8: decodeAddInt8AVX512,
	decInt4:    decodeInt4AVX512,
	decAddInt4: decodeAddInt4AVX512,
	encBF16:    encodeBF16AVX512,
	decBF16:    decodeBF16AVX512,
	decAddBF16: decodeAddBF16AVX512,
}

var avx2Kernels = &codecKernels{
	name:       "avx2",
	encInt8:    encodeInt8AVX2,
	encInt4:    encodeInt4AVX2,
	decInt8:    decodeInt8AVX2,
	decAddInt8: decodeAddInt8AVX2,
	decInt4:    decodeInt4AVX2,
	decAddInt4: decodeAddInt4AVX2,
	encBF16:    encodeBF16AVX2,
	decBF16:    decodeBF16AVX2,
	decAddBF16: decodeAddBF16AVX2,
}

// hasAVX512 reports the AVX-512 subsets the avx512 kernels use (F for the
// 512-bit operations, BW for the byte and word packs and narrowing moves, VL
// for the 256-bit forms on Y16-Y31 in the 8-value tails); cpu.X86 only sets
// them when the OS saves the registers.
func hasAVX512() bool { return cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL }

func selectKernels() *codecKernels {
	switch {
	case hasAVX512():
		return avx512Kernels
	case cpu.X86.HasAVX2:
		return avx2Kernels
	}
	return goKernels
}

// availableKernels lists every kernel set this machine can run, the active
// one first.
func availableKernels() []*codecKernels {
	ks := []*codecKernels{activeKernels}
	for _, k := range []*codecKernels{avx512Kernels, avx2Kernels, goKernels} {
		ok := k == goKernels || k == avx2Kernels && cpu.X86.HasAVX2 || k == avx512Kernels && hasAVX512()
		if k != activeKernels && ok {
			ks = append(ks, k)
		}
	}
	return ks
}
