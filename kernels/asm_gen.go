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

func main() {
	out.WriteString("// Code generated by asm_gen.go; DO NOT EDIT.\n\n//go:build amd64 && !purego\n\n#include \"textflag.h\"\n")
	avx512 := isa{name: "AVX512", reg: "Z", lanes: 16, nv: 4, zero: "VPXORD", b0: 24, bcast0: 28}
	avx2 := isa{name: "AVX2", reg: "Y", lanes: 8, nv: 2, zero: "VXORPS", b0: 12, bcast0: 14}
	kernel(avx512)
	kernel(avx2)
	peak(avx512)
	peak(avx2)
	packT8()
	if err := os.WriteFile("kernels_amd64.s", out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
