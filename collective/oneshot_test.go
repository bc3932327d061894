package collective

import (
	"fmt"
	"math"
	"testing"
)

// The one-shot schedule computes exactly Decode(Encode(x_0)) +
// Decode(Encode(x_1)) + ... in rank order on every rank (segment by
// segment, each segment encoded on its own), and each rank sends its whole
// encoded buffer to each of the N-1 peers.
func TestOneShotIsRankOrderSumOfDecodedPartials(t *testing.T) {
	for _, ck := range allCodecKinds {
		for _, seg := range []int{256, -1} {
			t.Run(fmt.Sprintf("%s/seg=%d", ck, seg), func(t *testing.T) {
				const size, n, block = 4, 5000, 64
				comms := mustGroup(t, fmt.Sprintf("ring:%d", size))
				in := makeInputs(inHeavy, size, n, 11)
				opts := Options{Codec: ck, BlockSize: block, Algorithm: AlgoOneShot, SegmentElems: seg, FallbackElems: -1}
				out, st, errs := runGroup(t, comms, in, sameOpts(size, opts), nil)
				for r, err := range errs {
					if err != nil {
						t.Fatalf("rank %d: %v", r, err)
					}
				}
				c, err := NewCodec(ck, block)
				if err != nil {
					t.Fatal(err)
				}
				segLen := n
				if seg > 0 {
					segLen = seg
				}
				want := make([]float32, n)
				tmp := make([]float32, n)
				encLen := 0
				for lo := 0; lo < n; lo += segLen {
					hi := min(lo+segLen, n)
					e := make([]byte, c.EncodedLen(hi-lo))
					encLen += len(e)
					for r := 0; r < size; r++ {
						c.Encode(e, in[r][lo:hi])
						c.Decode(tmp[lo:hi], e)
						for i := lo; i < hi; i++ {
							if r == 0 {
								want[i] = tmp[i]
							} else {
								want[i] += tmp[i]
							}
						}
					}
				}
				for r := range out {
					if st[r].Algorithm != AlgoOneShot {
						t.Fatalf("rank %d ran %s", r, st[r].Algorithm)
					}
					if wb := int64((size - 1) * encLen); st[r].WireBytes != wb {
						t.Fatalf("rank %d sent %d bytes, want (N-1) x %d = %d", r, st[r].WireBytes, encLen, wb)
					}
					for i := range want {
						if math.Float32bits(out[r][i]) != math.Float32bits(want[i]) {
							t.Fatalf("rank %d element %d: %v, rank-order sum of decoded partials %v", r, i, out[r][i], want[i])
						}
					}
				}
				checkResult(t, in, out, bound{kind: ck, block: block, size: size, hops: hops(AlgoOneShot, comms[0].mesh.Topology())})
			})
		}
	}
}

// auto never picks oneshot: it is asked for by name.
func TestAutoNeverOneShot(t *testing.T) {
	m := newMesh(t, "ring:4", "v5e")
	for _, n := range []int{1, 1000, 1 << 16, 1 << 22} {
		e, err := Estimate(m.Topology(), m.Profile(), n, Options{Codec: CodecInt8, FallbackElems: -1})
		if err != nil {
			t.Fatal(err)
		}
		if e.Algorithm == AlgoOneShot {
			t.Fatalf("auto chose oneshot for %d values", n)
		}
	}
}
