package tp

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/weights"
)

// bf16Change is what holding a model's weights in bf16 changes in its
// answers, against the same model with f32 weights.
type bf16Change struct {
	positions, agree int
	clear, clearOK   int     // positions whose f32 top-2 gap exceeds 4 x the RMS change, and their agreement
	worst, mean      float64 // |Δ logprob| over the whole vocabulary
	worstTgt, tgt    float64 // |Δ logprob| of the next token (max, mean)
	rel              float64 // RMS Δ logprob / RMS of the row-centred logprobs
}

// compareBF16 runs seqs through an f32 and a bf16 engine over src (tp 1,
// exact reductions) and compares them position by position over the whole
// vocabulary.
func compareBF16(t *testing.T, src weights.Source, seqs [][]int) bf16Change {
	t.Helper()
	e32, err := NewEngine(src, EngineConfig{TP: 1, TPU: "v5e", WeightsDType: "f32"})
	if err != nil {
		t.Fatal(err)
	}
	e16, err := NewEngine(src, EngineConfig{TP: 1, TPU: "v5e", WeightsDType: "bf16"})
	if err != nil {
		t.Fatal(err)
	}
	opts := PrefillOptions{Codec: collective.CodecF32, FullLogprobs: true}
	var c bf16Change
	var sumAbs, relSq, refSq float64
	var n int
	var gaps []float64 // f32 top-1 minus top-2 of each position
	var same []bool    // argmax agrees at that position
	for i := 0; i < len(seqs); i += 10 {
		batch := seqs[i:min(i+10, len(seqs))]
		a := prefill(t, e32, batch, opts)
		b := prefill(t, e16, batch, opts)
		for s := range batch {
			for j := range a.Seqs[s].Logprobs {
				pa, pb := a.Seqs[s].Logprobs[j], b.Seqs[s].Logprobs[j]
				ia, ib := 0, 0
				var meanA float64
				for v := range pa {
					meanA += float64(pa[v])
				}
				meanA /= float64(len(pa))
				for v := range pa {
					d := math.Abs(float64(pa[v] - pb[v]))
					c.worst = max(c.worst, d)
					sumAbs += d
					n++
					// Logits up to a per-row constant: logprob minus its row mean.
					relSq += d * d
					refSq += (float64(pa[v]) - meanA) * (float64(pa[v]) - meanA)
					if pa[v] > pa[ia] {
						ia = v
					}
					if pb[v] > pb[ib] {
						ib = v
					}
				}
				if ia == ib {
					c.agree++
				}
				second := math.Inf(-1)
				for v := range pa {
					if v != ia && float64(pa[v]) > second {
						second = float64(pa[v])
					}
				}
				gaps = append(gaps, float64(pa[ia])-second)
				same = append(same, ia == ib)
				c.positions++
				if j+1 < len(batch[s]) {
					d := math.Abs(float64(pa[batch[s][j+1]] - pb[batch[s][j+1]]))
					c.tgt += d
					c.worstTgt = max(c.worstTgt, d)
				}
			}
		}
	}
	c.mean = sumAbs / float64(n)
	c.tgt /= float64(c.positions)
	c.rel = math.Sqrt(relSq / refSq)
	rms := math.Sqrt(relSq / float64(n))
	for i, g := range gaps {
		if g > 4*rms {
			c.clear++
			if same[i] {
				c.clearOK++
			}
		}
	}
	return c
}

// bf16Unit is the RMS relative change rounding to bf16 makes in a product
// with random-sign errors: each weight moves by at most 2^-9 of itself
// (round to nearest even over 8 significant bits), uniformly, so by
// 2^-9/√3 RMS.
var bf16Unit = math.Ldexp(1, -9) / math.Sqrt(3)

// checkBF16Change logs the comparison and checks it against the scale
// bf16 rounding explains: independent errors of about bf16Unit per matrix
// product add in quadrature over the products between the embedding and
// the logits (7 per layer plus the LM head; the embedding itself is
// rounded too), so the logits move by about bf16Unit·√stages. The check
// allows twice that. The argmax may flip only where the f32 distribution
// nearly ties: where its top-2 gap exceeds 4 x the RMS change, at least
// 99.9% of positions must keep their argmax.
func checkBF16Change(t *testing.T, name string, c bf16Change, layers int) {
	t.Helper()
	stages := float64(7*layers + 2)
	t.Logf("%s, %d positions: max |Δ logprob| %.3g over the vocabulary (mean %.3g); target tokens max %.3g, mean %.3g; argmax agreement %d/%d (%.2f%%); RMS Δ / RMS centred logprob %.3g = %.2f x 2^-9/√3 (√%g stages = %.2f)",
		name, c.positions, c.worst, c.mean, c.worstTgt, c.tgt, c.agree, c.positions,
		100*float64(c.agree)/float64(c.positions), c.rel, c.rel/bf16Unit, stages, math.Sqrt(stages))
	if limit := 2 * bf16Unit * math.Sqrt(stages); !(c.rel <= limit) {
		t.Errorf("%s: bf16 weights move the logits by %.3g of their spread, above 2 x 2^-9/√3 x √%g = %.3g", name, c.rel, stages, limit)
	}
	t.Logf("%s: %d positions with a top-2 gap above 4 x the RMS change, argmax agreement there %d", name, c.clear, c.clearOK)
	if c.clear == 0 || float64(c.clearOK) < 0.999*float64(c.clear) {
		t.Errorf("%s: argmax kept at %d of %d positions whose f32 top-2 gap exceeds 4 x the RMS change", name, c.clearOK, c.clear)
	}
}

// TestBF16WeightsStories measures what holding stories260K's weights in
// bf16 changes, on 100 TinyStories validation prefixes: the figures
// docs/MODEL.md reports.
func TestBF16WeightsStories(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 100 stories through two engines")
	}
	c := compareBF16(t, stories(t), tinyStories(t, 256)[:100])
	checkBF16Change(t, "stories260K", c, 5)
}

// TestBF16WeightsSynthetic is the same comparison on a synthetic model of
// the Gemma 3 architecture (GELU-tanh MLP, QK-norm, local and global
// layers, tied 4096-token vocabulary) with random token ids.
func TestBF16WeightsSynthetic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two synthetic engines")
	}
	cfg, err := model.LoadNamed("gemma3-1b", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dim, cfg.HiddenDim, cfg.Layers, cfg.Heads, cfg.KVHeads, cfg.HeadDim = 256, 1024, 6, 4, 1, 64
	cfg.Vocab, cfg.MaxSeqLen, cfg.SlidingWindow, cfg.QueryPreAttnScalar = 4096, 512, 32, 64
	src, err := weights.Synthetic(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seqs := make([][]int, 20)
	for i := range seqs {
		seqs[i] = make([]int, 48+rng.IntN(48))
		for j := range seqs[i] {
			seqs[i][j] = rng.IntN(cfg.Vocab)
		}
	}
	c := compareBF16(t, src, seqs)
	checkBF16Change(t, "synthetic gemma3 (dim 256, 6 layers)", c, cfg.Layers)
}
