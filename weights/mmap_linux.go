//go:build linux

package weights

import (
	"os"
	"syscall"
)

const mmapSupported = true

// mmapFile maps the first size bytes of f read-only and shared: pages come
// from the page cache on first touch, so a process reads only the parts of
// the file it decodes, and processes on one machine share the pages.
func mmapFile(f *os.File, size int) ([]byte, error) {
	return syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
}

func munmapFile(b []byte) error { return syscall.Munmap(b) }
