package evalharness

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/equarx/equarx/collective"
)

// Codec is one AllReduce setting to evaluate.
type Codec struct {
	Kind      collective.CodecKind
	BlockSize int    // 0 = the codec's default; ignored by f32 and bf16
	Name      string // report label; "" = the codec kind
}

// Label names the setting in reports.
func (c Codec) Label() string {
	if c.Name != "" {
		return c.Name
	}
	return string(c.Kind)
}

// Quantized reports whether the block size matters for this codec.
func (c Codec) Quantized() bool {
	return c.Kind == collective.CodecInt8 || c.Kind == collective.CodecInt4
}

// ParseCodecs expands a comma-separated codec list and block sizes into
// settings: f32 and bf16 appear once; int8 and int4 once per block size.
// With several block sizes the quantized settings are labelled "int8_b32";
// with one (or none: the codec default) they keep the bare codec name.
func ParseCodecs(list string, blockSizes []int) ([]Codec, error) {
	if len(blockSizes) == 0 {
		blockSizes = []int{0}
	}
	multi := len(blockSizes) > 1
	var out []Codec
	seen := map[string]bool{}
	add := func(c Codec) error {
		if seen[c.Label()] {
			return fmt.Errorf("codec %s listed twice", c.Label())
		}
		seen[c.Label()] = true
		out = append(out, c)
		return nil
	}
	for _, name := range strings.Split(list, ",") {
		k := collective.CodecKind(strings.TrimSpace(name))
		switch k {
		case collective.CodecF32, collective.CodecBF16:
			if err := add(Codec{Kind: k, Name: string(k)}); err != nil {
				return nil, err
			}
		case collective.CodecInt8, collective.CodecInt4:
			for _, b := range blockSizes {
				if b < 0 {
					return nil, fmt.Errorf("block size %d must not be negative", b)
				}
				c := Codec{Kind: k, BlockSize: b, Name: string(k)}
				if multi {
					c.Name = fmt.Sprintf("%s_b%d", k, b)
				}
				if err := add(c); err != nil {
					return nil, err
				}
			}
		default:
			return nil, fmt.Errorf("unknown codec %q (want f32, bf16, int8 or int4)", name)
		}
	}
	return out, nil
}

// ParseInts parses "32,64,256".
func ParseInts(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", f, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// TokenLogprob is a candidate token and its log-probability.
type TokenLogprob struct {
	ID      int
	Logprob float32
}

// SeqOutput is a backend's answer for one sequence of n tokens. Every
// per-position slice has length n, and index i describes the distribution
// that predicts token i (index 0 has none and is zero/nil).
type SeqOutput struct {
	TokenLogprobs []float32        // log p(tokens[i] | tokens[<i])
	TopK          [][]TokenLogprob // best K alternatives, best first
	Rows          [][]float32      // full log-softmax rows; nil when the backend cannot provide them
}

// PrefillSpec says what a backend must return.
type PrefillSpec struct {
	Codec Codec
	TopK  int  // alternatives per position (0..20)
	Full  bool // full rows wanted
}

// Backend runs batched prefills: the in-process engine or a server.
type Backend interface {
	// Name identifies the model.
	Name() string
	// MaxSeqLen is the context window in tokens.
	MaxSeqLen() int
	// FullRows reports whether Prefill can return full log-softmax rows.
	FullRows() bool
	// Prefill scores a batch of sequences with one codec setting.
	Prefill(ctx context.Context, spec PrefillSpec, seqs [][]int) ([]SeqOutput, error)
}
