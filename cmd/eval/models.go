package main

import (
	"fmt"
	"os"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/evalharness"
	"github.com/equarx/equarx/tokenizer"
)

// localTokenizer is what the eval command needs from a tokenizer.
type localTokenizer interface {
	evalharness.Encoder
	Token(id int) string
	VocabSize() int
	BOS() int
}

func loadTokenizer(path string) (localTokenizer, string, error) {
	data, name := assets.Tok512(), "tok512 (embedded)"
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, "", fmt.Errorf("read tokenizer: %w", err)
		}
		data, name = b, path
	}
	t, err := tokenizer.LoadLlama2C(data)
	if err != nil {
		return nil, "", fmt.Errorf("load tokenizer %s: %w", name, err)
	}
	return t, name, nil
}
