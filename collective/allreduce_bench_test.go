package collective

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// BenchmarkAllReduce measures the CPU wall time of the emulated AllReduce
// (all ranks as goroutines on this machine). SetBytes is one rank's float32
// payload, so MB/s is the rate at which each rank's buffer is reduced. The
// simulated TPU time of one call (v5e profile) is reported as sim-us/op.
func BenchmarkAllReduce(b *testing.B) {
	for _, ts := range []string{"ring:8", "torus:2x4"} {
		for _, n := range []int{1 << 12, 1 << 16, 1 << 20} {
			for _, ck := range []CodecKind{CodecF32, CodecBF16, CodecInt8, CodecInt4} {
				b.Run(fmt.Sprintf("%s/n=%d/%s", ts, n, ck), func(b *testing.B) {
					m := newMesh(b, ts, "v5e")
					comms, err := NewGroup(m)
					if err != nil {
						b.Fatal(err)
					}
					size := m.Size()
					in := makeInputs(inNormal, size, n, 1)
					bufs := make([][]float32, size)
					for r := range bufs {
						bufs[r] = make([]float32, n)
					}
					opts := Options{Codec: ck, FallbackElems: -1}
					errs := make([]error, size)
					stats := make([]Stats, size)
					b.SetBytes(int64(4 * n))
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						b.StopTimer()
						for r := range bufs {
							copy(bufs[r], in[r])
						}
						b.StartTimer()
						var wg sync.WaitGroup
						for r := range comms {
							wg.Add(1)
							go func() {
								defer wg.Done()
								stats[r], errs[r] = comms[r].AllReduce(context.Background(), bufs[r], opts)
							}()
						}
						wg.Wait()
						for _, err := range errs {
							if err != nil {
								b.Fatal(err)
							}
						}
					}
					sim := 0.0
					for _, s := range stats {
						sim = max(sim, s.SimSeconds)
					}
					b.ReportMetric(sim*1e6, "sim-us/op")
					b.ReportMetric(float64(stats[0].WireBytes), "wire-B/rank")
				})
			}
		}
	}
}
