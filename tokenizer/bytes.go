package tokenizer

import (
	"fmt"
	"strings"
)

// Bytes encodes text byte by byte: id 3+b for byte b, BOS 1, EOS 2, id 0
// unused, as llama2.c's byte-fallback pieces are numbered. It is the
// tokenizer of models with synthetic weights, which were never trained
// with a vocabulary of their own; any vocabulary of at least 259 ids can
// use it (ids above 258 decode to nothing).
type Bytes struct{ vocab int }

// NewBytes returns the byte tokenizer of a model with vocab ids.
func NewBytes(vocab int) (*Bytes, error) {
	if vocab < 259 {
		return nil, fmt.Errorf("tokenizer: byte tokenizer needs a vocabulary of at least 259 ids, have %d", vocab)
	}
	return &Bytes{vocab: vocab}, nil
}

var _ Tokenizer = (*Bytes)(nil)

// Encode returns 3+b for every byte b of text, after BOS when addBOS.
func (t *Bytes) Encode(text string, addBOS bool) ([]int, error) {
	ids := make([]int, 0, len(text)+1)
	if addBOS {
		ids = append(ids, llama2CBOS)
	}
	for i := 0; i < len(text); i++ {
		ids = append(ids, 3+int(text[i]))
	}
	return ids, nil
}

// Decode concatenates the bytes of byte ids; other ids give nothing.
func (t *Bytes) Decode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(t.Token(id))
	}
	return b.String()
}

// Token is the byte of a byte id, "" for any other.
func (t *Bytes) Token(id int) string {
	if id >= 3 && id < 259 {
		return string([]byte{byte(id - 3)})
	}
	return ""
}

// VocabSize is the model's vocabulary size.
func (t *Bytes) VocabSize() int { return t.vocab }

// BOS is 1.
func (t *Bytes) BOS() int { return llama2CBOS }

// EOS is 2.
func (t *Bytes) EOS() int { return llama2CEOS }
