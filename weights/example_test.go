package weights_test

import (
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/weights"
)

func ExampleReadLlama2C() {
	src, err := weights.ReadLlama2C(assets.Stories260K())
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	cfg := src.Config()
	fmt.Println(cfg.Dim, cfg.HiddenDim, cfg.Layers, cfg.Heads, cfg.KVHeads, cfg.Vocab, cfg.TiedEmbeddings)

	// Rank 1 of 4 reads only its two query heads of layer 0.
	q, err := src.Rows("layers.0.wq", 16, 32)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(q.Shape)
	// Output:
	// 64 172 5 8 4 512 true
	// [16 64]
}

func ExampleSynthetic() {
	cfg := model.Config{
		Arch: "gemma3", Dim: 1152, HiddenDim: 6912, Layers: 26, Heads: 4, KVHeads: 1, HeadDim: 256,
		Vocab: 262144, MaxSeqLen: 32768, NormEps: 1e-6, RopeTheta: 1e6, RopeStyle: model.RopeHalf,
		Activation: model.ActGELUTanh, TiedEmbeddings: true, RopeLocalTheta: 10000,
		SlidingWindow: 512, SlidingWindowPattern: 6, QueryPreAttnScalar: 256,
	}
	src, err := weights.Synthetic(cfg, 1)
	if err != nil {
		log.Fatal(err)
	}
	// Only the slice asked for is generated.
	down, err := src.Cols("layers.3.w_down", 0, 1728)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(src.Names()), down.Shape)
	// Output: 340 [1152 1728]
}

func ExampleWriteSafetensors() {
	dir, err := os.MkdirTemp("", "ckpt")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A one-layer Llama with every weight equal to 0.5.
	cfg := map[string]any{
		"architectures": []string{"LlamaForCausalLM"}, "hidden_act": "silu",
		"hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": 1,
		"num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 6,
		"max_position_embeddings": 16, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
		"tie_word_embeddings": true,
	}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		log.Fatal(err)
	}
	t := func(name string, shape ...int) *weights.Tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = 0.5
		}
		return &weights.Tensor{Name: name, Shape: shape, Data: data}
	}
	tensors := []*weights.Tensor{
		t("model.embed_tokens.weight", 6, 4), t("model.norm.weight", 4),
		t("model.layers.0.input_layernorm.weight", 4), t("model.layers.0.post_attention_layernorm.weight", 4),
		t("model.layers.0.self_attn.q_proj.weight", 4, 4), t("model.layers.0.self_attn.k_proj.weight", 2, 4),
		t("model.layers.0.self_attn.v_proj.weight", 2, 4), t("model.layers.0.self_attn.o_proj.weight", 4, 4),
		t("model.layers.0.mlp.gate_proj.weight", 8, 4), t("model.layers.0.mlp.up_proj.weight", 8, 4),
		t("model.layers.0.mlp.down_proj.weight", 4, 8),
	}
	f, err := os.Create(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		log.Fatal(err)
	}
	if err := weights.WriteSafetensors(f, tensors, "BF16", nil); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}

	src, err := weights.OpenSafetensors(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	down, err := src.Cols("layers.0.w_down", 2, 4)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(src.Config().HeadDim, src.Names()[:3], down.Shape, down.Data[0])
	// Output: 2 [embed layers.0.attn_norm layers.0.wq] [4 2] 0.5
}
