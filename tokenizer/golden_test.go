package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// checkGolden encodes every case of a golden file and compares ids, then
// checks that decoding the ids gives the text back (for Hugging Face
// tokenizers, which render BOS as its text, the ids after the BOS).
func checkGolden(t *testing.T, tok Tokenizer, file string, roundTrip func(goldenCase) bool) {
	t.Helper()
	_, hf := tok.(*BPE)
	g := readGolden(t, file)
	for _, c := range g.Cases {
		got, err := tok.Encode(c.Text, c.BOS)
		if err != nil {
			t.Errorf("Encode(%q, %v): %v", c.Text, c.BOS, err)
			continue
		}
		if diff := cmp.Diff(c.IDs, got); diff != "" {
			t.Errorf("Encode(%q, %v) mismatch with %s (-want +got):\n%s", c.Text, c.BOS, c.Source, diff)
		}
		if roundTrip != nil && !roundTrip(c) {
			continue
		}
		ids := c.IDs
		if hf && c.BOS {
			ids = ids[1:]
		}
		if dec := tok.Decode(ids); dec != c.Text {
			t.Errorf("Decode(%v) = %q, want %q", ids, dec, c.Text)
		}
	}
}

func TestGoldenLlama2C(t *testing.T) {
	checkGolden(t, loadTok512(t), "golden_llama2c.json", nil)
}

func TestGoldenGPT2(t *testing.T) {
	checkGolden(t, loadGPT2(t), "golden_gpt2.json", nil)
}

func TestGoldenGPT2FromTokenizerJSON(t *testing.T) {
	path := writeGPT2TokenizerJSON(t)
	tok, err := LoadHF(path)
	if err != nil {
		t.Fatalf("LoadHF: %v", err)
	}
	if tok.BOS() != 50256 || tok.EOS() != 50256 || tok.VocabSize() != 50257 {
		t.Errorf("BOS, EOS, VocabSize = %d, %d, %d; want 50256, 50256, 50257", tok.BOS(), tok.EOS(), tok.VocabSize())
	}
	checkGolden(t, tok, "golden_gpt2.json", nil)
	opened, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	if _, ok := opened.(*BPE); !ok {
		t.Errorf("Open(tokenizer.json) = %T, want *BPE", opened)
	}
}

func TestGoldenGemma3(t *testing.T) {
	tok := loadGemma3(t)
	if tok.BOS() != 2 || tok.EOS() != 106 || tok.VocabSize() != 262145 {
		t.Errorf("BOS, EOS, VocabSize = %d, %d, %d; want 2, 106 (<end_of_turn>, tokenizer_config.json), 262145", tok.BOS(), tok.EOS(), tok.VocabSize())
	}
	// "▁" typed in the text is an added token (or a piece) that decodes to
	// a space, as in Hugging Face's decoder: no exact round trip there.
	checkGolden(t, tok, "golden_gemma3.json", func(c goldenCase) bool { return !strings.Contains(c.Text, "▁") })
}

// writeGPT2TokenizerJSON converts encoder.json + vocab.bpe into a Hugging
// Face tokenizer.json with the layout of the published gpt2 one (ByteLevel
// pre-tokenizer and decoder, <|endoftext|> added), plus a
// tokenizer_config.json naming BOS and EOS.
func writeGPT2TokenizerJSON(t testing.TB) string {
	t.Helper()
	encPath, vocPath := gpt2Paths(t)
	encData, err := os.ReadFile(encPath)
	if err != nil {
		t.Fatal(err)
	}
	var vocab map[string]int
	if err := json.Unmarshal(encData, &vocab); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(vocPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var merges []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); !strings.HasPrefix(l, "#version") && l != "" {
			merges = append(merges, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	doc := map[string]any{
		"version":    "1.0",
		"truncation": nil,
		"padding":    nil,
		"added_tokens": []map[string]any{{
			"id": 50256, "content": "<|endoftext|>", "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": true, "special": true,
		}},
		"normalizer":     nil,
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges,
		},
	}
	dir := t.TempDir()
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := `{"bos_token": "<|endoftext|>", "eos_token": {"content": "<|endoftext|>"}}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
