// Package tokenizer turns text into token ids and back for the models equarx
// serves: the llama2.c tokenizer format (SentencePiece-style BPE with
// score-ordered merges and byte fallback), GPT-2 byte-level BPE (OpenAI's
// encoder.json + vocab.bpe, or a Hugging Face tokenizer.json), and Gemma 3's
// Hugging Face tokenizer.json (BPE with byte fallback).
//
// The BPE models, vocabularies and byte-level pre-tokenization come from
// github.com/nlpodyssey/gotokenizers where that library can express the
// scheme; the pieces it cannot express are implemented here, and each says
// why in its doc comment.
package tokenizer

import (
	"errors"
)

// Tokenizer encodes text to token ids and decodes ids back to text.
// Implementations are safe for concurrent use.
type Tokenizer interface {
	// Encode returns the ids of text, preceded by the BOS id when addBOS is
	// true. It fails when addBOS is true and the tokenizer has no BOS.
	Encode(text string, addBOS bool) ([]int, error)
	// Decode returns the text of a sequence of ids. Ids outside the
	// vocabulary contribute nothing.
	Decode(ids []int) string
	// Token returns the text one id contributes to the Decode of a longer
	// sequence (a byte-fallback piece yields that single byte, which may be
	// partial UTF-8). Out-of-range ids yield "".
	Token(id int) string
	// VocabSize is the number of ids.
	VocabSize() int
	// BOS is the beginning-of-sequence id, or -1 if there is none.
	BOS() int
	// EOS is the end-of-sequence id, or -1 if there is none.
	EOS() int
}

// ErrUnsupported marks a tokenizer file whose format or options this
// package does not implement.
var ErrUnsupported = errors.New("tokenizer: unsupported")

// ErrCorrupt marks a tokenizer file that is truncated or malformed.
var ErrCorrupt = errors.New("tokenizer: corrupt file")
