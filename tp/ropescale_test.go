package tp

import (
	"math"
	"testing"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/model"
)

// TestRopeScalingMatchesFloat64Reference runs the small gemma3 and llama
// configs with linear RoPE scaling (gemma3: global layers only; llama: every
// layer) at tp 1 and 2 against the float64 reference, which divides
// positions by the factor, and checks that the scaling changes the output.
func TestRopeScalingMatchesFloat64Reference(t *testing.T) {
	seqs := [][]int{{2, 17, 5, 33, 8, 1, 0, 60, 12, 9, 41, 3, 7}, {70, 1, 2, 3, 4, 5, 6, 7, 8}}
	g, l := tinyGemma3(), tinyLlamaUntied()
	g.RopeScalingFactor, l.RopeScalingFactor = 8, 4
	for _, cfg := range []model.Config{g, l} {
		var ref *refModel
		for _, size := range []int{1, 2} {
			e, src := synthEngine(t, cfg, size)
			if ref == nil {
				ref = newRefModel(t, src)
			}
			res := prefill(t, e, seqs, PrefillOptions{Codec: collective.CodecF32, FullLogprobs: true})
			var worst float64
			for i, s := range seqs {
				want := ref.logprobs(s)
				for j := range want {
					for v := range want[j] {
						worst = max(worst, math.Abs(want[j][v]-float64(res.Seqs[i].Logprobs[j][v])))
					}
				}
			}
			t.Logf("%s factor %g tp %d: max |Δ logprob| vs float64 = %.2e", cfg.Arch, cfg.RopeScalingFactor, size, worst)
			if worst > 2e-5 {
				t.Errorf("%s tp %d: max abs logprob difference %.3g > 2e-5", cfg.Arch, size, worst)
			}
		}
		// Without the scaling the output must differ from position 1 on
		// (position 0 has angle 0 either way).
		unscaled := cfg
		unscaled.RopeScalingFactor = 0
		e, _ := synthEngine(t, cfg, 1)
		e0, _ := synthEngine(t, unscaled, 1)
		a := prefill(t, e, seqs[:1], PrefillOptions{Codec: collective.CodecF32, FullLogprobs: true})
		b := prefill(t, e0, seqs[:1], PrefillOptions{Codec: collective.CodecF32, FullLogprobs: true})
		first := maxAbsDiff(a.Seqs[0].Logprobs[:1], b.Seqs[0].Logprobs[:1])
		rest := maxAbsDiff(a.Seqs[0].Logprobs[1:], b.Seqs[0].Logprobs[1:])
		t.Logf("%s: scaled vs unscaled: position 0 differs by %.2e, later by %.2e", cfg.Arch, first, rest)
		if first != 0 || rest < 1e-6 {
			t.Errorf("%s: scaling changed position 0 by %g and later ones by %g", cfg.Arch, first, rest)
		}
	}
}
