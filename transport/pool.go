package transport

import (
	"math/bits"
	"sync"
)

// Payload buffers come from size-classed free lists (powers of two from
// 4 KiB), so a steady stream of messages of similar sizes allocates nothing
// once the lists are warm. Buffers larger than the biggest class are
// allocated and dropped; each list keeps at most 64 MiB of buffers (at
// least 4, at most 1024), enough for every segment of a call in flight.
const (
	minClassBits = 12 // 4 KiB
	numClasses   = 19 // up to 1 GiB
)

func maxFree(class int) int {
	return max(4, min(1024, (64<<20)>>(class+minClassBits)))
}

type freeList struct {
	mu   sync.Mutex
	bufs [][]byte
}

var free [numClasses]freeList

func classOf(n int) int {
	if n <= 1<<minClassBits {
		return 0
	}
	return bits.Len(uint(n-1)) - minClassBits
}

// getBuf returns a buffer of length n.
func getBuf(n int) []byte {
	c := classOf(n)
	if c >= numClasses {
		return make([]byte, n)
	}
	l := &free[c]
	l.mu.Lock()
	if k := len(l.bufs); k > 0 {
		b := l.bufs[k-1]
		l.bufs[k-1] = nil
		l.bufs = l.bufs[:k-1]
		l.mu.Unlock()
		return b[:n]
	}
	l.mu.Unlock()
	return make([]byte, n, 1<<(c+minClassBits))
}

// putBuf returns a buffer obtained from getBuf. Buffers of other
// capacities are ignored.
func putBuf(b []byte) {
	c := classOf(cap(b))
	if c >= numClasses || cap(b) != 1<<(c+minClassBits) {
		return
	}
	l := &free[c]
	l.mu.Lock()
	if len(l.bufs) < maxFree(c) {
		l.bufs = append(l.bufs, b[:0])
	}
	l.mu.Unlock()
}
