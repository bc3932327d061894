package tp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/weights"
)

// hfLlamaNames maps canonical tensor names to Hugging Face Llama names.
var hfLlamaNames = map[string]string{
	"embed": "model.embed_tokens.weight", "final_norm": "model.norm.weight", "lm_head": "lm_head.weight",
	"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
	"wq": "self_attn.q_proj", "wk": "self_attn.k_proj", "wv": "self_attn.v_proj", "wo": "self_attn.o_proj",
	"w_gate": "mlp.gate_proj", "w_up": "mlp.up_proj", "w_down": "mlp.down_proj",
}

// writeLlamaCheckpoint writes synthetic weights of a llama cfg as a
// Hugging Face safetensors checkpoint (config.json + model.safetensors).
func writeLlamaCheckpoint(t testing.TB, cfg model.Config, dtype string) string {
	t.Helper()
	src, err := weights.Synthetic(cfg, 11)
	if err != nil {
		t.Fatal(err)
	}
	var tensors []*weights.Tensor
	for _, n := range src.Names() {
		x, err := src.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		hf, ok := hfLlamaNames[n]
		if rest, layer := strings.CutPrefix(n, "layers."); layer {
			idx, short, _ := strings.Cut(rest, ".")
			hf, ok = "model.layers."+idx+"."+hfLlamaNames[short]+".weight", hfLlamaNames[short] != ""
		}
		if !ok {
			t.Fatalf("no Hugging Face name for %s", n)
		}
		x.Name = hf
		tensors = append(tensors, x)
	}
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := weights.WriteSafetensors(&buf, tensors, dtype, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	conf, _ := json.Marshal(map[string]any{
		"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama", "hidden_act": "silu",
		"hidden_size": cfg.Dim, "intermediate_size": cfg.HiddenDim, "num_hidden_layers": cfg.Layers,
		"num_attention_heads": cfg.Heads, "num_key_value_heads": cfg.KVHeads, "head_dim": cfg.HeadDim,
		"vocab_size": cfg.Vocab, "max_position_embeddings": cfg.MaxSeqLen, "rms_norm_eps": cfg.NormEps,
		"rope_theta": cfg.RopeTheta, "tie_word_embeddings": cfg.TiedEmbeddings,
	})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLoadStatsPerRank builds a tp-4 engine from a bf16 safetensors
// checkpoint and checks the bytes each rank read: exactly its quarter of
// every layer matrix, of the LM head and of the (untied, vocab-parallel)
// embedding; the replicated norms are read once, outside the ranks. The engine's output matches an engine
// over the same weights held in memory.
func TestLoadStatsPerRank(t *testing.T) {
	cfg := model.Config{Arch: "llama", Dim: 64, HiddenDim: 128, Layers: 2, Heads: 8, KVHeads: 4, HeadDim: 8,
		Vocab: 256, MaxSeqLen: 64, NormEps: 1e-5, RopeTheta: 1e4, RopeStyle: model.RopeHalf,
		Activation: model.ActSiLU}
	dir := writeLlamaCheckpoint(t, cfg, "BF16")
	src, err := weights.OpenSafetensors(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	const size = 4
	e, err := NewEngine(src, EngineConfig{TP: size, TPU: "v5e"})
	if err != nil {
		t.Fatal(err)
	}
	st := e.LoadStats()
	d, q, kv, h := int64(cfg.Dim), int64(cfg.Heads*cfg.HeadDim), int64(cfg.KVHeads*cfg.HeadDim), int64(cfg.HiddenDim)
	perLayer := (q*d + 2*kv*d + d*q + 3*h*d) / size
	wantRank := 2 * (int64(cfg.Layers)*perLayer + 2*int64(cfg.Vocab)*d/size)
	wantShared := 2 * (d + int64(cfg.Layers)*2*d)
	if !st.Counted || len(st.Ranks) != size {
		t.Fatalf("load stats %+v: want counted, %d ranks", st, size)
	}
	if st.Shared.BytesRead != wantShared {
		t.Errorf("replicated tensors: %d bytes read, want %d", st.Shared.BytesRead, wantShared)
	}
	for i, r := range st.Ranks {
		if r.Rank != i || r.BytesRead != wantRank {
			t.Errorf("rank %d (%d): %d bytes read, want %d", i, r.Rank, r.BytesRead, wantRank)
		}
	}
	fi, _ := os.Stat(filepath.Join(dir, "model.safetensors"))
	t.Logf("file %d bytes; replicated %d, each rank %d (%.1f%% of the file), total %d",
		fi.Size(), st.Shared.BytesRead, st.Ranks[0].BytesRead, 100*float64(st.Ranks[0].BytesRead)/float64(fi.Size()), st.BytesRead())
	if got := src.(weights.ReadCounter).BytesRead(); got != st.BytesRead() {
		t.Errorf("source BytesRead %d, load stats total %d", got, st.BytesRead())
	}

	// Same logits as an engine over the decoded weights held in memory
	// (the bf16 values round-trip exactly through float32).
	mem := &memSource{Source: src, m: map[string]*weights.Tensor{}}
	for _, n := range src.Names() {
		if mem.m[n], err = src.Tensor(n); err != nil {
			t.Fatal(err)
		}
	}
	e2, err := NewEngine(mem, EngineConfig{TP: size, TPU: "v5e"})
	if err != nil {
		t.Fatal(err)
	}
	if st2 := e2.LoadStats(); st2.Counted || st2.BytesRead() != 0 {
		t.Errorf("in-memory source: load stats %+v, want uncounted", st2)
	}
	seqs := [][]int{{1, 2, 3, 200, 17}}
	a := prefill(t, e, seqs, PrefillOptions{Codec: collective.CodecF32, FullLogprobs: true})
	b := prefill(t, e2, seqs, PrefillOptions{Codec: collective.CodecF32, FullLogprobs: true})
	if diff := maxAbsDiff(a.Seqs[0].Logprobs, b.Seqs[0].Logprobs); diff != 0 {
		t.Errorf("mapped vs in-memory weights: logprobs differ by %g", diff)
	}
}

// memSource serves decoded tensors from memory.
type memSource struct {
	weights.Source
	m map[string]*weights.Tensor
}

func (s *memSource) Tensor(name string) (*weights.Tensor, error) {
	t, ok := s.m[name]
	if !ok {
		return nil, fmt.Errorf("no tensor %q", name)
	}
	return t, nil
}

func (s *memSource) Rows(name string, lo, hi int) (*weights.Tensor, error) {
	t, err := s.Tensor(name)
	if err != nil {
		return nil, err
	}
	c := t.Shape[1]
	return &weights.Tensor{Name: name, Shape: []int{hi - lo, c}, Data: t.Data[lo*c : hi*c]}, nil
}

func (s *memSource) Cols(name string, lo, hi int) (*weights.Tensor, error) {
	t, err := s.Tensor(name)
	if err != nil {
		return nil, err
	}
	r, c := t.Shape[0], t.Shape[1]
	out := &weights.Tensor{Name: name, Shape: []int{r, hi - lo}}
	for i := range r {
		out.Data = append(out.Data, t.Data[i*c+lo:i*c+hi]...)
	}
	return out, nil
}
