//go:build linux

package weights

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"
)

// residentBytes returns how much of the file at path is in the page cache
// (mincore over a fresh mapping of it).
func residentBytes(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	m, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	vec := make([]byte, (int64(len(m))+pageSize-1)/pageSize)
	if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatalf("mincore: %v", e)
	}
	var n int64
	for _, v := range vec {
		n += int64(v & 1)
	}
	return n * pageSize
}

// evict drops the file's clean pages from the page cache.
func evict(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	const fadvDontNeed = 4
	if _, _, e := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0); e != 0 {
		t.Skipf("fadvise: %v", e)
	}
}

// TestMappedReadsOnlyItsPages reads one tp-4 rank's row slices from a file
// evicted from the page cache and checks with mincore that the pages
// brought in are about the bytes read: the mapping's MADV_RANDOM stops the
// fault read-around (read_ahead_kb, often megabytes) from pulling in the
// other ranks' rows. Column slices of row-parallel matrices are reported,
// not checked: their runs are shorter than a page, so they touch most of
// the matrix's pages.
func TestMappedReadsOnlyItsPages(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 60 MB checkpoint")
	}
	cfg := benchCfg
	dir, _ := writeCheckpointDir(t, cfg, "BF16")
	path := filepath.Join(dir, singleFileName)
	evict(t, path)
	if r := residentBytes(t, path); r > 1<<20 {
		t.Skipf("%d bytes stay resident after eviction (a memory-backed file system?)", r)
	}
	s := openWith(t, dir, true)
	defer s.Close()
	v, _ := CountReads(s)
	q, kv, h := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim, cfg.HiddenDim
	for l := range cfg.Layers {
		for _, m := range []struct {
			short string
			n     int
		}{{"wq", q}, {"wk", kv}, {"wv", kv}, {"w_gate", h}, {"w_up", h}} {
			if _, err := v.Rows(layerName(l, m.short), m.n/4, m.n/2); err != nil {
				t.Fatal(err)
			}
		}
	}
	st, _ := os.Stat(path)
	rows, res := v.BytesRead(), residentBytes(t, path)
	t.Logf("rank 1 of tp 4, row slices: %d bytes read (%.1f%% of the file), %d resident (%.1f%%)",
		rows, 100*float64(rows)/float64(st.Size()), res, 100*float64(res)/float64(st.Size()))
	// The header page and one partial page at each end of each slice.
	if slack := int64(1+2*5*cfg.Layers) * pageSize; res > rows+slack {
		t.Errorf("%d bytes resident after reading %d bytes of row slices (allowed %d more)", res, rows, slack)
	}
	for l := range cfg.Layers {
		for _, m := range []struct {
			short string
			n     int
		}{{"wo", q}, {"w_down", h}} {
			if _, err := v.Cols(layerName(l, m.short), m.n/4, m.n/2); err != nil {
				t.Fatal(err)
			}
		}
	}
	all, res := v.BytesRead(), residentBytes(t, path)
	t.Logf("with column slices: %d bytes read (%.1f%%), %d resident (%.1f%%)",
		all, 100*float64(all)/float64(st.Size()), res, 100*float64(res)/float64(st.Size()))
}
