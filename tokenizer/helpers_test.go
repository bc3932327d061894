package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// repoRoot returns the repository root (the directory holding go.mod).
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// dataPath is a file of the committed data/ directory (data/README.md).
func dataPath(t testing.TB, rel ...string) string {
	t.Helper()
	return filepath.Join(append([]string{repoRoot(t), "data"}, rel...)...)
}

// gemma3Path is the Gemma 3 tokenizer.json, which is not committed (33 MB,
// Gemma Terms of Use): $EQUARX_GEMMA3_TOKENIZER, else a copy in
// ../shared/tokenizers/gemma3 beside the repository (CI keeps one there).
// Tests that need it skip when neither exists.
func gemma3Path(t testing.TB) string {
	t.Helper()
	p := os.Getenv("EQUARX_GEMMA3_TOKENIZER")
	if p == "" {
		p = filepath.Join(repoRoot(t), "..", "shared", "tokenizers", "gemma3", "tokenizer.json")
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("Gemma 3 tokenizer not available (%v): it is not committed (Gemma Terms of Use); set EQUARX_GEMMA3_TOKENIZER to its tokenizer.json to run this test", err)
	}
	return p
}

func gpt2Paths(t testing.TB) (encoder, vocab string) {
	d := dataPath(t, "tokenizers", "gpt2")
	return filepath.Join(d, "encoder.json"), filepath.Join(d, "vocab.bpe")
}

var (
	gpt2Once sync.Once
	gpt2Tok  Tokenizer
	gpt2Err  error
)

func loadGPT2(t testing.TB) Tokenizer {
	t.Helper()
	enc, voc := gpt2Paths(t)
	gpt2Once.Do(func() { gpt2Tok, gpt2Err = LoadGPT2(enc, voc) })
	if gpt2Err != nil {
		t.Fatalf("LoadGPT2: %v", gpt2Err)
	}
	return gpt2Tok
}

var (
	gemmaOnce sync.Once
	gemmaTok  Tokenizer
	gemmaErr  error
)

// loadGemma3 loads the 33 MB Gemma 3 tokenizer.json once per test binary.
func loadGemma3(t testing.TB) Tokenizer {
	t.Helper()
	path := gemma3Path(t)
	gemmaOnce.Do(func() { gemmaTok, gemmaErr = LoadHF(path) })
	if gemmaErr != nil {
		t.Fatalf("LoadHF(%s): %v", path, gemmaErr)
	}
	return gemmaTok
}

// tinyStoriesLines returns up to n non-empty lines of the TinyStories
// validation sample.
func tinyStoriesLines(t testing.TB, n int) []string {
	t.Helper()
	f, err := os.Open(dataPath(t, "tinystories", "tinystories_val_0000-0799.txt"))
	if err != nil {
		t.Fatalf("open TinyStories: %v", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && len(lines) < n {
		if l := sc.Text(); l != "" {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read TinyStories: %v", err)
	}
	return lines
}

// hellaSwagTexts returns contexts and endings of up to n HellaSwag items.
func hellaSwagTexts(t testing.TB, n int) []string {
	t.Helper()
	f, err := os.Open(dataPath(t, "hellaswag", "hellaswag_val_1000.jsonl"))
	if err != nil {
		t.Fatalf("open HellaSwag: %v", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for i := 0; sc.Scan() && i < n; i++ {
		var item struct {
			Ctx     string   `json:"ctx"`
			Endings []string `json:"endings"`
		}
		if err := json.Unmarshal(sc.Bytes(), &item); err != nil {
			t.Fatalf("HellaSwag line %d: %v", i+1, err)
		}
		out = append(out, item.Ctx)
		for _, e := range item.Endings {
			out = append(out, item.Ctx+" "+e)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read HellaSwag: %v", err)
	}
	return out
}

// tinyStoriesText returns the first n bytes of the TinyStories sample, cut
// at a line end.
func tinyStoriesText(t testing.TB, n int) string {
	t.Helper()
	data, err := os.ReadFile(dataPath(t, "tinystories", "tinystories_val_0000-0799.txt"))
	if err != nil {
		t.Fatalf("read TinyStories: %v", err)
	}
	s := string(data)
	if len(s) > n {
		s = s[:n]
		if i := strings.LastIndexByte(s, '\n'); i > 0 {
			s = s[:i+1]
		}
	}
	return s
}

type goldenFile struct {
	Tokenizer string       `json:"tokenizer"`
	Cases     []goldenCase `json:"cases"`
}

type goldenCase struct {
	Text   string `json:"text"`
	BOS    bool   `json:"bos"`
	IDs    []int  `json:"ids"`
	Source string `json:"source"`
}

func readGolden(t testing.TB, name string) goldenFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read golden file: %v", err)
	}
	var g goldenFile
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	if len(g.Cases) == 0 {
		t.Fatalf("%s has no cases", name)
	}
	return g
}
