package collective

import (
	"fmt"
	"strings"
)

// codecSpec is one entry of the codec registry: the only place that lists
// the codecs this package implements. Everything else (NewCodec,
// ErrorBound, the cost rules, the fallback, the server's and the eval
// harness's parsers) asks the registry.
type codecSpec struct {
	kind CodecKind
	// quantized: block-scaled; the block size matters, encode and decode
	// are passes of their own, and the bf16 fallback may apply.
	quantized bool
	make      func(block int) Codec
	// bound is ErrorBound for a block (or value) of magnitude absmax.
	bound func(absmax float64) float64
}

// registry lists the codecs in the order error messages and listings use:
// the exact one first, then by falling wire bytes.
var registry = []codecSpec{
	{kind: CodecF32, make: func(int) Codec { return f32Codec{} },
		bound: func(float64) float64 { return 0 }},
	{kind: CodecBF16, make: func(int) Codec { return bf16Codec{} },
		bound: func(a float64) float64 { return a*0x1p-8 + 0x1p-134 }},
	{kind: CodecInt8, quantized: true, make: func(b int) Codec { return newInt8Codec(b) },
		bound: func(a float64) float64 { return quantErrorBound(a, int8Levels) }},
	{kind: CodecFP8, quantized: true, make: func(b int) Codec { return newFP8Codec(b) },
		bound: fp8ErrorBound},
	{kind: CodecInt6, quantized: true, make: func(b int) Codec { return newInt6Codec(b) },
		bound: func(a float64) float64 { return quantErrorBound(a, int6Levels) }},
	{kind: CodecInt4, quantized: true, make: func(b int) Codec { return newInt4Codec(b) },
		bound: func(a float64) float64 { return quantErrorBound(a, int4Levels) }},
}

func lookup(kind CodecKind) (codecSpec, bool) {
	for _, s := range registry {
		if s.kind == kind {
			return s, true
		}
	}
	return codecSpec{}, false
}

// Codecs returns the kinds of every codec this package implements.
func Codecs() []CodecKind {
	out := make([]CodecKind, len(registry))
	for i, s := range registry {
		out[i] = s.kind
	}
	return out
}

// codecList is "f32, bf16, int8, fp8, int6 or int4" for error messages.
func codecList() string {
	names := make([]string, len(registry))
	for i, s := range registry {
		names[i] = string(s.kind)
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// ParseCodec returns the codec kind named s; the error lists the known ones
// and wraps ErrCodecKind.
func ParseCodec(s string) (CodecKind, error) {
	if _, ok := lookup(CodecKind(s)); ok {
		return CodecKind(s), nil
	}
	return "", fmt.Errorf("unknown allreduce codec %q (want %s): %w", s, codecList(), ErrCodecKind)
}

// Quantized reports whether the kind is a block-scaled codec (its block
// size matters and it may fall back to bf16). Unknown kinds are not.
func (k CodecKind) Quantized() bool {
	s, ok := lookup(k)
	return ok && s.quantized
}

// CheckCodec validates a codec and block size the way NewCodec does,
// without building anything: the check a request parser makes.
func CheckCodec(kind CodecKind, blockSize int) error {
	_, err := NewCodec(kind, blockSize)
	return err
}
