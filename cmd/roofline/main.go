//go:build unix

// Command roofline measures this machine's fp32 FMA peak and memory
// bandwidth, times the engine's CPU kernels (the kernels package's GEMM on
// the projection shapes, the vector exp and fused SiLU) and prints a
// markdown table: FLOPs, minimum bytes moved, the floor max(FLOPs/peak,
// bytes/bandwidth), the measured time and the share of the floor reached.
// A second share uses CPU time (FLOPs per CPU-second against the one-core
// peak per CPU-second), which holds up when other processes share the
// cores; the wall-clock share does not.
//
//	go run ./cmd/roofline [-threads 0] [-reps 5]
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/equarx/equarx/kernels"
)

func main() {
	threads := flag.Int("threads", 0, "GEMM threads (0: all of the pool)")
	reps := flag.Int("reps", 5, "timed runs per kernel; the median is reported")
	flag.Parse()
	if *threads > 0 {
		kernels.SetThreads(*threads)
	}
	th := kernels.Threads()
	peak := kernels.PeakFLOPS(th)
	var peakCPU float64 // FLOP per CPU-second of one core
	for range 5 {
		c0 := cpuTime()
		f := kernels.FMALoop(1)
		if c := cpuTime() - c0; c > 0 {
			peakCPU = max(peakCPU, f/c)
		}
	}
	bw := copyBandwidth()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("GEMM micro-kernel %s, vector kernels %s, %d thread(s), GOMAXPROCS %d, %s\n",
		kernels.Variant(), kernels.VecVariant(), th, runtime.GOMAXPROCS(0), time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Printf("measured: fp32 FMA peak %.0f GFLOP/s on %d thread(s), %.0f GFLOP per CPU-second on one; copy() bandwidth %.1f GB/s (64 MiB, read+write); load average %s\n\n",
		peak/1e9, th, peakCPU/1e9, bw/1e9, strings.Fields(string(load) + " ?")[0])
	fmt.Println("| kernel | FLOPs | bytes | floor | measured (median) | GFLOP/s | % of floor | % of peak, CPU time |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	row := func(name string, flops, bytes float64, run func()) {
		run() // warm up (packs, page faults)
		ts := make([]float64, *reps)
		cs := make([]float64, *reps)
		for i := range ts {
			start, c0 := time.Now(), cpuTime()
			run()
			ts[i] = time.Since(start).Seconds()
			cs[i] = cpuTime() - c0
		}
		sort.Float64s(ts)
		sort.Float64s(cs)
		t, c := ts[len(ts)/2], cs[len(cs)/2]
		floor := max(flops/peak, bytes/bw)
		gf, cpuShare := "-", "-"
		if flops > 0 {
			gf = fmt.Sprintf("%.1f", flops/t/1e9)
			if c > 0 && peakCPU > 0 {
				cpuShare = fmt.Sprintf("%.0f%%", 100*flops/c/peakCPU)
			}
		}
		fl := "-"
		if flops > 0 {
			fl = fmt.Sprintf("%.3g", flops)
		}
		fmt.Printf("| %s | %s | %.3g | %s | %s | %s | %.0f%% | %s |\n", name, fl, bytes, dur(floor), dur(t), gf, 100*floor/t, cpuShare)
	}
	r := rand.New(rand.NewPCG(1, 2))
	randv := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	for _, m := range []int{64, 512, 2048} {
		for _, kn := range [][2]int{{768, 768}, {768, 2048}, {2048, 768}, {1152, 1024}, {1152, 256}, {1024, 1152}, {1152, 6912}, {6912, 1152}} {
			k, n := kn[0], kn[1]
			x, w, c := randv(m*k), randv(n*k), make([]float32, m*n)
			pw := kernels.PackT(w, n, k)
			row(fmt.Sprintf("GEMM x[%d,%d]·W[%d,%d]ᵀ, W packed", m, k, n, k), 2*float64(m*n*k), 4*float64(m*k+n*k+m*n), func() {
				pw.Mul(m, x, k, c, n, false)
			})
		}
	}
	const ne = 512 * 2048
	g, u := randv(ne), randv(ne)
	row(fmt.Sprintf("SiLU(g)·u, %d values (1 thread)", ne), 0, 12*ne, func() { kernels.SiLUMul(g, u) })
	s := randv(ne)
	row(fmt.Sprintf("softmax exp+sum, %d values (1 thread)", ne), 0, 8*ne, func() { kernels.ExpScaleShiftSum(s, s, 0.125, 4) })
}

func dur(s float64) string {
	switch {
	case s < 1e-3:
		return fmt.Sprintf("%.1f us", s*1e6)
	default:
		return fmt.Sprintf("%.2f ms", s*1e3)
	}
}

// copyBandwidth: best of 5 copies of 64 MiB, bytes read plus written per second.
func copyBandwidth() float64 {
	const n = 64 << 20
	src, dst := make([]byte, n), make([]byte, n)
	for i := range src {
		src[i] = byte(i)
	}
	var best float64
	for range 5 {
		start := time.Now()
		copy(dst, src)
		best = max(best, 2*n/time.Since(start).Seconds())
	}
	return best
}

// cpuTime returns the process's user+system CPU seconds so far.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
