package kernels

import (
	"fmt"
	"os"
	"sync"
)

// KC is the K block: each output element accumulates KC products in
// registers, then adds them to C. It is fixed, so the order of the sums does
// not depend on the shape of the call.
const KC = 256

// ncMax bounds the columns of C one task covers, so that its packed B block
// (KC x ncMax floats, 512 KiB) stays in L2 while the task walks its rows.
const ncMax = 512

// microKernel computes C[mr][nr] (+)= A[mr][k]·B[k][nr]: A in place with row
// stride lda, B a packed sliver of nr floats per k, C with row stride ldc.
type microKernel struct {
	name   string
	mr, nr int
	fn     func(k int, a *float32, lda int, b *float32, c *float32, ldc int, accum int)
	// packT, if set, packs a full sliver of B = srcᵀ for the first k8
	// (a multiple of 8) values of k: dst[q*nr+j] = src[j*ldb+q].
	packT func(k8 int, src *float32, ldb int, dst *float32, nr int)
	// narrow, if set, runs products with at most narrowN columns, which
	// would leave most of this kernel's tile empty (attention's P·V with a
	// small head_dim). The choice depends on the columns only, so rows stay
	// invariant.
	narrow  *microKernel
	narrowN int
}

// forCols returns the micro-kernel for a product with n columns.
func (k *microKernel) forCols(n int) *microKernel {
	if k.narrow != nil && n <= k.narrowN {
		return k.narrow
	}
	return k
}

var (
	kernelsHere = available()
	active      = chooseKernel(os.Getenv("EQUARX_GEMM"))
)

// chooseKernel returns the fastest micro-kernel this CPU runs, or the one
// named by EQUARX_GEMM ("avx512", "avx2", "go") if this CPU runs it.
func chooseKernel(name string) *microKernel {
	for _, k := range kernelsHere {
		if k.name == name {
			return k
		}
	}
	return kernelsHere[0]
}

// Variant names the micro-kernel every GEMM of this process runs: "avx512",
// "avx2" or "go". With avx512, products of at most 16 columns run the avx2
// kernel (16 wide instead of 64).
func Variant() string { return active.name }

// Variants lists the micro-kernels this machine can run, fastest first.
func Variants() []string {
	var s []string
	for _, k := range kernelsHere {
		s = append(s, k.name)
	}
	return s
}

func kernelByName(name string) *microKernel {
	for _, k := range kernelsHere {
		if k.name == name {
			return k
		}
	}
	return nil
}

// PackedB is a B operand [K, N] laid out for the micro-kernel: slivers of nr
// columns, each K rows of nr floats (columns past N are zero). Packing a
// weight once saves the per-call packing that dominates when few rows are
// multiplied.
type PackedB struct {
	K, N int
	kern *microKernel
	data []float32
	half []uint16 // bfloat16 bits instead of data (PackTBF16)
}

// PackT packs B = wᵀ, w being [n, k] row-major (a weight stored [out, in]),
// on the pool's threads.
func PackT(w []float32, n, k int) *PackedB {
	return packWith(active, true, k, n, w, k)
}

// PackTFrom packs an [n, k] row-major float32 weight read piecewise:
// rows(lo, hi) returns rows [lo, hi), asked for whole slivers of about
// chunk values at a time, so only the packed weight and one piece are held
// at once. The result is the same as PackT of the whole matrix.
func PackTFrom(n, k, chunk int, rows func(lo, hi int) ([]float32, error)) (*PackedB, error) {
	return packFrom(n, k, chunk, rows,
		func(p *PackedB, size int) []float32 { p.data = make([]float32, size); return p.data },
		func(view *PackedB, part []float32) { view.data = part },
		func(view *PackedB, w []float32, s0, s1 int) { view.pack(true, w, k, s0, s1, true) })
}

// packFrom packs an [n, k] row-major weight of element type E read
// piecewise (PackTFrom, PackTBF16From): alloc gives p its packed storage,
// setPart points a view at a range of it, packPiece packs slivers [s0, s1)
// of a view from one piece. Pieces are asked for in order on the calling
// goroutine, each packed on all threads.
func packFrom[E float32 | uint16](n, k, chunk int, rows func(lo, hi int) ([]E, error),
	alloc func(p *PackedB, size int) []E, setPart func(view *PackedB, part []E),
	packPiece func(view *PackedB, w []E, s0, s1 int)) (*PackedB, error) {
	if n < 0 || k < 0 {
		return nil, fmt.Errorf("kernels: B [%d,%d] has a negative dimension", n, k)
	}
	kern := active.forCols(n)
	nr := kern.nr
	nt := (n + nr - 1) / nr
	p := &PackedB{K: k, N: n, kern: kern}
	all := alloc(p, nt*nr*k)
	per := max(1, chunk/max(1, nr*k)) // slivers per piece
	for s0 := 0; s0 < nt; s0 += per {
		s1 := min(nt, s0+per)
		lo, hi := s0*nr, min(n, s1*nr)
		w, err := rows(lo, hi)
		if err != nil {
			return nil, err
		}
		if len(w) != (hi-lo)*k {
			return nil, fmt.Errorf("kernels: rows [%d, %d) of a [%d,%d] weight: %d values, want %d", lo, hi, n, k, len(w), (hi-lo)*k)
		}
		// Pack slivers s0..s1 of the piece as slivers 0.. of a view.
		view := &PackedB{K: k, N: hi - lo, kern: kern}
		setPart(view, all[s0*nr*k:s1*nr*k])
		m := s1 - s0
		chunks := min(m, 4*Threads())
		ParallelFor(chunks, func(t int) { packPiece(view, w, t*m/chunks, (t+1)*m/chunks) })
	}
	return p, nil
}

// Pack packs B = b, [k, n] row-major with row stride ldb.
func Pack(b []float32, k, n, ldb int) *PackedB {
	return packWith(active, false, k, n, b, ldb)
}

func packWith(kern *microKernel, transB bool, k, n int, b []float32, ldb int) *PackedB {
	checkB(transB, k, n, b, ldb)
	kern = kern.forCols(n)
	nr := kern.nr
	nt := (n + nr - 1) / nr
	p := &PackedB{K: k, N: n, kern: kern, data: make([]float32, nt*nr*k)}
	chunks := min(nt, 4*Threads())
	ParallelFor(chunks, func(t int) {
		p.pack(transB, b, ldb, t*nt/chunks, (t+1)*nt/chunks, true)
	})
	return p
}

// pack fills slivers [s0, s1) of p from b (b[p][j], or b[j][p] if transB).
func (p *PackedB) pack(transB bool, b []float32, ldb, s0, s1 int, zeroPad bool) {
	nr, k := p.kern.nr, p.K
	for s := s0; s < s1; s++ {
		j0 := s * nr
		w := min(nr, p.N-j0)
		dst := p.data[s*nr*k : (s+1)*nr*k]
		if !transB {
			for q := 0; q < k; q++ {
				d := dst[q*nr : q*nr+nr]
				copy(d, b[q*ldb+j0:q*ldb+j0+w])
				if w < nr {
					clear(d[w:])
				}
			}
			continue
		}
		q0 := 0
		if w == nr && p.kern.packT != nil && k >= 8 {
			// Blocks of 64 k: the 8 source rows of a group stream, the
			// 16 KiB destination block stays in L1.
			k8 := k &^ 7
			for ; q0 < k8; q0 += 64 {
				p.kern.packT(min(64, k8-q0), &b[j0*ldb+q0], ldb, &dst[q0*nr], nr)
			}
			q0 = k8
		} else if w < nr {
			clear(dst)
		}
		// Transpose (the rest) in blocks of 64 k so source rows and the
		// destination block stay in L1.
		for ; q0 < k; q0 += 64 {
			q1 := min(q0+64, k)
			for jj := 0; jj < w; jj++ {
				src := b[(j0+jj)*ldb+q0 : (j0+jj)*ldb+q1]
				d := dst[q0*nr+jj:]
				for q, v := range src {
					d[q*nr] = v
				}
			}
		}
	}
}

func checkB(transB bool, k, n int, b []float32, ldb int) {
	rows, cols := k, n
	if transB {
		rows, cols = n, k
	}
	if rows > 0 && cols > 0 && (ldb < cols || len(b) < (rows-1)*ldb+cols) {
		panic(fmt.Sprintf("kernels: B [%d,%d] with stride %d needs %d values, has %d", rows, cols, ldb, (rows-1)*ldb+cols, len(b)))
	}
}

func checkAC(transA bool, m, n, k int, a []float32, lda int, c []float32, ldc int) {
	rows, cols := m, k
	if transA {
		rows, cols = k, m
	}
	if rows > 0 && cols > 0 && (lda < cols || len(a) < (rows-1)*lda+cols) {
		panic(fmt.Sprintf("kernels: A [%d,%d] with stride %d needs %d values, has %d", rows, cols, lda, (rows-1)*lda+cols, len(a)))
	}
	if m > 0 && n > 0 && (ldc < n || len(c) < (m-1)*ldc+n) {
		panic(fmt.Sprintf("kernels: C [%d,%d] with stride %d needs %d values, has %d", m, n, ldc, (m-1)*ldc+n, len(c)))
	}
}

// Mul computes C[m, N] = A[m, K]·B, or C += A·B when accum, with A and C
// row-major (row strides lda, ldc).
func (p *PackedB) Mul(m int, a []float32, lda int, c []float32, ldc int, accum bool) {
	checkAC(false, m, p.N, p.K, a, lda, c, ldc)
	if m == 0 || p.N == 0 {
		return
	}
	if p.K == 0 {
		if !accum {
			clearC(c, m, p.N, ldc)
		}
		return
	}
	g := &gemmArgs{kern: p.kern, m: m, n: p.N, k: p.K, a: a, lda: lda, pb: p.data, pbh: p.half, c: c, ldc: ldc, accum: accum}
	g.run(false)
}

func clearC(c []float32, m, n, ldc int) {
	for i := 0; i < m; i++ {
		clear(c[i*ldc : i*ldc+n])
	}
}

// Gemm computes C[m, n] = op(A)·op(B), or C += op(A)·op(B) when accum, all
// row-major: op(A) is A [m, k] (stride lda), or the transpose of a [k, m]
// when transA; likewise op(B) is [k, n] or the transpose of b [n, k].
func Gemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, accum bool) {
	gemmWith(active, false, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accum)
}

// GemmSerial is Gemm on the calling goroutine only, for callers that
// parallelize themselves (inside ParallelFor, whose workers already hold
// the pool's tokens). Results are bitwise those of Gemm.
func GemmSerial(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, accum bool) {
	gemmWith(active, true, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accum)
}

// ParallelFor runs fn(i) for every i in [0, n) on the calling goroutine and
// on helpers of the GEMM pool (whose tokens every GEMM shares). fn must not
// call Gemm or PackedB.Mul (the pool is not re-entrant); GemmSerial is fine.
func ParallelFor(n int, fn func(i int)) {
	if n <= 0 {
		return
	}
	if n == 1 {
		fn(0)
		return
	}
	parallelFor(n, func(t int, _ *scratch) { fn(t) })
}

var packPool sync.Pool

func gemmWith(kern *microKernel, serial, transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, accum bool) {
	checkAC(transA, m, n, k, a, lda, c, ldc)
	checkB(transB, k, n, b, ldb)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if !accum {
			clearC(c, m, n, ldc)
		}
		return
	}
	kern = kern.forCols(n)
	nr := kern.nr
	nt := (n + nr - 1) / nr
	need := nt * nr * k
	var buf []float32
	if v, ok := packPool.Get().(*[]float32); ok && cap(*v) >= need {
		buf = (*v)[:need]
	} else {
		buf = make([]float32, need)
	}
	p := &PackedB{K: k, N: n, kern: kern, data: buf}
	flops := 2 * float64(m) * float64(n) * float64(k)
	if serial || flops < minParallelFLOPs {
		p.pack(transB, b, ldb, 0, nt, true)
	} else {
		chunks := min(nt, 4*Threads())
		parallelFor(chunks, func(t int, _ *scratch) {
			p.pack(transB, b, ldb, t*nt/chunks, (t+1)*nt/chunks, true)
		})
	}
	g := &gemmArgs{kern: kern, m: m, n: n, k: k, a: a, lda: lda, transA: transA, pb: buf, c: c, ldc: ldc, accum: accum}
	g.run(serial)
	packPool.Put(&buf)
}

type gemmArgs struct {
	kern    *microKernel
	m, n, k int
	a       []float32
	lda     int
	transA  bool
	pb      []float32 // packed B
	pbh     []uint16  // packed B as bfloat16 bits, when pb is nil
	c       []float32
	ldc     int
	accum   bool
}

// run splits C into a grid of tasks (rows x columns, never K) and runs them
// on the pool.
func (g *gemmArgs) run(serial bool) {
	mr, nr := g.kern.mr, g.kern.nr
	mt := (g.m + mr - 1) / mr
	nt := (g.n + nr - 1) / nr
	flops := 2 * float64(g.m) * float64(g.n) * float64(g.k)
	threads := Threads()
	if serial || flops < minParallelFLOPs {
		threads = 1
	}
	nN := (nt*nr + ncMax - 1) / ncMax
	nM := 1
	if threads > 1 {
		// Make the task count a multiple of the thread count when the
		// tiles allow, so that equal tasks keep every thread busy.
		nM = threads / gcd(nN, threads)
		if nM > mt {
			nM = mt
			for nN < nt && (nM*nN)%threads != 0 {
				nN++
			}
		}
	}
	nN = min(nN, nt)
	tasks := nM * nN
	if threads == 1 {
		sc := scratchPool.Get().(*scratch)
		for t := range tasks {
			g.task(t, nM, nN, mt, nt, sc)
		}
		scratchPool.Put(sc)
		return
	}
	parallelFor(tasks, func(t int, sc *scratch) { g.task(t, nM, nN, mt, nt, sc) })
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (g *gemmArgs) task(t, nM, nN, mt, nt int, sc *scratch) {
	im, in := t/nN, t%nN
	g.block(im*mt/nM, (im+1)*mt/nM, in*nt/nN, (in+1)*nt/nN, sc)
}

// block computes the C tiles of row panels [ti0, ti1) and column slivers
// [tj0, tj1): for each K block, for each row panel, for each sliver, one
// micro-kernel call. Edge tiles go through scratch with the same kernel.
func (g *gemmArgs) block(ti0, ti1, tj0, tj1 int, sc *scratch) {
	mr, nr := g.kern.mr, g.kern.nr
	fn := g.kern.fn
	for pc := 0; pc < g.k; pc += KC {
		kb := min(KC, g.k-pc)
		accum := 0
		if pc > 0 || g.accum {
			accum = 1
		}
		// bf16 B: this K block of the task's slivers, widened once and
		// used by every row panel.
		var wb []float32
		if g.pbh != nil {
			wb = g.widen(sc, tj0, tj1, pc, kb)
		}
		for ti := ti0; ti < ti1; ti++ {
			i := ti * mr
			rows := min(mr, g.m-i)
			var ap *float32
			lda := g.lda
			if !g.transA && rows == mr {
				ap = &g.a[i*g.lda+pc]
			} else {
				ta := sc.a[:mr*kb]
				clear(ta)
				for r := 0; r < rows; r++ {
					if g.transA {
						for q := 0; q < kb; q++ {
							ta[r*kb+q] = g.a[(pc+q)*g.lda+i+r]
						}
					} else {
						copy(ta[r*kb:(r+1)*kb], g.a[(i+r)*g.lda+pc:])
					}
				}
				ap, lda = &ta[0], kb
			}
			for tj := tj0; tj < tj1; tj++ {
				j := tj * nr
				cols := min(nr, g.n-j)
				var bp *float32
				if wb != nil {
					bp = &wb[(tj-tj0)*nr*kb]
				} else {
					bp = &g.pb[tj*nr*g.k+pc*nr]
				}
				if rows == mr && cols == nr {
					fn(kb, ap, lda, bp, &g.c[i*g.ldc+j], g.ldc, accum)
					continue
				}
				tc := sc.c[:mr*nr]
				if accum != 0 {
					clear(tc)
					for r := 0; r < rows; r++ {
						copy(tc[r*nr:r*nr+cols], g.c[(i+r)*g.ldc+j:])
					}
				}
				fn(kb, ap, lda, bp, &tc[0], nr, accum)
				for r := 0; r < rows; r++ {
					copy(g.c[(i+r)*g.ldc+j:(i+r)*g.ldc+j+cols], tc[r*nr:r*nr+cols])
				}
			}
		}
	}
}
