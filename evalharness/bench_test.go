package evalharness

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// BenchmarkKLRows measures the full-row KL that runs at every scored
// position of every compared pair (bytes = both rows).
func BenchmarkKLRows(b *testing.B) {
	m := &fakeModel{vocab: 512}
	p := m.row([]int{3, 7}, 0)
	q := m.row([]int{3, 7}, 0.1)
	b.SetBytes(int64(8 * len(p)))
	for b.Loop() {
		KLRows(p, q)
	}
}

// BenchmarkCollapseTop measures keying top-20 lists by wire text.
func BenchmarkCollapseTop(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	ids := make([]int, 20)
	lps := make([]float32, 20)
	for i := range ids {
		ids[i], lps[i] = rng.IntN(512), -rng.Float32()*5
	}
	for b.Loop() {
		CollapseTop(ids, lps, strconv.Itoa)
	}
}
