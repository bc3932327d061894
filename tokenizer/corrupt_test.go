package tokenizer

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/equarx/equarx/assets"
)

// llama2CFile builds a llama2.c tokenizer file from pieces and scores.
func llama2CFile(maxLen int32, pieces []string, scores []float32) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, uint32(maxLen))
	for i, p := range pieces {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(scores[i]))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

// minimalPieces is the smallest valid vocabulary: unk, BOS, EOS, the 256
// byte pieces, then " ".
func minimalPieces(extra ...string) ([]string, []float32) {
	pieces := []string{"<unk>", "\n<s>\n", "\n</s>\n"}
	for b := 0; b < 256; b++ {
		pieces = append(pieces, "<0x"+strings.ToUpper(hex2(byte(b)))+">")
	}
	pieces = append(pieces, " ")
	pieces = append(pieces, extra...)
	return pieces, make([]float32, len(pieces))
}

func hex2(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&15]})
}

func TestLoadLlama2CCorrupt(t *testing.T) {
	good := assets.Tok512()
	pieces, scores := minimalPieces()
	withNUL, nulScores := minimalPieces("a\x00b")
	noSpace, noSpaceScores := minimalPieces()
	noSpace = noSpace[:len(noSpace)-1]
	noSpaceScores = noSpaceScores[:len(noSpaceScores)-1]
	badByte, badByteScores := minimalPieces()
	badByte[3+0x41] = "A"
	negLen := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(negLen[4+4:], uint32(0xFFFFFFFF)) // token 0 length -1
	longLen := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(longLen[4+4:], 8) // > max_token_length 7
	hugeMax := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(hugeMax, 1<<30)

	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "need at least the 4-byte header"},
		{"short header", good[:3], "need at least the 4-byte header"},
		{"zero max length", append([]byte{0, 0, 0, 0}, good[4:]...), "max_token_length 0"},
		{"huge max length", hugeMax, "max_token_length 1073741824"},
		{"header only", good[:4], "0 tokens, need at least 259"},
		{"truncated record header", good[:len(good)-3], "token 511: length"},
		{"truncated inside record header", good[:4+5], "token 0: truncated record header"},
		{"negative length", negLen, "token 0: length -1"},
		{"length above max", longLen, "token 0: length 8 outside [0, max_token_length 7]"},
		{"too few tokens", llama2CFile(7, pieces[:100], scores[:100]), "100 tokens, need at least 259"},
		{"NUL in piece", llama2CFile(7, withNUL, nulScores), "contains a NUL byte"},
		{"no space piece", llama2CFile(7, noSpace, noSpaceScores), "no \" \" piece"},
		{"bad byte piece", llama2CFile(7, badByte, badByteScores), "token 68: byte piece is \"A\", want \"<0x41>\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadLlama2C(tc.data)
			if err == nil {
				t.Fatalf("LoadLlama2C: no error, want %q", tc.want)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadLlama2C error %q, want ErrCorrupt containing %q", err, tc.want)
			}
		})
	}
	if _, err := LoadLlama2C(llama2CFile(7, pieces, scores)); err != nil {
		t.Fatalf("minimal valid file: %v", err)
	}
}

// TestLlama2CMergeRules exercises run.c's merge rules on a hand-made
// vocabulary: the highest score wins, ties go to the leftmost pair, scores
// at or below -1e10 never merge, and merges cross spaces.
func TestLlama2CMergeRules(t *testing.T) {
	pieces, scores := minimalPieces("a", "b", "ab", "ba", " a", "aba", "c", "cc", "bb", "x", "y", "xy", "yx")
	idx := map[string]int{}
	for i, p := range pieces {
		idx[p] = i
	}
	set := func(p string, s float32) { scores[idx[p]] = s }
	set("ab", -1)
	set("ba", -2)
	set(" a", -3)
	set("aba", -0.5)
	set("cc", -1e10)
	set("bb", -5)
	set("xy", -4)
	set("yx", -4)
	tok, err := LoadLlama2C(llama2CFile(7, pieces, scores))
	if err != nil {
		t.Fatal(err)
	}
	id := func(ps ...string) []int {
		out := []int{}
		for _, p := range ps {
			out = append(out, idx[p])
		}
		return out
	}
	tests := []struct {
		text string
		want []int
	}{
		{"ab", id(" ", "ab")},         // " a" (-3) loses to "ab" (-1)
		{"bab", id(" ", "b", "ab")},   // "ba"(-2) vs "ab"(-1): ab first, then nothing merges " b"
		{"abab", id(" ", "aba", "b")}, // ab, ab -> then "aba"? ab+ab="abab" absent; leftmost ab first
		{"bbbb", id(" ", "bb", "bb")},
		{"xyx", id(" ", "xy", "x")}, // equal scores: leftmost first
		{"yxy", id(" ", "yx", "y")},
		{"cc", id(" ", "c", "c")},                       // score -1e10 never merges
		{"a a", id(" a", " a")},                         // merges across spaces
		{"\u00e9", []int{idx[" "], 3 + 0xC3, 3 + 0xA9}}, // byte fallback
	}
	for _, tc := range tests {
		got, err := tok.Encode(tc.text, false)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Encode(%q) mismatch (-want +got):\n%s", tc.text, diff)
		}
		if diff := cmp.Diff(runcEncode(tok, tc.text, false), got); diff != "" {
			t.Errorf("Encode(%q) differs from run.c's loop (-runc +got):\n%s", tc.text, diff)
		}
	}
}

func writeJSON(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadHFRejects(t *testing.T) {
	byteVocab := func(extra string) string {
		var sb strings.Builder
		sb.WriteString(`{`)
		for b := 0; b < 256; b++ {
			sb.WriteString(`"<0x` + strings.ToUpper(hex2(byte(b))) + `>":` + strconv.Itoa(b) + `,`)
		}
		sb.WriteString(`"a":256,"b":257,"ab":258` + extra + `}`)
		return sb.String()
	}
	model := func(fields string) string {
		return `{"added_tokens":[],"normalizer":{"type":"Replace","pattern":{"String":" "},"content":"▁"},"pre_tokenizer":null,"decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"}]},"model":{"type":"BPE","byte_fallback":true,` + fields + `}}`
	}
	tests := []struct {
		name    string
		content string
		want    error
		msg     string
	}{
		{"not JSON", `{"model":`, ErrCorrupt, "parse JSON"},
		{"wordpiece", `{"model":{"type":"WordPiece","vocab":{"a":0}}}`, ErrUnsupported, `model type "WordPiece"`},
		{"dropout", model(`"dropout":0.1,"vocab":` + byteVocab("") + `,"merges":[]`), ErrUnsupported, "dropout"},
		{"vocab id gap", model(`"vocab":{"a":0,"b":5},"merges":[]`), ErrCorrupt, "outside [0, 2)"},
		{"merge not in vocab", model(`"vocab":` + byteVocab("") + `,"merges":["a c"]`), ErrCorrupt, `merge 0 ("a", "c")`},
		{"merge malformed", model(`"vocab":` + byteVocab("") + `,"merges":["a b c"]`), ErrCorrupt, "merge 0"},
		{"merge pairs malformed", model(`"vocab":` + byteVocab("") + `,"merges":[["a"]]`), ErrCorrupt, "merges"},
		{"missing byte piece", model(`"vocab":{"a":0,"b":1,"ab":2},"merges":[]`), ErrCorrupt, "no <0x00> token"},
		{"no byte fallback", strings.Replace(model(`"vocab":`+byteVocab("")+`,"merges":[]`), `"byte_fallback":true`, `"byte_fallback":false`, 1), ErrUnsupported, "without byte-level"},
		{"prepend normalizer", strings.Replace(model(`"vocab":`+byteVocab("")+`,"merges":[]`), `{"type":"Replace","pattern":{"String":" "},"content":"▁"}`, `{"type":"Prepend","prepend":"▁"}`, 1), ErrUnsupported, `normalizer "Prepend"`},
		{"strip decoder", strings.Replace(model(`"vocab":`+byteVocab("")+`,"merges":[]`), `{"type":"Fuse"}`, `{"type":"Strip","content":" ","start":1,"stop":0}`, 1), ErrUnsupported, `decoder step "Strip"`},
		{"lstrip added token", strings.Replace(model(`"vocab":`+byteVocab("")+`,"merges":[]`), `"added_tokens":[]`, `"added_tokens":[{"id":259,"content":"<x>","lstrip":true}]`, 1), ErrUnsupported, "lstrip"},
		{"added id clash", strings.Replace(model(`"vocab":`+byteVocab("")+`,"merges":[]`), `"added_tokens":[]`, `"added_tokens":[{"id":3,"content":"ab"}]`, 1), ErrCorrupt, "vocabulary id 258"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadHF(writeJSON(t, tc.content))
			if err == nil {
				t.Fatalf("LoadHF: no error, want %v containing %q", tc.want, tc.msg)
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("LoadHF error %q, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
	// The same skeleton with valid parts loads and merges "a"+"b".
	ok := model(`"vocab":` + byteVocab("") + `,"merges":[["a","b"]]`)
	tok, err := LoadHF(writeJSON(t, ok))
	if err != nil {
		t.Fatalf("valid skeleton: %v", err)
	}
	ids, err := tok.Encode("ab ba", false)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{258, 0xE2, 0x96, 0x81, 257, 256} // ab, "▁" as bytes, b, a
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("Encode(\"ab ba\") mismatch (-want +got):\n%s", diff)
	}
	// The decoder's Replace sees "<0xE2>"-style pieces, not the bytes they
	// stand for, so a space that fell back to bytes decodes to "▁", as in
	// Hugging Face's decoder.
	if got := tok.Decode(ids); got != "ab▁ba" {
		t.Errorf("Decode = %q, want %q", got, "ab▁ba")
	}
	if tok.BOS() != -1 || tok.EOS() != -1 {
		t.Errorf("BOS, EOS = %d, %d; want -1, -1 without tokenizer_config.json or template", tok.BOS(), tok.EOS())
	}
}

func TestOpen(t *testing.T) {
	path := filepath.Join(repoRoot(t), "assets", "tok512.bin")
	tok, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	if _, ok := tok.(*Llama2C); !ok || tok.VocabSize() != 512 {
		t.Errorf("Open(tok512.bin) = %T with %d tokens, want *Llama2C with 512", tok, tok.VocabSize())
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.bin")); err == nil {
		t.Errorf("Open(missing): no error")
	}
	bad := filepath.Join(t.TempDir(), "bad.bin")
	if err := os.WriteFile(bad, []byte{1, 2}, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open(2-byte file) error %v, want ErrCorrupt", err)
	}
}
