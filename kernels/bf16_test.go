package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// toBF16 rounds float32 values to bfloat16 bits, to nearest even.
func toBF16(x []float32) []uint16 {
	h := make([]uint16, len(x))
	for i, v := range x {
		b := math.Float32bits(v)
		h[i] = uint16((b + 0x7fff + (b>>16)&1) >> 16)
	}
	return h
}

// TestBF16MatchesF32OnRoundedWeights: a product with bfloat16 weights is
// bitwise the float32 product with the weights widened, for shapes with
// edge tiles and several K blocks, on one thread and on all; and a row's
// output is bitwise the same alone or among 512 rows.
func TestBF16MatchesF32OnRoundedWeights(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, sh := range [][3]int{{512, 130, 600}, {7, 1000, 257}, {64, 64, 256}, {1, 3, 5}} {
		m, n, k := sh[0], sh[1], sh[2]
		x := randMat(r, m*k)
		h := toBF16(randMat(r, n*k))
		w := make([]float32, n*k)
		BF16ToF32(w, h)
		want := make([]float32, m*n)
		PackT(w, n, k).Mul(m, x, k, want, n, false)
		pb := PackTBF16(h, n, k)
		for _, threads := range []int{1, Threads()} {
			prev := SetThreads(threads)
			got := make([]float32, m*n)
			pb.Mul(m, x, k, got, n, false)
			SetThreads(prev)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("[%d,%d,%d] %d threads: element %d = %v with bf16 weights, %v with widened f32", m, n, k, threads, i, got[i], want[i])
				}
			}
		}
		for _, g := range [][2]int{{0, 1}, {m - 1, 1}, {m / 2, (m + 1) / 2}} {
			i0, rows := g[0], g[1]
			part := make([]float32, rows*n)
			pb.Mul(rows, x[i0*k:], k, part, n, false)
			for i := range part {
				if math.Float32bits(part[i]) != math.Float32bits(want[i0*n+i]) {
					t.Fatalf("[%d,%d,%d] rows [%d,%d): element %d = %v, %v among %d rows", m, n, k, i0, i0+rows, i, part[i], want[i0*n+i], m)
				}
			}
		}
		col := make([]float32, k)
		for _, j := range []int{0, n - 1, n / 2} {
			pb.Col(j, col)
			for q := range col {
				if col[q] != w[j*k+q] {
					t.Fatalf("[%d,%d,%d] Col(%d)[%d] = %v, want %v", m, n, k, j, q, col[q], w[j*k+q])
				}
			}
			PackT(w, n, k).Col(j, col)
			for q := range col {
				if col[q] != w[j*k+q] {
					t.Fatalf("[%d,%d,%d] f32 Col(%d)[%d] = %v, want %v", m, n, k, j, q, col[q], w[j*k+q])
				}
			}
		}
	}
}

// BenchmarkGemmBF16 compares a 64-row product with a prepacked float32 and
// a prepacked bfloat16 weight (the LM head's chunk shape at small width).
func BenchmarkGemmBF16(b *testing.B) {
	const m, n, k = 64, 4096, 1024
	r := rand.New(rand.NewPCG(1, 1))
	x := randMat(r, m*k)
	w := randMat(r, n*k)
	out := make([]float32, m*n)
	for _, c := range []struct {
		name string
		p    *PackedB
	}{{"f32", PackT(w, n, k)}, {"bf16", PackTBF16(toBF16(w), n, k)}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				c.p.Mul(m, x, k, out, n, false)
			}
			b.ReportMetric(2*m*n*k*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func BenchmarkBF16ToF32(b *testing.B) {
	src := toBF16(randMat(rand.New(rand.NewPCG(1, 1)), 1<<17))
	dst := make([]float32, len(src))
	b.SetBytes(int64(len(src) * 2))
	for b.Loop() {
		BF16ToF32(dst, src)
	}
}

func TestPackTBF16From(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, sh := range [][2]int{{1000, 257}, {64, 64}, {3, 5}, {200, 1}} {
		n, k := sh[0], sh[1]
		h := toBF16(randMat(r, n*k))
		want := PackTBF16(h, n, k)
		for _, chunk := range []int{1, 5000, 1 << 20} {
			got, err := PackTBF16From(n, k, chunk, func(lo, hi int) ([]uint16, error) { return h[lo*k : hi*k], nil })
			if err != nil {
				t.Fatal(err)
			}
			if len(got.half) != len(want.half) {
				t.Fatalf("[%d,%d] chunk %d: %d packed values, want %d", n, k, chunk, len(got.half), len(want.half))
			}
			for i := range got.half {
				if got.half[i] != want.half[i] {
					t.Fatalf("[%d,%d] chunk %d: packed value %d differs", n, k, chunk, i)
				}
			}
		}
	}
}

func TestPackTFrom(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	for _, sh := range [][2]int{{1000, 257}, {64, 64}, {3, 5}, {200, 1}} {
		n, k := sh[0], sh[1]
		w := randMat(r, n*k)
		want := PackT(w, n, k)
		for _, chunk := range []int{1, 5000, 1 << 20} {
			got, err := PackTFrom(n, k, chunk, func(lo, hi int) ([]float32, error) { return w[lo*k : hi*k], nil })
			if err != nil {
				t.Fatal(err)
			}
			if len(got.data) != len(want.data) {
				t.Fatalf("[%d,%d] chunk %d: %d packed values, want %d", n, k, chunk, len(got.data), len(want.data))
			}
			for i := range got.data {
				if math.Float32bits(got.data[i]) != math.Float32bits(want.data[i]) {
					t.Fatalf("[%d,%d] chunk %d: packed value %d differs", n, k, chunk, i)
				}
			}
		}
	}
	if _, err := PackTFrom(4, 4, 1, func(lo, hi int) ([]float32, error) { return make([]float32, 3), nil }); err == nil {
		t.Fatal("a short piece was accepted")
	}
}
