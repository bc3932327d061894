package collective

import (
	"math"
	"testing"

	"github.com/equarx/equarx/tpu"
)

// TestEstimateAllGather checks the all-gather price against closed forms:
// on a ring of N with wraparound each of the N-1 steps moves one shard per
// link, so a unidirectional ring takes (N-1)·(shard/rate + hop latency);
// the bidirectional ring sends half a shard each way, about half the
// bandwidth term, and auto reports the faster. One rank costs nothing.
func TestEstimateAllGather(t *testing.T) {
	p, err := tpu.LoadProfile("v5e")
	if err != nil {
		t.Fatal(err)
	}
	rate, hop := p.ICIBytesPerSecPerLinkDir, p.HopLatencySeconds
	for _, n := range []int{4, 8} {
		topo, err := tpu.ParseTopology("ring:" + string(rune('0'+n)))
		if err != nil {
			t.Fatal(err)
		}
		elems := n * (1 << 20)
		shard := float64(elems/n) * 2
		got, err := EstimateAllGather(topo, p, elems)
		if err != nil {
			t.Fatal(err)
		}
		if got.Algorithm != AlgoBiRing {
			t.Errorf("ring:%d: %s, want biring for a large gather", n, got.Algorithm)
		}
		want := float64(n-1) * (shard/2/rate + hop)
		if math.Abs(got.SimSeconds-want)/want > 0.01 {
			t.Errorf("ring:%d: %.6g s, want %.6g s", n, got.SimSeconds, want)
		}
	}
	one, err := EstimateAllGather(tpu.Topology{Kind: tpu.KindRing, X: 1, Y: 1}, p, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if one.SimSeconds != 0 {
		t.Errorf("one rank: %g s", one.SimSeconds)
	}
	if _, err := EstimateAllGather(tpu.Topology{Kind: tpu.KindRing, X: 4, Y: 1}, p, -1); err == nil {
		t.Error("negative length accepted")
	}
}
