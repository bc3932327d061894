package model

import (
	"fmt"
	"math"
	"sort"
	"sync"
)

// Architecture is one transformer family bound to a validated config. It
// builds per-layer blocks from explicitly bound weights and owns the parts
// outside the blocks (embedding scale, final norm).
type Architecture interface {
	Config() Config
	// NewBlock binds one rank's weights of layer i; a missing or misshapen
	// tensor is an error naming the layer and the tensor.
	NewBlock(layer int, w LayerWeights) (Block, error)
	// Embed writes the input embeddings of ids (rows of table, [vocab, dim])
	// into out ([len(ids), dim]). Ids must already be in range.
	Embed(out []float32, table []float32, ids []int)
	// FinalNorm normalizes n rows of x into out with the final norm weight.
	FinalNorm(out, x []float32, n int, w []float32)
	// HasQKNorm and HasSandwichNorms say which extra per-layer norm vectors
	// the architecture binds (q_norm/k_norm; post_attn_norm/post_ffn_norm).
	HasQKNorm() bool
	HasSandwichNorms() bool
}

// NewFunc builds an architecture from a config that passed Validate.
type NewFunc func(cfg Config) (Architecture, error)

var (
	regMu    sync.RWMutex
	registry = map[string]NewFunc{}
)

// Register makes an architecture available under arch. It panics on a
// duplicate name, like database/sql drivers.
func Register(arch string, f NewFunc) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[arch]; dup {
		panic(fmt.Sprintf("model: architecture %q registered twice", arch))
	}
	registry[arch] = f
}

// Archs lists the registered architecture names, sorted.
func Archs() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New validates cfg and builds its architecture.
func New(cfg Config) (Architecture, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	regMu.RLock()
	f, ok := registry[cfg.Arch]
	regMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: no architecture registered as %q", ErrInvalidConfig, cfg.Arch)
	}
	a, err := f(cfg)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", cfg.Arch, err)
	}
	return a, nil
}

func init() {
	Register("llama", newLlama)
	Register("gemma3", newGemma3)
}

// Llama: RMSNorm with weight w, RoPE (interleaved or half-split), GQA,
// SwiGLU, tied or untied head.
type Llama struct{ cfg Config }

var _ Architecture = (*Llama)(nil)

func newLlama(cfg Config) (Architecture, error) {
	if cfg.Activation != ActSiLU {
		return nil, fmt.Errorf("%w: llama uses activation %q, got %q", ErrInvalidConfig, ActSiLU, cfg.Activation)
	}
	return &Llama{cfg: cfg}, nil
}

func (l *Llama) Config() Config         { return l.cfg }
func (l *Llama) HasQKNorm() bool        { return false }
func (l *Llama) HasSandwichNorms() bool { return false }

func (l *Llama) NewBlock(layer int, w LayerWeights) (Block, error) {
	theta, factor := l.cfg.LayerRope(layer)
	return newDecoderBlock(l.cfg, layer, w, flavor{
		act:        ActSiLU,
		theta:      theta,
		ropeFactor: factor,
		qScale:     float32(1 / math.Sqrt(float64(l.cfg.HeadDim))),
	})
}

func (l *Llama) Embed(out, table []float32, ids []int) {
	embed(out, table, ids, l.cfg.Dim, 1)
}

func (l *Llama) FinalNorm(out, x []float32, n int, w []float32) {
	rmsNorm(out, x, n, l.cfg.Dim, w, l.cfg.NormEps, false)
}

// Gemma3 is the published Gemma 3 text decoder: (1+w) RMSNorm, per-head q/k
// RMSNorm, GeGLU with tanh GELU, embeddings scaled by sqrt(dim), sandwich
// norms around attention and MLP, five sliding-window layers per global
// layer with their own RoPE bases, queries scaled by
// query_pre_attn_scalar^-1/2, no logit soft-capping.
type Gemma3 struct {
	cfg        Config
	embedScale float32
}

var _ Architecture = (*Gemma3)(nil)

func newGemma3(cfg Config) (Architecture, error) {
	if cfg.Activation != ActGELUTanh {
		return nil, fmt.Errorf("%w: gemma3 uses activation %q, got %q", ErrInvalidConfig, ActGELUTanh, cfg.Activation)
	}
	// The scale is rounded to the embedding dtype, as Hugging Face does; the
	// engine computes embeddings in float32 (bf16 weights are widened
	// first), so it is float32(sqrt(dim)).
	return &Gemma3{cfg: cfg, embedScale: float32(math.Sqrt(float64(cfg.Dim)))}, nil
}

func (g *Gemma3) Config() Config         { return g.cfg }
func (g *Gemma3) HasQKNorm() bool        { return true }
func (g *Gemma3) HasSandwichNorms() bool { return true }

func (g *Gemma3) NewBlock(layer int, w LayerWeights) (Block, error) {
	f := flavor{
		onePlusNorm: true,
		qkNorm:      true,
		sandwich:    true,
		act:         ActGELUTanh,
		qScale:      float32(1 / math.Sqrt(g.cfg.QueryPreAttnScalar)),
	}
	f.theta, f.ropeFactor = g.cfg.LayerRope(layer)
	if !g.cfg.IsGlobalLayer(layer) {
		f.window = g.cfg.SlidingWindow
	}
	return newDecoderBlock(g.cfg, layer, w, f)
}

func (g *Gemma3) Embed(out, table []float32, ids []int) {
	embed(out, table, ids, g.cfg.Dim, g.embedScale)
}

func (g *Gemma3) FinalNorm(out, x []float32, n int, w []float32) {
	rmsNorm(out, x, n, g.cfg.Dim, w, g.cfg.NormEps, true)
}

func embed(out, table []float32, ids []int, d int, scale float32) {
	for i, id := range ids {
		row := table[id*d : (id+1)*d]
		o := out[i*d : (i+1)*d]
		if scale == 1 {
			copy(o, row)
			continue
		}
		for j, v := range row {
			o[j] = v * scale
		}
	}
}
