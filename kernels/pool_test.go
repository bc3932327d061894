package kernels

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestPoolSharesCores: one large GEMM uses every thread of the pool; eight
// concurrent GEMMs (as eight tensor-parallel ranks would run) never have
// more goroutines working than the pool has tokens, and each gives the same
// bits as when run alone (and as GemmSerial).
func TestPoolSharesCores(t *testing.T) {
	const m, n, k = 192, 256, 300 // 29 MFLOP: above minParallelFLOPs
	r := rand.New(rand.NewPCG(11, 12))
	x, w := randMat(r, m*k), randMat(r, n*k)
	alone := make([]float32, m*n)
	Gemm(false, true, m, n, k, x, k, w, k, alone, n, false)
	if got, want := lastThreads.Load(), int64(Threads()); got != want {
		t.Errorf("a lone GEMM took %d pool threads, want %d (Threads)", got, want)
	}
	serial := make([]float32, m*n)
	GemmSerial(false, true, m, n, k, x, k, w, k, serial, n, false)
	maxRunning.Store(0)
	outs := make([][]float32, 8)
	var wg sync.WaitGroup
	for i := range outs {
		outs[i] = make([]float32, m*n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				Gemm(false, true, m, n, k, x, k, w, k, outs[i], n, false)
			}
		}()
	}
	wg.Wait()
	if got := maxRunning.Load(); got > int64(cap(sem)) || got < 1 {
		t.Errorf("8 concurrent GEMMs had %d goroutines working at once; the pool has %d", got, cap(sem))
	}
	for i, o := range append(outs, serial) {
		for j := range o {
			if math.Float32bits(o[j]) != math.Float32bits(alone[j]) {
				t.Fatalf("run %d element %d: %v, alone %v", i, j, o[j], alone[j])
			}
		}
	}
}
