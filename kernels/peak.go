package kernels

import (
	"sync"
	"time"
)

// fmaRound runs the variant's asm FMA loop on `threads` goroutines (about
// 2^21 iterations each) and returns the FLOPs done; 0 if the variant has no
// loop (the Go one).
func fmaRound(variant string, threads int) float64 {
	if fmaPeakLoop(variant, 1) == 0 {
		return 0
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var flops float64
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var f float64
			for range 8 {
				f += fmaPeakLoop(variant, 1<<18)
			}
			mu.Lock()
			flops += f
			mu.Unlock()
		}()
	}
	wg.Wait()
	return flops
}

// PeakFLOPS measures this machine's fp32 FMA peak with the asm loop of the
// running variant (16 independent FMA chains per goroutine) on `threads`
// goroutines: the best of 5 rounds, FLOPs per wall second. It takes about
// 0.1-0.5 s and returns 0 for the Go variant. Benchmarks divide by it to
// report a share of the peak of the machine they ran on.
func PeakFLOPS(threads int) float64 {
	var best float64
	for range 5 {
		start := time.Now()
		f := FMALoop(threads)
		best = max(best, f/time.Since(start).Seconds())
	}
	return best
}

// FMALoop runs one round of PeakFLOPS's loop (about 2^21 iterations per
// goroutine) on `threads` goroutines and returns the FLOPs done, so callers
// can time it their own way (wall or CPU time).
func FMALoop(threads int) float64 { return fmaRound(active.name, threads) }
