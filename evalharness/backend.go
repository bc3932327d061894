package evalharness

import (
	"context"
	"fmt"
	"github.com/equarx/equarx/tokenizer"
	"strconv"
	"strings"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/tp"
)

// Codec is one AllReduce setting to evaluate.
type Codec struct {
	Kind      collective.CodecKind
	BlockSize int    // 0 = the codec's default; ignored by f32 and bf16
	Name      string // report label; "" = the codec kind
	// Policy, when set, is a per-site reduction policy used instead of
	// Kind and BlockSize (over HTTP it is named, and the server must have
	// the same policy under that name).
	Policy *tp.Policy
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
	return c.Policy == nil && c.Kind.Quantized()
}

// PolicyPrefix marks a policy in a codec list: "policy:NAME".
const PolicyPrefix = "policy:"

// ParseCodecs expands a comma-separated codec list and block sizes into
// settings: f32 and bf16 appear once; the quantized codecs (int8, fp8,
// int6, int4) once per block size.
// With several block sizes the quantized settings are labelled "int8_b32";
// with one (or none: the codec default) they keep the bare codec name.
func ParseCodecs(list string, blockSizes []int) ([]Codec, error) {
	return ParseCodecsWith(list, blockSizes, nil)
}

// ParseCodecsWith is ParseCodecs where the list may also name reduction
// policies as "policy:NAME", looked up in policies (labelled by the name).
func ParseCodecsWith(list string, blockSizes []int, policies map[string]*tp.Policy) ([]Codec, error) {
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
		if pn, ok := strings.CutPrefix(strings.TrimSpace(name), PolicyPrefix); ok {
			p, found := policies[pn]
			if !found {
				return nil, fmt.Errorf("unknown policy %q (give its file with --allreduce-policies)", pn)
			}
			if err := add(Codec{Name: pn, Policy: p, Kind: p.Default.Codec}); err != nil {
				return nil, err
			}
			continue
		}
		k := collective.CodecKind(strings.TrimSpace(name))
		if _, err := collective.ParseCodec(string(k)); err != nil {
			return nil, err
		}
		if !k.Quantized() {
			if err := add(Codec{Kind: k, Name: string(k)}); err != nil {
				return nil, err
			}
			continue
		}
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

// TopEntry is a candidate next token, keyed by its text as the completions
// wire format renders it, with its log-probability.
type TopEntry struct {
	Token   string
	Logprob float32
}

// CollapseTop keys top-K candidates by token text the way OpenAI-style
// top_logprobs objects do: ids that render to the same text collapse into
// one entry holding the largest log-probability. Text is named as the
// server names it on the wire (WireText). The result is sorted by
// log-probability, then text.
func CollapseTop(ids []int, logprobs []float32, text func(int) string) []TopEntry {
	out := make([]TopEntry, len(ids))
	for i, id := range ids {
		out[i] = TopEntry{Token: WireText(text(id)), Logprob: logprobs[i]}
	}
	sortTop(out)
	// Sorted best first, so the first entry of each text holds its maximum.
	n := 0
next:
	for _, e := range out {
		for _, kept := range out[:n] {
			if kept.Token == e.Token {
				continue next
			}
		}
		out[n] = e
		n++
	}
	return out[:n]
}

// WireText is the name the server's completions endpoint gives a token in
// top_logprobs: its text when that is valid UTF-8, otherwise its bytes
// written as "bytes:\\xNN..." (OpenAI's convention), so that byte-fallback
// tokens stay distinct keys on the wire.
func WireText(s string) string { return tokenizer.TextName(s) }

// sortTop orders by log-probability, best first, then by text (insertion
// sort: lists hold at most 20 entries).
func sortTop(t []TopEntry) {
	less := func(a, b TopEntry) bool {
		if a.Logprob != b.Logprob {
			return a.Logprob > b.Logprob
		}
		return a.Token < b.Token
	}
	for i := 1; i < len(t); i++ {
		for j := i; j > 0 && less(t[j], t[j-1]); j-- {
			t[j], t[j-1] = t[j-1], t[j]
		}
	}
}

// SeqOutput is a backend's answer for one sequence of n tokens. Every
// per-position slice has length n, and index i describes the distribution
// that predicts token i (index 0 has none and is zero/nil).
type SeqOutput struct {
	TokenLogprobs []float32    // log p(tokens[i] | tokens[<i])
	Top           [][]TopEntry // best K alternatives collapsed by text (CollapseTop)
	Rows          [][]float32  // full log-softmax rows; nil when the backend cannot provide them
}

// PrefillSpec says what a backend must return.
type PrefillSpec struct {
	Codec Codec
	TopK  int  // alternatives per position (0..20)
	Full  bool // full rows wanted
	// TopFrom[j], when set, is the first position of sequence j whose top-K
	// list is used; backends may leave earlier lists nil.
	TopFrom []int
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
