//go:build !amd64 || purego

package kernels

func available() []*microKernel { return []*microKernel{kernGo} }

func fmaPeakLoop(variant string, n int) float64 { return 0 }

const vecAsm = false

func expScaleShiftSumAsm(dst, src []float32, scale, shift float32) float32 { panic("no asm") }

func siluMulAsm(g, u []float32) { panic("no asm") }

func maxAsm(x []float32) float32 { panic("no asm") }

func addSumSqAsm(x, o []float32) float64 { panic("no asm") }

func scaleMulAsm(out, x, w []float32, inv float32, onePlus bool) { panic("no asm") }

func ropeHalfAsm(a, b, c, s []float32) { panic("no asm") }

func geluTanhMulAsm(g, u []float32) { panic("no asm") }
