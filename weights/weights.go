// Package weights reads model weights into float32 tensors under one set of
// canonical names: llama2.c checkpoints, Hugging Face safetensors checkpoints
// (Llama and Gemma 3, single file or sharded) and deterministic synthetic
// weights for shapes that have no checkpoint.
//
// RowsBF16 and ColsBF16 read the same slices rounded to bfloat16 for
// engines that hold their weights in bf16 (exactly the stored values for a
// BF16 checkpoint), and StoredDType says which a source holds as stored.
//
// Readers trust nothing in a file: header sizes, tensor counts, dtypes,
// shapes and offsets are checked against the file before any tensor is
// decoded, and a tensor is decoded only when it is asked for. Rows and Cols
// read only the requested slice of a matrix, so each tensor-parallel rank
// reads only its own shard. Safetensors files are memory-mapped on Linux
// and read with ReadAt elsewhere; file-backed sources count the bytes they
// read (ReadCounter, CountReads).
//
// Canonical names (2-D weights are [out, in], row-major float32):
//
//	embed            [vocab, dim]
//	lm_head          [vocab, dim]   absent when embeddings are tied
//	final_norm       [dim]
//	layers.N.attn_norm, layers.N.ffn_norm              [dim]
//	layers.N.wq      [heads*head_dim, dim]
//	layers.N.wk, layers.N.wv   [kv_heads*head_dim, dim]
//	layers.N.wo      [dim, heads*head_dim]
//	layers.N.w_gate, layers.N.w_up   [hidden, dim]
//	layers.N.w_down  [dim, hidden]
//	Gemma 3 only: layers.N.q_norm, layers.N.k_norm [head_dim];
//	              layers.N.post_attn_norm, layers.N.post_ffn_norm [dim]
//
// Gemma norm weights are returned as stored; the model applies (1+w).
package weights

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/equarx/equarx/model"
)

// Tensor is a dense row-major float32 tensor.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Source gives access to the weights of one model under canonical names.
// Implementations are safe for concurrent use by multiple goroutines.
type Source interface {
	// Config returns the validated model configuration.
	Config() model.Config
	// Names lists the canonical tensor names present, in a stable order.
	Names() []string
	// Tensor reads and decodes a whole tensor.
	Tensor(name string) (*Tensor, error)
	// Rows reads rows [lo, hi) of a 2-D tensor; only that slice is read.
	Rows(name string, lo, hi int) (*Tensor, error)
	// Cols reads columns [lo, hi) of a 2-D tensor.
	Cols(name string, lo, hi int) (*Tensor, error)
	// Close releases the files behind the source.
	Close() error
}

var (
	// ErrUnsupported is wrapped by errors about valid input this package
	// does not handle (a dtype, an architecture, a config feature).
	ErrUnsupported = errors.New("unsupported")
	// ErrCorrupt is wrapped by errors about malformed or inconsistent input.
	ErrCorrupt = errors.New("corrupt weights")
)

// nameRow is one row of the name-mapping table. An empty column means the
// format has no such tensor.
type nameRow struct {
	canonical string // without the "layers.N." prefix for per-layer rows
	llama2c   string // array name in the llama2.c layout
	hfLlama   string // Hugging Face Llama name, without prefix and ".weight"
	hfGemma3  string // Hugging Face Gemma 3 name, without prefix and ".weight"
}

// globalNames and layerNames are the one name-mapping table of the package.
// Per-layer Hugging Face names are relative to "<prefix>layers.N.". Note that
// post_attention_layernorm is the pre-FFN norm in Llama but a norm applied to
// the attention output in Gemma 3.
var (
	globalNames = []nameRow{
		{"embed", "token_embedding", "embed_tokens", "embed_tokens"},
		{"final_norm", "rms_final", "norm", "norm"},
		{"lm_head", "wcls", "lm_head", "lm_head"},
	}
	layerNames = []nameRow{
		{"attn_norm", "rms_att", "input_layernorm", "input_layernorm"},
		{"wq", "wq", "self_attn.q_proj", "self_attn.q_proj"},
		{"wk", "wk", "self_attn.k_proj", "self_attn.k_proj"},
		{"wv", "wv", "self_attn.v_proj", "self_attn.v_proj"},
		{"wo", "wo", "self_attn.o_proj", "self_attn.o_proj"},
		{"q_norm", "", "", "self_attn.q_norm"},
		{"k_norm", "", "", "self_attn.k_norm"},
		{"post_attn_norm", "", "", "post_attention_layernorm"},
		{"ffn_norm", "rms_ffn", "post_attention_layernorm", "pre_feedforward_layernorm"},
		{"w_gate", "w1", "mlp.gate_proj", "mlp.gate_proj"},
		{"w_up", "w3", "mlp.up_proj", "mlp.up_proj"},
		{"w_down", "w2", "mlp.down_proj", "mlp.down_proj"},
		{"post_ffn_norm", "", "", "post_feedforward_layernorm"},
	}
)

// hfColumn returns the Hugging Face column of a row for an architecture.
func (r nameRow) hfColumn(arch string) string {
	if arch == "gemma3" {
		return r.hfGemma3
	}
	return r.hfLlama
}

// llama2cCanonical maps a llama2.c array name to its canonical name (without
// the layer prefix for per-layer arrays).
func llama2cCanonical(array string) (string, bool) {
	for _, t := range [][]nameRow{globalNames, layerNames} {
		for _, r := range t {
			if r.llama2c == array && array != "" {
				return r.canonical, true
			}
		}
	}
	return "", false
}

// hfPrefixes are the prefixes of decoder weights in Hugging Face checkpoints:
// text-only models use "model.", multimodal Gemma 3 checkpoints
// "language_model.model." (older) or "model.language_model." (newer). The
// longer prefixes come first so that "model." does not shadow them.
var hfPrefixes = []string{"language_model.model.", "model.language_model.", "model."}

// hfHeadNames are the names an untied LM head is stored under.
var hfHeadNames = []string{"lm_head.weight", "language_model.lm_head.weight"}

// hfCanonical maps a Hugging Face tensor name to its canonical name for the
// given architecture. ok is false for tensors that are not part of the text
// decoder (vision towers, rotary buffers, ...). An error is returned for a
// decoder-looking name that the table does not know, so that no weight is
// silently dropped.
func hfCanonical(arch, name string) (canon string, ok bool, err error) {
	if slices.Contains(hfHeadNames, name) {
		return "lm_head", true, nil
	}
	for _, p := range hfPrefixes {
		rest, found := strings.CutPrefix(name, p)
		if !found {
			continue
		}
		if strings.HasSuffix(rest, ".inv_freq") || strings.HasPrefix(rest, "vision_tower.") ||
			strings.HasPrefix(rest, "multi_modal_projector.") {
			return "", false, nil
		}
		rest, found = strings.CutSuffix(rest, ".weight")
		if !found {
			return "", false, fmt.Errorf("%w: tensor %q: not a weight this reader knows", ErrUnsupported, name)
		}
		if l, found := strings.CutPrefix(rest, "layers."); found {
			idx, sub, found := strings.Cut(l, ".")
			n, perr := strconv.Atoi(idx)
			if !found || perr != nil || n < 0 || strconv.Itoa(n) != idx {
				return "", false, fmt.Errorf("%w: tensor %q: bad layer index", ErrCorrupt, name)
			}
			for _, r := range layerNames {
				if c := r.hfColumn(arch); c != "" && c == sub {
					return layerName(n, r.canonical), true, nil
				}
			}
			return "", false, fmt.Errorf("%w: tensor %q: unknown %s layer weight %q", ErrUnsupported, name, arch, sub)
		}
		for _, r := range globalNames {
			if c := r.hfColumn(arch); c != "" && c == rest && r.canonical != "lm_head" {
				return r.canonical, true, nil
			}
		}
		return "", false, fmt.Errorf("%w: tensor %q: unknown %s weight", ErrUnsupported, name, arch)
	}
	return "", false, nil
}

func layerName(layer int, short string) string {
	return "layers." + strconv.Itoa(layer) + "." + short
}

// shapeSpec is one expected tensor.
type shapeSpec struct {
	name  string
	layer int // -1 for global tensors
	short string
	shape []int
}

// expectedTensors lists every tensor a model with this config has, in
// canonical order.
func expectedTensors(cfg *model.Config) []shapeSpec {
	d, h := cfg.Dim, cfg.HiddenDim
	q, kv := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	out := []shapeSpec{{"embed", -1, "embed", []int{cfg.Vocab, d}}}
	for l := range cfg.Layers {
		add := func(short string, shape ...int) {
			out = append(out, shapeSpec{layerName(l, short), l, short, shape})
		}
		add("attn_norm", d)
		add("wq", q, d)
		add("wk", kv, d)
		add("wv", kv, d)
		add("wo", d, q)
		if cfg.Arch == "gemma3" {
			add("q_norm", cfg.HeadDim)
			add("k_norm", cfg.HeadDim)
			add("post_attn_norm", d)
		}
		add("ffn_norm", d)
		add("w_gate", h, d)
		add("w_up", h, d)
		add("w_down", d, h)
		if cfg.Arch == "gemma3" {
			add("post_ffn_norm", d)
		}
	}
	out = append(out, shapeSpec{"final_norm", -1, "final_norm", []int{d}})
	if !cfg.TiedEmbeddings {
		out = append(out, shapeSpec{"lm_head", -1, "lm_head", []int{cfg.Vocab, d}})
	}
	return out
}

// checkTensors verifies that the tensors present (canonical name -> shape)
// are exactly those the config expects, with the expected shapes. It returns
// the canonical names in canonical order.
func checkTensors(cfg *model.Config, have map[string][]int) ([]string, error) {
	exp := expectedTensors(cfg)
	names := make([]string, 0, len(exp))
	want := make(map[string]bool, len(exp))
	for _, s := range exp {
		want[s.name] = true
		where := ""
		if s.layer >= 0 {
			where = fmt.Sprintf("layer %d: ", s.layer)
		}
		got, ok := have[s.name]
		if !ok {
			return nil, fmt.Errorf("%w: %smissing %s", ErrCorrupt, where, s.short)
		}
		if !slices.Equal(got, s.shape) {
			return nil, fmt.Errorf("%w: %s%s has shape %v, want %v", ErrCorrupt, where, s.short, got, s.shape)
		}
		names = append(names, s.name)
	}
	var extra []string
	for n := range have {
		if !want[n] {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		why := ""
		if slices.Contains(extra, "lm_head") && cfg.TiedEmbeddings {
			why = " (the config ties the LM head to the embeddings)"
		}
		return nil, fmt.Errorf("%w: unexpected tensors for a %d-layer %s model: %s%s",
			ErrCorrupt, cfg.Layers, cfg.Arch, strings.Join(extra, ", "), why)
	}
	return names, nil
}

// checkRange validates a [lo, hi) slice of n rows or columns.
func checkRange(name, what string, lo, hi, n int) error {
	if lo < 0 || hi < lo || hi > n {
		return fmt.Errorf("weights: %s: %s [%d, %d) out of range [0, %d)", name, what, lo, hi, n)
	}
	return nil
}

// ReadCounter is a Source that counts the bytes of tensor data it has read
// from its files (headers excluded): with memory-mapped files, the bytes it
// decoded from the mapping. Sources opened from files implement it.
type ReadCounter interface {
	Source
	BytesRead() int64
}

// CountReads returns a view of src whose BytesRead counts only the reads
// made through the view (they count towards src's own BytesRead as well),
// so that each tensor-parallel rank can account for its shards. Closing the
// view does nothing; closing src ends it. counted is false when src does
// not read from files (synthetic weights, wrappers): the view then reads
// through src and reports 0.
func CountReads(src Source) (view ReadCounter, counted bool) {
	if rs, ok := src.(*readerSource); ok {
		return &readerView{s: rs}, true
	}
	return uncounted{src}, false
}

type uncounted struct{ Source }

func (uncounted) BytesRead() int64 { return 0 }
func (uncounted) Close() error     { return nil }
