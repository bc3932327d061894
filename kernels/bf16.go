package kernels

import (
	"fmt"
	"math"
)

// BF16ToF32 widens bfloat16 bit patterns to float32 (exact).
func BF16ToF32(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	i := 0
	for ; i+8 <= len(src); i += 8 {
		s := src[i : i+8 : i+8]
		d := dst[i : i+8 : i+8]
		d[0] = math.Float32frombits(uint32(s[0]) << 16)
		d[1] = math.Float32frombits(uint32(s[1]) << 16)
		d[2] = math.Float32frombits(uint32(s[2]) << 16)
		d[3] = math.Float32frombits(uint32(s[3]) << 16)
		d[4] = math.Float32frombits(uint32(s[4]) << 16)
		d[5] = math.Float32frombits(uint32(s[5]) << 16)
		d[6] = math.Float32frombits(uint32(s[6]) << 16)
		d[7] = math.Float32frombits(uint32(s[7]) << 16)
	}
	for ; i < len(src); i++ {
		dst[i] = math.Float32frombits(uint32(src[i]) << 16)
	}
}

// PackTBF16 packs B = wᵀ, w being [n, k] row-major bfloat16 bit patterns
// (a weight stored [out, in]), on the pool's threads. The packed operand
// keeps the bfloat16 bits, in the micro-kernel's sliver layout; Mul widens
// each K block of a task's slivers to float32 once and runs the float32
// micro-kernel on it, accumulating in float32. A product with it is
// therefore bitwise the product with PackT of the widened weights, and
// rows stay invariant exactly as they do for float32 weights.
func PackTBF16(w []uint16, n, k int) *PackedB {
	if n < 0 || k < 0 || len(w) < n*k {
		panic(fmt.Sprintf("kernels: bf16 B [%d,%d] needs %d values, has %d", n, k, n*k, len(w)))
	}
	kern := active.forCols(n)
	nr := kern.nr
	nt := (n + nr - 1) / nr
	p := &PackedB{K: k, N: n, kern: kern, half: make([]uint16, nt*nr*k)}
	chunks := min(nt, 4*Threads())
	ParallelFor(chunks, func(t int) {
		p.packHalf(w, t*nt/chunks, (t+1)*nt/chunks)
	})
	return p
}

// PackTBF16From is PackTBF16 for a weight read piecewise: rows(lo, hi)
// returns rows [lo, hi) of w ([n, k] bfloat16 bits, row-major), asked for
// in whole slivers of about chunk values, so only the packed operand and
// one piece are held at once. Pieces are asked for in order on the calling
// goroutine.
func PackTBF16From(n, k, chunk int, rows func(lo, hi int) ([]uint16, error)) (*PackedB, error) {
	return packFrom(n, k, chunk, rows,
		func(p *PackedB, size int) []uint16 { p.half = make([]uint16, size); return p.half },
		func(view *PackedB, part []uint16) { view.half = part },
		func(view *PackedB, w []uint16, s0, s1 int) { view.packHalf(w, s0, s1) })
}

// packHalf fills slivers [s0, s1) of p.half from w ([N, K] row-major).
func (p *PackedB) packHalf(w []uint16, s0, s1 int) {
	nr, k := p.kern.nr, p.K
	for s := s0; s < s1; s++ {
		j0 := s * nr
		cols := min(nr, p.N-j0)
		dst := p.half[s*nr*k : (s+1)*nr*k]
		if cols < nr {
			clear(dst)
		}
		for q0 := 0; q0 < k; q0 += 64 {
			q1 := min(q0+64, k)
			for jj := 0; jj < cols; jj++ {
				src := w[(j0+jj)*k+q0 : (j0+jj)*k+q1]
				d := dst[q0*nr+jj:]
				for q, v := range src {
					d[q*nr] = v
				}
			}
		}
	}
}

// BF16 reports whether p holds bfloat16 values.
func (p *PackedB) BF16() bool { return p.half != nil }

// Bytes returns the memory the packed operand holds.
func (p *PackedB) Bytes() int64 {
	return 4*int64(len(p.data)) + 2*int64(len(p.half))
}

// Col writes column j of B (row j of the weight a PackT or PackTBF16 was
// given) into dst[:K], as float32.
func (p *PackedB) Col(j int, dst []float32) {
	if j < 0 || j >= p.N {
		panic(fmt.Sprintf("kernels: column %d of a packed B with %d columns", j, p.N))
	}
	nr, k := p.kern.nr, p.K
	s, jj := j/nr, j%nr
	base := s*nr*k + jj
	dst = dst[:k]
	if p.half != nil {
		h := p.half[base:]
		for q := range dst {
			dst[q] = math.Float32frombits(uint32(h[q*nr]) << 16)
		}
		return
	}
	d := p.data[base:]
	for q := range dst {
		dst[q] = d[q*nr]
	}
}

// widen returns the float32 slivers [tj0, tj1) of K block [pc, pc+kb) of
// a bfloat16 packed B, laid out as the float32 packing lays out one K block
// of one sliver (kb·nr contiguous values per sliver).
func (g *gemmArgs) widen(sc *scratch, tj0, tj1, pc, kb int) []float32 {
	nr := g.kern.nr
	need := (tj1 - tj0) * nr * kb
	if cap(sc.b) < need {
		sc.b = make([]float32, need)
	}
	b := sc.b[:need]
	for tj := tj0; tj < tj1; tj++ {
		src := g.pbh[tj*nr*g.k+pc*nr : tj*nr*g.k+(pc+kb)*nr]
		BF16ToF32(b[(tj-tj0)*nr*kb:(tj-tj0+1)*nr*kb], src)
	}
	return b
}

// PackedLen returns how many values PackT or PackTBF16 of an [n, k] weight
// hold (columns padded to the micro-kernel's width).
func PackedLen(n, k int) int {
	nr := active.forCols(n).nr
	return (n + nr - 1) / nr * nr * k
}

// BF16ScratchBytes bounds the float32 scratch the goroutines of one
// bfloat16 product hold (one widened K block of a task's slivers each).
func BF16ScratchBytes() int64 {
	return int64(Threads()) * (ncMax + maxNR) * KC * 4
}
