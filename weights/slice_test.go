package weights

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/model"
)

// tensorDiff compares tensors bit for bit, falling back to cmp.Diff (slow
// on large slices) only to describe a difference.
func tensorDiff(want, got *Tensor) string {
	if want.Name == got.Name && slices.Equal(want.Shape, got.Shape) && len(want.Data) == len(got.Data) {
		same := true
		for i := range want.Data {
			if math.Float32bits(want.Data[i]) != math.Float32bits(got.Data[i]) {
				same = false
				break
			}
		}
		if same {
			return ""
		}
	}
	return cmp.Diff(want, got)
}

// testSources returns one source of every kind.
func testSources(t *testing.T) map[string]Source {
	t.Helper()
	out := map[string]Source{"llama2c memory": stories260K(t)}

	path := filepath.Join(t.TempDir(), "m.bin")
	if err := os.WriteFile(path, assets.Stories260K(), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenLlama2C(path)
	if err != nil {
		t.Fatal(err)
	}
	out["llama2c file"] = f

	dir := t.TempDir()
	ck := makeCheckpoint(t, tinyGemmaCfg, "BF16", "model.", 3)
	writeJSON(t, filepath.Join(dir, configFileName), hfConfigJSON(tinyGemmaCfg))
	writeSharded(t, dir, ck.hf, "BF16", 2)
	st, err := OpenSafetensors(dir)
	if err != nil {
		t.Fatal(err)
	}
	out["safetensors bf16"] = st

	for _, cfg := range []model.Config{tinyLlamaCfg, tinyGemmaCfg} {
		s, err := Synthetic(cfg, 42)
		if err != nil {
			t.Fatal(err)
		}
		out["synthetic "+cfg.Arch] = s
	}
	t.Cleanup(func() {
		for _, s := range out {
			s.Close()
		}
	})
	return out
}

// ranges returns slices to try for a dimension of n: empty, full, single,
// and the shards of an uneven split over 3 and 8 devices.
func ranges(n int) [][2]int {
	out := [][2]int{{0, 0}, {0, n}, {n - 1, n}, {n, n}}
	for _, parts := range []int{3, 8} {
		for p := range parts {
			out = append(out, [2]int{p * n / parts, (p + 1) * n / parts})
		}
	}
	return out
}

func TestRowsColsMatchFullTensor(t *testing.T) {
	for kind, s := range testSources(t) {
		t.Run(kind, func(t *testing.T) {
			for _, name := range s.Names() {
				full, err := s.Tensor(name)
				if err != nil {
					t.Fatalf("Tensor(%s): %v", name, err)
				}
				if len(full.Shape) != 2 {
					if _, err := s.Rows(name, 0, 1); err == nil || !strings.Contains(err.Error(), "not 2-D") {
						t.Errorf("Rows(%s) on a %v tensor: error %v, want not 2-D", name, full.Shape, err)
					}
					continue
				}
				rows, cols := full.Shape[0], full.Shape[1]
				for _, r := range ranges(rows) {
					got, err := s.Rows(name, r[0], r[1])
					if err != nil {
						t.Fatalf("Rows(%s, %d, %d): %v", name, r[0], r[1], err)
					}
					want := &Tensor{Name: name, Shape: []int{r[1] - r[0], cols}, Data: full.Data[r[0]*cols : r[1]*cols]}
					if diff := tensorDiff(want, got); diff != "" {
						t.Fatalf("Rows(%s, %d, %d) (-want +got):\n%s", name, r[0], r[1], diff)
					}
				}
				for _, c := range ranges(cols) {
					got, err := s.Cols(name, c[0], c[1])
					if err != nil {
						t.Fatalf("Cols(%s, %d, %d): %v", name, c[0], c[1], err)
					}
					w := c[1] - c[0]
					want := &Tensor{Name: name, Shape: []int{rows, w}, Data: make([]float32, 0, rows*w)}
					for i := range rows {
						want.Data = append(want.Data, full.Data[i*cols+c[0]:i*cols+c[1]]...)
					}
					if diff := tensorDiff(want, got); diff != "" {
						t.Fatalf("Cols(%s, %d, %d) (-want +got):\n%s", name, c[0], c[1], diff)
					}
				}
			}
			for _, bad := range [][2]int{{-1, 1}, {2, 1}, {0, 1 << 30}} {
				if _, err := s.Rows("embed", bad[0], bad[1]); err == nil || !strings.Contains(err.Error(), "out of range") {
					t.Errorf("Rows(embed, %d, %d): error %v, want out of range", bad[0], bad[1], err)
				}
				if _, err := s.Cols("embed", bad[0], bad[1]); err == nil || !strings.Contains(err.Error(), "out of range") {
					t.Errorf("Cols(embed, %d, %d): error %v, want out of range", bad[0], bad[1], err)
				}
			}
			if _, err := s.Tensor("layers.99.wq"); err == nil || !strings.Contains(err.Error(), `no tensor "layers.99.wq"`) {
				t.Errorf("Tensor(layers.99.wq): error %v", err)
			}
		})
	}
}

func TestConcurrentShardReads(t *testing.T) {
	for kind, s := range testSources(t) {
		full, err := s.Tensor("layers.0.w_down")
		if err != nil {
			t.Fatal(err)
		}
		cols := full.Shape[1]
		const tp = 4
		var wg sync.WaitGroup
		got := make([]*Tensor, tp)
		errs := make([]error, tp)
		for r := range tp {
			wg.Go(func() { got[r], errs[r] = s.Cols("layers.0.w_down", r*cols/tp, (r+1)*cols/tp) })
		}
		wg.Wait()
		for r := range tp {
			if errs[r] != nil {
				t.Fatalf("%s rank %d: %v", kind, r, errs[r])
			}
			for i := range full.Shape[0] {
				want := full.Data[i*cols+r*cols/tp : i*cols+(r+1)*cols/tp]
				w := len(want)
				if !slices.Equal(want, got[r].Data[i*w:(i+1)*w]) {
					t.Fatalf("%s rank %d row %d differs", kind, r, i)
				}
			}
		}
	}
}

func TestSyntheticDeterministic(t *testing.T) {
	a, _ := Synthetic(tinyGemmaCfg, 1)
	b, _ := Synthetic(tinyGemmaCfg, 1)
	c, _ := Synthetic(tinyGemmaCfg, 2)
	for _, n := range a.Names() {
		ta, _ := a.Tensor(n)
		tb, _ := b.Tensor(n)
		tc, _ := c.Tensor(n)
		if diff := cmp.Diff(ta, tb); diff != "" {
			t.Errorf("%s differs between two sources with seed 1", n)
		}
		if slices.Equal(ta.Data, tc.Data) {
			t.Errorf("%s is the same for seeds 1 and 2", n)
		}
	}
	q, _ := a.Tensor("layers.0.wq")
	k, _ := a.Tensor("layers.1.wq")
	if slices.Equal(q.Data[:16], k.Data[:16]) {
		t.Errorf("layers 0 and 1 share wq values")
	}
	// Fixed values: synthetic weights must not change between releases,
	// since benchmarks and tests compare against them.
	row, _ := a.Rows("embed", 5, 6)
	if got := row.Data[:3]; got[0] == 0 || got[1] == got[0] {
		t.Errorf("embed row 5 starts %v", got)
	}
}

// TestSyntheticScales checks the sample moments of synthetic tensors. For n
// samples of N(mu, s²) the sample mean has standard deviation s/sqrt(n) and
// the sample standard deviation about s/sqrt(2n); the bounds are 6 of those.
func TestSyntheticScales(t *testing.T) {
	cfg := tinyGemmaCfg
	cfg.Dim, cfg.HiddenDim, cfg.Vocab = 256, 512, 512
	llama := tinyLlamaCfg
	llama.Dim, llama.HiddenDim, llama.Heads, llama.HeadDim = 256, 512, 4, 64
	tests := []struct {
		cfg      model.Config
		name     string
		mean, sd float64
	}{
		{cfg, "embed", 0, syntheticStd},
		{cfg, "layers.1.w_down", 0, syntheticStd},
		{cfg, "layers.0.ffn_norm", 0, syntheticNormStd},
		{cfg, "layers.0.q_norm", 0, syntheticNormStd},
		{llama, "layers.1.wq", 0, syntheticStd},
		{llama, "layers.1.attn_norm", 1, syntheticNormStd},
		{llama, "final_norm", 1, syntheticNormStd},
	}
	for _, tc := range tests {
		s, err := Synthetic(tc.cfg, 9)
		if err != nil {
			t.Fatal(err)
		}
		x, err := s.Tensor(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		n := float64(len(x.Data))
		var sum, sq float64
		for _, v := range x.Data {
			sum += float64(v)
		}
		mean := sum / n
		for _, v := range x.Data {
			sq += (float64(v) - mean) * (float64(v) - mean)
		}
		sd := math.Sqrt(sq / (n - 1))
		if d := math.Abs(mean - tc.mean); d > 6*tc.sd/math.Sqrt(n) {
			t.Errorf("%s %s: mean %g, want %g ± %g", tc.cfg.Arch, tc.name, mean, tc.mean, 6*tc.sd/math.Sqrt(n))
		}
		if d := math.Abs(sd - tc.sd); d > 6*tc.sd/math.Sqrt(2*n) {
			t.Errorf("%s %s: sd %g, want %g ± %g", tc.cfg.Arch, tc.name, sd, tc.sd, 6*tc.sd/math.Sqrt(2*n))
		}
	}
}

func TestSyntheticLargeShapeIsLazy(t *testing.T) {
	s, err := Synthetic(gemma31B, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(s.Names()), 2+26*13; got != want {
		t.Errorf("%d tensors, want %d", got, want)
	}
	// Reading two rows of the 262144 x 1152 embedding costs two rows.
	r, err := s.Rows("embed", 262142, 262144)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{2, 1152}, r.Shape); diff != "" {
		t.Errorf("shape (-want +got):\n%s", diff)
	}
	c, err := s.Cols("layers.25.wo", 0, 256)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{1152, 256}, c.Shape); diff != "" {
		t.Errorf("shape (-want +got):\n%s", diff)
	}
}

func TestSyntheticInvalidConfig(t *testing.T) {
	cfg := tinyLlamaCfg
	cfg.KVHeads = 3
	if _, err := Synthetic(cfg, 0); err == nil || !strings.Contains(err.Error(), "n_kv_heads") {
		t.Errorf("Synthetic with 4 heads, 3 kv heads: error %v", err)
	}
}

// TestSyntheticSlicesAcrossBlocks checks column slices at odd offsets
// against the full tensor.
func TestSyntheticSlicesAcrossBlocks(t *testing.T) {
	cfg := tinyLlamaCfg
	cfg.Dim, cfg.Heads, cfg.KVHeads, cfg.HeadDim = 600, 2, 1, 8
	s, err := Synthetic(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	full, err := s.Tensor("layers.1.wk")
	if err != nil {
		t.Fatal(err)
	}
	rows, cols := full.Shape[0], full.Shape[1]
	for _, c := range [][2]int{{0, 600}, {250, 260}, {255, 513}, {256, 512}, {512, 600}, {599, 600}, {1, 2}} {
		got, err := s.Cols("layers.1.wk", c[0], c[1])
		if err != nil {
			t.Fatal(err)
		}
		w := c[1] - c[0]
		want := &Tensor{Name: "layers.1.wk", Shape: []int{rows, w}}
		for i := range rows {
			want.Data = append(want.Data, full.Data[i*cols+c[0]:i*cols+c[1]]...)
		}
		if diff := tensorDiff(want, got); diff != "" {
			t.Errorf("Cols(%d, %d) (-want +got):\n%s", c[0], c[1], diff)
		}
	}
}

// TestSyntheticParallelFill checks that a tensor large enough to be
// generated by several goroutines equals its row slices generated by one.
func TestSyntheticParallelFill(t *testing.T) {
	cfg := tinyLlamaCfg
	cfg.Vocab, cfg.Dim, cfg.Heads, cfg.KVHeads, cfg.HeadDim = 2048, 600, 2, 1, 8
	s, err := Synthetic(cfg, 11)
	if err != nil {
		t.Fatal(err)
	}
	full, err := s.Tensor("embed")
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Data) < parallelFill {
		t.Fatalf("embed has %d values, below the parallel threshold %d", len(full.Data), parallelFill)
	}
	var pieces []float32
	for _, r := range [][2]int{{0, 1000}, {1000, 2048}} {
		p, err := s.Rows("embed", r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		pieces = append(pieces, p.Data...)
	}
	if diff := tensorDiff(&Tensor{Name: "embed", Shape: full.Shape, Data: pieces}, full); diff != "" {
		t.Errorf("parallel and sequential generation differ:\n%s", diff)
	}
}

// TestSyntheticParallelCols checks that large column and row slices, which
// are generated in pieces on several goroutines, equal the same slices of
// the full tensor generated in one piece per row.
func TestSyntheticParallelCols(t *testing.T) {
	cfg := tinyLlamaCfg
	cfg.Vocab, cfg.Dim, cfg.Heads, cfg.KVHeads, cfg.HeadDim = 3001, 600, 2, 1, 8
	src, err := Synthetic(cfg, 13)
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*synthetic)
	shape := s.shapes["embed"]
	rows, cols := shape[0], shape[1]
	want := make([]float32, rows*cols)
	key := s.synthKey("embed")
	for r := range rows {
		s.fill(key, shape, r, 0, cols, want[r*cols:(r+1)*cols])
	}
	for _, c := range [][2]int{{0, 600}, {7, 599}, {300, 301}} {
		got, err := s.Cols("embed", c[0], c[1])
		if err != nil {
			t.Fatal(err)
		}
		w := c[1] - c[0]
		for r := range rows {
			if !slices.Equal(got.Data[r*w:(r+1)*w], want[r*cols+c[0]:r*cols+c[1]]) {
				t.Fatalf("Cols(%d, %d) row %d differs from the full tensor", c[0], c[1], r)
			}
		}
	}
	got, err := s.Rows("embed", 1, 2999)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Data, want[cols:2999*cols]) {
		t.Errorf("Rows(1, 2999) differs from the full tensor")
	}
}
