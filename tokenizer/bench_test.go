package tokenizer

import (
	"testing"
)

// BenchmarkEncode measures encode throughput (MB/s of UTF-8 input) on 32 KB
// of TinyStories text, and on one 1 KB story paragraph.
func BenchmarkEncode(b *testing.B) {
	text := tinyStoriesText(b, 32<<10)
	para := tinyStoriesText(b, 1<<10)
	tokenizers := []struct {
		name string
		tok  func(testing.TB) Tokenizer
	}{
		{"llama2c", func(tb testing.TB) Tokenizer { return loadTok512(tb) }},
		{"gpt2", loadGPT2},
		{"gemma3", loadGemma3},
	}
	inputs := []struct {
		name string
		text string
	}{{"32KB", text}, {"1KB", para}}
	for _, tk := range tokenizers {
		for _, in := range inputs {
			b.Run(tk.name+"/"+in.name, func(b *testing.B) {
				tok := tk.tok(b)
				b.SetBytes(int64(len(in.text)))
				var n int
				for b.Loop() {
					ids, err := tok.Encode(in.text, true)
					if err != nil {
						b.Fatal(err)
					}
					n = len(ids)
				}
				b.ReportMetric(float64(len(in.text))/float64(n), "bytes/token")
			})
		}
	}
}

// BenchmarkDecode measures decode throughput (MB/s of output text).
func BenchmarkDecode(b *testing.B) {
	text := tinyStoriesText(b, 32<<10)
	tok := loadTok512(b)
	ids, err := tok.Encode(text, true)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		_ = tok.Decode(ids)
	}
}

// BenchmarkLoadGemma3 measures loading the 33 MB Gemma 3 tokenizer.json.
func BenchmarkLoadGemma3(b *testing.B) {
	path := gemma3Path(b)
	for b.Loop() {
		if _, err := LoadHF(path); err != nil {
			b.Fatal(err)
		}
	}
}
