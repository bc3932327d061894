package collective

import (
	"fmt"
	"testing"

	"github.com/equarx/equarx/tpu"
)

func loadTopoProf(t *testing.T, ts, pn string) (tpu.Topology, tpu.Profile) {
	t.Helper()
	topo, err := tpu.ParseTopology(ts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tpu.LoadProfile(pn)
	if err != nil {
		t.Fatal(err)
	}
	return topo, p
}

// Segmenting lets encoding segment k+1 overlap sending segment k, and
// pipelines segments across ring hops; the simulated time must show it.
func TestSegmentingShowsInSimTime(t *testing.T) {
	for _, ts := range []string{"ring:8", "torus:2x4"} {
		topo, p := loadTopoProf(t, ts, "v5e")
		for _, ck := range []CodecKind{CodecBF16, CodecInt8} {
			whole, err := Estimate(topo, p, 1<<22, Options{Codec: ck, Algorithm: AlgoRing, SegmentElems: -1, FallbackElems: -1})
			if err != nil {
				t.Fatal(err)
			}
			seg, err := Estimate(topo, p, 1<<22, Options{Codec: ck, Algorithm: AlgoRing, FallbackElems: -1})
			if err != nil {
				t.Fatal(err)
			}
			if !(seg.SimSeconds < 0.95*whole.SimSeconds) {
				t.Errorf("%s %s: segmented %g s, unsegmented %g s: no pipelining gain", ts, ck, seg.SimSeconds, whole.SimSeconds)
			}
			if seg.WireBytes != whole.WireBytes {
				t.Errorf("%s %s: segmenting changed the wire bytes %d -> %d", ts, ck, whole.WireBytes, seg.WireBytes)
			}
		}
	}
}

// With the default fallback the quantized codecs are never slower than bf16
// on the cost model, at any size.
func TestFallbackNeverSlower(t *testing.T) {
	if raceEnabled {
		t.Skip("single-goroutine estimator test: runs without -race")
	}
	for _, ts := range []string{"ring:2", "ring:8", "torus:2x4", "torus:4x4"} {
		for _, pn := range []string{"v5e", "v6e"} {
			topo, p := loadTopoProf(t, ts, pn)
			for n := 1; n <= 1<<20; n = n*3 + 1 {
				bf, err := Estimate(topo, p, n, Options{Codec: CodecBF16})
				if err != nil {
					t.Fatal(err)
				}
				for _, ck := range quantKinds {
					q, err := Estimate(topo, p, n, Options{Codec: ck})
					if err != nil {
						t.Fatal(err)
					}
					if q.SimSeconds > bf.SimSeconds {
						t.Errorf("%s %s n=%d: %s (%s) %g s > bf16 %g s", ts, pn, n, ck, q.Codec, q.SimSeconds, bf.SimSeconds)
					}
				}
			}
		}
	}
}

func TestExplicitFallbackThreshold(t *testing.T) {
	topo, p := loadTopoProf(t, "ring:4", "v5e")
	cases := []struct {
		n, thr int
		want   CodecKind
	}{
		{999, 1000, CodecBF16},
		{1000, 1000, CodecInt8},
		{10, -1, CodecInt8},
	}
	for _, c := range cases {
		e, err := Estimate(topo, p, c.n, Options{Codec: CodecInt8, FallbackElems: c.thr})
		if err != nil {
			t.Fatal(err)
		}
		if e.Codec != c.want {
			t.Errorf("n=%d threshold %d: codec %s, want %s", c.n, c.thr, e.Codec, c.want)
		}
	}
}

// Auto picks the fastest candidate.
func TestAutoPicksFastest(t *testing.T) {
	if raceEnabled {
		t.Skip("single-goroutine estimator test: runs without -race")
	}
	for _, ts := range []string{"ring:8", "torus:2x4", "torus:4x4"} {
		topo, p := loadTopoProf(t, ts, "v5e")
		for _, n := range []int{1000, 1 << 16, 1 << 22} {
			auto, err := Estimate(topo, p, n, Options{Codec: CodecInt8, FallbackElems: -1})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range candidates(topo) {
				e, err := Estimate(topo, p, n, Options{Codec: CodecInt8, FallbackElems: -1, Algorithm: a})
				if err != nil {
					t.Fatal(err)
				}
				if e.SimSeconds < auto.SimSeconds {
					t.Errorf("%s n=%d: auto chose %s (%g s) but %s takes %g s", ts, n, auto.Algorithm, auto.SimSeconds, a, e.SimSeconds)
				}
			}
		}
	}
}

func TestEstimateErrors(t *testing.T) {
	ring, p := loadTopoProf(t, "ring:4", "v5e")
	cases := []struct {
		n    int
		opts Options
	}{
		{-1, Options{}},
		{10, Options{Codec: "fp3"}},
		{10, Options{BlockSize: 7}},
		{10, Options{Algorithm: "star"}},
		{10, Options{Algorithm: AlgoTorus2D}}, // not a torus
	}
	for _, c := range cases {
		if _, err := Estimate(ring, p, c.n, c.opts); err == nil {
			t.Errorf("n=%d %+v: no error", c.n, c.opts)
		}
	}
}

// The simulated cost of a bandwidth-bound ring AllReduce approaches the
// closed form 2(N-1)/N * bytes / link bandwidth.
func TestRingMatchesClosedForm(t *testing.T) {
	for _, n := range []int{8} {
		topo, p := loadTopoProf(t, fmt.Sprintf("ring:%d", n), "v5e")
		const elems = 1 << 24
		e, err := Estimate(topo, p, elems, Options{Codec: CodecBF16, Algorithm: AlgoRing})
		if err != nil {
			t.Fatal(err)
		}
		ideal := 2 * float64(n-1) / float64(n) * 2 * elems / p.ICIBytesPerSecPerLinkDir
		if r := e.SimSeconds / ideal; r < 1 || r > 1.05 {
			t.Errorf("ring:%d bf16 16M: %g s, closed form %g s (ratio %.3f)", n, e.SimSeconds, ideal, r)
		}
	}
}

// TestEstimateWireBytesPerCodec: the estimator prices every codec by its
// EncodedLen: on a ring of 8 a rank sends 2*7 chunks of n/8 values, so at
// B = 256 int8 and fp8 cost 1 + 4/256 bytes per value, int6 0.75 + 4/256
// and int4 0.5 + 4/256; fewer wire bytes never make a call slower.
func TestEstimateWireBytesPerCodec(t *testing.T) {
	topo, p := loadTopoProf(t, "ring:8", "v5e")
	const n = 8 * 256 * 64
	perValue := map[CodecKind]float64{CodecF32: 4, CodecBF16: 2, CodecInt8: 1 + 4.0/256,
		CodecFP8: 1 + 4.0/256, CodecInt6: 0.75 + 4.0/256, CodecInt4: 0.5 + 4.0/256}
	sim := map[CodecKind]float64{}
	for _, k := range Codecs() {
		e, err := Estimate(topo, p, n, Options{Codec: k, Algorithm: AlgoRing, FallbackElems: -1})
		if err != nil {
			t.Fatal(err)
		}
		want, ok := perValue[k]
		if !ok {
			t.Fatalf("no expected wire bytes for %s", k)
		}
		if got := float64(e.WireBytes) / (2 * 7 * n / 8); got != want {
			t.Errorf("%s: %g wire bytes per value sent, want %g", k, got, want)
		}
		sim[k] = e.SimSeconds
	}
	if !(sim[CodecInt4] < sim[CodecInt6] && sim[CodecInt6] < sim[CodecInt8] && sim[CodecInt8] == sim[CodecFP8] && sim[CodecInt8] < sim[CodecBF16]) {
		t.Errorf("simulated seconds %v, want int4 < int6 < int8 = fp8 < bf16", sim)
	}
}
