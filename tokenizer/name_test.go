package tokenizer

import (
	"testing"

	"github.com/equarx/equarx/assets"
)

func TestNameLlama2C(t *testing.T) {
	tok, err := LoadLlama2C(assets.Tok512())
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int]string{
		0: "<unk>", 1: "<s>", 2: "</s>", // special: their piece
		403:      " Once",      // leading space kept, unlike Decode after BOS
		3 + '\n': "\n",         // a byte valid on its own
		3 + 0xe2: `bytes:\xe2`, // a lone UTF-8 lead byte
		3 + 0xff: `bytes:\xff`,
		-1:       "<id -1>",
		1 << 20:  "<id 1048576>",
	} {
		if got := Name(tok, id); got != want {
			t.Errorf("Name(%d) = %q, want %q", id, got, want)
		}
	}
}
