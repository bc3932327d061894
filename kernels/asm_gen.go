//go:build ignore

// asm_gen writes kernels_amd64.s: the SGEMM micro-kernels and the FMA peak
// loops. Run it with `go generate ./kernels`.
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
)

var out bytes.Buffer

func p(format string, args ...any) { fmt.Fprintf(&out, "\t"+format+"\n", args...) }
func label(l string)               { fmt.Fprintf(&out, "%s:\n", l) }

// isa describes one vector width.
type isa struct {
	name   string // function suffix
	reg    string // "Z" or "Y"
	lanes  int    // float32 per register
	nv     int    // vectors per micro-tile row (NR = nv*lanes)
	zero   string // zeroing instruction
	bcast0 int    // first broadcast register; the next one alternates
	b0     int    // first B register
}

const mr = 6

// rowAddr returns the address of row r (0..5) of a matrix whose base is in
// base, base+3*ld in base3 and row stride (bytes) in ld, at byte offset off.
func rowAddr(r, off int, base, base3, ld string) string {
	switch r {
	case 0:
		return fmt.Sprintf("%d(%s)", off, base)
	case 1:
		return fmt.Sprintf("%d(%s)(%s*1)", off, base, ld)
	case 2:
		return fmt.Sprintf("%d(%s)(%s*2)", off, base, ld)
	case 3:
		return fmt.Sprintf("%d(%s)", off, base3)
	case 4:
		return fmt.Sprintf("%d(%s)(%s*4)", off, base, ld)
	case 5:
		return fmt.Sprintf("%d(%s)(%s*2)", off, base3, ld)
	}
	panic("row")
}

func acc(s isa, r, v int) string { return fmt.Sprintf("%s%d", s.reg, r*s.nv+v) }

// kStep emits one k step: load the NR values of B at byte offset boff,
// broadcast A[r][k] (byte offset aoff in each row) and FMA into the tile.
func kStep(s isa, aoff, boff int) {
	for v := 0; v < s.nv; v++ {
		p("VMOVUPS %d(BX), %s%d", boff+v*s.lanes*4, s.reg, s.b0+v)
	}
	for r := 0; r < mr; r++ {
		bc := fmt.Sprintf("%s%d", s.reg, s.bcast0+r%2)
		p("VBROADCASTSS %s, %s", rowAddr(r, aoff, "AX", "R10", "R9"), bc)
		for v := 0; v < s.nv; v++ {
			p("VFMADD231PS %s%d, %s, %s", s.reg, s.b0+v, bc, acc(s, r, v))
		}
	}
}

func kernel(s isa) {
	nr := s.nv * s.lanes
	fn := "gemmKernel" + s.name
	fmt.Fprintf(&out, "\n// func %s(k int, a *float32, lda int, b *float32, c *float32, ldc int, accum int)\n", fn)
	fmt.Fprintf(&out, "//\n// C[%d][%d] = (accum != 0 ? C : 0) + A[%d][k]·B[k][%d]. A is read in place (row\n", mr, nr, mr, nr)
	fmt.Fprintf(&out, "// stride lda floats); B is a packed sliver, %d floats per k; C has row\n", nr)
	fmt.Fprintf(&out, "// stride ldc floats. Each element is one FMA chain in k order from 0.\n")
	fmt.Fprintf(&out, "TEXT ·%s(SB), NOSPLIT, $0-56\n", fn)
	p("MOVQ k+0(FP), CX")
	p("MOVQ a+8(FP), AX")
	p("MOVQ lda+16(FP), R9")
	p("SHLQ $2, R9")
	p("MOVQ b+24(FP), BX")
	p("LEAQ (AX)(R9*2), R10")
	p("ADDQ R9, R10")
	for i := 0; i < mr*s.nv; i++ {
		r := fmt.Sprintf("%s%d", s.reg, i)
		p("%s %s, %s, %s", s.zero, r, r, r)
	}
	p("MOVQ CX, DX")
	p("SHRQ $2, DX")
	p("ANDQ $3, CX")
	p("TESTQ DX, DX")
	p("JZ %s_tail", s.name)
	label(s.name + "_loop4")
	for u := 0; u < 4; u++ {
		kStep(s, 4*u, u*nr*4)
	}
	p("ADDQ $16, AX")
	p("ADDQ $16, R10")
	p("ADDQ $%d, BX", 4*nr*4)
	p("DECQ DX")
	p("JNZ %s_loop4", s.name)
	label(s.name + "_tail")
	p("TESTQ CX, CX")
	p("JZ %s_store", s.name)
	label(s.name + "_loop1")
	kStep(s, 0, 0)
	p("ADDQ $4, AX")
	p("ADDQ $4, R10")
	p("ADDQ $%d, BX", nr*4)
	p("DECQ CX")
	p("JNZ %s_loop1", s.name)
	label(s.name + "_store")
	p("MOVQ c+32(FP), DI")
	p("MOVQ ldc+40(FP), R11")
	p("SHLQ $2, R11")
	p("LEAQ (DI)(R11*2), R12")
	p("ADDQ R11, R12")
	p("MOVQ accum+48(FP), R8")
	p("TESTQ R8, R8")
	p("JZ %s_write", s.name)
	for r := 0; r < mr; r++ {
		for v := 0; v < s.nv; v++ {
			p("VADDPS %s, %s, %s", rowAddr(r, v*s.lanes*4, "DI", "R12", "R11"), acc(s, r, v), acc(s, r, v))
		}
	}
	label(s.name + "_write")
	for r := 0; r < mr; r++ {
		for v := 0; v < s.nv; v++ {
			p("VMOVUPS %s, %s", acc(s, r, v), rowAddr(r, v*s.lanes*4, "DI", "R12", "R11"))
		}
	}
	p("VZEROUPPER")
	p("RET")
}

// peak emits a loop of 16 independent FMA chains, n iterations.
func peak(s isa) {
	fn := "fmaPeak" + s.name
	fmt.Fprintf(&out, "\n// func %s(n int)\n//\n// n iterations of 16 independent %d-lane FMAs (%d FLOPs per iteration).\n", fn, s.lanes, 16*s.lanes*2)
	fmt.Fprintf(&out, "TEXT ·%s(SB), NOSPLIT, $0-8\n", fn)
	p("MOVQ n+0(FP), CX")
	for i := 0; i < 18; i++ {
		r := fmt.Sprintf("%s%d", s.reg, i)
		p("%s %s, %s, %s", s.zero, r, r, r)
	}
	p("TESTQ CX, CX")
	p("JZ %s_peakdone", s.name)
	label(s.name + "_peakloop")
	for i := 0; i < 16; i++ {
		p("VFMADD231PS %s16, %s17, %s%d", s.reg, s.reg, s.reg, i)
	}
	p("DECQ CX")
	p("JNZ %s_peakloop", s.name)
	label(s.name + "_peakdone")
	p("VZEROUPPER")
	p("RET")
}

// packT8 emits the transposing pack of one full sliver in 8x8 blocks (AVX):
// dst[q*nr+j] = src[j*ldb+q] for q < k8 (a multiple of 8), j < nr (a
// multiple of 8).
func packT8() {
	out.WriteString(`
// func packT8(k8 int, src *float32, ldb int, dst *float32, nr int)
//
// dst[q*nr+j] = src[j*ldb+q] for q < k8, j < nr; k8 and nr are multiples of 8.
TEXT ·packT8(SB), NOSPLIT, $0-40
`)
	p("MOVQ src+8(FP), R12")
	p("MOVQ ldb+16(FP), R9")
	p("SHLQ $2, R9")
	p("MOVQ dst+24(FP), R8")
	p("MOVQ nr+32(FP), DX")
	p("MOVQ DX, R13")
	p("SHLQ $2, R13")
	p("SHRQ $3, DX")
	p("MOVQ k8+0(FP), CX")
	p("SHRQ $3, CX")
	p("TESTQ CX, CX")
	p("JZ packT8_done")
	// Outer loop over groups of 8 rows (R12: src row 8g, R8: dst column
	// 8g), inner over blocks of 8 k. Callers keep k8 small (64) so the
	// destination block stays in L1.
	label("packT8_group")
	p("MOVQ R12, SI")
	p("LEAQ (SI)(R9*2), R10")
	p("ADDQ R9, R10")          // SI + 3 ld
	p("LEAQ (R10)(R9*2), R11") // SI + 5 ld
	p("MOVQ R8, DI")
	p("LEAQ (DI)(R13*2), AX")
	p("ADDQ R13, AX")         // DI + 3 nr
	p("LEAQ (AX)(R13*2), BX") // DI + 5 nr
	p("MOVQ k8+0(FP), CX")
	p("SHRQ $3, CX")
	label("packT8_q")
	src := []string{"(SI)", "(SI)(R9*1)", "(SI)(R9*2)", "(R10)", "(SI)(R9*4)", "(R11)", "(R11)(R9*1)", "(R10)(R9*4)"}
	for r, a := range src {
		p("VMOVUPS %s, Y%d", a, r)
	}
	for i := 0; i < 4; i++ {
		p("VUNPCKLPS Y%d, Y%d, Y%d", 2*i+1, 2*i, 8+2*i)
		p("VUNPCKHPS Y%d, Y%d, Y%d", 2*i+1, 2*i, 9+2*i)
	}
	// s0..s7 into Y0..Y7
	p("VSHUFPS $0x44, Y10, Y8, Y0")
	p("VSHUFPS $0xEE, Y10, Y8, Y1")
	p("VSHUFPS $0x44, Y11, Y9, Y2")
	p("VSHUFPS $0xEE, Y11, Y9, Y3")
	p("VSHUFPS $0x44, Y14, Y12, Y4")
	p("VSHUFPS $0xEE, Y14, Y12, Y5")
	p("VSHUFPS $0x44, Y15, Y13, Y6")
	p("VSHUFPS $0xEE, Y15, Y13, Y7")
	for i := 0; i < 4; i++ {
		p("VPERM2F128 $0x20, Y%d, Y%d, Y%d", 4+i, i, 8+i)
		p("VPERM2F128 $0x31, Y%d, Y%d, Y%d", 4+i, i, 12+i)
	}
	dst := []string{"(DI)", "(DI)(R13*1)", "(DI)(R13*2)", "(AX)", "(DI)(R13*4)", "(BX)", "(BX)(R13*1)", "(AX)(R13*4)"}
	for i, a := range dst {
		p("VMOVUPS Y%d, %s", 8+i, a)
	}
	p("ADDQ $32, SI")
	p("ADDQ $32, R10")
	p("ADDQ $32, R11")
	p("LEAQ (DI)(R13*8), DI")
	p("LEAQ (AX)(R13*8), AX")
	p("LEAQ (BX)(R13*8), BX")
	p("DECQ CX")
	p("JNZ packT8_q")
	p("LEAQ (R12)(R9*8), R12")
	p("ADDQ $32, R8")
	p("DECQ DX")
	p("JNZ packT8_group")
	label("packT8_done")
	p("VZEROUPPER")
	p("RET")
}

// Constants of the vector exp, each repeated in 8 lanes (a 32-byte row).
var expConsts = []struct {
	name string
	bits uint32
}{
	{"log2e", 0x3fb8aa3b},    // 1.442695
	{"ln2hi", 0x3f318000},    // 0.693359375
	{"ln2lo", 0xb95e8083},    // -2.12194440e-4
	{"lo", 0xc2aeac50},       // -87.33654: below, exp is taken as 0
	{"hi", 0x42b00000},       // 88: above, clamped
	{"c6", 0x3ab60b61},       // 1/720
	{"c5", 0x3c088889},       // 1/120
	{"c4", 0x3d2aaaab},       // 1/24
	{"c3", 0x3e2aaaab},       // 1/6
	{"half", 0x3f000000},     // 1/2
	{"one", 0x3f800000},      // 1
	{"bias", 127},            // exponent bias (int32)
	{"gelu_k", 0x3d372713},   // 0.044715
	{"gelu_m2c", 0xbfcc422a}, // -2·sqrt(2/pi)
}

func expConst(name string) string {
	for i, c := range expConsts {
		if c.name == name {
			return fmt.Sprintf("expconst<>+%d(SB)", 32*i)
		}
	}
	panic(name)
}

// expY emits Y<x> = exp(Y<x>) for 8 lanes, using Y<t1>, Y<t2>, Y<t3>: the
// algorithm of model.ExpNeg (x = n·ln2 + r, degree-6 Taylor polynomial of
// e^r, times 2^n), with inputs below -87.33654 giving 0 and above 88
// clamped.
func expY(x, t1, t2, t3 int) {
	X := func(i int) string { return fmt.Sprintf("Y%d", i) }
	p("VCMPPS $1, %s, %s, %s", expConst("lo"), X(x), X(t3)) // t3 = x < lo
	p("VMAXPS %s, %s, %s", expConst("lo"), X(x), X(x))
	p("VMINPS %s, %s, %s", expConst("hi"), X(x), X(x))
	p("VMULPS %s, %s, %s", expConst("log2e"), X(x), X(t1))
	p("VROUNDPS $0, %s, %s", X(t1), X(t1))                       // n
	p("VFNMADD231PS %s, %s, %s", expConst("ln2hi"), X(t1), X(x)) // r = x - n·ln2hi
	p("VFNMADD231PS %s, %s, %s", expConst("ln2lo"), X(t1), X(x)) // r -= n·ln2lo
	p("VMOVUPS %s, %s", expConst("c6"), X(t2))
	for _, c := range []string{"c5", "c4", "c3", "half", "one", "one"} {
		p("VFMADD213PS %s, %s, %s", expConst(c), X(x), X(t2)) // p = p·r + c
	}
	p("VCVTPS2DQ %s, %s", X(t1), X(t1))
	p("VPADDD %s, %s, %s", expConst("bias"), X(t1), X(t1))
	p("VPSLLD $23, %s, %s", X(t1), X(t1))
	p("VMULPS %s, %s, %s", X(t1), X(t2), X(x))
	p("VANDNPS %s, %s, %s", X(x), X(t3), X(x)) // zero where x < lo
}

func vecKernels() {
	for i, c := range expConsts {
		for l := 0; l < 8; l++ {
			fmt.Fprintf(&out, "DATA expconst<>+%d(SB)/4, $0x%08x\n", 32*i+4*l, c.bits)
		}
	}
	fmt.Fprintf(&out, "GLOBL expconst<>(SB), RODATA|NOPTR, $%d\n", 32*len(expConsts))

	out.WriteString(`
// func expScaleShiftSumAVX2(dst, src *float32, n int, scale, shift float32) float32
//
// dst[i] = exp(src[i]·scale - shift) for i < n (a multiple of 8); returns
// the sum of dst, accumulated in 8 lanes, then lanes added pairwise.
TEXT ·expScaleShiftSumAVX2(SB), NOSPLIT, $0-36
`)
	p("MOVQ dst+0(FP), DI")
	p("MOVQ src+8(FP), SI")
	p("MOVQ n+16(FP), CX")
	p("VBROADCASTSS scale+24(FP), Y5")
	p("VBROADCASTSS shift+28(FP), Y6")
	p("VXORPS Y7, Y7, Y7")
	p("SHRQ $3, CX")
	p("JZ expsum_done")
	label("expsum_loop")
	p("VMOVUPS (SI), Y0")
	p("VFMSUB213PS Y6, Y5, Y0")
	expY(0, 1, 2, 3)
	p("VMOVUPS Y0, (DI)")
	p("VADDPS Y0, Y7, Y7")
	p("ADDQ $32, SI")
	p("ADDQ $32, DI")
	p("DECQ CX")
	p("JNZ expsum_loop")
	label("expsum_done")
	p("VEXTRACTF128 $1, Y7, X1")
	p("VADDPS X1, X7, X7")
	p("VHADDPS X7, X7, X7")
	p("VHADDPS X7, X7, X7")
	p("MOVSS X7, ret+32(FP)")
	p("VZEROUPPER")
	p("RET")

	out.WriteString(`
// func addSumSqAVX2(x, o *float32, n int, add int) float64
//
// If add != 0, x[i] += o[i]; returns the sum of x[i]² (the new x), each
// square and sum in float64, in 2x4 lanes added at the end. n is a multiple
// of 8.
TEXT ·addSumSqAVX2(SB), NOSPLIT, $0-40
`)
	p("MOVQ x+0(FP), DI")
	p("MOVQ o+8(FP), SI")
	p("MOVQ n+16(FP), CX")
	p("MOVQ add+24(FP), DX")
	p("VXORPD Y4, Y4, Y4")
	p("VXORPD Y5, Y5, Y5")
	p("SHRQ $3, CX")
	p("JZ sumsq_done")
	label("sumsq_loop")
	p("VMOVUPS (DI), Y0")
	p("TESTQ DX, DX")
	p("JZ sumsq_noadd")
	p("VADDPS (SI), Y0, Y0")
	p("VMOVUPS Y0, (DI)")
	label("sumsq_noadd")
	p("VCVTPS2PD X0, Y1")
	p("VEXTRACTF128 $1, Y0, X2")
	p("VCVTPS2PD X2, Y2")
	p("VFMADD231PD Y1, Y1, Y4")
	p("VFMADD231PD Y2, Y2, Y5")
	p("ADDQ $32, DI")
	p("ADDQ $32, SI")
	p("DECQ CX")
	p("JNZ sumsq_loop")
	label("sumsq_done")
	p("VADDPD Y5, Y4, Y4")
	p("VEXTRACTF128 $1, Y4, X5")
	p("VADDPD X5, X4, X4")
	p("VHADDPD X4, X4, X4")
	p("MOVSD X4, ret+32(FP)")
	p("VZEROUPPER")
	p("RET")

	out.WriteString(`
// func scaleMulAVX2(out, x, w *float32, n int, inv float32, onePlus int)
//
// out[i] = (x[i]·inv)·w[i], or (x[i]·inv)·(1+w[i]) if onePlus != 0; n a
// multiple of 8. Rounds exactly like the scalar expression.
TEXT ·scaleMulAVX2(SB), NOSPLIT, $0-48
`)
	p("MOVQ out+0(FP), DI")
	p("MOVQ x+8(FP), SI")
	p("MOVQ w+16(FP), BX")
	p("MOVQ n+24(FP), CX")
	p("VBROADCASTSS inv+32(FP), Y3")
	p("MOVQ onePlus+40(FP), DX")
	p("VMOVUPS %s, Y4", expConst("one"))
	p("SHRQ $3, CX")
	p("JZ scale_done")
	label("scale_loop")
	p("VMULPS (SI), Y3, Y0")
	p("VMOVUPS (BX), Y1")
	p("TESTQ DX, DX")
	p("JZ scale_plain")
	p("VADDPS Y4, Y1, Y1")
	label("scale_plain")
	p("VMULPS Y1, Y0, Y0")
	p("VMOVUPS Y0, (DI)")
	p("ADDQ $32, DI")
	p("ADDQ $32, SI")
	p("ADDQ $32, BX")
	p("DECQ CX")
	p("JNZ scale_loop")
	label("scale_done")
	p("VZEROUPPER")
	p("RET")

	out.WriteString(`
// func ropeHalfAVX2(a, b, c, s *float32, n int)
//
// (a[i], b[i]) = (a[i]·c[i] - b[i]·s[i], b[i]·c[i] + a[i]·s[i]) for i < n (a
// multiple of 8): RoPE on the pairs (i, i+hd/2) of one head.
TEXT ·ropeHalfAVX2(SB), NOSPLIT, $0-40
`)
	p("MOVQ a+0(FP), DI")
	p("MOVQ b+8(FP), SI")
	p("MOVQ c+16(FP), BX")
	p("MOVQ s+24(FP), DX")
	p("MOVQ n+32(FP), CX")
	p("SHRQ $3, CX")
	p("JZ rope_done")
	label("rope_loop")
	p("VMOVUPS (DI), Y0")       // a
	p("VMOVUPS (SI), Y1")       // b
	p("VMOVUPS (BX), Y2")       // c
	p("VMOVUPS (DX), Y3")       // s
	p("VMULPS Y3, Y1, Y4")      // b·s
	p("VMULPS Y3, Y0, Y5")      // a·s
	p("VFMSUB231PS Y2, Y0, Y4") // a·c - b·s
	p("VFMADD231PS Y2, Y1, Y5") // b·c + a·s
	p("VMOVUPS Y4, (DI)")
	p("VMOVUPS Y5, (SI)")
	p("ADDQ $32, DI")
	p("ADDQ $32, SI")
	p("ADDQ $32, BX")
	p("ADDQ $32, DX")
	p("DECQ CX")
	p("JNZ rope_loop")
	label("rope_done")
	p("VZEROUPPER")
	p("RET")

	out.WriteString(`
// func geluTanhMulAVX2(gp, up *float32, n int)
//
// g[i] = gelu_tanh(g[i])·u[i] for i < n (a multiple of 8), using
// 0.5·x·(1+tanh(y)) = x / (1 + exp(-2y)), y = sqrt(2/pi)·(x + 0.044715·x³).
TEXT ·geluTanhMulAVX2(SB), NOSPLIT, $0-24
`)
	p("MOVQ gp+0(FP), DI")
	p("MOVQ up+8(FP), SI")
	p("MOVQ n+16(FP), CX")
	p("SHRQ $3, CX")
	p("JZ gelu_done")
	label("gelu_loop")
	p("VMOVUPS (DI), Y4")
	p("VMULPS Y4, Y4, Y0")
	p("VMULPS %s, Y0, Y0", expConst("gelu_k"))
	p("VADDPS %s, Y0, Y0", expConst("one"))
	p("VMULPS Y4, Y0, Y0")
	p("VMULPS %s, Y0, Y0", expConst("gelu_m2c"))
	expY(0, 1, 2, 3)
	p("VADDPS %s, Y0, Y0", expConst("one"))
	p("VMULPS (SI), Y4, Y4")
	p("VDIVPS Y0, Y4, Y4")
	p("VMOVUPS Y4, (DI)")
	p("ADDQ $32, SI")
	p("ADDQ $32, DI")
	p("DECQ CX")
	p("JNZ gelu_loop")
	label("gelu_done")
	p("VZEROUPPER")
	p("RET")

	out.WriteString(`
// func maxAVX2(x *float32, n int) float32
//
// The largest of x[0:n] (n a positive multiple of 32), by VMAXPS in 4x8
// lanes.
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
`)
	p("MOVQ x+0(FP), SI")
	p("MOVQ n+8(FP), CX")
	p("VMOVUPS (SI), Y0")
	p("VMOVUPS Y0, Y1")
	p("VMOVUPS Y0, Y2")
	p("VMOVUPS Y0, Y3")
	p("SHRQ $5, CX")
	label("max_loop")
	for i := 0; i < 4; i++ {
		p("VMAXPS %d(SI), Y%d, Y%d", 32*i, i, i)
	}
	p("ADDQ $128, SI")
	p("DECQ CX")
	p("JNZ max_loop")
	p("VMAXPS Y1, Y0, Y0")
	p("VMAXPS Y3, Y2, Y2")
	p("VMAXPS Y2, Y0, Y0")
	p("VEXTRACTF128 $1, Y0, X1")
	p("VMAXPS X1, X0, X0")
	p("VPERMILPS $0x4e, X0, X1")
	p("VMAXPS X1, X0, X0")
	p("VPERMILPS $0xb1, X0, X1")
	p("VMAXPS X1, X0, X0")
	p("MOVSS X0, ret+16(FP)")
	p("VZEROUPPER")
	p("RET")

	out.WriteString(`
// func siluMulAVX2(gp, up *float32, n int)
//
// g[i] = g[i]·u[i] / (1 + exp(-g[i])) for i < n (a multiple of 8).
TEXT ·siluMulAVX2(SB), NOSPLIT, $0-24
`)
	p("MOVQ gp+0(FP), DI")
	p("MOVQ up+8(FP), SI")
	p("MOVQ n+16(FP), CX")
	p("VXORPS Y6, Y6, Y6")
	p("SHRQ $3, CX")
	p("JZ silu_done")
	label("silu_loop")
	p("VMOVUPS (DI), Y4")
	p("VSUBPS Y4, Y6, Y0") // -g
	expY(0, 1, 2, 3)
	p("VADDPS %s, Y0, Y0", expConst("one"))
	p("VMULPS (SI), Y4, Y4")
	p("VDIVPS Y0, Y4, Y4")
	p("VMOVUPS Y4, (DI)")
	p("ADDQ $32, SI")
	p("ADDQ $32, DI")
	p("DECQ CX")
	p("JNZ silu_loop")
	label("silu_done")
	p("VZEROUPPER")
	p("RET")
}

func main() {
	out.WriteString("// Code generated by asm_gen.go; DO NOT EDIT.\n\n//go:build amd64 && !purego\n\n#include \"textflag.h\"\n")
	avx512 := isa{name: "AVX512", reg: "Z", lanes: 16, nv: 4, zero: "VPXORD", b0: 24, bcast0: 28}
	avx2 := isa{name: "AVX2", reg: "Y", lanes: 8, nv: 2, zero: "VXORPS", b0: 12, bcast0: 14}
	kernel(avx512)
	kernel(avx2)
	peak(avx512)
	peak(avx2)
	packT8()
	vecKernels()
	if err := os.WriteFile("kernels_amd64.s", out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
