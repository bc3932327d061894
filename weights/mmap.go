package weights

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"sync"
)

// useMmap lets tests and benchmarks compare the mapped path with plain
// ReadAt on the same files.
var useMmap = true

// errClosed is returned by reads from a closed source or mapping.
var errClosed = errors.New("source is closed")

// mapping is a read-only view of a whole file in memory (mmap, MAP_SHARED,
// PROT_READ where the platform supports it). The bytes are only ever copied
// out by access, under a read lock that Close waits for, so no slice of the
// mapping outlives it and a read racing Close gets an error, never a fault
// on unmapped memory.
//
// A file that shrinks while mapped makes accesses beyond its new end raise
// SIGBUS. access runs with debug.SetPanicOnFault, so such a fault becomes an
// ErrCorrupt error instead of killing the process; bytes past the new end
// but inside its last page read as zeros, which nothing can detect. Files
// must therefore not be rewritten in place while a server has them open
// (replace them by rename instead, which leaves the mapped inode intact).
type mapping struct {
	mu     sync.RWMutex
	data   []byte
	closed bool
	unmap  func([]byte) error // nil when data is not mapped memory
	origin string
}

// mapFile maps f (of the given size). It returns nil, nil when this platform
// has no mmap support or the mapping fails for lack of address space, so
// the caller falls back to ReadAt.
func mapFile(f *os.File, size int64, origin string) (*mapping, error) {
	if !useMmap || !mmapSupported || size > math.MaxInt {
		return nil, nil
	}
	if size == 0 {
		return &mapping{data: []byte{}, origin: origin}, nil
	}
	data, err := mmapFile(f, int(size))
	if err != nil {
		return nil, nil
	}
	// A file truncated between Stat and Mmap would fault on first access;
	// check again now that the mapping exists.
	if st, err := f.Stat(); err != nil || st.Size() < size {
		munmapFile(data)
		if err != nil {
			return nil, fmt.Errorf("weights: stat %s: %w", origin, err)
		}
		return nil, fmt.Errorf("%w: %s shrank from %d to %d bytes while being opened", ErrCorrupt, origin, size, st.Size())
	}
	return &mapping{data: data, unmap: munmapFile, origin: origin}, nil
}

func (m *mapping) size() int64 { return int64(len(m.data)) }

// access runs fn on the mapped bytes under the read lock; a memory fault
// inside fn (the file shrank under the mapping) is returned as ErrCorrupt.
func (m *mapping) access(fn func(data []byte) error) (err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return errClosed
	}
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
			err = fmt.Errorf("%w: %s: memory fault reading the mapped file (truncated or changed while open?): %v", ErrCorrupt, m.origin, r)
		}
	}()
	return fn(m.data)
}

// ReadAt copies mapped bytes, for header parsing.
func (m *mapping) ReadAt(p []byte, off int64) (int, error) {
	var n int
	err := m.access(func(data []byte) error {
		if off < 0 || off > int64(len(data)) {
			return fmt.Errorf("weights: %s: offset %d outside the %d-byte file", m.origin, off, len(data))
		}
		n = copy(p, data[off:])
		if n < len(p) {
			return io.EOF
		}
		return nil
	})
	return n, err
}

// pageSize is the unit of page-cache reads.
var pageSize = int64(os.Getpagesize())

// prefetch asks, when data is mapped memory, for the pages holding the runs
// of n bytes at off, off+stride, ... (runs already checked to lie inside
// data). Runs whose pages touch are merged, so a row slice is one request
// and a column slice one request per group of rows sharing pages.
func (m *mapping) prefetch(data []byte, off, stride, n int64, runs int) {
	if m.unmap == nil || n <= 0 || runs <= 0 {
		return
	}
	lo, hi := int64(-1), int64(-1)
	flush := func() {
		if lo >= 0 {
			willNeed(data[lo:min(hi, int64(len(data)))])
		}
	}
	for r := range runs {
		a := off + int64(r)*stride
		pa, pb := a&^(pageSize-1), (a+n+pageSize-1)&^(pageSize-1)
		if lo >= 0 && pa <= hi {
			hi = max(hi, pb)
			continue
		}
		flush()
		lo, hi = pa, pb
	}
	flush()
}

// span checks that n bytes at off lie inside data and returns them.
func span(data []byte, off, n int64, origin string) ([]byte, error) {
	if off < 0 || n < 0 || off > int64(len(data))-n {
		return nil, fmt.Errorf("%w: %d bytes at offset %d lie outside the %d-byte mapping of %s", ErrCorrupt, n, off, len(data), origin)
	}
	return data[off : off+n], nil
}

// Close unmaps the file once no access is running; later accesses fail.
func (m *mapping) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	data := m.data
	m.data = nil
	if m.unmap != nil && len(data) > 0 {
		if err := m.unmap(data); err != nil {
			return fmt.Errorf("weights: unmap %s: %w", m.origin, err)
		}
	}
	return nil
}
