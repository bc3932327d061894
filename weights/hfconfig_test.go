package weights

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/equarx/equarx/model"
)

// gemma31BConfig is the config.json of the published Gemma 3 1B model.
const gemma31BConfig = `{
  "architectures": ["Gemma3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "attn_logit_softcapping": null,
  "bos_token_id": 2,
  "cache_implementation": "hybrid",
  "eos_token_id": [1, 106],
  "final_logit_softcapping": null,
  "head_dim": 256,
  "hidden_activation": "gelu_pytorch_tanh",
  "hidden_size": 1152,
  "initializer_range": 0.02,
  "intermediate_size": 6912,
  "max_position_embeddings": 32768,
  "model_type": "gemma3_text",
  "num_attention_heads": 4,
  "num_hidden_layers": 26,
  "num_key_value_heads": 1,
  "pad_token_id": 0,
  "query_pre_attn_scalar": 256,
  "rms_norm_eps": 1e-06,
  "rope_local_base_freq": 10000,
  "rope_scaling": null,
  "rope_theta": 1000000,
  "sliding_window": 512,
  "sliding_window_pattern": 6,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.50.0.dev0",
  "use_cache": true,
  "vocab_size": 262144
}`

var gemma31B = model.Config{
	Arch: "gemma3", Dim: 1152, HiddenDim: 6912, Layers: 26, Heads: 4, KVHeads: 1, HeadDim: 256,
	Vocab: 262144, MaxSeqLen: 32768, NormEps: 1e-6, RopeTheta: 1e6, RopeStyle: model.RopeHalf,
	Activation: model.ActGELUTanh, TiedEmbeddings: true, RopeLocalTheta: 10000,
	SlidingWindow: 512, SlidingWindowPattern: 6, QueryPreAttnScalar: 256,
}

// gemma34BConfig is the config.json of the published Gemma 3 4B model
// (google/gemma-3-4b-it; -pt differs only in metadata): its text_config
// states five fields and rope_scaling, Gemma3TextConfig's defaults give the
// rest.
const gemma34BConfig = `{
  "architectures": ["Gemma3ForConditionalGeneration"],
  "boi_token_index": 255999,
  "eoi_token_index": 256000,
  "eos_token_id": [1, 106],
  "image_token_index": 262144,
  "initializer_range": 0.02,
  "mm_tokens_per_image": 256,
  "model_type": "gemma3",
  "text_config": {
    "hidden_size": 2560,
    "intermediate_size": 10240,
    "model_type": "gemma3_text",
    "num_hidden_layers": 34,
    "rope_scaling": {
      "factor": 8.0,
      "rope_type": "linear"
    },
    "sliding_window": 1024
  },
  "torch_dtype": "bfloat16",
  "transformers_version": "4.50.0.dev0",
  "vision_config": {
    "hidden_size": 1152,
    "image_size": 896,
    "intermediate_size": 4304,
    "model_type": "siglip_vision_model",
    "num_attention_heads": 16,
    "num_hidden_layers": 27,
    "patch_size": 14,
    "vision_use_head": false
  }
}`

var gemma34B = model.Config{
	Arch: "gemma3", Dim: 2560, HiddenDim: 10240, Layers: 34, Heads: 8, KVHeads: 4, HeadDim: 256,
	Vocab: 262208, MaxSeqLen: 131072, NormEps: 1e-6, RopeTheta: 1e6, RopeStyle: model.RopeHalf,
	RopeScalingFactor: 8, Activation: model.ActGELUTanh, TiedEmbeddings: true, RopeLocalTheta: 10000,
	SlidingWindow: 1024, SlidingWindowPattern: 6, QueryPreAttnScalar: 256,
}

// tinyLlamaConfig is a Llama config.json in the style of TinyLlama 1.1B,
// without head_dim.
const tinyLlamaConfig = `{
  "architectures": ["LlamaForCausalLM"],
  "hidden_act": "silu",
  "hidden_size": 2048,
  "intermediate_size": 5632,
  "max_position_embeddings": 2048,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 22,
  "num_key_value_heads": 4,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "vocab_size": 32000
}`

var tinyLlama11B = model.Config{
	Arch: "llama", Dim: 2048, HiddenDim: 5632, Layers: 22, Heads: 32, KVHeads: 4, HeadDim: 64,
	Vocab: 32000, MaxSeqLen: 2048, NormEps: 1e-5, RopeTheta: 10000, RopeStyle: model.RopeHalf,
	Activation: model.ActSiLU,
}

// editJSON applies edit to a parsed copy of a JSON object.
func editJSON(t *testing.T, src string, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(src), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseHFConfig(t *testing.T) {
	layerTypes := func(n, pattern int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "sliding_attention"
			if (i+1)%pattern == 0 {
				out[i] = "full_attention"
			}
		}
		return out
	}
	with := func(c model.Config, f func(*model.Config)) model.Config { f(&c); return c }
	tests := []struct {
		name string
		data []byte
		want model.Config
	}{
		{"gemma3 1B", []byte(gemma31BConfig), gemma31B},
		{"gemma3 pattern from layer_types", editJSON(t, gemma31BConfig, func(m map[string]any) {
			delete(m, "sliding_window_pattern")
			m["layer_types"] = layerTypes(26, 4)
		}), with(gemma31B, func(c *model.Config) { c.SlidingWindowPattern = 4 })},
		{"gemma3 pattern defaults to 6", editJSON(t, gemma31BConfig, func(m map[string]any) {
			delete(m, "sliding_window_pattern")
		}), gemma31B},
		{"gemma3 untied", editJSON(t, gemma31BConfig, func(m map[string]any) {
			m["tie_word_embeddings"] = false
		}), with(gemma31B, func(c *model.Config) { c.TiedEmbeddings = false })},
		{"gemma3 multimodal", editJSON(t, `{}`, func(m map[string]any) {
			var text map[string]any
			json.Unmarshal([]byte(gemma31BConfig), &text)
			delete(text, "architectures")
			m["architectures"] = []string{"Gemma3ForConditionalGeneration"}
			m["model_type"] = "gemma3"
			m["text_config"] = text
			m["vision_config"] = map[string]any{"hidden_size": 1152}
		}), gemma31B},
		{"gemma3 4B (multimodal, linear rope_scaling, text defaults)", []byte(gemma34BConfig), gemma34B},
		{"gemma3 text defaults", editJSON(t, gemma31BConfig, func(m map[string]any) {
			for _, k := range []string{"head_dim", "num_attention_heads", "num_key_value_heads", "vocab_size",
				"max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_local_base_freq",
				"query_pre_attn_scalar", "sliding_window", "hidden_activation"} {
				delete(m, k)
			}
		}), with(gemma31B, func(c *model.Config) {
			c.Heads, c.KVHeads, c.Vocab, c.MaxSeqLen, c.SlidingWindow = 8, 4, 262208, 131072, 4096
		})},
		{"gemma3 linear rope_scaling, old spelling", editJSON(t, gemma31BConfig, func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"type": "linear", "factor": 4}
		}), with(gemma31B, func(c *model.Config) { c.RopeScalingFactor = 4 })},
		{"gemma3 linear rope_scaling, both spellings", editJSON(t, gemma31BConfig, func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"type": "linear", "rope_type": "linear", "factor": 0.5}
		}), with(gemma31B, func(c *model.Config) { c.RopeScalingFactor = 0.5 })},
		{"llama linear rope_scaling", editJSON(t, tinyLlamaConfig, func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"type": "linear", "factor": 2.0}
		}), with(tinyLlama11B, func(c *model.Config) { c.RopeScalingFactor = 2 })},
		{"llama head_dim from hidden_size", []byte(tinyLlamaConfig), tinyLlama11B},
		{"llama explicit head_dim", editJSON(t, tinyLlamaConfig, func(m map[string]any) {
			m["head_dim"] = 128
		}), with(tinyLlama11B, func(c *model.Config) { c.HeadDim = 128 })},
		{"llama tie defaults to false", editJSON(t, tinyLlamaConfig, func(m map[string]any) {
			delete(m, "tie_word_embeddings")
		}), tinyLlama11B},
		{"llama default rope_scaling", editJSON(t, tinyLlamaConfig, func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"rope_type": "default"}
		}), tinyLlama11B},
		{"llama by model_type", editJSON(t, tinyLlamaConfig, func(m map[string]any) {
			delete(m, "architectures")
			m["tie_word_embeddings"] = true
		}), with(tinyLlama11B, func(c *model.Config) { c.TiedEmbeddings = true })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseHFConfig(tc.data)
			if err != nil {
				t.Fatalf("parseHFConfig: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseHFConfigErrors(t *testing.T) {
	tests := []struct {
		name        string
		data        []byte
		unsupported bool
		want        string
	}{
		{"not JSON", []byte("nope"), false, "not a JSON object"},
		{"null", []byte("null"), false, "null"},
		{"no architecture", []byte(`{"hidden_size": 8}`), true, "architectures [], model_type \"\""},
		{"gemma3 missing hidden_size", editJSON(t, gemma31BConfig, func(m map[string]any) { delete(m, "hidden_size") }), false, "missing hidden_size"},
		{"gemma3 null head_dim", editJSON(t, gemma31BConfig, func(m map[string]any) { m["head_dim"] = nil }), false, "missing head_dim"},
		{"gemma3 null sliding_window", editJSON(t, gemma31BConfig, func(m map[string]any) { m["sliding_window"] = nil }), false, "missing sliding_window"},
		{"gemma3 null rope_local_base_freq", editJSON(t, gemma31BConfig, func(m map[string]any) { m["rope_local_base_freq"] = nil }), false, "missing rope_local_base_freq"},
		{"gemma3 null query_pre_attn_scalar", editJSON(t, gemma31BConfig, func(m map[string]any) { m["query_pre_attn_scalar"] = nil }), false, "missing query_pre_attn_scalar"},
		{"gemma3 rope_parameters layout", editJSON(t, gemma31BConfig, func(m map[string]any) {
			delete(m, "rope_theta")
			m["rope_parameters"] = map[string]any{"full_attention": map[string]any{"rope_type": "default", "rope_theta": 1e6}}
		}), true, "rope_parameters without rope_theta"},
		{"gemma3 yarn", editJSON(t, gemma31BConfig, func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"rope_type": "yarn", "factor": 8.0}
		}), true, `config.json: rope_scaling rope_type "yarn" (only "default" and "linear"`},
		{"gemma3 linear zero factor", editJSON(t, gemma31BConfig, func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"rope_type": "linear", "factor": 0}
		}), false, "rope_scaling.factor is 0, want a positive number"},
		{"gemma3 linear negative factor", editJSON(t, gemma31BConfig, func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"rope_type": "linear", "factor": -2}
		}), false, "rope_scaling.factor is -2"},
		{"gemma3 linear huge factor", editJSON(t, gemma31BConfig, func(m map[string]any) {
			m["rope_scaling"] = json.RawMessage(`{"rope_type": "linear", "factor": 1e999}`)
		}), false, "rope_scaling.factor"},
		{"gemma3 linear without factor", editJSON(t, gemma31BConfig, func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"rope_type": "linear"}
		}), false, "missing rope_scaling.factor"},
		{"gemma3 linear factor a string", editJSON(t, gemma31BConfig, func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"rope_type": "linear", "factor": "8"}
		}), false, "rope_scaling.factor"},
		{"gemma3 softcapping", editJSON(t, gemma31BConfig, func(m map[string]any) { m["final_logit_softcapping"] = 30.0 }), true, "final_logit_softcapping = 30"},
		{"gemma3 activation", editJSON(t, gemma31BConfig, func(m map[string]any) { m["hidden_activation"] = "relu" }), true, `hidden_activation "relu"`},
		{"gemma3 irregular layer_types", editJSON(t, gemma31BConfig, func(m map[string]any) {
			lt := make([]string, 26)
			for i := range lt {
				lt[i] = "sliding_attention"
			}
			lt[5], lt[13] = "full_attention", "full_attention"
			m["layer_types"] = lt
		}), true, `layer_types[11] = "sliding_attention" breaks the every-6th-layer-global pattern`},
		{"gemma3 layer_types disagree", editJSON(t, gemma31BConfig, func(m map[string]any) {
			lt := make([]string, 26)
			for i := range lt {
				lt[i] = "sliding_attention"
				if (i+1)%2 == 0 {
					lt[i] = "full_attention"
				}
			}
			m["layer_types"] = lt
		}), false, "sliding_window_pattern 6 disagrees with layer_types"},
		{"gemma3 multimodal without text_config", []byte(`{"architectures": ["Gemma3ForConditionalGeneration"]}`), false, "missing text_config"},
		{"gemma3 multimodal text field missing", editJSON(t, `{"architectures": ["Gemma3ForConditionalGeneration"]}`, func(m map[string]any) {
			m["text_config"] = map[string]any{"hidden_size": 2560, "model_type": "gemma3_text"}
		}), false, "missing text_config.intermediate_size"},
		{"llama missing kv heads", editJSON(t, tinyLlamaConfig, func(m map[string]any) { delete(m, "num_key_value_heads") }), false, "missing num_key_value_heads"},
		{"llama missing rms_norm_eps", editJSON(t, tinyLlamaConfig, func(m map[string]any) { delete(m, "rms_norm_eps") }), false, "missing rms_norm_eps"},
		{"llama missing hidden_act", editJSON(t, tinyLlamaConfig, func(m map[string]any) { delete(m, "hidden_act") }), false, "missing hidden_act"},
		{"llama zero layers", editJSON(t, tinyLlamaConfig, func(m map[string]any) { m["num_hidden_layers"] = 0 }), false, "num_hidden_layers is 0"},
		{"llama fractional size", editJSON(t, tinyLlamaConfig, func(m map[string]any) { m["hidden_size"] = 20.5 }), false, "hidden_size"},
		{"llama negative eps", editJSON(t, tinyLlamaConfig, func(m map[string]any) { m["rms_norm_eps"] = -1 }), false, "rms_norm_eps is -1"},
		{"llama attention bias", editJSON(t, tinyLlamaConfig, func(m map[string]any) { m["attention_bias"] = true }), true, "attention_bias = true"},
		{"llama3 rope scaling", editJSON(t, tinyLlamaConfig, func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
				"high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
		}), true, `rope_scaling rope_type "llama3" (only "default" and "linear" RoPE are implemented)`},
		{"llama dynamic rope scaling", editJSON(t, tinyLlamaConfig, func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"type": "dynamic", "factor": 2.0}
		}), true, `rope_type "dynamic"`},
		{"llama default rope scaling with a factor", editJSON(t, tinyLlamaConfig, func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"rope_type": "default", "factor": 2}
		}), true, `rope_scaling key "factor" with rope_type "default"`},
		{"llama linear rope scaling with an extra key", editJSON(t, tinyLlamaConfig, func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"rope_type": "linear", "factor": 2, "original_max_position_embeddings": 2048}
		}), true, `rope_scaling key "original_max_position_embeddings" with rope_type "linear"`},
		{"llama rope scaling types disagree", editJSON(t, tinyLlamaConfig, func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"rope_type": "linear", "type": "default", "factor": 2}
		}), false, `rope_scaling has rope_type "linear" and type "default"`},
		{"llama rope scaling without type", editJSON(t, tinyLlamaConfig, func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"factor": 2}
		}), false, "has no rope_type"},
		{"llama rope_scaling not an object", editJSON(t, tinyLlamaConfig, func(m map[string]any) { m["rope_scaling"] = 3 }), false, "rope_scaling: json"},
		{"rope_parameters layout", editJSON(t, tinyLlamaConfig, func(m map[string]any) {
			delete(m, "rope_theta")
			m["rope_parameters"] = map[string]any{"rope_type": "default", "rope_theta": 10000}
		}), true, "rope_parameters without rope_theta"},
		{"llama gelu", editJSON(t, tinyLlamaConfig, func(m map[string]any) { m["hidden_act"] = "gelu" }), true, `hidden_act "gelu"`},
		{"llama heads do not divide hidden", editJSON(t, tinyLlamaConfig, func(m map[string]any) { m["num_attention_heads"] = 30 }), false, "not a multiple of num_attention_heads"},
		{"llama invalid by Validate", editJSON(t, tinyLlamaConfig, func(m map[string]any) { m["num_key_value_heads"] = 5 }), false, "n_heads 32 is not a multiple of n_kv_heads 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseHFConfig(tc.data)
			if err == nil {
				t.Fatalf("parseHFConfig succeeded, want error containing %q", tc.want)
			}
			if tc.unsupported != errors.Is(err, ErrUnsupported) {
				t.Errorf("error %v: wraps ErrUnsupported = %v, want %v", err, !tc.unsupported, tc.unsupported)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}
