package tokenizer

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// corpus returns TinyStories lines and HellaSwag texts.
func corpus(t *testing.T, stories, items int) []string {
	return append(tinyStoriesLines(t, stories), hellaSwagTexts(t, items)...)
}

// TestLlama2CMatchesRunC checks the heap-based merge against the direct
// transliteration of run.c's quadratic loop on real text and edge cases.
func TestLlama2CMatchesRunC(t *testing.T) {
	tok := loadTok512(t)
	texts := []string{"", " ", "  ", "\x00", "\xff\xfe", "\xe6\x97", "a\x80\x80\x80\x80\x80b", "<0x41>", "ab ab ab ab", "Once upon a time, there was a little girl named Lily."}
	texts = append(texts, corpus(t, 150, 60)...)
	for _, s := range texts {
		for _, bos := range []bool{true, false} {
			got, err := tok.Encode(s, bos)
			if err != nil {
				t.Fatalf("Encode(%q): %v", s, err)
			}
			if diff := cmp.Diff(runcEncode(tok, s, bos), got); diff != "" {
				t.Fatalf("Encode(%q, %v) differs from run.c's loop (-runc +got):\n%s", s, bos, diff)
			}
		}
	}
}

// TestRoundTrip checks Decode(Encode(s)) == s on TinyStories and
// HellaSwag text for every tokenizer, and that Decode is the concatenation
// of Token (with llama2.c's space-after-BOS rule).
func TestRoundTrip(t *testing.T) {
	texts := corpus(t, 400, 150)
	tests := []struct {
		name string
		tok  func(testing.TB) Tokenizer
	}{
		{"llama2c", func(tb testing.TB) Tokenizer { return loadTok512(tb) }},
		{"gpt2", loadGPT2},
		{"gemma3", loadGemma3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.tok(t)
			_, l2c := tok.(*Llama2C)
			for _, s := range texts {
				ids, err := tok.Encode(s, true)
				if err != nil {
					t.Fatalf("Encode(%q): %v", s, err)
				}
				if ids[0] != tok.BOS() {
					t.Fatalf("Encode(%q, true)[0] = %d, want BOS %d", s, ids[0], tok.BOS())
				}
				body := ids
				if !l2c {
					body = ids[1:]
				}
				if got := tok.Decode(body); got != s {
					t.Fatalf("Decode(Encode(%q)) = %q", s, got)
				}
				var sb strings.Builder
				for i, id := range ids[1:] {
					piece := tok.Token(id)
					if l2c && i == 0 {
						piece = strings.TrimPrefix(piece, " ")
					}
					sb.WriteString(piece)
				}
				if sb.String() != s {
					t.Fatalf("concatenated Token of Encode(%q) = %q", s, sb.String())
				}
			}
		})
	}
}

// TestByteLevelChunksPreserveSplits checks that cutting byte-level input
// into chunks leaves the encoding unchanged, against the library's
// pre-tokenizer run over the whole text.
func TestByteLevelChunksPreserveSplits(t *testing.T) {
	tok := loadGPT2(t).(*BPE)
	texts := []string{
		tinyStoriesText(t, 8000),
		strings.Repeat("ab, cd!\n\n  ef's 12 ", 100),
		strings.Repeat(" ", 300) + "x",
		"a \n \n\n b\t\n c  ",
	}
	for _, s := range texts {
		whole, err := tok.encodeByteLevelChunks(nil, s, len(s)+1)
		if err != nil {
			t.Fatal(err)
		}
		for _, chunkBytes := range []int{1, 7, 64, gpt2ChunkBytes} {
			chunks := byteLevelChunks(s, chunkBytes)
			if strings.Join(chunks, "") != s {
				t.Fatalf("chunks of size %d do not concatenate to the input", chunkBytes)
			}
			got, err := tok.encodeByteLevelChunks(nil, s, chunkBytes)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(whole, got); diff != "" {
				t.Fatalf("chunks of %d bytes (%d chunks) change the encoding of %.40q... (-whole +chunked):\n%s", chunkBytes, len(chunks), s, diff)
			}
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	gpt2 := loadGPT2(t)
	if _, err := gpt2.Encode("bad \xff utf-8", false); err == nil {
		t.Errorf("GPT-2 Encode of invalid UTF-8: no error")
	}
	noBOS := &BPE{bos: -1}
	if _, err := noBOS.Encode("x", true); err == nil {
		t.Errorf("Encode with addBOS on a tokenizer without BOS: no error")
	}
}

func TestGemma3ByteFallbackInvalidUTF8(t *testing.T) {
	tok := loadGemma3(t)
	s := "ok \xff\xfe end \xe6\x97"
	ids, err := tok.Encode(s, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Decode(ids); got != s {
		t.Errorf("Decode(Encode(%q)) = %q", s, got)
	}
	if got, want := tok.Token(ids[2]), "\xff"; got != want {
		t.Errorf("Token of the byte piece = %q, want %q (ids %v)", got, want, ids)
	}
}

// TestConcurrentEncode checks that concurrent Encode calls agree with
// sequential ones (run with -race to check for data races).
func TestConcurrentEncode(t *testing.T) {
	texts := tinyStoriesLines(t, 40)
	for _, tok := range []Tokenizer{loadTok512(t), loadGPT2(t)} {
		want := make([][]int, len(texts))
		for i, s := range texts {
			ids, err := tok.Encode(s, true)
			if err != nil {
				t.Fatal(err)
			}
			want[i] = ids
		}
		errs := make(chan string, 4*len(texts))
		done := make(chan struct{})
		for g := 0; g < 4; g++ {
			go func() {
				defer func() { done <- struct{}{} }()
				for i, s := range texts {
					ids, err := tok.Encode(s, true)
					if err != nil || !cmp.Equal(want[i], ids) {
						errs <- s
					}
				}
			}()
		}
		for g := 0; g < 4; g++ {
			<-done
		}
		close(errs)
		for s := range errs {
			t.Errorf("%T: concurrent Encode(%q) differs from the sequential result", tok, s)
		}
	}
}

// TestMarkerPartsPreserveEncoding checks that cutting Gemma 3 words before
// space markers gives the ids of merging each whole segment.
func TestMarkerPartsPreserveEncoding(t *testing.T) {
	tok := loadGemma3(t).(*BPE)
	if tok.marker != '▁' || !tok.joinsMarker['>'] {
		t.Fatalf("marker %q, joinsMarker %v: want ▁ and '>' (from the piece \">▁</\")", tok.marker, tok.joinsMarker)
	}
	texts := append(corpus(t, 100, 40),
		"a>  b", "x> </y> </", "<div> </div>", "\xff ▁ \xfe  ", "日本 🤗  ok", "  lead", "trail  ", "a\u00a0 b")
	for _, s := range texts {
		got, err := tok.Encode(s, false)
		if err != nil {
			t.Fatal(err)
		}
		var want []int
		tok.added.split(s, func(seg string, id int) bool {
			if id >= 0 {
				want = append(want, id)
			} else {
				want = tok.appendFallbackWord(want, strings.ReplaceAll(seg, " ", "▁"))
			}
			return true
		})
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("Encode(%q) differs from merging whole segments (-whole +parts):\n%s", s, diff)
		}
	}
	if got, want := tok.markerParts("a▁b▁▁c>▁d"), []string{"a", "▁b", "▁▁c>▁d"}; !cmp.Equal(got, want) {
		t.Errorf("markerParts = %q, want %q", got, want)
	}
}
