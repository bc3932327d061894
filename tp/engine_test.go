package tp

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/tokenizer"
	"github.com/equarx/equarx/weights"
)

func stories(t testing.TB) weights.Source {
	t.Helper()
	src, err := weights.ReadLlama2C(assets.Stories260K())
	if err != nil {
		t.Fatalf("read stories260K: %v", err)
	}
	return src
}

var (
	engMu   sync.Mutex
	engines = map[int]*Engine{}
)

// storiesEngine returns a shared stories260K engine at tp size on a v5e ring
// that always uses the requested codec (no fallback to bf16 for small
// buffers), so that codecs can be compared.
func storiesEngine(t testing.TB, size int) *Engine {
	t.Helper()
	engMu.Lock()
	defer engMu.Unlock()
	if e, ok := engines[size]; ok {
		return e
	}
	e, err := NewEngine(stories(t), EngineConfig{TP: size, TPU: "v5e", FallbackElems: -1})
	if err != nil {
		t.Fatalf("tp %d: %v", size, err)
	}
	engines[size] = e
	return e
}

func greedyIDs(t testing.TB) []int {
	t.Helper()
	var g struct {
		IDs []int `json:"ids"`
	}
	if err := json.Unmarshal(assets.GreedyFromBOS(), &g); err != nil {
		t.Fatal(err)
	}
	if len(g.IDs) != 257 {
		t.Fatalf("greedy sample has %d ids, want 257", len(g.IDs))
	}
	return g.IDs
}

func TestGreedySampleArgmax(t *testing.T) {
	ids := greedyIDs(t)
	for _, size := range []int{1, 2, 4, 8} {
		e := storiesEngine(t, size)
		res, err := e.Prefill(context.Background(), [][]int{ids}, PrefillOptions{Codec: collective.CodecF32, TopK: 1})
		if err != nil {
			t.Fatalf("tp %d: %v", size, err)
		}
		s := res.Seqs[0]
		bad := 0
		for j := 1; j < len(ids); j++ {
			if got := s.TopK[j][0].ID; got != ids[j] {
				if bad < 5 {
					t.Errorf("tp %d: position %d: argmax %d, greedy sample has %d", size, j, got, ids[j])
				}
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("tp %d: %d of %d argmaxes differ from the greedy sample", size, bad, len(ids)-1)
		}
	}
}

// tinyStories returns the validation stories tokenized with BOS, truncated
// to max_seq_len.
func tinyStories(t testing.TB, maxLen int) [][]int {
	t.Helper()
	path := filepath.Join("..", "data", "tinystories", "tinystories_val_0000-0799.txt") // committed: data/README.md
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.LoadLlama2C(assets.Tok512())
	if err != nil {
		t.Fatal(err)
	}
	var out [][]int
	var cur []string
	flush := func() {
		text := strings.TrimSpace(strings.Join(cur, "\n"))
		cur = cur[:0]
		if text == "" {
			return
		}
		ids, err := tok.Encode(text, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) > maxLen {
			ids = ids[:maxLen]
		}
		out = append(out, ids)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "<|endoftext|>" {
			flush()
			continue
		}
		cur = append(cur, sc.Text())
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// nllSums returns the summed negative log-likelihood and the number of
// predicted tokens of seqs, split over the engines, which run concurrently.
func nllSums(t testing.TB, engines []*Engine, seqs [][]int, codec collective.CodecKind) (float64, int) {
	t.Helper()
	const perBatch = 16
	sums := make([]float64, len(engines))
	counts := make([]int, len(engines))
	errs := make([]error, len(engines))
	var wg sync.WaitGroup
	for w, e := range engines {
		wg.Go(func() {
			for i := w * perBatch; i < len(seqs); i += perBatch * len(engines) {
				res, err := e.Prefill(context.Background(), seqs[i:min(i+perBatch, len(seqs))], PrefillOptions{Codec: codec})
				if err != nil {
					errs[w] = err
					return
				}
				for _, s := range res.Seqs {
					for _, lp := range s.TokenLogprobs[1:] {
						sums[w] -= float64(lp)
						counts[w]++
					}
				}
			}
		})
	}
	wg.Wait()
	var sum float64
	var n int
	for w := range engines {
		if errs[w] != nil {
			t.Fatal(errs[w])
		}
		sum += sums[w]
		n += counts[w]
	}
	return sum, n
}

// TestTinyStoriesNLL measures the mean NLL per predicted token of the
// validation stories, each scored on its own: BOS + the story's tokens,
// truncated to max_seq_len, every token after BOS predicted.
//
// Measured with this protocol (the model matches llama2.c's greedy sample
// and a float64 reference, so these are the model's figures, not errors):
// stories 0-199: 1.283 nats/token; all 800: 1.497. The later stories are
// longer, with more paragraphs, and 40 of them contain cp1252 mojibake
// ("â€™" for "’") whose pieces the model gives log-probabilities near -25.
// The default run scores the first 200 stories at tp 1 (bound 1.27-1.30)
// and checks that tp 4 gives the same NLL on 48 of them;
// EQUARX_NLL_FULL=1 also scores all 800 (bound 1.49-1.51, about 70 s of
// CPU).
func TestTinyStoriesNLL(t *testing.T) {
	seqs := tinyStories(t, 512)
	if len(seqs) != 800 {
		t.Fatalf("got %d stories, want 800", len(seqs))
	}
	if raceEnabled {
		// Under the race detector only the tp 1 / tp 4 agreement runs.
		sub := seqs[:8]
		s1, n1 := nllSums(t, []*Engine{storiesEngine(t, 1)}, sub, collective.CodecF32)
		s4, n4 := nllSums(t, []*Engine{storiesEngine(t, 4)}, sub, collective.CodecF32)
		if n1 != n4 || math.Abs(s1/float64(n1)-s4/float64(n4)) > 1e-5 {
			t.Errorf("tp 4 NLL %.6f differs from tp 1 %.6f", s4/float64(n4), s1/float64(n1))
		}
		return
	}
	second, err := NewEngine(stories(t), EngineConfig{TP: 1, TPU: "v5e"})
	if err != nil {
		t.Fatal(err)
	}
	tp1 := []*Engine{storiesEngine(t, 1), second}
	sum, n := nllSums(t, tp1, seqs[:200], collective.CodecF32)
	nll := sum / float64(n)
	t.Logf("tp 1, stories 0-199: mean NLL %.4f nats/token over %d tokens", nll, n)
	if nll < 1.27 || nll > 1.30 {
		t.Errorf("tp 1 stories 0-199: mean NLL %.4f outside [1.27, 1.30]", nll)
	}

	sub := seqs[:48]
	s1, n1 := nllSums(t, tp1, sub, collective.CodecF32)
	s4, n4 := nllSums(t, []*Engine{storiesEngine(t, 4)}, sub, collective.CodecF32)
	t.Logf("stories 0-47: tp 1 %.6f, tp 4 %.6f nats/token", s1/float64(n1), s4/float64(n4))
	if n1 != n4 || math.Abs(s1/float64(n1)-s4/float64(n4)) > 1e-5 {
		t.Errorf("tp 4 NLL %.6f differs from tp 1 %.6f", s4/float64(n4), s1/float64(n1))
	}

	if os.Getenv("EQUARX_NLL_FULL") != "1" {
		t.Log("all 800 stories: set EQUARX_NLL_FULL=1")
		return
	}
	sum, n = nllSums(t, tp1, seqs, collective.CodecF32)
	nll = sum / float64(n)
	t.Logf("tp 1, all 800 stories: mean NLL %.4f nats/token over %d tokens", nll, n)
	if nll < 1.49 || nll > 1.51 {
		t.Errorf("tp 1 all stories: mean NLL %.4f outside [1.49, 1.51]", nll)
	}
}

func maxAbsDiff(a, b [][]float32) float64 {
	var m float64
	for i := range a {
		for j := range a[i] {
			m = max(m, math.Abs(float64(a[i][j])-float64(b[i][j])))
		}
	}
	return m
}
