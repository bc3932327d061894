package weights

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/equarx/equarx/model"
)

// hfFields reads typed fields of one Hugging Face config object, naming the
// field (with its path) in every error.
type hfFields struct {
	m    map[string]json.RawMessage
	path string // "" or "text_config."
}

func newHFFields(data []byte, path string) (*hfFields, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: config %s: not a JSON object: %v", ErrCorrupt, path, err)
	}
	if m == nil {
		return nil, fmt.Errorf("%w: config %s: null", ErrCorrupt, path)
	}
	return &hfFields{m: m, path: path}, nil
}

// present reports whether a field is set to something other than null.
func (f *hfFields) present(name string) bool {
	raw, ok := f.m[name]
	return ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

func (f *hfFields) missing(name string) error {
	return fmt.Errorf("%w: config.json: missing %s%s", ErrCorrupt, f.path, name)
}

func (f *hfFields) decode(name string, v any) error {
	if err := json.Unmarshal(f.m[name], v); err != nil {
		return fmt.Errorf("%w: config.json: %s%s: %v", ErrCorrupt, f.path, name, err)
	}
	return nil
}

func (f *hfFields) int(name string) (int, error) {
	if !f.present(name) {
		return 0, f.missing(name)
	}
	var v int64
	if err := f.decode(name, &v); err != nil {
		return 0, err
	}
	if v <= 0 || v > math.MaxInt32 {
		return 0, fmt.Errorf("%w: config.json: %s%s is %d, want 1..%d", ErrCorrupt, f.path, name, v, math.MaxInt32)
	}
	return int(v), nil
}

func (f *hfFields) float(name string) (float64, error) {
	if !f.present(name) {
		return 0, f.missing(name)
	}
	var v float64
	if err := f.decode(name, &v); err != nil {
		return 0, err
	}
	if !(v > 0) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w: config.json: %s%s is %g, want a positive number", ErrCorrupt, f.path, name, v)
	}
	return v, nil
}

func (f *hfFields) string(name string) (string, error) {
	if !f.present(name) {
		return "", f.missing(name)
	}
	var v string
	return v, f.decode(name, &v)
}

// boolOr returns a boolean field, or def when Hugging Face's own config
// class defines def as the default and the field is absent.
func (f *hfFields) boolOr(name string, def bool) (bool, error) {
	if !f.present(name) {
		return def, nil
	}
	var v bool
	return v, f.decode(name, &v)
}

// mustBeOff rejects features this package's models do not implement: the
// field must be absent, null or false.
func (f *hfFields) mustBeOff(names ...string) error {
	for _, n := range names {
		if !f.present(n) {
			continue
		}
		var b bool
		if err := json.Unmarshal(f.m[n], &b); err == nil && !b {
			continue
		}
		return fmt.Errorf("%w: config.json: %s%s = %s", ErrUnsupported, f.path, n, bytes.TrimSpace(f.m[n]))
	}
	return nil
}

// parseHFConfig converts a Hugging Face config.json into a validated
// model.Config. Every field the model needs must be present; the only
// defaults applied are those Hugging Face's config classes themselves apply
// to a field that a saved config.json may omit, each named below.
func parseHFConfig(data []byte) (model.Config, error) {
	top, err := newHFFields(data, "")
	if err != nil {
		return model.Config{}, err
	}
	var archs []string
	if top.present("architectures") {
		if err := top.decode("architectures", &archs); err != nil {
			return model.Config{}, err
		}
	}
	var modelType string
	if top.present("model_type") {
		if modelType, err = top.string("model_type"); err != nil {
			return model.Config{}, err
		}
	}
	var cfg model.Config
	switch {
	case slices.Contains(archs, "Gemma3ForConditionalGeneration") || modelType == "gemma3":
		if !top.present("text_config") {
			return model.Config{}, top.missing("text_config")
		}
		text, err := newHFFields(top.m["text_config"], "text_config.")
		if err != nil {
			return model.Config{}, err
		}
		if text.present("model_type") {
			if mt, err := text.string("model_type"); err != nil || mt != "gemma3_text" {
				return model.Config{}, fmt.Errorf("%w: config.json: text_config.model_type %q, want gemma3_text", ErrUnsupported, mt)
			}
		}
		// Gemma3Config.tie_word_embeddings governs the multimodal model;
		// the text model's own value defaults to true as well.
		cfg, err = gemma3Config(text, top)
		if err != nil {
			return model.Config{}, err
		}
	case slices.Contains(archs, "Gemma3ForCausalLM") || modelType == "gemma3_text":
		if cfg, err = gemma3Config(top, top); err != nil {
			return model.Config{}, err
		}
	case slices.Contains(archs, "LlamaForCausalLM") || modelType == "llama":
		if cfg, err = llamaConfig(top); err != nil {
			return model.Config{}, err
		}
	default:
		return model.Config{}, fmt.Errorf("%w: config.json: architectures %q, model_type %q (want LlamaForCausalLM, Gemma3ForCausalLM or Gemma3ForConditionalGeneration)",
			ErrUnsupported, archs, modelType)
	}
	if err := cfg.Validate(); err != nil {
		return model.Config{}, fmt.Errorf("%w: config.json: %w", ErrCorrupt, err)
	}
	return cfg, nil
}

// commonConfig reads the fields Llama and Gemma 3 share.
func commonConfig(f *hfFields, cfg *model.Config) error {
	ints := []struct {
		name string
		dst  *int
	}{
		{"hidden_size", &cfg.Dim}, {"intermediate_size", &cfg.HiddenDim}, {"num_hidden_layers", &cfg.Layers},
		{"num_attention_heads", &cfg.Heads}, {"num_key_value_heads", &cfg.KVHeads},
		{"vocab_size", &cfg.Vocab}, {"max_position_embeddings", &cfg.MaxSeqLen},
	}
	for _, x := range ints {
		v, err := f.int(x.name)
		if err != nil {
			return err
		}
		*x.dst = v
	}
	var err error
	if cfg.NormEps, err = f.float("rms_norm_eps"); err != nil {
		return err
	}
	if !f.present("rope_theta") && f.present("rope_parameters") {
		return fmt.Errorf("%w: config.json: %srope_parameters without rope_theta (read the config with a transformers 4.x layout)", ErrUnsupported, f.path)
	}
	if cfg.RopeTheta, err = f.float("rope_theta"); err != nil {
		return err
	}
	if cfg.RopeScalingFactor, err = ropeScaling(f); err != nil {
		return err
	}
	return f.mustBeOff("attention_bias", "mlp_bias")
}

// ropeScaling reads rope_scaling: absent, null or {"rope_type": "default"}
// is plain RoPE (factor 0); {"rope_type": "linear", "factor": F} is linear
// scaling (position interpolation), F positive and finite. transformers
// applies it to every Llama layer and to the full-attention layers of Gemma
// 3 (its sliding-window layers use rope_local_base_freq unscaled), which is
// what model.Config.RopeScalingFactor means. Older configs spell rope_type
// "type". Other variants (llama3, yarn, dynamic, longrope, ...) and unknown
// keys are rejected.
func ropeScaling(f *hfFields) (float64, error) {
	if !f.present("rope_scaling") {
		return 0, nil
	}
	var rs map[string]json.RawMessage
	if err := json.Unmarshal(f.m["rope_scaling"], &rs); err != nil {
		return 0, fmt.Errorf("%w: config.json: %srope_scaling: %v", ErrCorrupt, f.path, err)
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, f.m["rope_scaling"]) // valid: it was just decoded
	raw := compact.Bytes()
	sub := &hfFields{m: rs, path: f.path + "rope_scaling."}
	typ := ""
	for _, k := range []string{"rope_type", "type"} {
		if !sub.present(k) {
			continue
		}
		v, err := sub.string(k)
		if err != nil {
			return 0, err
		}
		if typ != "" && v != typ {
			return 0, fmt.Errorf("%w: config.json: %srope_scaling has rope_type %q and type %q", ErrCorrupt, f.path, typ, v)
		}
		typ = v
	}
	allowed := map[string]bool{"rope_type": true, "type": true}
	var factor float64
	switch typ {
	case "default":
	case "linear":
		allowed["factor"] = true
		var err error
		if factor, err = sub.float("factor"); err != nil {
			return 0, err
		}
	case "":
		return 0, fmt.Errorf("%w: config.json: %srope_scaling = %s has no rope_type", ErrCorrupt, f.path, raw)
	default:
		return 0, fmt.Errorf("%w: config.json: %srope_scaling rope_type %q (only \"default\" and \"linear\" RoPE are implemented): %s", ErrUnsupported, f.path, typ, raw)
	}
	for k := range rs {
		if !allowed[k] {
			return 0, fmt.Errorf("%w: config.json: %srope_scaling key %q with rope_type %q: %s", ErrUnsupported, f.path, k, typ, raw)
		}
	}
	return factor, nil
}

func llamaConfig(f *hfFields) (model.Config, error) {
	cfg := model.Config{Arch: "llama", RopeStyle: model.RopeHalf}
	if err := commonConfig(f, &cfg); err != nil {
		return model.Config{}, err
	}
	act, err := f.string("hidden_act")
	if err != nil {
		return model.Config{}, err
	}
	if act != "silu" {
		return model.Config{}, fmt.Errorf("%w: config.json: hidden_act %q (want silu)", ErrUnsupported, act)
	}
	cfg.Activation = model.ActSiLU
	// transformers LlamaConfig: head_dim defaults to
	// hidden_size // num_attention_heads when not given.
	if f.present("head_dim") {
		if cfg.HeadDim, err = f.int("head_dim"); err != nil {
			return model.Config{}, err
		}
	} else {
		if cfg.Dim%cfg.Heads != 0 {
			return model.Config{}, fmt.Errorf("%w: config.json: no head_dim and hidden_size %d is not a multiple of num_attention_heads %d", ErrCorrupt, cfg.Dim, cfg.Heads)
		}
		cfg.HeadDim = cfg.Dim / cfg.Heads
	}
	// transformers LlamaConfig: tie_word_embeddings defaults to False.
	if cfg.TiedEmbeddings, err = f.boolOr("tie_word_embeddings", false); err != nil {
		return model.Config{}, err
	}
	return cfg, nil
}

// gemma3TextDefaults are the defaults of transformers' Gemma3TextConfig
// (models/gemma3/configuration_gemma3.py) for the fields this package reads.
// The multimodal 4B/12B/27B config.json files state only hidden_size,
// intermediate_size, num_hidden_layers, sliding_window and rope_scaling in
// text_config and rely on these for the rest (8 heads, 4 KV heads, head_dim
// 256, vocab_size 262208, ...). hidden_size, intermediate_size and
// num_hidden_layers have defaults there too (2304, 9216, 26), but every
// published config states them, so they stay required here. A field set to
// null is not defaulted (transformers keeps the None).
var gemma3TextDefaults = map[string]string{
	"num_attention_heads":     "8",
	"num_key_value_heads":     "4",
	"head_dim":                "256",
	"vocab_size":              "262208",
	"max_position_embeddings": "131072",
	"rms_norm_eps":            "1e-06",
	"rope_theta":              "1000000.0",
	"rope_local_base_freq":    "10000.0",
	"query_pre_attn_scalar":   "256",
	"sliding_window":          "4096",
	"hidden_activation":       `"gelu_pytorch_tanh"`,
}

// withDefaults returns a copy of f in which every absent field named in defs
// takes the JSON value given there.
func (f *hfFields) withDefaults(defs map[string]string) *hfFields {
	m := make(map[string]json.RawMessage, len(f.m)+len(defs))
	for k, v := range f.m {
		m[k] = v
	}
	for k, v := range defs {
		if _, ok := m[k]; !ok {
			m[k] = json.RawMessage(v)
		}
	}
	return &hfFields{m: m, path: f.path}
}

// gemma3Config reads a Gemma 3 text config from f; tying is read from tie
// (the top-level object for multimodal checkpoints).
func gemma3Config(f, tie *hfFields) (model.Config, error) {
	cfg := model.Config{Arch: "gemma3", RopeStyle: model.RopeHalf}
	if !f.present("rope_theta") && f.present("rope_parameters") {
		return model.Config{}, fmt.Errorf("%w: config.json: %srope_parameters without rope_theta (read the config with a transformers 4.x layout)", ErrUnsupported, f.path)
	}
	f = f.withDefaults(gemma3TextDefaults)
	if err := commonConfig(f, &cfg); err != nil {
		return model.Config{}, err
	}
	var err error
	if cfg.HeadDim, err = f.int("head_dim"); err != nil {
		return model.Config{}, err
	}
	act, err := f.string("hidden_activation")
	if err != nil {
		return model.Config{}, err
	}
	if act != "gelu_pytorch_tanh" {
		return model.Config{}, fmt.Errorf("%w: config.json: %shidden_activation %q (want gelu_pytorch_tanh)", ErrUnsupported, f.path, act)
	}
	cfg.Activation = model.ActGELUTanh
	if cfg.RopeLocalTheta, err = f.float("rope_local_base_freq"); err != nil {
		return model.Config{}, err
	}
	if cfg.SlidingWindow, err = f.int("sliding_window"); err != nil {
		return model.Config{}, err
	}
	if cfg.QueryPreAttnScalar, err = f.float("query_pre_attn_scalar"); err != nil {
		return model.Config{}, err
	}
	if err := f.mustBeOff("attn_logit_softcapping", "final_logit_softcapping"); err != nil {
		return model.Config{}, err
	}
	if cfg.SlidingWindowPattern, err = gemma3Pattern(f, cfg.Layers); err != nil {
		return model.Config{}, err
	}
	// transformers Gemma3TextConfig and Gemma3Config: tie_word_embeddings
	// defaults to True, so saved Gemma 3 configs usually omit it.
	if cfg.TiedEmbeddings, err = tie.boolOr("tie_word_embeddings", true); err != nil {
		return model.Config{}, err
	}
	return cfg, nil
}

// gemma3Pattern returns the sliding-window pattern: every pattern-th layer
// (1-based) is global. It is read from sliding_window_pattern, or derived
// from layer_types (newer transformers write that list instead); when both
// are absent it is 6, the default of transformers' Gemma3TextConfig
// (sliding_window_pattern=6 in models/gemma3/configuration_gemma3.py), which
// is the 5:1 local:global layout of every published Gemma 3 model.
func gemma3Pattern(f *hfFields, layers int) (int, error) {
	pattern := 0
	if f.present("sliding_window_pattern") {
		p, err := f.int("sliding_window_pattern")
		if err != nil {
			return 0, err
		}
		pattern = p
	}
	if f.present("layer_types") {
		var types []string
		if err := f.decode("layer_types", &types); err != nil {
			return 0, err
		}
		if len(types) != layers {
			return 0, fmt.Errorf("%w: config.json: %slayer_types has %d entries for %d layers", ErrCorrupt, f.path, len(types), layers)
		}
		first := slices.Index(types, "full_attention")
		p := first + 1
		if first < 0 {
			p = layers + 1 // no global layer at all
		}
		for i, t := range types {
			want := "sliding_attention"
			if (i+1)%p == 0 {
				want = "full_attention"
			}
			if t != want {
				return 0, fmt.Errorf("%w: config.json: %slayer_types[%d] = %q breaks the every-%dth-layer-global pattern", ErrUnsupported, f.path, i, t, p)
			}
		}
		if pattern != 0 && pattern != p {
			return 0, fmt.Errorf("%w: config.json: %ssliding_window_pattern %d disagrees with layer_types (every %dth layer global)", ErrCorrupt, f.path, pattern, p)
		}
		pattern = p
	}
	if pattern == 0 {
		pattern = 6
	}
	return pattern, nil
}
