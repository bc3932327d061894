package server

import (
	"testing"
	"unicode/utf8"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/tokenizer"
)

// Byte-fallback pieces of multi-byte characters must get distinct, valid
// UTF-8 names, or JSON encoding collapses them all into one "\ufffd" key of
// a top_logprobs map.
func TestTokenNameByteFallbackIsUnique(t *testing.T) {
	tok, err := tokenizer.LoadLlama2C(assets.Tok512())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for b := 0x80; b <= 0xff; b++ {
		id := 3 + b // llama2.c byte-fallback ids: <0x00> is 3
		name := tokenName(tok, id)
		if !utf8.ValidString(name) {
			t.Errorf("id %d: name %q is not valid UTF-8", id, name)
		}
		if prev, ok := seen[name]; ok {
			t.Errorf("ids %d and %d share the name %q", prev, id, name)
		}
		seen[name] = id
	}
	if got, want := tokenName(tok, 3+0xe2), `bytes:\xe2`; got != want {
		t.Errorf("tokenName(<0xE2>) = %q, want %q", got, want)
	}
	if got := tokenName(tok, 403); got != " Once" {
		t.Errorf("tokenName(403) = %q, want %q", got, " Once")
	}
}
