package server

import (
	"context"
	"fmt"
	"testing"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/weights"
)

// BenchmarkEngineBatch measures what packing buys at the engine: one call
// holding `seqs` sequences of 25 tokens each (the load tool's mean prompt),
// stories260K at tp 4, int8. Tokens/s is CPU wall clock.
func BenchmarkEngineBatch(b *testing.B) {
	src, err := weights.ReadLlama2C(assets.Stories260K())
	if err != nil {
		b.Fatal(err)
	}
	eng, err := tp.NewEngine(src, tp.EngineConfig{TP: 4, TPU: "v5e"})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	seq := make([]int, 25)
	for i := range seq {
		seq[i] = 1 + (i*37)%500
	}
	for _, n := range []int{1, 4, 16, 32} {
		b.Run(fmt.Sprintf("seqs=%d", n), func(b *testing.B) {
			batch := make([][]int, n)
			for i := range batch {
				batch[i] = seq
			}
			opts := tp.PrefillOptions{Codec: collective.CodecInt8, TopK: 1}
			for b.Loop() {
				if _, err := eng.Prefill(context.Background(), batch, opts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*len(seq)*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
