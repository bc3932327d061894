package tp

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/kernels"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/weights"
)

// peak is this machine's fp32 FMA peak, measured once per process with the
// kernels package's asm loop: on all the GEMM pool's threads (FLOP per wall
// second) and on one core (FLOP per CPU-second).
var peak = sync.OnceValue(func() (p struct{ all, perCPU float64 }) {
	p.all = kernels.PeakFLOPS(kernels.Threads())
	for range 5 {
		cpu0 := cpuTime()
		f := kernels.FMALoop(1)
		if c := (cpuTime() - cpu0).Seconds(); c > 0 {
			p.perCPU = max(p.perCPU, f/c)
		}
	}
	return p
})

// modelFLOPs counts the FLOPs of one prefill of sequences of the given
// lengths at tp 1: every weight matmul, 4·head_dim per causal (query, key,
// head) pair within the sliding window if any, and the LM head.
func modelFLOPs(cfg model.Config, lens []int) float64 {
	var n, pairs float64
	for l := 0; l < cfg.Layers; l++ {
		for _, L := range lens {
			for t := 0; t < L; t++ {
				span := t + 1
				if !cfg.IsGlobalLayer(l) && span > cfg.SlidingWindow {
					span = cfg.SlidingWindow
				}
				pairs += float64(span)
			}
		}
	}
	for _, L := range lens {
		n += float64(L)
	}
	d, h := float64(cfg.Dim), float64(cfg.HiddenDim)
	q, kv := float64(cfg.Heads*cfg.HeadDim), float64(cfg.KVHeads*cfg.HeadDim)
	perLayer := 2 * n * (d*q + 2*d*kv + q*d + 3*d*h)
	return float64(cfg.Layers)*perLayer + pairs*4*float64(cfg.HeadDim*cfg.Heads) + 2*n*d*float64(cfg.Vocab)
}

// llama100M is a synthetic Llama of about 110M parameters (GPT-2-small
// widths with a Llama MLP and a 32000-token vocabulary).
func llama100M() model.Config {
	return model.Config{Arch: "llama", Name: "llama-110m-synthetic", Dim: 768, HiddenDim: 2048, Layers: 12,
		Heads: 12, KVHeads: 12, HeadDim: 64, Vocab: 32000, MaxSeqLen: 1024, NormEps: 1e-5,
		RopeTheta: 10000, RopeStyle: model.RopeHalf, Activation: model.ActSiLU, TiedEmbeddings: true}
}

func benchPrefill(b *testing.B, src weights.Source, size int, seq []int) {
	benchPrefillDType(b, src, size, "", seq)
}

func benchPrefillDType(b *testing.B, src weights.Source, size int, dtype string, seq []int) {
	e, err := NewEngine(src, EngineConfig{TP: size, TPU: "v5e", WeightsDType: dtype})
	if err != nil {
		b.Fatal(err)
	}
	cfg := e.Config()
	flops := modelFLOPs(cfg, []int{len(seq)})
	opts := PrefillOptions{Codec: collective.CodecInt8}
	// One untimed prefill packs the weights (done once per engine).
	if _, err := e.Prefill(context.Background(), [][]int{seq}, opts); err != nil {
		b.Fatal(err)
	}
	pk := peak()
	var sim float64
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		res, err := e.Prefill(context.Background(), [][]int{seq}, opts)
		if err != nil {
			b.Fatal(err)
		}
		sim = res.SimSeconds
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	cpu := (cpuTime() - cpu0).Seconds() / float64(b.N)
	b.ReportMetric(float64(len(seq))/sec, "tok/s")
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
	if pk.all > 0 {
		b.ReportMetric(100*flops/sec/pk.all, "%peak")
	}
	if cpu > 0 {
		b.ReportMetric(float64(len(seq))/cpu, "tok/cpu-s")
		if pk.perCPU > 0 {
			b.ReportMetric(100*flops/cpu/pk.perCPU, "%peak-cpu")
		}
	}
	b.ReportMetric(sim*1e6, "sim-us/op")
}

func tokens512(vocab int) []int {
	seq := make([]int, 512)
	seq[0] = 1
	for i := 1; i < len(seq); i++ {
		seq[i] = (i*7919 + 13) % vocab
	}
	return seq
}

// BenchmarkPrefillStories: one 512-token prefill of stories260K (the
// greedy sample continued), int8 AllReduce, v5e ring. GFLOP/s counts the
// model FLOPs (modelFLOPs) per wall second; %peak (the MFU) is against the
// FMA peak measured on all cores in the same process; tok/cpu-s and
// %peak-cpu use CPU time instead (FLOPs per CPU-second against the one-core
// peak), which holds up when other processes share the machine.
func BenchmarkPrefillStories(b *testing.B) {
	ids := greedyIDs(b)
	seq := append(append([]int(nil), ids...), ids[1:256]...)
	for _, size := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("tp=%d/blas=%s", size, model.BLAS), func(b *testing.B) {
			benchPrefill(b, stories(b), size, seq)
		})
	}
}

// BenchmarkPrefillLlama110M: one 512-token prefill of a synthetic
// 110M-parameter Llama.
func BenchmarkPrefillLlama110M(b *testing.B) {
	cfg := llama100M()
	syn, err := weights.Synthetic(cfg, 3)
	if err != nil {
		b.Fatal(err)
	}
	src := &cachedSource{Source: syn, m: map[string]*weights.Tensor{}}
	for _, size := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("tp=%d/blas=%s", size, model.BLAS), func(b *testing.B) {
			benchPrefill(b, src, size, tokens512(cfg.Vocab))
		})
	}
}

// BenchmarkPrefillWeightsDType: the 512-token prefill of the synthetic
// 110M-parameter Llama at tp 1 with f32 and with bf16 weights (which the
// kernels widen per K block): what holding half the bytes costs in speed.
func BenchmarkPrefillWeightsDType(b *testing.B) {
	cfg := llama100M()
	src, err := weights.Synthetic(cfg, 3)
	if err != nil {
		b.Fatal(err)
	}
	for _, dtype := range []string{"f32", "bf16"} {
		b.Run("dtype="+dtype, func(b *testing.B) {
			benchPrefillDType(b, src, 1, dtype, tokens512(cfg.Vocab))
		})
	}
}
