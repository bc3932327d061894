package kernels

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// measurePeak runs the variant's asm FMA loop on `threads` goroutines for
// about 200 ms and returns FLOP/s (0 for the Go variant, which has no loop).
func measurePeak(variant string, threads int) float64 {
	if fmaPeakLoop(variant, 1) == 0 {
		return 0
	}
	const iters = 1 << 20
	var best float64
	for range 3 {
		start := time.Now()
		var wg sync.WaitGroup
		var flops float64
		var mu sync.Mutex
		for range threads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var f float64
				for range 8 {
					f += fmaPeakLoop(variant, iters)
				}
				mu.Lock()
				flops += f
				mu.Unlock()
			}()
		}
		wg.Wait()
		best = max(best, flops/time.Since(start).Seconds())
	}
	return best
}

var (
	peakMu    sync.Mutex
	peakCache = map[[2]any]float64{}
)

// Peak returns the measured FMA peak (FLOP/s) of variant on threads
// goroutines, measured once per process.
func peak(variant string, threads int) float64 {
	peakMu.Lock()
	defer peakMu.Unlock()
	key := [2]any{variant, threads}
	if p, ok := peakCache[key]; ok {
		return p
	}
	p := measurePeak(variant, threads)
	peakCache[key] = p
	return p
}

// BenchmarkFMAPeak: the fp32 FMA peak of this machine, an asm loop of 16
// independent FMA chains per core.
func BenchmarkFMAPeak(b *testing.B) {
	for _, v := range Variants() {
		if v == "go" {
			continue
		}
		for _, th := range []int{1, Threads()} {
			b.Run(fmt.Sprintf("%s/threads=%d", v, th), func(b *testing.B) {
				var flops float64
				var mu sync.Mutex
				for b.Loop() {
					var wg sync.WaitGroup
					for range th {
						wg.Add(1)
						go func() {
							defer wg.Done()
							f := fmaPeakLoop(v, 1<<16)
							mu.Lock()
							flops += f
							mu.Unlock()
						}()
					}
					wg.Wait()
				}
				b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// gemmShapes are the engine's projection shapes, [rows, in (K), out (N)]:
// the 110M Llama (768, 2048) and Gemma 3 1B (dim 1152, hidden 6912, q 1024,
// kv 256).
var gemmShapes = func() [][3]int {
	var s [][3]int
	for _, m := range []int{64, 512, 2048} {
		for _, kn := range [][2]int{{768, 768}, {768, 2048}, {2048, 768}, {1152, 1024}, {1152, 256}, {1024, 1152}, {1152, 6912}, {6912, 1152}} {
			s = append(s, [3]int{m, kn[0], kn[1]})
		}
	}
	return s
}()

func reportGemm(b *testing.B, variant string, threads int, flopsPerOp float64) {
	gf := flopsPerOp * float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(gf/1e9, "GFLOP/s")
	if p := peak(variant, threads); p > 0 {
		b.ReportMetric(100*gf/p, "pct_peak")
	}
}

// BenchmarkGemmT: C[M,N] = X[M,K]·W[N,K]ᵀ as the engine's linears run it,
// per call packing (path=gemm) and with the weight packed once
// (path=prepacked), on 1 thread and on all. pct_peak compares with the FMA
// peak measured in the same process on as many threads.
func BenchmarkGemmT(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, sh := range gemmShapes {
		m, k, n := sh[0], sh[1], sh[2]
		x, w, c := randMat(r, m*k), randMat(r, n*k), make([]float32, m*n)
		var pw *PackedB
		for _, th := range []int{1, Threads()} {
			for _, path := range []string{"gemm", "prepacked"} {
				b.Run(fmt.Sprintf("%dx%dx%d/%s/%s/threads=%d", m, k, n, Variant(), path, th), func(b *testing.B) {
					prev := SetThreads(th)
					defer SetThreads(prev)
					if path == "prepacked" && pw == nil {
						pw = PackT(w, n, k)
					}
					for b.Loop() {
						if path == "gemm" {
							Gemm(false, true, m, n, k, x, k, w, k, c, n, false)
						} else {
							pw.Mul(m, x, k, c, n, false)
						}
					}
					reportGemm(b, Variant(), th, 2*float64(m)*float64(n)*float64(k))
				})
			}
		}
	}
}
