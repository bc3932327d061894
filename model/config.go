// Package model holds the transformer architectures served by equarx: their
// validated configurations, per-block forward passes and a registry keyed by
// architecture name.
package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
)

// RopeStyle says how rotary embeddings pair the dimensions of a head.
type RopeStyle string

const (
	// RopeInterleaved rotates pairs (2i, 2i+1), as llama2.c checkpoints expect.
	RopeInterleaved RopeStyle = "interleaved"
	// RopeHalf rotates pairs (i, i+d/2), as Hugging Face checkpoints expect.
	RopeHalf RopeStyle = "half"
)

// Activation names the gated feed-forward nonlinearity.
type Activation string

const (
	ActSiLU     Activation = "silu"      // SwiGLU (Llama)
	ActGELUTanh Activation = "gelu_tanh" // GeGLU with tanh-approximated GELU (Gemma)
)

// Config describes one model. Every field that the architecture uses must be
// set explicitly: Validate reports what is missing instead of defaulting it.
type Config struct {
	Arch      string    `json:"arch"` // registry key: "llama" or "gemma3"
	Name      string    `json:"name,omitempty"`
	Dim       int       `json:"dim"`        // residual width (hidden_size)
	HiddenDim int       `json:"hidden_dim"` // feed-forward width (intermediate_size)
	Layers    int       `json:"n_layers"`
	Heads     int       `json:"n_heads"`
	KVHeads   int       `json:"n_kv_heads"`
	HeadDim   int       `json:"head_dim"`
	Vocab     int       `json:"vocab_size"`
	MaxSeqLen int       `json:"max_seq_len"`
	NormEps   float64   `json:"norm_eps"`
	RopeTheta float64   `json:"rope_theta"`
	RopeStyle RopeStyle `json:"rope_style"`
	// RopeScalingFactor is linear RoPE scaling (position interpolation) on
	// the global layers: every llama layer, the full-attention layers of
	// gemma3 (its sliding-window layers are never scaled). Positions are
	// divided by the factor, i.e. the inverse frequencies pos·θ^(-2i/hd)
	// become pos/factor·θ^(-2i/hd), as Hugging Face's rope_type "linear".
	// 0 (absent) means no scaling, the same as 1.
	RopeScalingFactor float64    `json:"rope_scaling_factor,omitempty"`
	Activation        Activation `json:"activation"`
	// TiedEmbeddings: the LM head reuses the token embedding matrix.
	TiedEmbeddings bool `json:"tied_embeddings"`

	// Gemma 3 only.
	RopeLocalTheta       float64 `json:"rope_local_theta,omitempty"`       // base for sliding-window layers
	SlidingWindow        int     `json:"sliding_window,omitempty"`         // tokens a local layer attends to
	SlidingWindowPattern int     `json:"sliding_window_pattern,omitempty"` // every Nth layer is global (6)
	QueryPreAttnScalar   float64 `json:"query_pre_attn_scalar,omitempty"`  // queries scaled by 1/sqrt(this)

	// Sources documents where each figure of a config file comes from; it
	// does not affect the model.
	Sources map[string]string `json:"sources,omitempty"`
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid model config")

// Validate checks that the configuration is complete and self-consistent.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	switch c.Arch {
	case "llama", "gemma3":
	case "":
		return bad("arch is not set")
	default:
		return bad("unknown arch %q", c.Arch)
	}
	pos := []struct {
		name string
		v    int
	}{{"dim", c.Dim}, {"hidden_dim", c.HiddenDim}, {"n_layers", c.Layers}, {"n_heads", c.Heads},
		{"n_kv_heads", c.KVHeads}, {"head_dim", c.HeadDim}, {"vocab_size", c.Vocab}, {"max_seq_len", c.MaxSeqLen}}
	for _, p := range pos {
		if p.v <= 0 {
			return bad("%s must be positive, got %d", p.name, p.v)
		}
	}
	if c.Heads%c.KVHeads != 0 {
		return bad("n_heads %d is not a multiple of n_kv_heads %d", c.Heads, c.KVHeads)
	}
	if c.HeadDim%2 != 0 {
		return bad("head_dim %d must be even for rotary embeddings", c.HeadDim)
	}
	if !(c.NormEps > 0) {
		return bad("norm_eps must be positive, got %g", c.NormEps)
	}
	if !(c.RopeTheta > 0) {
		return bad("rope_theta must be positive, got %g", c.RopeTheta)
	}
	if f := c.RopeScalingFactor; f != 0 && (!(f > 0) || math.IsInf(f, 0)) {
		return bad("rope_scaling_factor must be a positive finite number (or 0 for none), got %g", f)
	}
	switch c.RopeStyle {
	case RopeInterleaved, RopeHalf:
	default:
		return bad("rope_style must be %q or %q, got %q", RopeInterleaved, RopeHalf, c.RopeStyle)
	}
	switch c.Activation {
	case ActSiLU, ActGELUTanh:
	default:
		return bad("activation must be %q or %q, got %q", ActSiLU, ActGELUTanh, c.Activation)
	}
	if c.Arch == "gemma3" {
		if !(c.RopeLocalTheta > 0) {
			return bad("gemma3: rope_local_theta must be positive")
		}
		if c.SlidingWindow <= 0 || c.SlidingWindowPattern <= 0 {
			return bad("gemma3: sliding_window and sliding_window_pattern must be positive")
		}
		if !(c.QueryPreAttnScalar > 0) {
			return bad("gemma3: query_pre_attn_scalar must be positive")
		}
	}
	return nil
}

// Params returns the number of weight parameters (embeddings included once
// when tied).
func (c *Config) Params() int64 {
	d, h := int64(c.Dim), int64(c.HiddenDim)
	q := int64(c.Heads * c.HeadDim)
	kv := int64(c.KVHeads * c.HeadDim)
	perLayer := d*q + 2*d*kv + q*d + 3*d*h + 2*d
	if c.Arch == "gemma3" {
		perLayer += 2*d + 2*int64(c.HeadDim)
	}
	n := int64(c.Layers)*perLayer + int64(c.Vocab)*d + d
	if !c.TiedEmbeddings {
		n += int64(c.Vocab) * d
	}
	return n
}

// IsGlobalLayer reports whether layer i attends to the whole sequence. For
// gemma3, layer i is global when (i+1) % sliding_window_pattern == 0 and
// local (sliding window, rope_local_theta) otherwise; llama layers are all
// global.
func (c *Config) IsGlobalLayer(i int) bool {
	if c.Arch != "gemma3" {
		return true
	}
	return (i+1)%c.SlidingWindowPattern == 0
}

// LayerRope returns the RoPE base and the linear scaling factor (1 when
// none) of layer i: rope_theta and rope_scaling_factor on global layers,
// rope_local_theta unscaled on gemma3's sliding-window layers.
func (c *Config) LayerRope(i int) (theta, factor float64) {
	if !c.IsGlobalLayer(i) {
		return c.RopeLocalTheta, 1
	}
	factor = c.RopeScalingFactor
	if factor == 0 {
		factor = 1
	}
	return c.RopeTheta, factor
}

// ParseConfig decodes a JSON model config (configs/models/*.json), rejecting
// unknown fields, and validates it.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%w: decode: %v", ErrInvalidConfig, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// LoadConfig reads and parses a JSON model config file.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("model config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("model config %s: %w", path, err)
	}
	return c, nil
}
