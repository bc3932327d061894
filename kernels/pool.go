package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The pool: one token per goroutine doing kernel work, as many tokens as
// GOMAXPROCS had when the package started. Every GEMM of the process takes a
// token for its calling goroutine (waiting while all are held) and one more
// per helper it starts, if any are free; so the rank goroutines of a
// tensor-parallel engine share the cores instead of oversubscribing them.
var (
	sem        = make(chan struct{}, runtime.GOMAXPROCS(0))
	maxThreads atomic.Int64

	// running counts goroutines working inside parallelFor; maxRunning is
	// its high-water mark (tests check it never exceeds the pool), and
	// lastThreads is how many tokens the latest call held (itself included).
	running, maxRunning, lastThreads atomic.Int64
)

func init() { maxThreads.Store(int64(cap(sem))) }

// Threads returns the most goroutines one GEMM uses (its caller included).
func Threads() int { return int(maxThreads.Load()) }

// SetThreads caps the goroutines one GEMM uses at n (at least 1, at most the
// pool size, GOMAXPROCS at start) and returns the previous cap. Benchmarks use
// it to measure one core.
func SetThreads(n int) int {
	n = max(1, min(n, cap(sem)))
	return int(maxThreads.Swap(int64(n)))
}

// minParallelFLOPs: below this a GEMM runs on its caller alone (starting a
// helper costs about a microsecond).
const minParallelFLOPs = 4e6

// parallelFor runs fn(t, scratch) for every t in [0, tasks): on the calling
// goroutine and on up to Threads()-1 helpers, each holding a pool token.
// Tasks are claimed in order from a shared counter.
func parallelFor(tasks int, fn func(t int, sc *scratch)) {
	sem <- struct{}{}
	defer func() { <-sem }()
	var next atomic.Int64
	work := func() {
		r := running.Add(1)
		for {
			m := maxRunning.Load()
			if r <= m || maxRunning.CompareAndSwap(m, r) {
				break
			}
		}
		defer running.Add(-1)
		sc := scratchPool.Get().(*scratch)
		for {
			t := int(next.Add(1) - 1)
			if t >= tasks {
				break
			}
			fn(t, sc)
		}
		scratchPool.Put(sc)
	}
	var wg sync.WaitGroup
	helpers := min(tasks, Threads()) - 1
	held := 1
spawn:
	for range helpers {
		select {
		case sem <- struct{}{}:
			held++
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				work()
			}()
		default:
			break spawn // all busy: the caller goes on with fewer threads
		}
	}
	lastThreads.Store(int64(held))
	work()
	wg.Wait()
}

// scratch is per-goroutine space for edge tiles: an A micro-panel and a C
// tile, sized for the largest micro-kernel; and b, the widened K block of a
// task's bfloat16 B slivers (grown on first use).
type scratch struct {
	a []float32
	c []float32
	b []float32
}

const (
	maxMR = 6
	maxNR = 64
)

var scratchPool = sync.Pool{New: func() any {
	return &scratch{a: make([]float32, maxMR*KC), c: make([]float32, maxMR*maxNR)}
}}
