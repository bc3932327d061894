package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/equarx/equarx/model"
)

var (
	tinyLlamaCfg = model.Config{
		Arch: "llama", Dim: 16, HiddenDim: 24, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4,
		Vocab: 32, MaxSeqLen: 64, NormEps: 1e-5, RopeTheta: 10000,
		RopeStyle: model.RopeHalf, Activation: model.ActSiLU,
	}
	tinyGemmaCfg = model.Config{
		Arch: "gemma3", Dim: 16, HiddenDim: 32, Layers: 3, Heads: 2, KVHeads: 1, HeadDim: 8,
		Vocab: 40, MaxSeqLen: 128, NormEps: 1e-6, RopeTheta: 1e6, RopeStyle: model.RopeHalf,
		Activation: model.ActGELUTanh, TiedEmbeddings: true, RopeLocalTheta: 1e4,
		SlidingWindow: 8, SlidingWindowPattern: 6, QueryPreAttnScalar: 8,
	}
)

// hfConfigJSON renders cfg as a Hugging Face config.json object.
func hfConfigJSON(cfg model.Config) map[string]any {
	m := map[string]any{
		"hidden_size": cfg.Dim, "intermediate_size": cfg.HiddenDim, "num_hidden_layers": cfg.Layers,
		"num_attention_heads": cfg.Heads, "num_key_value_heads": cfg.KVHeads, "head_dim": cfg.HeadDim,
		"vocab_size": cfg.Vocab, "max_position_embeddings": cfg.MaxSeqLen, "rms_norm_eps": cfg.NormEps,
		"rope_theta": cfg.RopeTheta, "tie_word_embeddings": cfg.TiedEmbeddings, "rope_scaling": nil,
		"torch_dtype": "float32",
	}
	if cfg.Arch == "gemma3" {
		m["architectures"] = []string{"Gemma3ForCausalLM"}
		m["model_type"] = "gemma3_text"
		m["hidden_activation"] = "gelu_pytorch_tanh"
		m["rope_local_base_freq"] = cfg.RopeLocalTheta
		m["sliding_window"] = cfg.SlidingWindow
		m["sliding_window_pattern"] = cfg.SlidingWindowPattern
		m["query_pre_attn_scalar"] = cfg.QueryPreAttnScalar
		m["attn_logit_softcapping"] = nil
		m["final_logit_softcapping"] = nil
	} else {
		m["architectures"] = []string{"LlamaForCausalLM"}
		m["model_type"] = "llama"
		m["hidden_act"] = "silu"
	}
	return m
}

// hfName returns the Hugging Face name of a canonical tensor.
func hfName(arch, prefix, canon string) string {
	if canon == "lm_head" {
		return "lm_head.weight"
	}
	rows := globalNames
	short := canon
	layer := ""
	if rest, ok := strings.CutPrefix(canon, "layers."); ok {
		idx, s, _ := strings.Cut(rest, ".")
		rows, short, layer = layerNames, s, "layers."+idx+"."
	}
	for _, r := range rows {
		if r.canonical == short {
			return prefix + layer + r.hfColumn(arch) + ".weight"
		}
	}
	panic("no HF name for " + canon)
}

// roundTo rounds every value to the nearest value representable in dtype.
func roundTo(dtype string, xs []float32) []float32 {
	out := make([]float32, len(xs))
	for i, x := range xs {
		switch dtype {
		case "F16":
			out[i] = f16ToF32(f32ToF16(x))
		case "BF16":
			out[i] = bf16ToF32(f32ToBF16(x))
		default:
			out[i] = x
		}
	}
	return out
}

// checkpoint holds the tensors of a test checkpoint under canonical and HF
// names.
type checkpoint struct {
	canon map[string]*Tensor // canonical name -> values as stored
	hf    []*Tensor          // HF-named tensors in canonical order
}

func makeCheckpoint(t testing.TB, cfg model.Config, dtype, prefix string, seed int64) checkpoint {
	t.Helper()
	src, err := Synthetic(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	ck := checkpoint{canon: make(map[string]*Tensor)}
	for _, n := range src.Names() {
		x, err := src.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		x.Data = roundTo(dtype, x.Data)
		ck.canon[n] = x
		ck.hf = append(ck.hf, &Tensor{Name: hfName(cfg.Arch, prefix, n), Shape: x.Shape, Data: x.Data})
	}
	return ck
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeST(t testing.TB, path string, tensors []*Tensor, dtype string) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, tensors, dtype, map[string]string{"format": "pt"}); err != nil {
		t.Fatalf("WriteSafetensors: %v", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeSharded splits tensors over n shards and writes the index.
func writeSharded(t testing.TB, dir string, tensors []*Tensor, dtype string, n int) {
	t.Helper()
	weightMap := map[string]string{}
	for s := range n {
		file := fmt.Sprintf("model-%05d-of-%05d.safetensors", s+1, n)
		var part []*Tensor
		for i := s; i < len(tensors); i += n {
			part = append(part, tensors[i])
			weightMap[tensors[i].Name] = file
		}
		writeST(t, filepath.Join(dir, file), part, dtype)
	}
	writeJSON(t, filepath.Join(dir, indexFileName), map[string]any{
		"metadata": map[string]any{"total_size": 0}, "weight_map": weightMap,
	})
}

func checkSource(t *testing.T, s Source, cfg model.Config, ck checkpoint) {
	t.Helper()
	if diff := cmp.Diff(cfg, s.Config()); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	var want []string
	for _, e := range expectedTensors(&cfg) {
		want = append(want, e.name)
	}
	if diff := cmp.Diff(want, s.Names()); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	for _, n := range s.Names() {
		got, err := s.Tensor(n)
		if err != nil {
			t.Fatalf("Tensor(%s): %v", n, err)
		}
		if diff := tensorDiff(ck.canon[n], got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", n, diff)
		}
	}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	untiedGemma := tinyGemmaCfg
	untiedGemma.TiedEmbeddings = false
	tiedLlama := tinyLlamaCfg
	tiedLlama.TiedEmbeddings = true
	tests := []struct {
		name   string
		cfg    model.Config
		dtype  string
		prefix string
		shards int // 0: one model.safetensors; -1: open the file path
	}{
		{"llama f32", tinyLlamaCfg, "F32", "model.", 0},
		{"llama bf16", tinyLlamaCfg, "BF16", "model.", 0},
		{"llama f16 tied", tiedLlama, "F16", "model.", 0},
		{"llama f32 sharded", tinyLlamaCfg, "F32", "model.", 3},
		{"llama bf16 file path", tinyLlamaCfg, "BF16", "model.", -1},
		{"gemma3 bf16", tinyGemmaCfg, "BF16", "model.", 0},
		{"gemma3 f32 untied sharded", untiedGemma, "F32", "model.", 2},
		{"gemma3 multimodal prefix", tinyGemmaCfg, "F16", "language_model.model.", 0},
		{"gemma3 new multimodal prefix", tinyGemmaCfg, "BF16", "model.language_model.", 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ck := makeCheckpoint(t, tc.cfg, tc.dtype, tc.prefix, 7)
			writeJSON(t, filepath.Join(dir, configFileName), hfConfigJSON(tc.cfg))
			path := dir
			switch {
			case tc.shards > 0:
				writeSharded(t, dir, ck.hf, tc.dtype, tc.shards)
			case tc.shards < 0:
				path = filepath.Join(dir, "weights.safetensors")
				writeST(t, path, ck.hf, tc.dtype)
			default:
				writeST(t, filepath.Join(dir, singleFileName), ck.hf, tc.dtype)
			}
			s, err := OpenSafetensors(path)
			if err != nil {
				t.Fatalf("OpenSafetensors: %v", err)
			}
			defer s.Close()
			checkSource(t, s, tc.cfg, ck)
		})
	}
}

func TestWriteSafetensorsRounds(t *testing.T) {
	// 1 + 2^-9 is not representable in bf16 (7 mantissa bits) and ties to 1;
	// 1 + 3*2^-9 rounds up to 1 + 2^-7 (ties to even).
	in := []*Tensor{{Name: "x", Shape: []int{3}, Data: []float32{1 + 0x1p-9, 1 + 3*0x1p-9, -0.5}}}
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, in, "BF16", nil); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	ts, meta, err := parseSafetensors(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if meta != nil || len(ts) != 1 || ts[0].dtype != "BF16" {
		t.Fatalf("parsed %+v, metadata %v", ts, meta)
	}
	if ts[0].begin%8 != 0 {
		t.Errorf("data starts at %d, not 8-byte aligned", ts[0].begin)
	}
	got := make([]float32, 3)
	decode(dtBF16, data[ts[0].begin:ts[0].end], got)
	if diff := cmp.Diff([]float32{1, 1 + 0x1p-7, -0.5}, got); diff != "" {
		t.Errorf("bf16 values (-want +got):\n%s", diff)
	}
}

func TestWriteSafetensorsErrors(t *testing.T) {
	x := &Tensor{Name: "x", Shape: []int{2}, Data: []float32{1, 2}}
	tests := []struct {
		name    string
		tensors []*Tensor
		dtype   string
		want    string
	}{
		{"bad dtype", []*Tensor{x}, "I8", `dtype "I8"`},
		{"shape mismatch", []*Tensor{{Name: "y", Shape: []int{3}, Data: []float32{1}}}, "F32", `tensor "y": shape [3] holds 3 values, data has 1`},
		{"duplicate", []*Tensor{x, x}, "F32", `duplicate tensor "x"`},
		{"metadata name", []*Tensor{{Name: metadataKey}}, "F32", "invalid tensor name"},
	}
	for _, tc := range tests {
		err := WriteSafetensors(&bytes.Buffer{}, tc.tensors, tc.dtype, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// rawST builds a safetensors file from a literal JSON header and a data
// region of dataLen zero bytes.
func rawST(header string, dataLen int) []byte {
	b := make([]byte, 8, 8+len(header)+dataLen)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, dataLen)...)
}

func TestSafetensorsHeaderErrors(t *testing.T) {
	withLen := func(n uint64, rest []byte) []byte {
		b := binary.LittleEndian.AppendUint64(nil, n)
		return append(b, rest...)
	}
	var many strings.Builder
	many.WriteString("{")
	for i := range maxTensors + 1 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `"t%d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`, i)
	}
	many.WriteString("}")
	tests := []struct {
		name        string
		data        []byte
		unsupported bool
		want        string
	}{
		{"empty", nil, false, "shorter than the 8-byte header length"},
		{"oversized header length", withLen(1<<40, []byte("{}")), false, "header length 1099511627776 exceeds the 104857600-byte limit"},
		{"header longer than file", withLen(100, []byte("{}")), false, "header length 100 exceeds the 2 bytes"},
		{"not an object", rawST(`[1, 2]`, 0), false, "not a JSON object"},
		{"broken JSON", rawST(`{"a": {"dtype": "F32",`, 0), false, "safetensors header"},
		{"duplicate key", rawST(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), false, `duplicate key "a"`},
		{"unknown field", rawST(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, 4), false, `tensor "a": json: unknown field "x"`},
		{"missing offsets", rawST(`{"a":{"dtype":"F32","shape":[1]}}`, 4), false, `tensor "a": needs dtype, shape and data_offsets`},
		{"unknown dtype", rawST(`{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}`, 4), true, `tensor "a": dtype "Q4"`},
		{"shape size mismatch", rawST(`{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}`, 24), false, `tensor "w": shape [2 3] of F32 needs 24 bytes, data_offsets [0, 20) hold 20`},
		{"offsets beyond data", rawST(`{"w":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}`, 6), false, `tensor "w": data_offsets [0, 8) outside the 6-byte data region`},
		{"reversed offsets", rawST(`{"w":{"dtype":"F16","shape":[0],"data_offsets":[4,0]}}`, 6), false, `tensor "w": data_offsets [4, 0)`},
		{"overlapping offsets", rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), false, `tensor "b" bytes [4, 12) overlap tensor "a" bytes [0, 8)`},
		{"negative dimension", rawST(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), false, `tensor "a": shape [-1] has an invalid dimension`},
		{"huge dimension", rawST(`{"a":{"dtype":"F32","shape":[1e30],"data_offsets":[0,4]}}`, 4), false, `tensor "a"`},
		{"overflowing shape", rawST(`{"a":{"dtype":"F64","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,4]}}`, 4), false, `tensor "a": shape [2147483647 2147483647 2147483647] overflows`},
		{"rank too high", rawST(`{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}`, 4), false, `tensor "a": rank 9 exceeds 8`},
		{"three offsets", rawST(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, 8), false, `tensor "a": data_offsets has 3 values`},
		{"metadata not strings", rawST(`{"__metadata__":{"a":1}}`, 0), false, "__metadata__ must map strings to strings"},
		{"trailing garbage", rawST(`{} x`, 0), false, "data after the JSON object"},
		{"too many tensors", rawST(many.String(), 0), false, "more than 65536 tensors"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseSafetensors(bytes.NewReader(tc.data), int64(len(tc.data)))
			if err == nil {
				t.Fatalf("parse succeeded, want error containing %q", tc.want)
			}
			want := ErrCorrupt
			if tc.unsupported {
				want = ErrUnsupported
			}
			if !errors.Is(err, want) {
				t.Errorf("error %v does not wrap %v", err, want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestSafetensorsHeaderPaddingAndMetadata(t *testing.T) {
	data := rawST(`{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}    `, 4)
	ts, meta, err := parseSafetensors(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"format": "pt"}, meta); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	if len(ts) != 1 || ts[0].name != "a" {
		t.Errorf("tensors %+v", ts)
	}
}

// openErr builds a tiny Llama checkpoint, lets edit change its files, and
// returns OpenSafetensors' error.
func openErr(t *testing.T, edit func(dir string, ck *checkpoint, cfg map[string]any)) error {
	t.Helper()
	dir := t.TempDir()
	ck := makeCheckpoint(t, tinyLlamaCfg, "F32", "model.", 1)
	cfg := hfConfigJSON(tinyLlamaCfg)
	edit(dir, &ck, cfg)
	writeJSON(t, filepath.Join(dir, configFileName), cfg)
	_, err1 := os.Stat(filepath.Join(dir, singleFileName))
	_, err2 := os.Stat(filepath.Join(dir, indexFileName))
	if err1 != nil && err2 != nil {
		writeST(t, filepath.Join(dir, singleFileName), ck.hf, "F32")
	}
	s, err := OpenSafetensors(dir)
	if err == nil {
		s.Close()
	}
	return err
}

func dropHF(ck *checkpoint, name string) {
	for i, x := range ck.hf {
		if x.Name == name {
			ck.hf = append(ck.hf[:i], ck.hf[i+1:]...)
			return
		}
	}
	panic("no tensor " + name)
}

func findHF(ck *checkpoint, name string) *Tensor {
	for _, x := range ck.hf {
		if x.Name == name {
			return x
		}
	}
	panic("no tensor " + name)
}

func TestOpenSafetensorsErrors(t *testing.T) {
	tests := []struct {
		name        string
		edit        func(dir string, ck *checkpoint, cfg map[string]any)
		unsupported bool
		want        string
	}{
		{"missing tensor", func(_ string, ck *checkpoint, _ map[string]any) {
			dropHF(ck, "model.layers.1.self_attn.q_proj.weight")
		}, false, "layer 1: missing wq"},
		{"wrong shape", func(_ string, ck *checkpoint, _ map[string]any) {
			findHF(ck, "model.layers.0.self_attn.k_proj.weight").Shape = []int{16, 8}
		}, false, "layer 0: wk has shape [16 8], want [8 16]"},
		{"missing lm_head", func(_ string, ck *checkpoint, _ map[string]any) {
			dropHF(ck, "lm_head.weight")
		}, false, "missing lm_head"},
		{"lm_head with tied config", func(_ string, _ *checkpoint, cfg map[string]any) {
			cfg["tie_word_embeddings"] = true
		}, false, "unexpected tensors for a 2-layer llama model: lm_head (the config ties"},
		{"extra layer", func(_ string, ck *checkpoint, _ map[string]any) {
			ck.hf = append(ck.hf, &Tensor{Name: "model.layers.2.input_layernorm.weight", Shape: []int{16}, Data: make([]float32, 16)})
		}, false, "unexpected tensors for a 2-layer llama model: layers.2.attn_norm"},
		{"gemma tensor in llama", func(_ string, ck *checkpoint, _ map[string]any) {
			ck.hf = append(ck.hf, &Tensor{Name: "model.layers.0.self_attn.q_norm.weight", Shape: []int{4}, Data: make([]float32, 4)})
		}, true, `tensor "model.layers.0.self_attn.q_norm.weight": unknown llama layer weight "self_attn.q_norm"`},
		{"bias tensor", func(_ string, ck *checkpoint, _ map[string]any) {
			ck.hf = append(ck.hf, &Tensor{Name: "model.layers.0.self_attn.q_proj.bias", Shape: []int{16}, Data: make([]float32, 16)})
		}, true, `tensor "model.layers.0.self_attn.q_proj.bias": not a weight this reader knows`},
		{"bad layer index", func(_ string, ck *checkpoint, _ map[string]any) {
			ck.hf = append(ck.hf, &Tensor{Name: "model.layers.01.input_layernorm.weight", Shape: []int{16}, Data: make([]float32, 16)})
		}, false, `tensor "model.layers.01.input_layernorm.weight": bad layer index`},
		{"integer dtype", func(dir string, ck *checkpoint, _ map[string]any) {
			dropHF(ck, "model.norm.weight")
			var buf bytes.Buffer
			WriteSafetensors(&buf, ck.hf, "F32", nil)
			// Rebuild with an I32 final norm appended.
			ts, _, _ := parseSafetensors(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
			hdr := map[string]any{}
			var data []byte
			for _, x := range ts {
				hdr[x.name] = map[string]any{"dtype": x.dtype, "shape": x.shape, "data_offsets": []int64{int64(len(data)), int64(len(data)) + x.end - x.begin}}
				data = append(data, buf.Bytes()[x.begin:x.end]...)
			}
			hdr["model.norm.weight"] = map[string]any{"dtype": "I32", "shape": []int{16}, "data_offsets": []int{len(data), len(data) + 64}}
			data = append(data, make([]byte, 64)...)
			h, _ := json.Marshal(hdr)
			os.WriteFile(filepath.Join(dir, singleFileName), append(rawST(string(h), 0), data...), 0o644)
		}, true, `tensor "model.norm.weight" (final_norm): dtype I32`},
		{"truncated file", func(dir string, ck *checkpoint, _ map[string]any) {
			var buf bytes.Buffer
			WriteSafetensors(&buf, ck.hf, "F32", nil)
			os.WriteFile(filepath.Join(dir, singleFileName), buf.Bytes()[:buf.Len()-3], 0o644)
		}, false, `tensor "lm_head.weight": data_offsets`},
		{"missing config field", func(_ string, _ *checkpoint, cfg map[string]any) {
			delete(cfg, "num_key_value_heads")
		}, false, "config.json: missing num_key_value_heads"},
		{"config field of wrong type", func(_ string, _ *checkpoint, cfg map[string]any) {
			cfg["hidden_size"] = "16"
		}, false, "config.json: hidden_size: json: cannot unmarshal string"},
		{"unsupported architecture", func(_ string, _ *checkpoint, cfg map[string]any) {
			cfg["architectures"] = []string{"MistralForCausalLM"}
			cfg["model_type"] = "mistral"
		}, true, `architectures ["MistralForCausalLM"], model_type "mistral"`},
		{"rope scaling", func(_ string, _ *checkpoint, cfg map[string]any) {
			cfg["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8}
		}, true, `config.json: rope_scaling rope_type "llama3" (only "default" and "linear" RoPE are implemented): {"factor":8,"rope_type":"llama3"}`},
		{"no checkpoint files", func(dir string, _ *checkpoint, _ map[string]any) {
			os.WriteFile(filepath.Join(dir, "other.bin"), nil, 0o644)
			os.Mkdir(filepath.Join(dir, singleFileName), 0o755) // a directory, not a file
		}, false, "holds neither"},
		{"index names a missing shard", func(dir string, ck *checkpoint, _ map[string]any) {
			writeSharded(t, dir, ck.hf, "F32", 2)
			os.Remove(filepath.Join(dir, "model-00002-of-00002.safetensors"))
		}, false, "model-00002-of-00002.safetensors: no such file"},
		{"index escapes the directory", func(dir string, ck *checkpoint, _ map[string]any) {
			writeJSON(t, filepath.Join(dir, indexFileName), map[string]any{"weight_map": map[string]string{"model.norm.weight": "../x.safetensors"}})
		}, false, `tensor "model.norm.weight" maps to "../x.safetensors"`},
		{"index disagrees with shard", func(dir string, ck *checkpoint, _ map[string]any) {
			writeSharded(t, dir, ck.hf, "F32", 2)
			idx := map[string]any{}
			b, _ := os.ReadFile(filepath.Join(dir, indexFileName))
			json.Unmarshal(b, &idx)
			idx["weight_map"].(map[string]any)["model.norm.weight"] = "model-00002-of-00002.safetensors"
			if findIndex(ck.hf, "model.norm.weight")%2 == 1 {
				idx["weight_map"].(map[string]any)["model.norm.weight"] = "model-00001-of-00002.safetensors"
			}
			writeJSON(t, filepath.Join(dir, indexFileName), idx)
		}, false, `tensor "model.norm.weight", which model.safetensors.index.json maps to`},
		{"index lists a tensor no shard holds", func(dir string, ck *checkpoint, _ map[string]any) {
			writeSharded(t, dir, ck.hf, "F32", 2)
			idx := map[string]any{}
			b, _ := os.ReadFile(filepath.Join(dir, indexFileName))
			json.Unmarshal(b, &idx)
			idx["weight_map"].(map[string]any)["model.extra.weight"] = "model-00001-of-00002.safetensors"
			writeJSON(t, filepath.Join(dir, indexFileName), idx)
		}, false, `maps tensor "model.extra.weight" to model-00001-of-00002.safetensors, which does not hold it`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := openErr(t, tc.edit)
			if err == nil {
				t.Fatalf("OpenSafetensors succeeded, want error containing %q", tc.want)
			}
			if tc.unsupported && !errors.Is(err, ErrUnsupported) {
				t.Errorf("error %v does not wrap ErrUnsupported", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func findIndex(ts []*Tensor, name string) int {
	for i, x := range ts {
		if x.Name == name {
			return i
		}
	}
	return -1
}

// TestSafetensorsIgnoresNonDecoderTensors writes a multimodal-style Gemma 3
// checkpoint whose vision tower and projector (in any dtype) sit beside the
// text weights: they are validated but not exposed.
func TestSafetensorsIgnoresNonDecoderTensors(t *testing.T) {
	dir := t.TempDir()
	ck := makeCheckpoint(t, tinyGemmaCfg, "BF16", "language_model.model.", 2)
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, ck.hf, "BF16", nil); err != nil {
		t.Fatal(err)
	}
	ts, _, err := parseSafetensors(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	hdr := map[string]any{}
	var data []byte
	for _, x := range ts {
		hdr[x.name] = map[string]any{"dtype": x.dtype, "shape": x.shape, "data_offsets": []int64{int64(len(data)), int64(len(data)) + x.end - x.begin}}
		data = append(data, buf.Bytes()[x.begin:x.end]...)
	}
	for _, extra := range []struct {
		name, dtype string
		bytes       int
	}{
		{"vision_tower.vision_model.embeddings.patch_embedding.weight", "BF16", 2 * 12},
		{"vision_tower.vision_model.embeddings.position_ids", "I64", 8 * 3},
		{"multi_modal_projector.mm_input_projection_weight", "F32", 4 * 4},
		{"language_model.model.rotary_emb.inv_freq", "F32", 4 * 4},
	} {
		hdr[extra.name] = map[string]any{"dtype": extra.dtype, "shape": []int{extra.bytes / stSize(extra.dtype)}, "data_offsets": []int{len(data), len(data) + extra.bytes}}
		data = append(data, make([]byte, extra.bytes)...)
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, singleFileName), append(rawST(string(h), 0), data...), 0o644); err != nil {
		t.Fatal(err)
	}
	var text map[string]any
	b, _ := json.Marshal(hfConfigJSON(tinyGemmaCfg))
	json.Unmarshal(b, &text)
	delete(text, "architectures")
	delete(text, "tie_word_embeddings")
	writeJSON(t, filepath.Join(dir, configFileName), map[string]any{
		"architectures": []string{"Gemma3ForConditionalGeneration"}, "model_type": "gemma3",
		"text_config": text, "vision_config": map[string]any{"hidden_size": 4},
	})
	s, err := OpenSafetensors(dir)
	if err != nil {
		t.Fatalf("OpenSafetensors: %v", err)
	}
	defer s.Close()
	checkSource(t, s, tinyGemmaCfg, ck)
}

func stSize(dtype string) int { return int(stDtypeSizes[dtype]) }

func TestSafetensorsClose(t *testing.T) {
	dir := t.TempDir()
	ck := makeCheckpoint(t, tinyLlamaCfg, "F32", "model.", 1)
	writeJSON(t, filepath.Join(dir, configFileName), hfConfigJSON(tinyLlamaCfg))
	writeSharded(t, dir, ck.hf, "F32", 3)
	s, err := OpenSafetensors(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Rows("embed", 0, 1); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Rows after Close: error %v, want closed", err)
	}
}
