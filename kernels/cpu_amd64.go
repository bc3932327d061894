//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

//go:noescape
func gemmKernelAVX512(k int, a *float32, lda int, b *float32, c *float32, ldc int, accum int)

//go:noescape
func gemmKernelAVX2(k int, a *float32, lda int, b *float32, c *float32, ldc int, accum int)

//go:noescape
func packT8(k8 int, src *float32, ldb int, dst *float32, nr int)

func fmaPeakAVX512(n int)
func fmaPeakAVX2(n int)

var (
	kernAVX512 = &microKernel{name: "avx512", mr: 6, nr: 64, fn: gemmKernelAVX512, packT: packT8}
	kernAVX2   = &microKernel{name: "avx2", mr: 6, nr: 16, fn: gemmKernelAVX2, packT: packT8}
)

// available lists the micro-kernels this CPU runs, fastest first. x/sys/cpu
// reports AVX2 and AVX-512 only when the OS saves their registers too.
func available() []*microKernel {
	var ks []*microKernel
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		kernAVX512.narrow, kernAVX512.narrowN = kernAVX2, 16
		ks = append(ks, kernAVX512)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, kernAVX2)
	}
	return append(ks, kernGo)
}

// fmaPeakLoop runs n iterations of the variant's FMA loop and returns the
// FLOPs done, or 0 if the variant has no asm loop.
func fmaPeakLoop(variant string, n int) float64 {
	switch variant {
	case "avx512":
		fmaPeakAVX512(n)
		return float64(n) * 16 * 16 * 2
	case "avx2":
		fmaPeakAVX2(n)
		return float64(n) * 16 * 8 * 2
	}
	return 0
}

//go:noescape
func expScaleShiftSumAVX2(dst, src *float32, n int, scale, shift float32) float32

//go:noescape
func siluMulAVX2(gp, up *float32, n int)

// vecAsm: the element-wise kernels run the AVX2 loops (any machine whose
// GEMM runs AVX2 or AVX-512 has AVX2 and FMA).
var vecAsm = active.name != "go"

func expScaleShiftSumAsm(dst, src []float32, scale, shift float32) float32 {
	return expScaleShiftSumAVX2(&dst[0], &src[0], len(src), scale, shift)
}

func siluMulAsm(g, u []float32) { siluMulAVX2(&g[0], &u[0], len(g)) }

//go:noescape
func maxAVX2(x *float32, n int) float32

func maxAsm(x []float32) float32 { return maxAVX2(&x[0], len(x)) }

//go:noescape
func addSumSqAVX2(x, o *float32, n int, add int) float64

//go:noescape
func scaleMulAVX2(out, x, w *float32, n int, inv float32, onePlus int)

//go:noescape
func ropeHalfAVX2(a, b, c, s *float32, n int)

func addSumSqAsm(x, o []float32) float64 {
	if o == nil {
		return addSumSqAVX2(&x[0], &x[0], len(x), 0)
	}
	return addSumSqAVX2(&x[0], &o[0], len(x), 1)
}

func scaleMulAsm(out, x, w []float32, inv float32, onePlus bool) {
	op := 0
	if onePlus {
		op = 1
	}
	scaleMulAVX2(&out[0], &x[0], &w[0], len(x), inv, op)
}

func ropeHalfAsm(a, b, c, s []float32) { ropeHalfAVX2(&a[0], &b[0], &c[0], &s[0], len(a)) }

//go:noescape
func geluTanhMulAVX2(gp, up *float32, n int)

func geluTanhMulAsm(g, u []float32) { geluTanhMulAVX2(&g[0], &u[0], len(g)) }
