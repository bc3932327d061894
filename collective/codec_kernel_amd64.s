//go:build amd64 && !purego

#include "textflag.h"

// Vector kernels for the int8, int4 and bf16 codecs (see codec_kernel.go
// for the contract and codec_quant.go for the rules they follow). They
// assume the default MXCSR (round to nearest even, no flush-to-zero), as
// the Go code does. The quantizers round with VCVTPS2DQ, which rounds to
// nearest even like the Go code's 1.5*2^23 addition; |x*r| <= 127.00002,
// so the codes need no clamping.

// packPerm512 reorders the dwords VPACKSSDW+VPACKSSWB leave lane-interleaved
// (lane i holds 4 bytes from each of the four sources) into source order.
DATA packPerm512<>+0(SB)/4, $0
DATA packPerm512<>+4(SB)/4, $4
DATA packPerm512<>+8(SB)/4, $8
DATA packPerm512<>+12(SB)/4, $12
DATA packPerm512<>+16(SB)/4, $1
DATA packPerm512<>+20(SB)/4, $5
DATA packPerm512<>+24(SB)/4, $9
DATA packPerm512<>+28(SB)/4, $13
DATA packPerm512<>+32(SB)/4, $2
DATA packPerm512<>+36(SB)/4, $6
DATA packPerm512<>+40(SB)/4, $10
DATA packPerm512<>+44(SB)/4, $14
DATA packPerm512<>+48(SB)/4, $3
DATA packPerm512<>+52(SB)/4, $7
DATA packPerm512<>+56(SB)/4, $11
DATA packPerm512<>+60(SB)/4, $15
GLOBL packPerm512<>(SB), RODATA|NOPTR, $64

// nibbleSign maps a 4-bit code to its sign-extended byte.
DATA nibbleSign<>+0(SB)/8, $0x0706050403020100
DATA nibbleSign<>+8(SB)/8, $0xfffefdfcfbfaf9f8
GLOBL nibbleSign<>(SB), RODATA|NOPTR, $16

// func encodeInt8AVX512(dst *byte, src *float32, blocks, block int) (done int)
//
// It works on chunks of up to max(1, 4096/block) blocks (at most 16 KiB of
// input, so the second pass reads from L1): pass 1 finds each block's
// absmax and parks its bits in the block's scale slot, stopping at the
// first block the Go code must take; pass 2 turns each parked absmax into
// the scale and the reciprocal and writes the codes. The blocks are thus
// independent inside each pass, so their reductions and divisions overlap.
TEXT ·encodeInt8AVX512(SB), NOSPLIT, $16-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	MOVQ block+24(FP), BX
	XORQ R8, R8
	MOVQ $4096, AX
	XORL DX, DX
	DIVQ BX
	MOVQ $1, R12
	CMPQ AX, R12
	CMOVQCC AX, R12 // R12 = max(1, 4096/block) blocks per chunk
	LEAQ 4(BX), R13 // R13 = bytes per encoded block
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z31
	MOVL $0x42fe0000, AX
	VMOVD AX, X13
	VMOVDQU32 packPerm512<>(SB), Z27

chunk:
	MOVQ CX, AX
	SUBQ R8, AX
	JZ   ret
	CMPQ AX, R12
	CMOVQHI R12, AX
	MOVQ AX, 0(SP) // blocks in this chunk
	MOVQ $0, 8(SP) // 1 when pass 1 stopped at a block for the Go code
	XORQ DX, DX
	MOVQ SI, R9
	MOVQ DI, R11

	// Pass 1: a = max |x| as bits, unsigned maxima of the sign-cleared bits.
p1block:
	CMPQ DX, 0(SP)
	JAE  p2
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ BX, R10

max64:
	CMPQ R10, $64
	JB   max16
	VPANDD (R9), Z31, Z4
	VPANDD 64(R9), Z31, Z5
	VPANDD 128(R9), Z31, Z6
	VPANDD 192(R9), Z31, Z7
	VPMAXUD Z4, Z0, Z0
	VPMAXUD Z5, Z1, Z1
	VPMAXUD Z6, Z2, Z2
	VPMAXUD Z7, Z3, Z3
	ADDQ $256, R9
	SUBQ $64, R10
	JMP  max64

max16:
	CMPQ R10, $16
	JB   max8
	VPANDD (R9), Z31, Z4
	VPMAXUD Z4, Z0, Z0
	ADDQ $64, R9
	SUBQ $16, R10
	JMP  max16

max8:
	TESTQ R10, R10
	JZ    maxdone
	VPANDD (R9), Y31, Y4 // zeroes the upper half of Z4
	VPMAXUD Z4, Z1, Z1
	ADDQ $32, R9

maxdone:
	VPMAXUD Z1, Z0, Z0
	VPMAXUD Z3, Z2, Z2
	VPMAXUD Z2, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPMAXUD Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPMAXUD X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPMAXUD X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VPMAXUD X1, X0, X0
	VMOVD X0, AX

	// Only 2^-64 <= a < MaxFloat32 here; the Go code takes the rest.
	CMPL AX, $0x1f800000
	JB   p1stop
	CMPL AX, $0x7f7fffff
	JAE  p1stop
	MOVL AX, (R11)
	ADDQ R13, R11
	INCQ DX
	JMP  p1block

p1stop:
	MOVQ DX, 0(SP)
	MOVQ $1, 8(SP)

	// Pass 2: scale = a / L (stored), r = L / a, codes RNE(x * r).
p2:
	XORQ DX, DX
	MOVQ SI, R9
	MOVQ DI, R11

p2block:
	CMPQ DX, 0(SP)
	JAE  chunkdone
	VMOVSS (R11), X0
	VDIVSS X13, X0, X1
	VDIVSS X0, X13, X2
	VMOVSS X1, (R11)
	VBROADCASTSS X2, Z30
	ADDQ $4, R11
	MOVQ BX, R10

q64:
	CMPQ R10, $64
	JB   q16
	VMULPS (R9), Z30, Z4
	VMULPS 64(R9), Z30, Z5
	VMULPS 128(R9), Z30, Z6
	VMULPS 192(R9), Z30, Z7
	VCVTPS2DQ Z4, Z4
	VCVTPS2DQ Z5, Z5
	VCVTPS2DQ Z6, Z6
	VCVTPS2DQ Z7, Z7
	VPACKSSDW Z5, Z4, Z8
	VPACKSSDW Z7, Z6, Z9
	VPACKSSWB Z9, Z8, Z10
	VPERMD Z10, Z27, Z10
	VMOVDQU32 Z10, (R11)
	ADDQ $256, R9
	ADDQ $64, R11
	SUBQ $64, R10
	JMP  q64

q16:
	CMPQ R10, $16
	JB   q8
	VMULPS (R9), Z30, Z4
	VCVTPS2DQ Z4, Z4
	VPMOVDB Z4, (R11)
	ADDQ $64, R9
	ADDQ $16, R11
	SUBQ $16, R10
	JMP  q16

q8:
	TESTQ R10, R10
	JZ    next
	VMULPS (R9), Y30, Y4
	VCVTPS2DQ Y4, Y4
	VPMOVDB Y4, (R11)
	ADDQ $32, R9
	ADDQ $8, R11

next:
	INCQ DX
	JMP  p2block

chunkdone:
	ADDQ 0(SP), R8
	MOVQ R9, SI
	MOVQ R11, DI
	CMPQ 8(SP), $0
	JEQ  chunk

ret:
	VZEROUPPER
	MOVQ R8, done+32(FP)
	RET

// func encodeInt4AVX512(dst *byte, src *float32, blocks, block int) (done int)
//
// It works on chunks of up to max(1, 4096/block) blocks (at most 16 KiB of
// input, so the second pass reads from L1): pass 1 finds each block's
// absmax and parks its bits in the block's scale slot, stopping at the
// first block the Go code must take; pass 2 turns each parked absmax into
// the scale and the reciprocal and writes the codes. The blocks are thus
// independent inside each pass, so their reductions and divisions overlap.
TEXT ·encodeInt4AVX512(SB), NOSPLIT, $16-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	MOVQ block+24(FP), BX
	XORQ R8, R8
	MOVQ $4096, AX
	XORL DX, DX
	DIVQ BX
	MOVQ $1, R12
	CMPQ AX, R12
	CMOVQCC AX, R12 // R12 = max(1, 4096/block) blocks per chunk
	MOVQ BX, R13
	SHRQ $1, R13
	ADDQ $4, R13 // R13 = bytes per encoded block
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z31
	MOVL $0x40e00000, AX
	VMOVD AX, X13
	VMOVDQU32 packPerm512<>(SB), Z27
	MOVQ $0x0000000f0000000f, AX
	VPBROADCASTQ AX, Z26
	MOVL $0x0f0f0f0f, AX
	VPBROADCASTD AX, Z25

chunk:
	MOVQ CX, AX
	SUBQ R8, AX
	JZ   ret
	CMPQ AX, R12
	CMOVQHI R12, AX
	MOVQ AX, 0(SP) // blocks in this chunk
	MOVQ $0, 8(SP) // 1 when pass 1 stopped at a block for the Go code
	XORQ DX, DX
	MOVQ SI, R9
	MOVQ DI, R11

	// Pass 1: a = max |x| as bits, unsigned maxima of the sign-cleared bits.
p1block:
	CMPQ DX, 0(SP)
	JAE  p2
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ BX, R10

max64:
	CMPQ R10, $64
	JB   max16
	VPANDD (R9), Z31, Z4
	VPANDD 64(R9), Z31, Z5
	VPANDD 128(R9), Z31, Z6
	VPANDD 192(R9), Z31, Z7
	VPMAXUD Z4, Z0, Z0
	VPMAXUD Z5, Z1, Z1
	VPMAXUD Z6, Z2, Z2
	VPMAXUD Z7, Z3, Z3
	ADDQ $256, R9
	SUBQ $64, R10
	JMP  max64

max16:
	CMPQ R10, $16
	JB   max8
	VPANDD (R9), Z31, Z4
	VPMAXUD Z4, Z0, Z0
	ADDQ $64, R9
	SUBQ $16, R10
	JMP  max16

max8:
	TESTQ R10, R10
	JZ    maxdone
	VPANDD (R9), Y31, Y4 // zeroes the upper half of Z4
	VPMAXUD Z4, Z1, Z1
	ADDQ $32, R9

maxdone:
	VPMAXUD Z1, Z0, Z0
	VPMAXUD Z3, Z2, Z2
	VPMAXUD Z2, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPMAXUD Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPMAXUD X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPMAXUD X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VPMAXUD X1, X0, X0
	VMOVD X0, AX

	// Only 2^-64 <= a < MaxFloat32 here; the Go code takes the rest.
	CMPL AX, $0x1f800000
	JB   p1stop
	CMPL AX, $0x7f7fffff
	JAE  p1stop
	MOVL AX, (R11)
	ADDQ R13, R11
	INCQ DX
	JMP  p1block

p1stop:
	MOVQ DX, 0(SP)
	MOVQ $1, 8(SP)

	// Pass 2: scale = a / L (stored), r = L / a, codes RNE(x * r).
p2:
	XORQ DX, DX
	MOVQ SI, R9
	MOVQ DI, R11

p2block:
	CMPQ DX, 0(SP)
	JAE  chunkdone
	VMOVSS (R11), X0
	VDIVSS X13, X0, X1
	VDIVSS X0, X13, X2
	VMOVSS X1, (R11)
	VBROADCASTSS X2, Z30
	ADDQ $4, R11
	MOVQ BX, R10

	// 64 at a time: pack to int8 codes as for int8, merge the nibbles of
	// each 16-bit pair and keep the low byte of each. 16 or 8 at a time:
	// each qword holds a pair of dword codes (even value low); keep the
	// two low nibbles, move the odd one to bits 4-7, keep the low byte.
q64:
	CMPQ R10, $64
	JB   q16
	VMULPS (R9), Z30, Z4
	VMULPS 64(R9), Z30, Z5
	VMULPS 128(R9), Z30, Z6
	VMULPS 192(R9), Z30, Z7
	VCVTPS2DQ Z4, Z4
	VCVTPS2DQ Z5, Z5
	VCVTPS2DQ Z6, Z6
	VCVTPS2DQ Z7, Z7
	VPACKSSDW Z5, Z4, Z8
	VPACKSSDW Z7, Z6, Z9
	VPACKSSWB Z9, Z8, Z10
	VPERMD Z10, Z27, Z10
	VPANDD Z25, Z10, Z10
	VPSRLW $4, Z10, Z11
	VPORD Z11, Z10, Z10
	VPMOVWB Z10, (R11)
	ADDQ $256, R9
	ADDQ $32, R11
	SUBQ $64, R10
	JMP  q64

q16:
	CMPQ R10, $16
	JB   q8
	VMULPS (R9), Z30, Z4
	VCVTPS2DQ Z4, Z4
	VPANDQ Z26, Z4, Z4
	VPSRLQ $28, Z4, Z8
	VPORQ Z8, Z4, Z4
	VPMOVQB Z4, (R11)
	ADDQ $64, R9
	ADDQ $8, R11
	SUBQ $16, R10
	JMP  q16

q8:
	TESTQ R10, R10
	JZ    next
	VMULPS (R9), Y30, Y4
	VCVTPS2DQ Y4, Y4
	VPANDQ Y26, Y4, Y4
	VPSRLQ $28, Y4, Y8
	VPORQ Y8, Y4, Y4
	VPMOVQB Y4, (R11)
	ADDQ $32, R9
	ADDQ $4, R11

next:
	INCQ DX
	JMP  p2block

chunkdone:
	ADDQ 0(SP), R8
	MOVQ R9, SI
	MOVQ R11, DI
	CMPQ 8(SP), $0
	JEQ  chunk

ret:
	VZEROUPPER
	MOVQ R8, done+32(FP)
	RET

// func decodeInt8AVX512(dst *float32, src *byte, blocks, block int)
TEXT ·decodeInt8AVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	MOVQ block+24(FP), DX

block:
	TESTQ CX, CX
	JZ    ret
	VBROADCASTSS (SI), Z30
	LEAQ 4(SI), R9
	MOVQ DX, R10

d64:
	CMPQ R10, $64
	JB   d16
	VPMOVSXBD 0(R9), Z4
	VPMOVSXBD 16(R9), Z5
	VPMOVSXBD 32(R9), Z6
	VPMOVSXBD 48(R9), Z7
	VCVTDQ2PS Z4, Z4
	VCVTDQ2PS Z5, Z5
	VCVTDQ2PS Z6, Z6
	VCVTDQ2PS Z7, Z7
	VMULPS Z30, Z4, Z4
	VMULPS Z30, Z5, Z5
	VMULPS Z30, Z6, Z6
	VMULPS Z30, Z7, Z7
	VMOVUPS Z4, 0(DI)
	VMOVUPS Z5, 64(DI)
	VMOVUPS Z6, 128(DI)
	VMOVUPS Z7, 192(DI)
	ADDQ $64, R9
	ADDQ $256, DI
	SUBQ $64, R10
	JMP  d64

d16:
	CMPQ R10, $16
	JB   d8
	VPMOVSXBD (R9), Z4
	VCVTDQ2PS Z4, Z4
	VMULPS Z30, Z4, Z4
	VMOVUPS Z4, 0(DI)
	ADDQ $16, R9
	ADDQ $64, DI
	SUBQ $16, R10
	JMP  d16

d8:
	TESTQ R10, R10
	JZ    next
	VPMOVSXBD (R9), Y4
	VCVTDQ2PS Y4, Y4
	VMULPS Y30, Y4, Y4
	VMOVUPS Y4, 0(DI)
	ADDQ $8, R9
	ADDQ $32, DI

next:
	MOVQ R9, SI
	DECQ CX
	JMP  block

ret:
	VZEROUPPER
	RET

// func decodeAddInt8AVX512(dst *float32, src *byte, blocks, block int)
TEXT ·decodeAddInt8AVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	MOVQ block+24(FP), DX

block:
	TESTQ CX, CX
	JZ    ret
	VBROADCASTSS (SI), Z30
	LEAQ 4(SI), R9
	MOVQ DX, R10

d64:
	CMPQ R10, $64
	JB   d16
	VPMOVSXBD 0(R9), Z4
	VPMOVSXBD 16(R9), Z5
	VPMOVSXBD 32(R9), Z6
	VPMOVSXBD 48(R9), Z7
	VCVTDQ2PS Z4, Z4
	VCVTDQ2PS Z5, Z5
	VCVTDQ2PS Z6, Z6
	VCVTDQ2PS Z7, Z7
	VMULPS Z30, Z4, Z4
	VMULPS Z30, Z5, Z5
	VMULPS Z30, Z6, Z6
	VMULPS Z30, Z7, Z7
	VADDPS 0(DI), Z4, Z4
	VADDPS 64(DI), Z5, Z5
	VADDPS 128(DI), Z6, Z6
	VADDPS 192(DI), Z7, Z7
	VMOVUPS Z4, 0(DI)
	VMOVUPS Z5, 64(DI)
	VMOVUPS Z6, 128(DI)
	VMOVUPS Z7, 192(DI)
	ADDQ $64, R9
	ADDQ $256, DI
	SUBQ $64, R10
	JMP  d64

d16:
	CMPQ R10, $16
	JB   d8
	VPMOVSXBD (R9), Z4
	VCVTDQ2PS Z4, Z4
	VMULPS Z30, Z4, Z4
	VADDPS 0(DI), Z4, Z4
	VMOVUPS Z4, 0(DI)
	ADDQ $16, R9
	ADDQ $64, DI
	SUBQ $16, R10
	JMP  d16

d8:
	TESTQ R10, R10
	JZ    next
	VPMOVSXBD (R9), Y4
	VCVTDQ2PS Y4, Y4
	VMULPS Y30, Y4, Y4
	VADDPS 0(DI), Y4, Y4
	VMOVUPS Y4, 0(DI)
	ADDQ $8, R9
	ADDQ $32, DI

next:
	MOVQ R9, SI
	DECQ CX
	JMP  block

ret:
	VZEROUPPER
	RET

// func decodeInt4AVX512(dst *float32, src *byte, blocks, block int)
TEXT ·decodeInt4AVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	MOVQ block+24(FP), DX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X12
	VPBROADCASTD X12, X12
	VMOVDQU nibbleSign<>(SB), X11

block:
	TESTQ CX, CX
	JZ    ret
	VBROADCASTSS (SI), Z30
	LEAQ 4(SI), R9
	MOVQ DX, R10

	// Split each byte into its two nibbles (low first), sign-extend them
	// with a table lookup, then widen to dwords.
d32:
	CMPQ R10, $32
	JB   d16
	VMOVDQU (R9), X4
	VPSRLW $4, X4, X5
	VPAND X12, X4, X4
	VPAND X12, X5, X5
	VPUNPCKLBW X5, X4, X6
	VPUNPCKHBW X5, X4, X7
	VPSHUFB X6, X11, X6
	VPSHUFB X7, X11, X7
	VPMOVSXBD X6, Z8
	VPMOVSXBD X7, Z9
	VCVTDQ2PS Z8, Z8
	VCVTDQ2PS Z9, Z9
	VMULPS Z30, Z8, Z8
	VMULPS Z30, Z9, Z9
	VMOVUPS Z8, 0(DI)
	VMOVUPS Z9, 64(DI)
	ADDQ $16, R9
	ADDQ $128, DI
	SUBQ $32, R10
	JMP  d32

d16:
	CMPQ R10, $16
	JB   d8
	VMOVQ (R9), X4
	VPSRLW $4, X4, X5
	VPAND X12, X4, X4
	VPAND X12, X5, X5
	VPUNPCKLBW X5, X4, X6
	VPUNPCKHBW X5, X4, X7
	VPSHUFB X6, X11, X6
	VPSHUFB X7, X11, X7
	VPMOVSXBD X6, Z8
	VCVTDQ2PS Z8, Z8
	VMULPS Z30, Z8, Z8
	VMOVUPS Z8, 0(DI)
	ADDQ $8, R9
	ADDQ $64, DI
	SUBQ $16, R10

d8:
	TESTQ R10, R10
	JZ    next
	VMOVD (R9), X4
	VPSRLW $4, X4, X5
	VPAND X12, X4, X4
	VPAND X12, X5, X5
	VPUNPCKLBW X5, X4, X6
	VPUNPCKHBW X5, X4, X7
	VPSHUFB X6, X11, X6
	VPSHUFB X7, X11, X7
	VPMOVSXBD X6, Y8
	VCVTDQ2PS Y8, Y8
	VMULPS Y30, Y8, Y8
	VMOVUPS Y8, 0(DI)
	ADDQ $4, R9
	ADDQ $32, DI

next:
	MOVQ R9, SI
	DECQ CX
	JMP  block

ret:
	VZEROUPPER
	RET

// func decodeAddInt4AVX512(dst *float32, src *byte, blocks, block int)
TEXT ·decodeAddInt4AVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	MOVQ block+24(FP), DX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X12
	VPBROADCASTD X12, X12
	VMOVDQU nibbleSign<>(SB), X11

block:
	TESTQ CX, CX
	JZ    ret
	VBROADCASTSS (SI), Z30
	LEAQ 4(SI), R9
	MOVQ DX, R10

	// Split each byte into its two nibbles (low first), sign-extend them
	// with a table lookup, then widen to dwords.
d32:
	CMPQ R10, $32
	JB   d16
	VMOVDQU (R9), X4
	VPSRLW $4, X4, X5
	VPAND X12, X4, X4
	VPAND X12, X5, X5
	VPUNPCKLBW X5, X4, X6
	VPUNPCKHBW X5, X4, X7
	VPSHUFB X6, X11, X6
	VPSHUFB X7, X11, X7
	VPMOVSXBD X6, Z8
	VPMOVSXBD X7, Z9
	VCVTDQ2PS Z8, Z8
	VCVTDQ2PS Z9, Z9
	VMULPS Z30, Z8, Z8
	VMULPS Z30, Z9, Z9
	VADDPS 0(DI), Z8, Z8
	VADDPS 64(DI), Z9, Z9
	VMOVUPS Z8, 0(DI)
	VMOVUPS Z9, 64(DI)
	ADDQ $16, R9
	ADDQ $128, DI
	SUBQ $32, R10
	JMP  d32

d16:
	CMPQ R10, $16
	JB   d8
	VMOVQ (R9), X4
	VPSRLW $4, X4, X5
	VPAND X12, X4, X4
	VPAND X12, X5, X5
	VPUNPCKLBW X5, X4, X6
	VPUNPCKHBW X5, X4, X7
	VPSHUFB X6, X11, X6
	VPSHUFB X7, X11, X7
	VPMOVSXBD X6, Z8
	VCVTDQ2PS Z8, Z8
	VMULPS Z30, Z8, Z8
	VADDPS 0(DI), Z8, Z8
	VMOVUPS Z8, 0(DI)
	ADDQ $8, R9
	ADDQ $64, DI
	SUBQ $16, R10

d8:
	TESTQ R10, R10
	JZ    next
	VMOVD (R9), X4
	VPSRLW $4, X4, X5
	VPAND X12, X4, X4
	VPAND X12, X5, X5
	VPUNPCKLBW X5, X4, X6
	VPUNPCKHBW X5, X4, X7
	VPSHUFB X6, X11, X6
	VPSHUFB X7, X11, X7
	VPMOVSXBD X6, Y8
	VCVTDQ2PS Y8, Y8
	VMULPS Y30, Y8, Y8
	VADDPS 0(DI), Y8, Y8
	VMOVUPS Y8, 0(DI)
	ADDQ $4, R9
	ADDQ $32, DI

next:
	MOVQ R9, SI
	DECQ CX
	JMP  block

ret:
	VZEROUPPER
	RET

// func encodeBF16AVX512(dst *byte, src *float32, n int)
TEXT ·encodeBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z31
	MOVL $0x7f800000, AX
	VPBROADCASTD AX, Z29
	MOVL $0x7fff, AX
	VPBROADCASTD AX, Z28
	MOVL $1, AX
	VPBROADCASTD AX, Z27
	MOVL $0x40, AX
	VPBROADCASTD AX, Z26

	// bits + 0x7fff + (bits>>16 & 1), then >> 16; a NaN (|bits| > Inf)
	// becomes bits>>16 | 0x40 instead.
loop:
	TESTQ CX, CX
	JZ    ret
	VMOVDQU32 (SI), Z4
	VPSRLD $16, Z4, Z5
	VPANDD Z27, Z5, Z6
	VPADDD Z28, Z6, Z6
	VPADDD Z4, Z6, Z6
	VPSRLD $16, Z6, Z6
	VPANDD Z31, Z4, Z7
	VPCMPUD $6, Z29, Z7, K1
	VPORD Z26, Z5, K1, Z6
	VPMOVDW Z6, (DI)
	ADDQ $64, SI
	ADDQ $32, DI
	SUBQ $16, CX
	JMP  loop

ret:
	VZEROUPPER
	RET

// func decodeBF16AVX512(dst *float32, src *byte, n int)
TEXT ·decodeBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

loop:
	TESTQ CX, CX
	JZ    ret
	VPMOVZXWD (SI), Z4
	VPSLLD $16, Z4, Z4
	VMOVUPS Z4, (DI)
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  loop

ret:
	VZEROUPPER
	RET

// func decodeAddBF16AVX512(dst *float32, src *byte, n int)
TEXT ·decodeAddBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

loop:
	TESTQ CX, CX
	JZ    ret
	VPMOVZXWD (SI), Z4
	VPSLLD $16, Z4, Z4
	VADDPS (DI), Z4, Z4
	VMOVUPS Z4, (DI)
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  loop

ret:
	VZEROUPPER
	RET


// packPerm256 is packPerm512 for 256-bit registers (two lanes).
DATA packPerm256<>+0(SB)/4, $0
DATA packPerm256<>+4(SB)/4, $4
DATA packPerm256<>+8(SB)/4, $1
DATA packPerm256<>+12(SB)/4, $5
DATA packPerm256<>+16(SB)/4, $2
DATA packPerm256<>+20(SB)/4, $6
DATA packPerm256<>+24(SB)/4, $3
DATA packPerm256<>+28(SB)/4, $7
GLOBL packPerm256<>(SB), RODATA|NOPTR, $32

// func encodeInt8AVX2(dst *byte, src *float32, blocks, block int) (done int)
//
// The same two passes per chunk as the AVX-512 encoders, on 256-bit registers.
TEXT ·encodeInt8AVX2(SB), NOSPLIT, $16-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	MOVQ block+24(FP), BX
	XORQ R8, R8
	MOVQ $4096, AX
	XORL DX, DX
	DIVQ BX
	MOVQ $1, R12
	CMPQ AX, R12
	CMOVQCC AX, R12 // R12 = max(1, 4096/block) blocks per chunk
	LEAQ 4(BX), R13 // R13 = bytes per encoded block
	MOVL $0x7fffffff, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	MOVL $0x42fe0000, AX
	VMOVD AX, X13
	VMOVDQU packPerm256<>(SB), Y12

chunk:
	MOVQ CX, AX
	SUBQ R8, AX
	JZ   ret
	CMPQ AX, R12
	CMOVQHI R12, AX
	MOVQ AX, 0(SP)
	MOVQ $0, 8(SP)
	XORQ DX, DX
	MOVQ SI, R9
	MOVQ DI, R11

p1block:
	CMPQ DX, 0(SP)
	JAE  p2
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	MOVQ BX, R10

max32:
	CMPQ R10, $32
	JB   max8
	VPAND (R9), Y14, Y4
	VPAND 32(R9), Y14, Y5
	VPAND 64(R9), Y14, Y6
	VPAND 96(R9), Y14, Y7
	VPMAXUD Y4, Y0, Y0
	VPMAXUD Y5, Y1, Y1
	VPMAXUD Y6, Y2, Y2
	VPMAXUD Y7, Y3, Y3
	ADDQ $128, R9
	SUBQ $32, R10
	JMP  max32

max8:
	TESTQ R10, R10
	JZ    maxdone
	VPAND (R9), Y14, Y4
	VPMAXUD Y4, Y0, Y0
	ADDQ $32, R9
	SUBQ $8, R10
	JMP  max8

maxdone:
	VPMAXUD Y1, Y0, Y0
	VPMAXUD Y3, Y2, Y2
	VPMAXUD Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPMAXUD X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPMAXUD X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VPMAXUD X1, X0, X0
	VMOVD X0, AX
	CMPL AX, $0x1f800000
	JB   p1stop
	CMPL AX, $0x7f7fffff
	JAE  p1stop
	MOVL AX, (R11)
	ADDQ R13, R11
	INCQ DX
	JMP  p1block

p1stop:
	MOVQ DX, 0(SP)
	MOVQ $1, 8(SP)

p2:
	XORQ DX, DX
	MOVQ SI, R9
	MOVQ DI, R11

p2block:
	CMPQ DX, 0(SP)
	JAE  chunkdone
	VMOVSS (R11), X0
	VDIVSS X13, X0, X1
	VDIVSS X0, X13, X2
	VMOVSS X1, (R11)
	VBROADCASTSS X2, Y11
	ADDQ $4, R11
	MOVQ BX, R10

q32:
	CMPQ R10, $32
	JB   q8
	VMULPS (R9), Y11, Y4
	VMULPS 32(R9), Y11, Y5
	VMULPS 64(R9), Y11, Y6
	VMULPS 96(R9), Y11, Y7
	VCVTPS2DQ Y4, Y4
	VCVTPS2DQ Y5, Y5
	VCVTPS2DQ Y6, Y6
	VCVTPS2DQ Y7, Y7
	VPACKSSDW Y5, Y4, Y8
	VPACKSSDW Y7, Y6, Y4
	VPACKSSWB Y4, Y8, Y8
	VPERMD Y8, Y12, Y8
	VMOVDQU Y8, (R11)
	ADDQ $128, R9
	ADDQ $32, R11
	SUBQ $32, R10
	JMP  q32

q8:
	TESTQ R10, R10
	JZ    next
	VMULPS (R9), Y11, Y4
	VCVTPS2DQ Y4, Y4
	VEXTRACTI128 $1, Y4, X5
	VPACKSSDW X5, X4, X4
	VPACKSSWB X4, X4, X4
	VMOVQ X4, (R11)
	ADDQ $32, R9
	ADDQ $8, R11
	SUBQ $8, R10
	JMP  q8

next:
	INCQ DX
	JMP  p2block

chunkdone:
	ADDQ 0(SP), R8
	MOVQ R9, SI
	MOVQ R11, DI
	CMPQ 8(SP), $0
	JEQ  chunk

ret:
	VZEROUPPER
	MOVQ R8, done+32(FP)
	RET

// func encodeInt4AVX2(dst *byte, src *float32, blocks, block int) (done int)
//
// The same two passes per chunk as the AVX-512 encoders, on 256-bit registers.
TEXT ·encodeInt4AVX2(SB), NOSPLIT, $16-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	MOVQ block+24(FP), BX
	XORQ R8, R8
	MOVQ $4096, AX
	XORL DX, DX
	DIVQ BX
	MOVQ $1, R12
	CMPQ AX, R12
	CMOVQCC AX, R12 // R12 = max(1, 4096/block) blocks per chunk
	MOVQ BX, R13
	SHRQ $1, R13
	ADDQ $4, R13 // R13 = bytes per encoded block
	MOVL $0x7fffffff, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	MOVL $0x40e00000, AX
	VMOVD AX, X13
	VMOVDQU packPerm256<>(SB), Y12
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X10
	VPBROADCASTD X10, Y10
	MOVL $0x00ff00ff, AX
	VMOVD AX, X9
	VPBROADCASTD X9, Y9

chunk:
	MOVQ CX, AX
	SUBQ R8, AX
	JZ   ret
	CMPQ AX, R12
	CMOVQHI R12, AX
	MOVQ AX, 0(SP)
	MOVQ $0, 8(SP)
	XORQ DX, DX
	MOVQ SI, R9
	MOVQ DI, R11

p1block:
	CMPQ DX, 0(SP)
	JAE  p2
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	MOVQ BX, R10

max32:
	CMPQ R10, $32
	JB   max8
	VPAND (R9), Y14, Y4
	VPAND 32(R9), Y14, Y5
	VPAND 64(R9), Y14, Y6
	VPAND 96(R9), Y14, Y7
	VPMAXUD Y4, Y0, Y0
	VPMAXUD Y5, Y1, Y1
	VPMAXUD Y6, Y2, Y2
	VPMAXUD Y7, Y3, Y3
	ADDQ $128, R9
	SUBQ $32, R10
	JMP  max32

max8:
	TESTQ R10, R10
	JZ    maxdone
	VPAND (R9), Y14, Y4
	VPMAXUD Y4, Y0, Y0
	ADDQ $32, R9
	SUBQ $8, R10
	JMP  max8

maxdone:
	VPMAXUD Y1, Y0, Y0
	VPMAXUD Y3, Y2, Y2
	VPMAXUD Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPMAXUD X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPMAXUD X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VPMAXUD X1, X0, X0
	VMOVD X0, AX
	CMPL AX, $0x1f800000
	JB   p1stop
	CMPL AX, $0x7f7fffff
	JAE  p1stop
	MOVL AX, (R11)
	ADDQ R13, R11
	INCQ DX
	JMP  p1block

p1stop:
	MOVQ DX, 0(SP)
	MOVQ $1, 8(SP)

p2:
	XORQ DX, DX
	MOVQ SI, R9
	MOVQ DI, R11

p2block:
	CMPQ DX, 0(SP)
	JAE  chunkdone
	VMOVSS (R11), X0
	VDIVSS X13, X0, X1
	VDIVSS X0, X13, X2
	VMOVSS X1, (R11)
	VBROADCASTSS X2, Y11
	ADDQ $4, R11
	MOVQ BX, R10

q32:
	CMPQ R10, $32
	JB   q8
	VMULPS (R9), Y11, Y4
	VMULPS 32(R9), Y11, Y5
	VMULPS 64(R9), Y11, Y6
	VMULPS 96(R9), Y11, Y7
	VCVTPS2DQ Y4, Y4
	VCVTPS2DQ Y5, Y5
	VCVTPS2DQ Y6, Y6
	VCVTPS2DQ Y7, Y7
	VPACKSSDW Y5, Y4, Y8
	VPACKSSDW Y7, Y6, Y4
	VPACKSSWB Y4, Y8, Y8
	VPERMD Y8, Y12, Y8
	// Merge the nibbles of each 16-bit pair of codes into its low byte,
	// then pack the low bytes.
	VPAND Y10, Y8, Y8
	VPSRLW $4, Y8, Y5
	VPOR Y5, Y8, Y8
	VPAND Y9, Y8, Y8
	VEXTRACTI128 $1, Y8, X5
	VPACKUSWB X5, X8, X8
	VMOVDQU X8, (R11)
	ADDQ $128, R9
	ADDQ $16, R11
	SUBQ $32, R10
	JMP  q32

q8:
	TESTQ R10, R10
	JZ    next
	VMULPS (R9), Y11, Y4
	VCVTPS2DQ Y4, Y4
	VEXTRACTI128 $1, Y4, X5
	VPACKSSDW X5, X4, X4
	VPACKSSWB X4, X4, X4
	VPAND X10, X4, X4
	VPSRLW $4, X4, X5
	VPOR X5, X4, X4
	VPAND X9, X4, X4
	VPACKUSWB X4, X4, X4
	VMOVD X4, (R11)
	ADDQ $32, R9
	ADDQ $4, R11
	SUBQ $8, R10
	JMP  q8

next:
	INCQ DX
	JMP  p2block

chunkdone:
	ADDQ 0(SP), R8
	MOVQ R9, SI
	MOVQ R11, DI
	CMPQ 8(SP), $0
	JEQ  chunk

ret:
	VZEROUPPER
	MOVQ R8, done+32(FP)
	RET

// func decodeInt8AVX2(dst *float32, src *byte, blocks, block int)
TEXT ·decodeInt8AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	MOVQ block+24(FP), DX

block:
	TESTQ CX, CX
	JZ    ret
	VBROADCASTSS (SI), Y11
	LEAQ 4(SI), R9
	MOVQ DX, R10

d32:
	CMPQ R10, $32
	JB   d8
	VPMOVSXBD 0(R9), Y4
	VPMOVSXBD 8(R9), Y5
	VPMOVSXBD 16(R9), Y6
	VPMOVSXBD 24(R9), Y7
	VCVTDQ2PS Y4, Y4
	VCVTDQ2PS Y5, Y5
	VCVTDQ2PS Y6, Y6
	VCVTDQ2PS Y7, Y7
	VMULPS Y11, Y4, Y4
	VMULPS Y11, Y5, Y5
	VMULPS Y11, Y6, Y6
	VMULPS Y11, Y7, Y7
	VMOVUPS Y4, 0(DI)
	VMOVUPS Y5, 32(DI)
	VMOVUPS Y6, 64(DI)
	VMOVUPS Y7, 96(DI)
	ADDQ $32, R9
	ADDQ $128, DI
	SUBQ $32, R10
	JMP  d32

d8:
	TESTQ R10, R10
	JZ    next
	VPMOVSXBD (R9), Y4
	VCVTDQ2PS Y4, Y4
	VMULPS Y11, Y4, Y4
	VMOVUPS Y4, 0(DI)
	ADDQ $8, R9
	ADDQ $32, DI
	SUBQ $8, R10
	JMP  d8

next:
	MOVQ R9, SI
	DECQ CX
	JMP  block

ret:
	VZEROUPPER
	RET

// func decodeAddInt8AVX2(dst *float32, src *byte, blocks, block int)
TEXT ·decodeAddInt8AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	MOVQ block+24(FP), DX

block:
	TESTQ CX, CX
	JZ    ret
	VBROADCASTSS (SI), Y11
	LEAQ 4(SI), R9
	MOVQ DX, R10

d32:
	CMPQ R10, $32
	JB   d8
	VPMOVSXBD 0(R9), Y4
	VPMOVSXBD 8(R9), Y5
	VPMOVSXBD 16(R9), Y6
	VPMOVSXBD 24(R9), Y7
	VCVTDQ2PS Y4, Y4
	VCVTDQ2PS Y5, Y5
	VCVTDQ2PS Y6, Y6
	VCVTDQ2PS Y7, Y7
	VMULPS Y11, Y4, Y4
	VMULPS Y11, Y5, Y5
	VMULPS Y11, Y6, Y6
	VMULPS Y11, Y7, Y7
	VADDPS 0(DI), Y4, Y4
	VADDPS 32(DI), Y5, Y5
	VADDPS 64(DI), Y6, Y6
	VADDPS 96(DI), Y7, Y7
	VMOVUPS Y4, 0(DI)
	VMOVUPS Y5, 32(DI)
	VMOVUPS Y6, 64(DI)
	VMOVUPS Y7, 96(DI)
	ADDQ $32, R9
	ADDQ $128, DI
	SUBQ $32, R10
	JMP  d32

d8:
	TESTQ R10, R10
	JZ    next
	VPMOVSXBD (R9), Y4
	VCVTDQ2PS Y4, Y4
	VMULPS Y11, Y4, Y4
	VADDPS 0(DI), Y4, Y4
	VMOVUPS Y4, 0(DI)
	ADDQ $8, R9
	ADDQ $32, DI
	SUBQ $8, R10
	JMP  d8

next:
	MOVQ R9, SI
	DECQ CX
	JMP  block

ret:
	VZEROUPPER
	RET

// func decodeInt4AVX2(dst *float32, src *byte, blocks, block int)
TEXT ·decodeInt4AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	MOVQ block+24(FP), DX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X12
	VPBROADCASTD X12, Y12
	VMOVDQU nibbleSign<>(SB), X10

block:
	TESTQ CX, CX
	JZ    ret
	VBROADCASTSS (SI), Y11
	LEAQ 4(SI), R9
	MOVQ DX, R10

d16:
	CMPQ R10, $16
	JB   d8
	VMOVQ (R9), X4
	VPSRLW $4, X4, X5
	VPAND X12, X4, X4
	VPAND X12, X5, X5
	VPUNPCKLBW X5, X4, X6
	VPSHUFB X6, X10, X6
	VPMOVSXBD X6, Y8
	VPSRLDQ $8, X6, X6
	VPMOVSXBD X6, Y9
	VCVTDQ2PS Y8, Y8
	VCVTDQ2PS Y9, Y9
	VMULPS Y11, Y8, Y8
	VMULPS Y11, Y9, Y9
	VMOVUPS Y8, 0(DI)
	VMOVUPS Y9, 32(DI)
	ADDQ $8, R9
	ADDQ $64, DI
	SUBQ $16, R10
	JMP  d16

d8:
	TESTQ R10, R10
	JZ    next
	VMOVD (R9), X4
	VPSRLW $4, X4, X5
	VPAND X12, X4, X4
	VPAND X12, X5, X5
	VPUNPCKLBW X5, X4, X6
	VPSHUFB X6, X10, X6
	VPMOVSXBD X6, Y8
	VCVTDQ2PS Y8, Y8
	VMULPS Y11, Y8, Y8
	VMOVUPS Y8, 0(DI)
	ADDQ $4, R9
	ADDQ $32, DI

next:
	MOVQ R9, SI
	DECQ CX
	JMP  block

ret:
	VZEROUPPER
	RET

// func decodeAddInt4AVX2(dst *float32, src *byte, blocks, block int)
TEXT ·decodeAddInt4AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	MOVQ block+24(FP), DX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X12
	VPBROADCASTD X12, Y12
	VMOVDQU nibbleSign<>(SB), X10

block:
	TESTQ CX, CX
	JZ    ret
	VBROADCASTSS (SI), Y11
	LEAQ 4(SI), R9
	MOVQ DX, R10

d16:
	CMPQ R10, $16
	JB   d8
	VMOVQ (R9), X4
	VPSRLW $4, X4, X5
	VPAND X12, X4, X4
	VPAND X12, X5, X5
	VPUNPCKLBW X5, X4, X6
	VPSHUFB X6, X10, X6
	VPMOVSXBD X6, Y8
	VPSRLDQ $8, X6, X6
	VPMOVSXBD X6, Y9
	VCVTDQ2PS Y8, Y8
	VCVTDQ2PS Y9, Y9
	VMULPS Y11, Y8, Y8
	VMULPS Y11, Y9, Y9
	VADDPS 0(DI), Y8, Y8
	VADDPS 32(DI), Y9, Y9
	VMOVUPS Y8, 0(DI)
	VMOVUPS Y9, 32(DI)
	ADDQ $8, R9
	ADDQ $64, DI
	SUBQ $16, R10
	JMP  d16

d8:
	TESTQ R10, R10
	JZ    next
	VMOVD (R9), X4
	VPSRLW $4, X4, X5
	VPAND X12, X4, X4
	VPAND X12, X5, X5
	VPUNPCKLBW X5, X4, X6
	VPSHUFB X6, X10, X6
	VPMOVSXBD X6, Y8
	VCVTDQ2PS Y8, Y8
	VMULPS Y11, Y8, Y8
	VADDPS 0(DI), Y8, Y8
	VMOVUPS Y8, 0(DI)
	ADDQ $4, R9
	ADDQ $32, DI

next:
	MOVQ R9, SI
	DECQ CX
	JMP  block

ret:
	VZEROUPPER
	RET

// func encodeBF16AVX2(dst *byte, src *float32, n int)
TEXT ·encodeBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $0x7fffffff, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	MOVL $0x7f800000, AX
	VMOVD AX, X13
	VPBROADCASTD X13, Y13
	MOVL $0x7fff, AX
	VMOVD AX, X12
	VPBROADCASTD X12, Y12
	MOVL $1, AX
	VMOVD AX, X11
	VPBROADCASTD X11, Y11
	MOVL $0x40, AX
	VMOVD AX, X10
	VPBROADCASTD X10, Y10

loop:
	TESTQ CX, CX
	JZ    ret
	VMOVDQU (SI), Y4
	VPSRLD $16, Y4, Y5
	VPAND Y11, Y5, Y6
	VPADDD Y12, Y6, Y6
	VPADDD Y4, Y6, Y6
	VPSRLD $16, Y6, Y6
	VPAND Y14, Y4, Y7
	VPCMPGTD Y13, Y7, Y7 // |bits| > Inf: NaN
	VPOR Y10, Y5, Y8
	VPBLENDVB Y7, Y8, Y6, Y6
	VEXTRACTI128 $1, Y6, X9
	VPACKUSDW X9, X6, X6
	VMOVDQU X6, (DI)
	ADDQ $32, SI
	ADDQ $16, DI
	SUBQ $8, CX
	JMP  loop

ret:
	VZEROUPPER
	RET

// func decodeBF16AVX2(dst *float32, src *byte, n int)
TEXT ·decodeBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

loop:
	TESTQ CX, CX
	JZ    ret
	VPMOVZXWD (SI), Y4
	VPSLLD $16, Y4, Y4
	VMOVUPS Y4, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  loop

ret:
	VZEROUPPER
	RET

// func decodeAddBF16AVX2(dst *float32, src *byte, n int)
TEXT ·decodeAddBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

loop:
	TESTQ CX, CX
	JZ    ret
	VPMOVZXWD (SI), Y4
	VPSLLD $16, Y4, Y4
	VADDPS (DI), Y4, Y4
	VMOVUPS Y4, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  loop

ret:
	VZEROUPPER
	RET
