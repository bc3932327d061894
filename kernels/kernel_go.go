package kernels

import "unsafe"

// kernGo is the portable micro-kernel: 4x4 scalar accumulators.
var kernGo = &microKernel{name: "go", mr: 4, nr: 4, fn: gemmKernelGo}

// gemmKernelGo is the pure-Go micro-kernel with the contract of the asm ones:
// C[4][4] = (accum != 0 ? C : 0) + A[4][k]·B[k][4], A read in place with row
// stride lda, B a packed sliver of 4 floats per k, C with row stride ldc.
func gemmKernelGo(k int, a *float32, lda int, b *float32, c *float32, ldc int, accum int) {
	if k <= 0 {
		clear4x4(c, ldc, accum)
		return
	}
	A := unsafe.Slice(a, 3*lda+k)
	B := unsafe.Slice(b, 4*k)
	a0, a1, a2, a3 := A[:k], A[lda:lda+k], A[2*lda:2*lda+k], A[3*lda:3*lda+k]
	var c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33 float32
	for p := range k {
		bp := B[4*p : 4*p+4 : 4*p+4]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		x := a0[p]
		c00 += x * b0
		c01 += x * b1
		c02 += x * b2
		c03 += x * b3
		x = a1[p]
		c10 += x * b0
		c11 += x * b1
		c12 += x * b2
		c13 += x * b3
		x = a2[p]
		c20 += x * b0
		c21 += x * b1
		c22 += x * b2
		c23 += x * b3
		x = a3[p]
		c30 += x * b0
		c31 += x * b1
		c32 += x * b2
		c33 += x * b3
	}
	C := unsafe.Slice(c, 3*ldc+4)
	put := func(row []float32, v0, v1, v2, v3 float32) {
		row = row[:4:4]
		if accum != 0 {
			v0 += row[0]
			v1 += row[1]
			v2 += row[2]
			v3 += row[3]
		}
		row[0], row[1], row[2], row[3] = v0, v1, v2, v3
	}
	put(C[0:], c00, c01, c02, c03)
	put(C[ldc:], c10, c11, c12, c13)
	put(C[2*ldc:], c20, c21, c22, c23)
	put(C[3*ldc:], c30, c31, c32, c33)
}

func clear4x4(c *float32, ldc int, accum int) {
	if accum != 0 {
		return
	}
	C := unsafe.Slice(c, 3*ldc+4)
	for r := range 4 {
		clear(C[r*ldc : r*ldc+4])
	}
}
