package collective

import (
	"fmt"
	"testing"
)

// The replay runs exactly the rank's local steps: on ring:4 a rank encodes
// n values (3 reduce-scatter chunks of n/4 and its reduced chunk) and
// decodes 7n/4 (3 chunks added, 3 gathered, its own once); with oneshot it
// encodes n and decodes 4n (every partial, its own included).
func TestReplayLocalWorkCounts(t *testing.T) {
	m := newMesh(t, "ring:4", "v5e")
	const n = 4 * 4096
	in := makeInputs(inNormal, 4, n, 5)
	for _, tc := range []struct {
		algo     Algorithm
		enc, dec int64
	}{{AlgoRing, n, 7 * n / 4}, {AlgoOneShot, n, 4 * n}} {
		for _, ck := range []CodecKind{CodecBF16, CodecInt8} {
			t.Run(fmt.Sprintf("%s/%s", tc.algo, ck), func(t *testing.T) {
				for r := 0; r < 4; r++ {
					before := append([]float32(nil), in[r]...)
					w, err := ReplayLocalWork(m.Topology(), m.Profile(), r, in[r], Options{Codec: ck, Algorithm: tc.algo, SegmentElems: 1024, FallbackElems: -1})
					if err != nil {
						t.Fatal(err)
					}
					if w.EncodedValues != tc.enc || w.DecodedValues != tc.dec {
						t.Fatalf("rank %d: encoded %d, decoded %d values; want %d, %d", r, w.EncodedValues, w.DecodedValues, tc.enc, tc.dec)
					}
					if w.EncodeSeconds <= 0 || w.DecodeSeconds <= 0 || w.CRCSeconds <= 0 {
						t.Fatalf("rank %d: a step was not timed: %+v", r, w)
					}
					for i := range before {
						if before[i] != in[r][i] {
							t.Fatalf("rank %d: the replay changed the caller's buffer at %d", r, i)
						}
					}
				}
			})
		}
	}
}
