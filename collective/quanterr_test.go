package collective

import (
	"math"
	"testing"
)

// The quantization-error statistic: zero for the exact codec, within the
// provable bound for the others. For a block of B values with absmax a,
// every value moves by at most a/(2L) (L = 127, 31 or 7; fp8: a/28), and
// a^2 <= the sum of the block's squares, so sum(err^2) <= B/(2L)^2 *
// sum(x^2): the relative RMS error is at most sqrt(B)/(2L). bf16 moves
// every value by at most 2^-8 relative.
func TestQuantErrStat(t *testing.T) {
	const n, size = 20000, 4
	in := makeInputs(inNormal, size, n, 7)
	rel := map[CodecKind]float64{}
	for _, k := range allCodecKinds {
		comms, err := NewGroup(newMesh(t, "ring:4", "v5e"))
		if err != nil {
			t.Fatal(err)
		}
		_, stats, errs := runGroup(t, comms, in, sameOpts(size, Options{Codec: k, FallbackElems: -1, Algorithm: AlgoRing}), nil)
		var errSq, refSq float64
		for r := range stats {
			if errs[r] != nil {
				t.Fatalf("%s rank %d: %v", k, r, errs[r])
			}
			errSq += stats[r].QuantErrSq
			refSq += stats[r].QuantRefSq
		}
		if k == CodecF32 {
			if errSq != 0 || refSq != 0 {
				t.Errorf("f32: QuantErrSq %g, QuantRefSq %g, want 0, 0", errSq, refSq)
			}
			continue
		}
		if !(refSq > 0 && errSq > 0) {
			t.Fatalf("%s: QuantErrSq %g, QuantRefSq %g, want both > 0", k, errSq, refSq)
		}
		rel[k] = math.Sqrt(errSq / refSq)
		var bound float64
		switch k {
		case CodecBF16:
			bound = 1.0 / 256
		case CodecInt8:
			bound = math.Sqrt(DefaultBlockSize) / (2 * 127)
		case CodecInt4:
			bound = math.Sqrt(DefaultBlockSize) / (2 * 7)
		case CodecInt6:
			bound = math.Sqrt(DefaultBlockSize) / (2 * 31)
		case CodecFP8:
			bound = math.Sqrt(DefaultBlockSize) / 28
		}
		if rel[k] > bound {
			t.Errorf("%s: relative RMS quantization error %g exceeds the bound %g", k, rel[k], bound)
		}
	}
	if !(rel[CodecBF16] < rel[CodecInt8] && rel[CodecInt8] < rel[CodecInt6] && rel[CodecInt6] < rel[CodecInt4] &&
		rel[CodecInt8] < rel[CodecFP8] && rel[CodecFP8] < rel[CodecInt4]) {
		t.Errorf("relative errors not ordered bf16 < int8 < int6 < int4 and int8 < fp8 < int4: %v", rel)
	}
	t.Logf("relative RMS quantization error of the all-gather: %v", rel)
}
