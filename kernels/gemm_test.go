package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

const u = 1.0 / (1 << 24) // float32 unit roundoff

func gamma(n int) float64 { return float64(n) * u / (1 - float64(n)*u) }

func randMat(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// opA returns element (i, p) of op(A).
func at(x []float32, ld int, trans bool, i, p int) float64 {
	if trans {
		return float64(x[p*ld+i])
	}
	return float64(x[i*ld+p])
}

// checkGemm compares c (computed from c0, the input of an accumulating call)
// with the exact float64 result. Bound: each product is formed exactly by an
// FMA (or rounded once, in the Go kernel) and passes through at most KC
// roundings inside its K block, one per later block added into C and one
// for the add into c0, so with recursive-summation error analysis
// |err| <= gamma(k+3)·(sum_p |a_ip||b_pj| + |c0_ij|).
func checkGemm(t *testing.T, transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c0, c []float32, ldc int) {
	t.Helper()
	bad := 0
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var ref, mag float64
			if c0 != nil {
				ref, mag = float64(c0[i*ldc+j]), math.Abs(float64(c0[i*ldc+j]))
			}
			for p := 0; p < k; p++ {
				x := at(a, lda, transA, i, p) * at(b, ldb, transB, p, j)
				ref += x
				mag += math.Abs(x)
			}
			got := float64(c[i*ldc+j])
			if bound := gamma(k+3) * mag; math.Abs(got-ref) > bound || math.IsNaN(got) {
				if bad++; bad <= 3 {
					t.Errorf("C[%d][%d] = %v, want %v within %.3g", i, j, got, ref, bound)
				}
			}
		}
	}
}

func TestVariantIsFastestAvailable(t *testing.T) {
	vs := Variants()
	if len(vs) == 0 || vs[len(vs)-1] != "go" {
		t.Fatalf("Variants() = %v: the Go kernel must always be there, last", vs)
	}
	want := vs[0]
	if env := os.Getenv("EQUARX_GEMM"); env != "" && kernelByName(env) != nil {
		want = env
	}
	if Variant() != want {
		t.Fatalf("Variant() = %q, want %q (available %v)", Variant(), want, vs)
	}
	t.Logf("GEMM micro-kernel: %s (available: %v)", Variant(), vs)
}

func TestGemmMatchesFloat64(t *testing.T) {
	shapes := [][3]int{
		{1, 1, 1}, {1, 64, 768}, {5, 17, 3}, {6, 64, 256}, {7, 65, 257},
		{13, 130, 600}, {64, 48, 64}, {37, 16, 511}, {12, 129, 1},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, kern := range kernelsHere {
		for _, sh := range shapes {
			m, n, k := sh[0], sh[1], sh[2]
			for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
				for _, accum := range []bool{false, true} {
					name := fmt.Sprintf("%s/%dx%dx%d/tA=%v,tB=%v,accum=%v", kern.name, m, n, k, tr[0], tr[1], accum)
					t.Run(name, func(t *testing.T) {
						// Strides wider than the rows, to catch stride mix-ups.
						lda, ldb, ldc := k+3, n+5, n+2
						arows, brows := m, k
						if tr[0] {
							lda, arows = m+3, k
						}
						if tr[1] {
							ldb, brows = k+5, n
						}
						a := randMat(r, arows*lda)
						b := randMat(r, brows*ldb)
						c := randMat(r, m*ldc)
						var c0 []float32
						if accum {
							c0 = append([]float32(nil), c...)
						}
						gemmWith(kern, false, tr[0], tr[1], m, n, k, a, lda, b, ldb, c, ldc, accum)
						checkGemm(t, tr[0], tr[1], m, n, k, a, lda, b, ldb, c0, c, ldc)
					})
				}
			}
		}
	}
}

// TestRowCountInvariance: a row's output is bitwise the same whether it is
// multiplied alone, in a small group at any offset, or among 512 rows, on one
// thread or all, through Gemm or a prepacked weight.
func TestRowCountInvariance(t *testing.T) {
	const m, n, k = 512, 130, 600
	r := rand.New(rand.NewPCG(3, 4))
	x := randMat(r, m*k)
	w := randMat(r, n*k) // [n, k]: B = wᵀ
	for _, kern := range kernelsHere {
		t.Run(kern.name, func(t *testing.T) {
			full := make([]float32, m*n)
			gemmWith(kern, false, false, true, m, n, k, x, k, w, k, full, n, false)
			prev := SetThreads(1)
			one := make([]float32, m*n)
			gemmWith(kern, false, false, true, m, n, k, x, k, w, k, one, n, false)
			SetThreads(prev)
			packed := make([]float32, m*n)
			packWith(kern, true, k, n, w, k).Mul(m, x, k, packed, n, false)
			for i := range full {
				if math.Float32bits(full[i]) != math.Float32bits(one[i]) || math.Float32bits(full[i]) != math.Float32bits(packed[i]) {
					t.Fatalf("element %d: %d threads %v, 1 thread %v, prepacked %v", i, prev, full[i], one[i], packed[i])
				}
			}
			for _, g := range [][2]int{{0, 1}, {1, 1}, {511, 1}, {5, 7}, {100, 13}, {250, 64}, {3, 509}} {
				i0, rows := g[0], g[1]
				part := make([]float32, rows*n)
				gemmWith(kern, false, false, true, rows, n, k, x[i0*k:], k, w, k, part, n, false)
				for i := range part {
					if math.Float32bits(part[i]) != math.Float32bits(full[i0*n+i]) {
						t.Fatalf("rows [%d,%d): row %d col %d = %v alone, %v among %d rows", i0, i0+rows, i0+i/n, i%n, part[i], full[i0*n+i], m)
					}
				}
			}
		})
	}
}

// TestSgemmAlphaBeta checks the BLAS entry point (what gorgonia calls)
// against gonum's Sgemm for the alpha/beta cases.
func TestSgemmAlphaBeta(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const m, n, k = 9, 70, 300
	a, b := randMat(r, m*k), randMat(r, k*n)
	for _, ab := range [][2]float32{{1, 0}, {1, 1}, {1, 0.5}, {2, 0}, {-0.5, 3}, {0, 2}} {
		c := randMat(r, m*n)
		c0 := append([]float32(nil), c...)
		want := append([]float32(nil), c...)
		BLAS{}.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, ab[0], a, k, b, n, ab[1], c, n)
		gonum.Implementation{}.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, ab[0], a, k, b, n, ab[1], want, n)
		for i := range c {
			// Each result is within gamma(k+5)·(|alpha|·sum|a||b| + |beta||c0|)
			// of the exact value (k+3 as in checkGemm, plus the alpha and beta
			// roundings), so the two differ by at most twice that.
			var mag float64
			for p := 0; p < k; p++ {
				mag += math.Abs(float64(a[(i/n)*k+p]) * float64(b[p*n+i%n]))
			}
			mag = math.Abs(float64(ab[0]))*mag + math.Abs(float64(ab[1]))*math.Abs(float64(c0[i]))
			if d := math.Abs(float64(c[i] - want[i])); d > 2*gamma(k+5)*mag {
				t.Fatalf("alpha %v beta %v: C[%d] = %v, gonum %v", ab[0], ab[1], i, c[i], want[i])
			}
		}
	}
}

func TestFMAPeakLoopRuns(t *testing.T) {
	for _, v := range Variants() {
		got := fmaPeakLoop(v, 10)
		if v == "go" {
			if got != 0 {
				t.Errorf("go variant has no asm peak loop, got %v FLOPs", got)
			}
			continue
		}
		if got <= 0 {
			t.Errorf("%s peak loop did no FLOPs", v)
		}
	}
}
