package weights

import (
	"slices"
	"testing"
)

// TestRowsColsBF16 checks that bfloat16 reads are the rounded float32 reads,
// whatever the chunking, and that a BF16 checkpoint reports its dtype.
func TestRowsColsBF16(t *testing.T) {
	cfg := tinyLlamaCfg
	cfg.Vocab, cfg.Dim, cfg.Heads, cfg.KVHeads, cfg.HeadDim = 3001, 600, 2, 1, 8
	s, err := Synthetic(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := StoredDType(s); got != DTypeF32 {
		t.Errorf("synthetic StoredDType = %q, want f32", got)
	}
	full, err := s.Tensor("embed")
	if err != nil {
		t.Fatal(err)
	}
	want := make([]uint16, len(full.Data))
	for i, v := range full.Data {
		want[i] = f32ToBF16(v)
	}
	for _, r := range [][2]int{{0, 3001}, {5, 6}, {100, 100}, {2000, 3001}} {
		got, err := RowsBF16(s, "embed", r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want[r[0]*600:r[1]*600]) {
			t.Errorf("RowsBF16(%d, %d) differs from the rounded tensor", r[0], r[1])
		}
	}
	got, err := ColsBF16(s, "embed", 10, 20)
	if err != nil {
		t.Fatal(err)
	}
	for r := range 3001 {
		if !slices.Equal(got[r*10:(r+1)*10], want[r*600+10:r*600+20]) {
			t.Fatalf("ColsBF16 row %d differs", r)
		}
	}
	if _, err := RowsBF16(s, "embed", 10, 4000); err == nil {
		t.Errorf("RowsBF16 past the end: no error")
	}
	if _, err := RowsBF16(s, "final_norm", 0, 1); err == nil {
		t.Errorf("RowsBF16 of a vector: no error")
	}
	for _, d := range []string{"", "f32", "bf16"} {
		if _, err := ParseDType(d); err != nil {
			t.Errorf("ParseDType(%q): %v", d, err)
		}
	}
	if _, err := ParseDType("fp8"); err == nil {
		t.Errorf("ParseDType(fp8): no error")
	}
}

func TestStoredDTypeOfCheckpoints(t *testing.T) {
	for _, c := range []struct{ st, want string }{{"BF16", DTypeBF16}, {"F32", DTypeF32}, {"F16", DTypeF32}} {
		dir := t.TempDir()
		ck := makeCheckpoint(t, tinyLlamaCfg, c.st, "model.", 1)
		writeJSON(t, dir+"/"+configFileName, hfConfigJSON(tinyLlamaCfg))
		writeST(t, dir+"/"+singleFileName, ck.hf, c.st)
		s, err := OpenSafetensors(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := StoredDType(s); got != c.want {
			t.Errorf("%s checkpoint: StoredDType %q, want %q", c.st, got, c.want)
		}
		if c.st == "BF16" {
			// Stored bfloat16 comes back exactly.
			x, _ := s.Rows("layers.0.wq", 0, 2)
			h, err := RowsBF16(s, "layers.0.wq", 0, 2)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range x.Data {
				if bf16ToF32(h[i]) != v {
					t.Fatalf("value %d: %v read as bf16 %v", i, v, bf16ToF32(h[i]))
				}
			}
		}
		s.Close()
	}
}
