package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/equarx/equarx/assets"
)

// FuzzLlama2CEncode checks, for every byte string s (valid UTF-8 or not,
// NUL bytes included):
//   - Encode never fails or panics, and every id is in the vocabulary;
//   - Decode(Encode(s, true)) == s exactly: the dummy-prefix space is the
//     leading space of the first piece after BOS, which Decode drops;
//   - Decode(Encode(s, false)) == " "+s for non-empty s (no BOS, so the
//     dummy prefix stays) and "" for empty s;
//   - Encode(s, false) == Encode(s, true)[1:] (no tok512 piece starts with
//     BOS's piece, so BOS never merges);
//   - for inputs up to 200 bytes, the ids equal those of the direct
//     transliteration of run.c's quadratic merge loop.
func FuzzLlama2CEncode(f *testing.F) {
	tok := loadTok512(f)
	for _, s := range []string{"", "Once upon a time", " leading", "a\x00b", "\xff\xfe", "日本語 🤗", "<0x41>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := tok.Encode(s, true)
		if err != nil {
			t.Fatalf("Encode(%q): %v", s, err)
		}
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("Encode(%q): id %d outside the vocabulary", s, id)
			}
		}
		if got := tok.Decode(ids); got != s {
			t.Fatalf("Decode(Encode(%q, true)) = %q", s, got)
		}
		noBOS, err := tok.Encode(s, false)
		if err != nil {
			t.Fatalf("Encode(%q, false): %v", s, err)
		}
		if diff := cmp.Diff(ids[1:], noBOS); diff != "" {
			t.Fatalf("Encode(%q, false) != Encode(%q, true)[1:] (-withBOS +without):\n%s", s, s, diff)
		}
		want := ""
		if s != "" {
			want = " " + s
		}
		if got := tok.Decode(noBOS); got != want {
			t.Fatalf("Decode(Encode(%q, false)) = %q, want %q", s, got, want)
		}
		if len(s) <= 200 {
			if diff := cmp.Diff(runcEncode(tok, s, true), ids); diff != "" {
				t.Fatalf("Encode(%q) differs from run.c's loop (-runc +got):\n%s", s, diff)
			}
		}
	})
}

// FuzzLoadLlama2C checks that arbitrary bytes never make LoadLlama2C
// panic, and that a file it accepts can encode and decode without
// panicking and with in-range ids.
func FuzzLoadLlama2C(f *testing.F) {
	good := assets.Tok512()
	f.Add(good)
	f.Add(good[:len(good)/2])
	pieces, scores := minimalPieces("ab", " a")
	f.Add(llama2CFile(7, pieces, scores))
	f.Add([]byte{7, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 127})
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := LoadLlama2C(data)
		if err != nil {
			return
		}
		for _, s := range []string{"", "ab a", "Once upon a time", "\xff日本"} {
			ids, err := tok.Encode(s, true)
			if err != nil {
				t.Fatalf("Encode(%q): %v", s, err)
			}
			for _, id := range ids {
				if id < 0 || id >= tok.VocabSize() {
					t.Fatalf("Encode(%q): id %d outside the vocabulary", s, id)
				}
			}
			_ = tok.Decode(ids)
			for _, id := range []int{-1, 0, tok.VocabSize() - 1, tok.VocabSize()} {
				_ = tok.Token(id)
			}
		}
	})
}

// FuzzGPT2Encode checks, for valid UTF-8 s, that byte-level encoding in
// chunks equals encoding the whole text at once and that
// Decode(Encode(s, false)) == s; invalid UTF-8 must be an error.
func FuzzGPT2Encode(f *testing.F) {
	tok := loadGPT2(f).(*BPE)
	for _, s := range []string{"", "hello world", "a  b\n\n c's 12", "<|endoftext|>x", "日本 🤗\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := tok.Encode(s, false)
		if !utf8.ValidString(s) {
			if err == nil {
				t.Fatalf("Encode(%q): no error for invalid UTF-8", s)
			}
			return
		}
		if err != nil {
			t.Fatalf("Encode(%q): %v", s, err)
		}
		if got := tok.Decode(ids); got != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
		if strings.Contains(s, "<|endoftext|>") {
			return
		}
		whole, err := tok.encodeByteLevelChunks(nil, s, len(s)+1)
		if err != nil {
			t.Fatal(err)
		}
		small, err := tok.encodeByteLevelChunks(nil, s, 1)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(whole, small); diff != "" {
			t.Fatalf("chunked encoding of %q differs (-whole +chunked):\n%s", s, diff)
		}
	})
}
