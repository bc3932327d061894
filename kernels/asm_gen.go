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

// packT emits the transposing pack of one full sliver with gathers:
// dst[q*nr+j] = src[j*ldb+q] for q < k, j < nr; idx holds the byte offsets
// j*ldb*4 as int32.
func packT(s isa) {
	nr := s.nv * s.lanes
	fn := "packT" + s.name
	fmt.Fprintf(&out, "\n// func %s(k int, src *float32, dst *float32, idx *int32)\n//\n// dst[q*%d+j] = src at byte offset idx[j] + 4q, for q < k, j < %d.\n", fn, nr, nr)
	fmt.Fprintf(&out, "TEXT ·%s(SB), NOSPLIT, $0-32\n", fn)
	p("MOVQ k+0(FP), CX")
	p("MOVQ src+8(FP), SI")
	p("MOVQ dst+16(FP), DI")
	p("MOVQ idx+24(FP), DX")
	for v := 0; v < s.nv; v++ {
		if s.reg == "Z" {
			p("VMOVDQU32 %d(DX), Z%d", v*s.lanes*4, 4+v)
		} else {
			p("VMOVDQU %d(DX), Y%d", v*s.lanes*4, 4+v)
		}
	}
	p("TESTQ CX, CX")
	p("JZ %s_packdone", s.name)
	label(s.name + "_packloop")
	for v := 0; v < s.nv; v++ {
		if s.reg == "Z" {
			p("KXNORW K0, K0, K%d", 1+v)
			p("VGATHERDPS (SI)(Z%d*1), K%d, Z%d", 4+v, 1+v, v)
		} else {
			p("VPCMPEQD Y%d, Y%d, Y%d", 8+v, 8+v, 8+v)
			p("VGATHERDPS Y%d, (SI)(Y%d*1), Y%d", 8+v, 4+v, v)
		}
	}
	for v := 0; v < s.nv; v++ {
		p("VMOVUPS %s%d, %d(DI)", s.reg, v, v*s.lanes*4)
	}
	p("ADDQ $4, SI")
	p("ADDQ $%d, DI", nr*4)
	p("DECQ CX")
	p("JNZ %s_packloop", s.name)
	label(s.name + "_packdone")
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
	packT(avx512)
	packT(avx2)
	if err := os.WriteFile("kernels_amd64.s", out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
