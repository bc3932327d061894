package kernels

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// peakRate is a measured FMA peak: FLOP/s of wall time on some threads,
// and FLOP per CPU-second (the rate of one busy core, which holds up on a
// machine shared with other processes).
type peakRate struct{ wall, perCPU float64 }

// measurePeak runs the variant's asm FMA loop on `threads` goroutines, best
// of 5 rounds, and returns both rates (zero for the Go variant).
func measurePeak(variant string, threads int) peakRate {
	var best peakRate
	for range 5 {
		start, cpu0 := time.Now(), cpuTime()
		flops := fmaRound(variant, threads)
		best.wall = max(best.wall, flops/time.Since(start).Seconds())
		if c := (cpuTime() - cpu0).Seconds(); c > 0 {
			best.perCPU = max(best.perCPU, flops/c)
		}
	}
	return best
}

var (
	peakMu    sync.Mutex
	peakCache = map[[2]any]peakRate{}
)

// peak returns the measured FMA peak of variant on threads goroutines,
// measured once per process.
func peak(variant string, threads int) peakRate {
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

// gemmBench runs op b.N times and reports GFLOP/s (wall), pct_peak
// (against the FMA peak measured in this process on as many threads) and
// pct_peak_cpu (FLOPs per CPU-second against the one-core peak per
// CPU-second: the kernel's efficiency whatever share of the cores other
// processes take).
func gemmBench(b *testing.B, variant string, threads int, flopsPerOp float64, op func()) {
	pk := peak(variant, threads)
	pk1 := peak(variant, 1)
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		op()
	}
	cpu := (cpuTime() - cpu0).Seconds()
	flops := flopsPerOp * float64(b.N)
	gf := flops / b.Elapsed().Seconds()
	b.ReportMetric(gf/1e9, "GFLOP/s")
	if pk.wall > 0 {
		b.ReportMetric(100*gf/pk.wall, "pct_peak")
	}
	if pk1.perCPU > 0 && cpu > 0 {
		b.ReportMetric(100*flops/cpu/pk1.perCPU, "pct_peak_cpu")
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
					gemmBench(b, Variant(), th, 2*float64(m)*float64(n)*float64(k), func() {
						if path == "gemm" {
							Gemm(false, true, m, n, k, x, k, w, k, c, n, false)
						} else {
							pw.Mul(m, x, k, c, n, false)
						}
					})
				})
			}
		}
	}
}

// BenchmarkMicroKernel: one micro-kernel call on L1/L2-resident panels
// (k = KC), the ceiling of the blocked GEMM.
func BenchmarkMicroKernel(b *testing.B) {
	for _, kern := range kernelsHere {
		b.Run(kern.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(9, 9))
			a := randMat(r, kern.mr*KC)
			pb := randMat(r, kern.nr*KC)
			c := make([]float32, kern.mr*kern.nr)
			gemmBench(b, kern.name, 1, 2*float64(kern.mr*kern.nr*KC), func() {
				kern.fn(KC, &a[0], KC, &pb[0], &c[0], kern.nr, 1)
			})
		})
	}
}

// BenchmarkPackT: packing a [n, k] weight transposed into slivers (what a
// GEMM with an unpacked [out, in] operand does per call), GB/s of source.
func BenchmarkPackT(b *testing.B) {
	for _, sh := range [][2]int{{2048, 768}, {32000, 768}} {
		n, k := sh[0], sh[1]
		w := randMat(rand.New(rand.NewPCG(1, 1)), n*k)
		for _, kern := range kernelsHere {
			b.Run(fmt.Sprintf("%dx%d/%s", n, k, kern.name), func(b *testing.B) {
				p := packWith(kern, true, k, n, w, k)
				b.SetBytes(int64(4 * n * k))
				for b.Loop() {
					p.pack(true, w, k, 0, (n+kern.nr-1)/kern.nr, true)
				}
			})
		}
	}
}
