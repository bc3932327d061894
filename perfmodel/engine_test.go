package perfmodel

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/cost"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/tpu"
	"github.com/equarx/equarx/weights"
)

// tinyGemma3 is a small gemma3 config whose splits are even at tp 1, 2 and
// 4, with sequences longer than its sliding window.
func tinyGemma3() model.Config {
	return model.Config{Arch: "gemma3", Name: "tiny-gemma3", Dim: 32, HiddenDim: 48, Layers: 4, Heads: 4, KVHeads: 2,
		HeadDim: 8, Vocab: 96, MaxSeqLen: 256, NormEps: 1e-6, RopeTheta: 1e6, RopeStyle: model.RopeHalf,
		Activation: model.ActGELUTanh, TiedEmbeddings: true, RopeLocalTheta: 1e4,
		SlidingWindow: 5, SlidingWindowPattern: 2, QueryPreAttnScalar: 8}
}

// tinyLlamaUneven splits its MLP (43) and vocab (77) unevenly at tp 2 and 4.
func tinyLlamaUneven() model.Config {
	return model.Config{Arch: "llama", Name: "tiny-llama-uneven", Dim: 32, HiddenDim: 43, Layers: 3, Heads: 8, KVHeads: 2,
		HeadDim: 4, Vocab: 77, MaxSeqLen: 256, NormEps: 1e-5, RopeTheta: 5e5, RopeStyle: model.RopeHalf,
		Activation: model.ActSiLU, TiedEmbeddings: false}
}

func storiesSource(t testing.TB) weights.Source {
	t.Helper()
	src, err := weights.ReadLlama2C(assets.Stories260K())
	if err != nil {
		t.Fatalf("read stories260K: %v", err)
	}
	return src
}

// batch returns token ids of the given lengths, in range for vocab.
func batch(lengths []int, vocab int) [][]int {
	seqs := make([][]int, len(lengths))
	for i, L := range lengths {
		seqs[i] = make([]int, L)
		for j := range seqs[i] {
			seqs[i][j] = (7*i + 13*j + 1) % vocab
		}
	}
	return seqs
}

// engineOptions are the AllReduce options tp.Engine.Prefill passes for a
// request with codec c on an engine configured with ec.
func engineOptions(ec tp.EngineConfig, c collective.CodecKind) collective.Options {
	return collective.Options{Codec: c, Algorithm: ec.Algorithm, SegmentElems: ec.SegmentElems,
		FallbackElems: ec.FallbackElems, Timeout: ec.Timeout}
}

func setupFor(t testing.TB, ec tp.EngineConfig, c collective.CodecKind, overlap bool) Setup {
	t.Helper()
	ts := ec.Topology
	if ts == "" {
		ts = fmt.Sprintf("ring:%d", ec.TP)
	}
	topo, err := tpu.ParseTopology(ts)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := tpu.LoadProfile(ec.TPU)
	if err != nil {
		t.Fatal(err)
	}
	return Setup{TP: ec.TP, Topology: topo, Profile: prof, AllReduce: engineOptions(ec, c), Overlap: overlap, Exec: ec.Exec}
}

// TestPriceEqualsEngine ties the estimator to the executor: the dry-run's
// simulated time equals the engine's PrefillResult.SimSeconds, and its
// AllReduce time the engine's SimAllReduceSeconds, for stories260K and a
// tiny gemma3 at tp 1, 2, 4, several codecs, profiles and topologies, with
// and without the size-based fallback. The two sums add the same charges
// from different starting clocks, so they agree to float rounding: 1e-9
// relative.
func TestPriceEqualsEngine(t *testing.T) {
	type model_ struct {
		name string
		src  func(t testing.TB) weights.Source
	}
	models := []model_{
		{"stories260K", storiesSource},
		{"tiny-gemma3", func(t testing.TB) weights.Source {
			src, err := weights.Synthetic(tinyGemma3(), 3)
			if err != nil {
				t.Fatal(err)
			}
			return src
		}},
	}
	// At tp 4 the ring algorithms are forced: at these small sizes auto
	// picks two-shot, whose ranks finish at different times (see
	// TestPriceSkewedIsUpperBound).
	engines := []tp.EngineConfig{
		{TP: 1, TPU: "v5e"},
		{TP: 2, TPU: "v5e", FallbackElems: -1},
		{TP: 2, TPU: "v6e"}, // estimator-priced fallback
		{TP: 4, TPU: "v5e", Algorithm: collective.AlgoRing, FallbackElems: -1},
		{TP: 4, TPU: "v6e", Algorithm: collective.AlgoBiRing},
		{TP: 4, TPU: "v4", Topology: "ring:4", Algorithm: collective.AlgoRing, SegmentElems: 256, FallbackElems: -1},
		// The XLA-like execution (cost.XLA) and a partial one: the engine
		// and the pricer charge the same operations under the same model.
		{TP: 1, TPU: "v6e", Exec: cost.XLA()},
		{TP: 2, TPU: "v5e", FallbackElems: -1, Exec: cost.XLA()},
		{TP: 4, TPU: "v5p", Algorithm: collective.AlgoRing, Exec: cost.Exec{BF16: true, Fuse: true, ICIDerate: true}},
	}
	// Batches of 64 tokens: at tp 4 every rank's chunk of the 64·dim values
	// is whole 256-value blocks, so every rank finishes each AllReduce at
	// the same time (see TestPriceSkewedIsUpperBound for the other case).
	lengths := [][]int{{64}, {20, 13, 31}}
	codecs := []collective.CodecKind{collective.CodecBF16, collective.CodecInt8, collective.CodecFP8, collective.CodecInt6, collective.CodecInt4}
	for _, m := range models {
		src := m.src(t)
		cfg := src.Config()
		for _, ec := range engines {
			e, err := tp.NewEngine(src, ec)
			if err != nil {
				t.Fatalf("%s %+v: %v", m.name, ec, err)
			}
			for _, c := range codecs {
				for _, ls := range lengths {
					name := fmt.Sprintf("%s/tp%d-%s-%s-%s-%s/%v", m.name, ec.TP, ec.TPU, ec.Topology, ec.Exec, c, ls)
					res, err := e.Prefill(context.Background(), batch(ls, cfg.Vocab), tp.PrefillOptions{Codec: c})
					if err != nil {
						t.Fatalf("%s: prefill: %v", name, err)
					}
					est, err := Price(cfg, ls, setupFor(t, ec, c, false))
					if err != nil {
						t.Fatalf("%s: price: %v", name, err)
					}
					if !est.Exact {
						t.Errorf("%s: estimate not exact for an even split on a ring", name)
					}
					if rel := relDiff(est.SimSeconds, res.SimSeconds); rel > 1e-9 {
						t.Errorf("%s: price %.12g s, engine %.12g s (rel %.2g)", name, est.SimSeconds, res.SimSeconds, rel)
					}
					// The engine reports the largest per-rank AllReduce time.
					if rel := relDiff(est.AllReduceSeconds, res.SimAllReduceSeconds); rel > 1e-9 && math.Abs(est.AllReduceSeconds-res.SimAllReduceSeconds) > 1e-15 {
						t.Errorf("%s: allreduce price %.12g s, engine %.12g s (rel %.2g)", name, est.AllReduceSeconds, res.SimAllReduceSeconds, rel)
					}
					if got := est.Breakdown.Total(); relDiff(got, est.SerialSeconds) > 1e-12 {
						t.Errorf("%s: breakdown sums to %.12g, serial is %.12g", name, got, est.SerialSeconds)
					}
				}
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestPriceSkewedIsUpperBound covers the approximation: when ranks reach
// an AllReduce at different times (uneven MLP or vocab splits, or a
// schedule whose ranks finish at different times: two-shot, or ring chunks
// that are not whole blocks), Exact is false and each such call is priced
// as if it started when the last rank got there. The executor lets early
// ranks start early, so the price is an upper bound of the engine's time.
func TestPriceSkewedIsUpperBound(t *testing.T) {
	uneven, err := weights.Synthetic(tinyLlamaUneven(), 5)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		src     weights.Source
		ec      tp.EngineConfig
		lengths []int
	}{
		{"uneven tp 2", uneven, tp.EngineConfig{TP: 2, TPU: "v5e", FallbackElems: -1}, []int{33}},
		{"uneven tp 4", uneven, tp.EngineConfig{TP: 4, TPU: "v5e", FallbackElems: -1}, []int{33}},
		{"stories two-shot", storiesSource(t), tp.EngineConfig{TP: 4, TPU: "v5e", FallbackElems: -1}, []int{37}},
		{"stories ring, partial blocks", storiesSource(t), tp.EngineConfig{TP: 4, TPU: "v5e", Algorithm: collective.AlgoRing, FallbackElems: -1}, []int{37}},
		{"stories torus:2x2", storiesSource(t), tp.EngineConfig{TP: 4, TPU: "v4", Topology: "torus:2x2", FallbackElems: -1}, []int{50}},
	}
	for _, tc := range tests {
		e, err := tp.NewEngine(tc.src, tc.ec)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		cfg := tc.src.Config()
		res, err := e.Prefill(context.Background(), batch(tc.lengths, cfg.Vocab), tp.PrefillOptions{Codec: collective.CodecInt8})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		est, err := Price(cfg, tc.lengths, setupFor(t, tc.ec, collective.CodecInt8, false))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		t.Logf("%s: price %.6g s, engine %.6g s, price/engine %.4f, exact %v", tc.name, est.SimSeconds, res.SimSeconds, est.SimSeconds/res.SimSeconds, est.Exact)
		if est.Exact && relDiff(est.SimSeconds, res.SimSeconds) > 1e-9 {
			t.Errorf("%s: reported exact, but price %.12g s != engine %.12g s", tc.name, est.SimSeconds, res.SimSeconds)
		}
		if est.SimSeconds < res.SimSeconds*(1-1e-9) {
			t.Errorf("%s: price %.12g s below the engine's %.12g s", tc.name, est.SimSeconds, res.SimSeconds)
		}
	}
}

func relDiff(a, b float64) float64 {
	if a == b {
		return 0
	}
	return math.Abs(a-b) / math.Max(math.Abs(a), math.Abs(b))
}
