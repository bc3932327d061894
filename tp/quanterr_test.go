package tp

import (
	"context"
	"math"
	"testing"

	"github.com/equarx/equarx/collective"
)

// PrefillResult.QuantRelErrRMS: 0 for exact reductions and for one device,
// positive and ordered bf16 < int8 < int4 otherwise, and within the provable
// sqrt(B)/(2L) bound of collective's TestQuantErrStat.
func TestPrefillQuantRelErr(t *testing.T) {
	ids := greedyIDs(t)
	ctx := context.Background()
	one := storiesEngine(t, 1)
	r1, err := one.Prefill(ctx, [][]int{ids}, PrefillOptions{Codec: collective.CodecInt8})
	if err != nil {
		t.Fatal(err)
	}
	if r1.QuantRelErrRMS != 0 {
		t.Errorf("tp 1: QuantRelErrRMS = %g, want 0", r1.QuantRelErrRMS)
	}
	four, err := NewEngine(stories(t), EngineConfig{TP: 4, TPU: "v5e", FallbackElems: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer four.Close()
	bound := map[collective.CodecKind]float64{
		collective.CodecF32:  0,
		collective.CodecBF16: 1.0 / 256,
		collective.CodecInt8: math.Sqrt(collective.DefaultBlockSize) / (2 * 127),
		collective.CodecInt4: math.Sqrt(collective.DefaultBlockSize) / (2 * 7),
	}
	got := map[collective.CodecKind]float64{}
	for _, k := range []collective.CodecKind{collective.CodecF32, collective.CodecBF16, collective.CodecInt8, collective.CodecInt4} {
		r, err := four.Prefill(ctx, [][]int{ids}, PrefillOptions{Codec: k})
		if err != nil {
			t.Fatal(err)
		}
		got[k] = r.QuantRelErrRMS
		if k == collective.CodecF32 {
			if r.QuantRelErrRMS != 0 {
				t.Errorf("f32: QuantRelErrRMS = %g, want 0", r.QuantRelErrRMS)
			}
			continue
		}
		if !(r.QuantRelErrRMS > 0 && r.QuantRelErrRMS <= bound[k]) {
			t.Errorf("%s: QuantRelErrRMS = %g, want in (0, %g]", k, r.QuantRelErrRMS, bound[k])
		}
	}
	if !(got[collective.CodecBF16] < got[collective.CodecInt8] && got[collective.CodecInt8] < got[collective.CodecInt4]) {
		t.Errorf("not ordered bf16 < int8 < int4: %v", got)
	}
	t.Logf("relative RMS quantization error, stories260K tp 4, 257 tokens: %v", got)
}
