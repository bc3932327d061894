package weights

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/equarx/equarx/model"
)

// shardCfg is an untied Llama shape whose every split dimension divides
// by 4.
var shardCfg = model.Config{
	Arch: "llama", Dim: 64, HiddenDim: 128, Layers: 2, Heads: 8, KVHeads: 4, HeadDim: 8,
	Vocab: 256, MaxSeqLen: 64, NormEps: 1e-5, RopeTheta: 10000,
	RopeStyle: model.RopeHalf, Activation: model.ActSiLU,
}

// writeCheckpointDir writes cfg as a single-file safetensors checkpoint and
// returns the directory and the tensors as stored.
func writeCheckpointDir(t testing.TB, cfg model.Config, dtype string) (string, checkpoint) {
	t.Helper()
	dir := t.TempDir()
	ck := makeCheckpoint(t, cfg, dtype, "model.", 3)
	writeJSON(t, filepath.Join(dir, configFileName), hfConfigJSON(cfg))
	writeST(t, filepath.Join(dir, singleFileName), ck.hf, dtype)
	return dir, ck
}

func openWith(t testing.TB, dir string, mmap bool) Source {
	t.Helper()
	old := useMmap
	useMmap = mmap
	defer func() { useMmap = old }()
	s, err := OpenSafetensors(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rankReads reads what rank r of tp needs of the layers and the LM head,
// as the engine does: column-parallel matrices and the head by rows,
// row-parallel matrices by columns, norms whole. It returns the elements of
// matrices and of norms read.
func rankReads(t testing.TB, s Source, cfg model.Config, tp, r int) (matrix, norms int64) {
	t.Helper()
	part := func(n int) (int, int) { return n * r / tp, n * (r + 1) / tp }
	q, kv, h := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim, cfg.HiddenDim
	read := func(name string, byCols bool, n int) {
		lo, hi := part(n)
		var x *Tensor
		var err error
		if byCols {
			x, err = s.Cols(name, lo, hi)
		} else {
			x, err = s.Rows(name, lo, hi)
		}
		if err != nil {
			t.Fatal(err)
		}
		matrix += int64(len(x.Data))
	}
	for l := range cfg.Layers {
		name := func(short string) string { return fmt.Sprintf("layers.%d.%s", l, short) }
		read(name("wq"), false, q)
		read(name("wk"), false, kv)
		read(name("wv"), false, kv)
		read(name("wo"), true, q)
		read(name("w_gate"), false, h)
		read(name("w_up"), false, h)
		read(name("w_down"), true, h)
		for _, short := range []string{"attn_norm", "ffn_norm"} {
			x, err := s.Tensor(name(short))
			if err != nil {
				t.Fatal(err)
			}
			norms += int64(len(x.Data))
		}
	}
	read("lm_head", false, cfg.Vocab)
	return matrix, norms
}

// TestRankReadsItsShare checks the bytes-read accounting: a rank of tp 4
// reads a quarter of every sharded matrix plus the replicated norms, far
// from the whole file, with and without mmap, for 2- and 4-byte dtypes.
func TestRankReadsItsShare(t *testing.T) {
	for _, dtype := range []string{"BF16", "F32"} {
		dir, _ := writeCheckpointDir(t, shardCfg, dtype)
		st, err := os.Stat(filepath.Join(dir, singleFileName))
		if err != nil {
			t.Fatal(err)
		}
		es := int64(4)
		if dtype == "BF16" {
			es = 2
		}
		for _, mmap := range []bool{true, false} {
			s := openWith(t, dir, mmap)
			src := s.(ReadCounter)
			var sum int64
			for r := range 4 {
				view, counted := CountReads(s)
				if !counted {
					t.Fatal("a safetensors source is not counted")
				}
				matrix, norms := rankReads(t, view, shardCfg, 4, r)
				want := (matrix + norms) * es
				if got := view.BytesRead(); got != want {
					t.Errorf("%s mmap=%v rank %d: BytesRead %d, want %d (matrix %d + norms %d elements of %d bytes)",
						dtype, mmap, r, got, want, matrix, norms, es)
				}
				// A quarter of the matrices: layers and head of shardCfg.
				c := shardCfg
				allMatrix := int64(c.Layers)*int64(2*c.Heads*c.HeadDim*c.Dim+2*c.KVHeads*c.HeadDim*c.Dim+3*c.HiddenDim*c.Dim) + int64(c.Vocab*c.Dim)
				if 4*matrix != allMatrix {
					t.Errorf("rank %d read %d matrix elements, want a quarter of %d", r, matrix, allMatrix)
				}
				if frac := float64(view.BytesRead()) / float64(st.Size()); frac > 0.3 {
					t.Errorf("%s rank %d read %.2f of the file", dtype, r, frac)
				}
				sum += view.BytesRead()
				if err := view.Close(); err != nil {
					t.Errorf("closing a view: %v", err)
				}
			}
			if src.BytesRead() != sum {
				t.Errorf("%s mmap=%v: source BytesRead %d, views sum to %d", dtype, mmap, src.BytesRead(), sum)
			}
			t.Logf("%s mmap=%v: file %d bytes, each rank read %d", dtype, mmap, st.Size(), sum/4)
			s.Close()
		}
	}
}

// TestMappedMatchesReadAt checks that the mapped path decodes every
// tensor, row and column slice exactly as ReadAt does.
func TestMappedMatchesReadAt(t *testing.T) {
	for _, dtype := range []string{"F32", "F16", "BF16"} {
		dir, ck := writeCheckpointDir(t, tinyGemmaCfg, dtype)
		m, f := openWith(t, dir, true), openWith(t, dir, false)
		if mmapSupported {
			for name, e := range m.(*readerSource).entries {
				if e.m == nil {
					t.Fatalf("%s: %s is not mapped", dtype, name)
				}
			}
		}
		for _, n := range m.Names() {
			a, err := m.Tensor(n)
			if err != nil {
				t.Fatal(err)
			}
			b, err := f.Tensor(n)
			if err != nil {
				t.Fatal(err)
			}
			if diff := tensorDiff(ck.canon[n], a); diff != "" {
				t.Errorf("%s %s mapped (-want +got):\n%s", dtype, n, diff)
			}
			if diff := tensorDiff(b, a); diff != "" {
				t.Errorf("%s %s mapped vs ReadAt:\n%s", dtype, n, diff)
			}
			if len(a.Shape) == 2 && a.Shape[0] > 2 && a.Shape[1] > 2 {
				r1, _ := m.Rows(n, 1, a.Shape[0]-1)
				r2, _ := f.Rows(n, 1, a.Shape[0]-1)
				c1, _ := m.Cols(n, 1, a.Shape[1]-1)
				c2, _ := f.Cols(n, 1, a.Shape[1]-1)
				if diff := tensorDiff(r2, r1); diff != "" {
					t.Errorf("%s %s rows:\n%s", dtype, n, diff)
				}
				if diff := tensorDiff(c2, c1); diff != "" {
					t.Errorf("%s %s cols:\n%s", dtype, n, diff)
				}
			}
		}
		m.Close()
		f.Close()
	}
}

// TestMappedCloseRace reads from many goroutines while the source is
// closed: every read either succeeds or fails with a closed error, none
// faults on the unmapped memory.
func TestMappedCloseRace(t *testing.T) {
	dir, _ := writeCheckpointDir(t, shardCfg, "BF16")
	for range 5 {
		s := openWith(t, dir, true)
		view, _ := CountReads(s)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := range 4 {
			wg.Go(func() {
				<-start
				for i := 0; ; i++ {
					var err error
					if (g+i)%2 == 0 {
						_, err = view.Rows("lm_head", 0, 128)
					} else {
						_, err = s.Cols("layers.1.w_down", 3, 77)
					}
					if err != nil {
						if !errors.Is(err, errClosed) {
							t.Errorf("read during Close: %v", err)
						}
						return
					}
				}
			})
		}
		close(start)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		for _, read := range []func() (*Tensor, error){
			func() (*Tensor, error) { return s.Tensor("embed") },
			func() (*Tensor, error) { return view.Rows("embed", 0, 1) },
			func() (*Tensor, error) { return view.Cols("layers.0.wo", 0, 1) },
		} {
			if _, err := read(); err == nil || !strings.Contains(err.Error(), "closed") {
				t.Errorf("read after Close: error %v, want closed", err)
			}
		}
	}
}

// TestMappedFileTruncatedAfterOpen shrinks the file under an open mapping:
// reads of the lost pages return ErrCorrupt instead of killing the process
// with SIGBUS.
func TestMappedFileTruncatedAfterOpen(t *testing.T) {
	if !mmapSupported {
		t.Skip("files are not mapped on this platform")
	}
	dir, _ := writeCheckpointDir(t, shardCfg, "F32")
	path := filepath.Join(dir, singleFileName)
	s := openWith(t, dir, true)
	defer s.Close()
	if _, err := s.Tensor("embed"); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	_, err := s.Rows("lm_head", 200, 256) // far past the first page
	if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "memory fault") {
		t.Fatalf("read past the truncated end: error %v, want ErrCorrupt with a memory fault", err)
	}
	t.Logf("read past the truncated end: %v", err)
}

// TestOpenTruncatedFileMapped: a file cut short before it is opened is
// rejected by the header checks against the mapped length.
func TestOpenTruncatedFileMapped(t *testing.T) {
	dir, _ := writeCheckpointDir(t, shardCfg, "F32")
	path := filepath.Join(dir, singleFileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 5, 100, len(data) / 2, len(data) - 1} {
		if err := os.WriteFile(path, data[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		for _, mmap := range []bool{true, false} {
			old := useMmap
			useMmap = mmap
			s, err := OpenSafetensors(dir)
			useMmap = old
			if err == nil {
				s.Close()
				t.Fatalf("%d of %d bytes, mmap=%v: opened", n, len(data), mmap)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%d bytes, mmap=%v: %v is not ErrCorrupt", n, mmap, err)
			}
		}
	}
}
