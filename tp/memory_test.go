package tp

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/weights"
)

func memCfgs() []model.Config {
	llama := model.Config{Arch: "llama", Dim: 256, HiddenDim: 688, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 64,
		Vocab: 3001, MaxSeqLen: 512, NormEps: 1e-5, RopeTheta: 1e4, RopeStyle: model.RopeHalf,
		Activation: model.ActSiLU}
	gemma := tinyGemma3()
	gemma.Dim, gemma.HiddenDim, gemma.HeadDim, gemma.Vocab, gemma.MaxSeqLen, gemma.QueryPreAttnScalar = 256, 1024, 64, 5000, 512, 64
	return []model.Config{llama, gemma}
}

// heapAlloc is the live heap after two collections (the second empties the
// pools' victim caches).
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestMemoryEstimateMatchesHeap compares EstimateMemory with the live heap
// of an engine after a prefill (weights: within 10%) and with the bytes a
// prefill of the largest batch allocates (activations, logit chunks and
// collective buffers: the estimate is a peak, so it must not exceed what
// is allocated in all, and it must cover at least half of it).
func TestMemoryEstimateMatchesHeap(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory distorts heap figures")
	}
	const tokens = 384
	for _, cfg := range memCfgs() {
		src, err := weights.Synthetic(cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		seq := make([]int, tokens)
		for i := range seq {
			seq[i] = (i * 7) % cfg.Vocab
		}
		for _, dtype := range []string{"f32", "bf16"} {
			for _, size := range []int{1, 2} {
				est, err := EstimateMemory(cfg, size, dtype, tokens)
				if err != nil {
					t.Fatal(err)
				}
				before := heapAlloc()
				e, err := NewEngine(src, EngineConfig{TP: size, TPU: "v5e", WeightsDType: dtype, BatchInvariant: model.RowInvariant})
				if err != nil {
					t.Fatal(err)
				}
				opts := PrefillOptions{Codec: collective.CodecF32}
				if _, err := e.Prefill(context.Background(), [][]int{seq}, opts); err != nil {
					t.Fatal(err)
				}
				held := int64(heapAlloc() - before)
				prev := debug.SetGCPercent(-1)
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				if _, err := e.Prefill(context.Background(), [][]int{seq}, opts); err != nil {
					t.Fatal(err)
				}
				runtime.ReadMemStats(&m1)
				debug.SetGCPercent(prev)
				alloc := int64(m1.TotalAlloc - m0.TotalAlloc)
				runtime.KeepAlive(e)
				w, work := est.Weights(), est.Working()
				t.Logf("%s %s tp %d: weights estimated %d, held %d (%.3f); batch estimated %d, allocated %d (%.3f)",
					cfg.Arch, dtype, size, w, held, float64(held)/float64(w), work, alloc, float64(work)/float64(alloc))
				if d := held - w; d > w/10 || -d > w/10 {
					t.Errorf("%s %s tp %d: weights estimated %d bytes, the engine holds %d", cfg.Arch, dtype, size, w, held)
				}
				// Without row-invariant kernels a bf16 product allocates
				// its widening block per call: the total is then no
				// measure of the peak.
				if (model.RowInvariant || dtype == "f32") && (work > alloc || 2*work < alloc) {
					t.Errorf("%s %s tp %d: batch estimated %d bytes, a prefill allocates %d", cfg.Arch, dtype, size, work, alloc)
				}
				e.Close()
			}
		}
	}
}
