package evalharness

import (
	"errors"
	"fmt"
)

// Encoder is the part of a tokenizer the harness needs. Encode(text, true)
// must return the encoding with BOS prepended.
type Encoder interface {
	Encode(text string, addBOS bool) ([]int, error)
}

// EncodePair tokenizes a (context, continuation) pair with lm-eval's
// _encode_pair semantics and BOS prepended (add_bos_token=True):
// trailing whitespace of the context moves to the front of the
// continuation; whole = Encode(context+continuation, BOS) and
// ctx = Encode(context, BOS); the continuation is whole[len(ctx):]. The
// continuation tokens are therefore those of the whole string, which may
// differ from encoding the continuation alone when a merge crosses the
// boundary. An empty context is scored after BOS alone, with the
// continuation encoded on its own, as lm-eval does for context "".
func EncodePair(enc Encoder, context, continuation string) (ctxIDs, contIDs []int, err error) {
	if context == "" {
		bos, err := enc.Encode("", true)
		if err != nil {
			return nil, nil, fmt.Errorf("encode empty context: %w", err)
		}
		cont, err := enc.Encode(continuation, false)
		if err != nil {
			return nil, nil, fmt.Errorf("encode continuation: %w", err)
		}
		return bos, cont, nil
	}
	if trimmed := PyRstrip(context); len(trimmed) < len(context) {
		continuation = context[len(trimmed):] + continuation
		context = trimmed
	}
	whole, err := enc.Encode(context+continuation, true)
	if err != nil {
		return nil, nil, fmt.Errorf("encode context+continuation: %w", err)
	}
	ctxIDs, err = enc.Encode(context, true)
	if err != nil {
		return nil, nil, fmt.Errorf("encode context: %w", err)
	}
	if len(ctxIDs) > len(whole) {
		return nil, nil, fmt.Errorf("context encodes to %d tokens, longer than context+continuation (%d)", len(ctxIDs), len(whole))
	}
	return ctxIDs, whole[len(ctxIDs):], nil
}

// Request is one sequence to score: the model reads Tokens and the
// log-probabilities of Tokens[Start:] are summed.
type Request struct {
	Tokens []int
	Start  int // first scored position, >= 1
}

// ErrTooLong is wrapped when a continuation alone does not fit the context window.
var ErrTooLong = errors.New("continuation longer than the context window")

// NewRequest joins a pair into one request, left-truncated to maxLen tokens:
// when context+continuation is longer than maxLen only its last maxLen tokens
// are read (lm-eval feeds the last maxLen+1 tokens minus the final one, one
// token more of context; the two differ only for pairs longer than the
// window). The second result reports whether truncation happened.
func NewRequest(ctxIDs, contIDs []int, maxLen int) (Request, bool, error) {
	if maxLen < 2 {
		return Request{}, false, fmt.Errorf("context window %d is too small", maxLen)
	}
	whole := make([]int, 0, len(ctxIDs)+len(contIDs))
	whole = append(whole, ctxIDs...)
	whole = append(whole, contIDs...)
	truncated := false
	if len(whole) > maxLen {
		whole = whole[len(whole)-maxLen:]
		truncated = true
	}
	start := len(whole) - len(contIDs)
	if start < 1 {
		return Request{}, truncated, fmt.Errorf("%w: %d continuation tokens, window %d", ErrTooLong, len(contIDs), maxLen)
	}
	return Request{Tokens: whole, Start: start}, truncated, nil
}
