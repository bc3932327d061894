package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/weights"
)

// ggufFile is what ggufRead parses back: metadata values (uint32, float32,
// string, or []any for arrays) and tensors by name.
type ggufFile struct {
	version uint32
	kv      map[string]any
	tensors map[string]ggufReadTensor
	order   []string
}

type ggufReadTensor struct {
	ne   []uint64
	typ  uint32
	data []float32
}

// ggufRead is an independent, minimal GGUF v3 reader for the types
// writeGGUF emits.
func ggufRead(t *testing.T, b []byte) ggufFile {
	t.Helper()
	p := 0
	need := func(n int) []byte {
		if p+n > len(b) {
			t.Fatalf("gguf: truncated at %d (+%d of %d)", p, n, len(b))
		}
		s := b[p : p+n]
		p += n
		return s
	}
	u32 := func() uint32 { return binary.LittleEndian.Uint32(need(4)) }
	u64 := func() uint64 { return binary.LittleEndian.Uint64(need(8)) }
	str := func() string { return string(need(int(u64()))) }
	var value func(typ uint32) any
	value = func(typ uint32) any {
		switch typ {
		case ggufTypeUint32:
			return u32()
		case ggufTypeInt32:
			return int32(u32())
		case ggufTypeFloat32:
			return math.Float32frombits(u32())
		case ggufTypeString:
			return str()
		case ggufTypeArray:
			et, n := u32(), u64()
			out := make([]any, n)
			for i := range out {
				out[i] = value(et)
			}
			return out
		}
		t.Fatalf("gguf: unexpected value type %d", typ)
		return nil
	}
	if m := string(need(4)); m != "GGUF" {
		t.Fatalf("magic %q", m)
	}
	f := ggufFile{version: u32(), kv: map[string]any{}, tensors: map[string]ggufReadTensor{}}
	nt, nkv := u64(), u64()
	for i := uint64(0); i < nkv; i++ {
		k := str()
		if _, dup := f.kv[k]; dup {
			t.Fatalf("duplicate key %s", k)
		}
		f.kv[k] = value(u32())
	}
	offs := map[string]uint64{}
	for i := uint64(0); i < nt; i++ {
		name := str()
		nd := u32()
		ne := make([]uint64, nd)
		for j := range ne {
			ne[j] = u64()
		}
		typ := u32()
		offs[name] = u64()
		f.tensors[name] = ggufReadTensor{ne: ne, typ: typ}
		f.order = append(f.order, name)
	}
	align := uint64(f.kv["general.alignment"].(uint32))
	start := (uint64(p) + align - 1) / align * align
	for _, name := range f.order {
		tt := f.tensors[name]
		if offs[name]%align != 0 {
			t.Errorf("%s: offset %d not aligned to %d", name, offs[name], align)
		}
		n := uint64(1)
		for _, d := range tt.ne {
			n *= d
		}
		lo := start + offs[name]
		if lo+4*n > uint64(len(b)) {
			t.Fatalf("%s: data [%d, %d) beyond the file's %d bytes", name, lo, lo+4*n, len(b))
		}
		tt.data = make([]float32, n)
		for i := range tt.data {
			tt.data[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[lo+4*uint64(i):]))
		}
		f.tensors[name] = tt
	}
	return f
}

func ggufSmallConfig(style model.RopeStyle) model.Config {
	return model.Config{Arch: "llama", Name: "gguf-test", Dim: 32, HiddenDim: 48, Layers: 2,
		Heads: 4, KVHeads: 2, HeadDim: 8, Vocab: 300, MaxSeqLen: 64, NormEps: 1e-5,
		RopeTheta: 10000, RopeStyle: style, Activation: model.ActSiLU, TiedEmbeddings: true}
}

// TestGgufWriterRoundTrip writes a small synthetic Llama and checks every
// field llama.cpp reads: header, hyperparameters, tokenizer arrays, tensor
// names, ggml shapes, alignment and the values themselves.
func TestGgufWriterRoundTrip(t *testing.T) {
	cfg := ggufSmallConfig(model.RopeInterleaved)
	src, err := weights.Synthetic(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := writeGGUF(&buf, src)
	if err != nil {
		t.Fatal(err)
	}
	if n != uint64(buf.Len()) {
		t.Errorf("reported %d bytes, wrote %d", n, buf.Len())
	}
	f := ggufRead(t, buf.Bytes())
	if f.version != 3 {
		t.Errorf("version %d", f.version)
	}
	want := map[string]any{
		"general.architecture":                   "llama",
		"general.file_type":                      uint32(0),
		"general.alignment":                      uint32(32),
		"llama.context_length":                   uint32(64),
		"llama.embedding_length":                 uint32(32),
		"llama.block_count":                      uint32(2),
		"llama.feed_forward_length":              uint32(48),
		"llama.attention.head_count":             uint32(4),
		"llama.attention.head_count_kv":          uint32(2),
		"llama.attention.layer_norm_rms_epsilon": float32(1e-5),
		"llama.rope.freq_base":                   float32(10000),
		"llama.rope.dimension_count":             uint32(8),
		"tokenizer.ggml.model":                   "llama",
		"tokenizer.ggml.bos_token_id":            uint32(1),
		"tokenizer.ggml.eos_token_id":            uint32(2),
	}
	for k, v := range want {
		if got := f.kv[k]; got != v {
			t.Errorf("%s = %v (%T), want %v (%T)", k, got, got, v, v)
		}
	}
	toks, _ := f.kv["tokenizer.ggml.tokens"].([]any)
	scores, _ := f.kv["tokenizer.ggml.scores"].([]any)
	types, _ := f.kv["tokenizer.ggml.token_type"].([]any)
	if len(toks) != cfg.Vocab || len(scores) != cfg.Vocab || len(types) != cfg.Vocab {
		t.Fatalf("tokenizer arrays of %d, %d, %d entries, want %d", len(toks), len(scores), len(types), cfg.Vocab)
	}
	seen := map[any]bool{}
	for i, tok := range toks {
		if seen[tok] {
			t.Errorf("token %d %q repeats", i, tok)
		}
		seen[tok] = true
	}
	for i, w := range map[int]string{0: "<unk>", 1: "<s>", 2: "</s>", 3: "<0x00>", 13: "<0x0A>", 258: "<0xFF>", 259: "t259"} {
		if toks[i] != w {
			t.Errorf("token %d = %q, want %q", i, toks[i], w)
		}
	}
	if types[3] != int32(tokByte) || types[1] != int32(tokControl) || types[299] != int32(tokNormal) {
		t.Errorf("token types %v %v %v", types[1], types[3], types[299])
	}

	if len(f.order) != 3+9*cfg.Layers {
		t.Errorf("%d tensors, want %d", len(f.order), 3+9*cfg.Layers)
	}
	embed, err := src.Tensor("embed")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		src string
		ne  []uint64
	}{
		"token_embd.weight":        {"embed", []uint64{32, 300}},
		"output.weight":            {"embed", []uint64{32, 300}},
		"output_norm.weight":       {"final_norm", []uint64{32}},
		"blk.1.attn_norm.weight":   {"layers.1.attn_norm", []uint64{32}},
		"blk.0.attn_q.weight":      {"layers.0.wq", []uint64{32, 32}},
		"blk.0.attn_k.weight":      {"layers.0.wk", []uint64{32, 16}},
		"blk.1.attn_v.weight":      {"layers.1.wv", []uint64{32, 16}},
		"blk.1.attn_output.weight": {"layers.1.wo", []uint64{32, 32}},
		"blk.0.ffn_norm.weight":    {"layers.0.ffn_norm", []uint64{32}},
		"blk.0.ffn_gate.weight":    {"layers.0.w_gate", []uint64{32, 48}},
		"blk.1.ffn_up.weight":      {"layers.1.w_up", []uint64{32, 48}},
		"blk.1.ffn_down.weight":    {"layers.1.w_down", []uint64{48, 32}},
	} {
		got, ok := f.tensors[name]
		if !ok {
			t.Errorf("no tensor %s", name)
			continue
		}
		if got.typ != ggmlTypeF32 || fmt.Sprint(got.ne) != fmt.Sprint(c.ne) {
			t.Errorf("%s: type %d ne %v, want F32 %v", name, got.typ, got.ne, c.ne)
		}
		w, err := src.Tensor(c.src)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got.data) != fmt.Sprint(w.Data) {
			t.Errorf("%s: values differ from %s", name, c.src)
		}
	}
	if fmt.Sprint(f.tensors["output.weight"].data) != fmt.Sprint(embed.Data) {
		t.Error("tied output.weight differs from the embedding")
	}
}

// TestGgufRopeHalfPermutation: with rope_style "half", each Q and K head's
// rows are reordered so that llama.cpp's adjacent pairs (2i, 2i+1) are the
// pairs (i, i+hd/2) of the source; V is not touched.
func TestGgufRopeHalfPermutation(t *testing.T) {
	cfg := ggufSmallConfig(model.RopeHalf)
	src, err := weights.Synthetic(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := writeGGUF(&buf, src); err != nil {
		t.Fatal(err)
	}
	f := ggufRead(t, buf.Bytes())
	hd, d := cfg.HeadDim, cfg.Dim
	for _, c := range []struct {
		name, src string
		heads     int
	}{{"blk.0.attn_q.weight", "layers.0.wq", cfg.Heads}, {"blk.1.attn_k.weight", "layers.1.wk", cfg.KVHeads}} {
		w, err := src.Tensor(c.src)
		if err != nil {
			t.Fatal(err)
		}
		got := f.tensors[c.name].data
		for h := 0; h < c.heads; h++ {
			for i := 0; i < hd/2; i++ {
				for j := 0; j < 2; j++ {
					gr, sr := h*hd+2*i+j, h*hd+j*hd/2+i
					if fmt.Sprint(got[gr*d:(gr+1)*d]) != fmt.Sprint(w.Data[sr*d:(sr+1)*d]) {
						t.Fatalf("%s: row %d is not source row %d", c.name, gr, sr)
					}
				}
			}
		}
	}
	v, _ := src.Tensor("layers.0.wv")
	if fmt.Sprint(f.tensors["blk.0.attn_v.weight"].data) != fmt.Sprint(v.Data) {
		t.Error("V was permuted")
	}
}

// TestGgufCommand runs the subcommand on a config file; a vocabulary too
// small for the Llama token layout is refused.
func TestGgufCommand(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "m.gguf")
	small := ggufSmallConfig(model.RopeInterleaved)
	small.Vocab = 100
	tiny, err := weights.Synthetic(small, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writeGGUF(&bytes.Buffer{}, tiny); err == nil || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("a 100-token vocabulary: err %v, want a refusal", err)
	}
	var stdout bytes.Buffer
	cfgPath := filepath.Join(dir, "small.json")
	cfg := ggufSmallConfig(model.RopeInterleaved)
	js := fmt.Sprintf(`{"arch":"llama","name":"small","dim":%d,"hidden_dim":%d,"n_layers":%d,"n_heads":%d,"n_kv_heads":%d,"head_dim":%d,"vocab_size":%d,"max_seq_len":%d,"norm_eps":1e-5,"rope_theta":10000,"rope_style":"interleaved","activation":"silu","tied_embeddings":true}`,
		cfg.Dim, cfg.HiddenDim, cfg.Layers, cfg.Heads, cfg.KVHeads, cfg.HeadDim, cfg.Vocab, cfg.MaxSeqLen)
	if err := os.WriteFile(cfgPath, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runGGUFCmd([]string{"--model", "synthetic:" + cfgPath, "--out", out}, &stdout); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if f := ggufRead(t, b); f.kv["general.name"] != "small" || len(f.tensors) != 21 {
		t.Errorf("name %v, %d tensors", f.kv["general.name"], len(f.tensors))
	}
	if !strings.Contains(stdout.String(), "21 tensors") {
		t.Errorf("output %q", stdout.String())
	}
}
