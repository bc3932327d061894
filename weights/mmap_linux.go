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
//
// The mapping is advised MADV_RANDOM: otherwise a page fault reads ahead
// and around the faulting page by the device's read_ahead_kb (often
// megabytes), pulling in other ranks' shards. Each read then asks for
// exactly its page ranges with MADV_WILLNEED, which starts large reads of
// those ranges only.
func mmapFile(f *os.File, size int) ([]byte, error) {
	b, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	_ = syscall.Madvise(b, syscall.MADV_RANDOM) // advice only: a failure changes speed, not results
	return b, nil
}

func munmapFile(b []byte) error { return syscall.Munmap(b) }

// willNeed asks the kernel to read the pages of b (page-aligned start) in
// the background.
func willNeed(b []byte) { _ = syscall.Madvise(b, syscall.MADV_WILLNEED) }
