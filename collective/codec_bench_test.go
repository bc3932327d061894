package collective

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// benchElems values per operation: 256 KiB of float32, which stays in the
// L2 cache, so the figures are kernel speed rather than memory bandwidth.
const benchElems = 1 << 16

func benchInput(n int) []float32 {
	return genEach(heavyTailed)(rand.New(rand.NewPCG(3, 4)), n)
}

// reportElems adds a Gelem/s figure next to the MB/s of b.SetBytes.
func reportElems(b *testing.B, n int) {
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
}

// loopCPU runs f under b.Loop on a locked OS thread and reports, besides the
// wall-clock figures, Gelem/cpu-s: values per second of the thread's own CPU
// time. On a shared machine the wall clock also counts the time the thread
// waited for a CPU; the CPU-time figure does not. It returns that figure (0
// where thread CPU time is not available).
func loopCPU(b *testing.B, n int, f func()) (cpu float64) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.SetBytes(4 * int64(n))
	start, ok := threadCPUTime()
	iters := 0
	for b.Loop() {
		f()
		iters++
	}
	end, ok2 := threadCPUTime()
	reportElems(b, n)
	if ok && ok2 && end > start {
		cpu = float64(n) * float64(iters) / (end - start).Seconds() / 1e9
		b.ReportMetric(cpu, "Gelem/cpu-s")
	}
	return cpu
}

// copySpeed measures copy() of n float32 values for about 100 ms on a
// locked OS thread (after a warm-up copy) and returns its wall-clock and
// CPU-time Gelem/s, the same averages loopCPU reports for a kernel (cpu is 0
// where the thread CPU time is not available).
func copySpeed(n int) (wall, cpu float64) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	src := benchInput(n)
	dst := make([]float32, n)
	copy(dst, src)
	c0, ok := threadCPUTime()
	t0 := time.Now()
	iters := 0
	for ; iters < 64 || time.Since(t0) < 100*time.Millisecond; iters++ {
		copy(dst, src)
	}
	el := time.Since(t0)
	c1, ok2 := threadCPUTime()
	wall = float64(n) * float64(iters) / el.Seconds() / 1e9
	if ok && ok2 && c1 > c0 {
		cpu = float64(n) * float64(iters) / (c1 - c0).Seconds() / 1e9
	}
	return wall, cpu
}

// reportVsCopy adds the copy() speed measured just before in the same
// process (copy-Gelem/s, copy-Gelem/cpu-s) and the kernel's speed as a
// percentage of it, by wall clock (%copy) and by thread CPU time
// (%copy-cpu).
func reportVsCopy(b *testing.B, n int, copyWall, copyCPU, cpu float64) {
	b.ReportMetric(copyWall, "copy-Gelem/s")
	b.ReportMetric(100*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9/copyWall, "%copy")
	if cpu > 0 && copyCPU > 0 {
		b.ReportMetric(copyCPU, "copy-Gelem/cpu-s")
		b.ReportMetric(100*cpu/copyCPU, "%copy-cpu")
	}
}

// BenchmarkCodec measures Encode (quantize), Decode and DecodeAdd
// (dequantize-accumulate) per codec, block size and kernel set (the active
// vector set, then the Go loops, so the two compare in one run) on
// benchElems cache-resident values. SetBytes counts the float32 side (4
// bytes per value), so MB/s compares directly with BenchmarkCodecCopy; each
// group of three first measures copy() of the same bytes and every
// benchmark reports its speed as a percentage of that copy (%copy by wall
// clock, %copy-cpu by thread CPU time).
func BenchmarkCodec(b *testing.B) {
	benchCodecs(b, benchElems, []int{32, 64, 128, 256}, true)
}

// BenchmarkCodecLarge is BenchmarkCodec on 16 Mi values (64 MiB of
// float32, far beyond the caches), at the default block size and on the
// active kernel set only: memory speed rather than kernel speed.
func BenchmarkCodecLarge(b *testing.B) {
	benchCodecs(b, 1<<24, []int{DefaultBlockSize}, false)
}

func benchCodecs(b *testing.B, n int, blockSizes []int, withGo bool) {
	src := benchInput(n)
	for _, kind := range allCodecKinds {
		blocks := blockSizes
		if kind == CodecF32 || kind == CodecBF16 {
			blocks = []int{0}
		}
		for _, block := range blocks {
			c := mustCodec(b, kind, block)
			kc, _ := c.(kernelCodec)
			ks := availableKernels()
			if kc == nil || !withGo {
				ks = ks[:1] // the active set only (f32 has no vector kernels)
			}
			for _, k := range ks {
				wire := make([]byte, c.EncodedLen(len(src)))
				c.Encode(wire, src)
				dst := make([]float32, len(src))
				name := fmt.Sprintf("%s/B=%d", kind, c.BlockSize())
				if kc != nil {
					name += "/" + k.name
				}
				enc, dec, decAdd := c.Encode, c.Decode, c.DecodeAdd
				if kc != nil {
					enc = func(d []byte, s []float32) { kc.encode(k, d, s) }
					dec = func(d []float32, s []byte) { kc.decode(k, d, s) }
					decAdd = func(d []float32, s []byte) { kc.decodeAdd(k, d, s) }
				}
				var cw, cc float64
				b.Run(name+"/Encode", func(b *testing.B) {
					cw, cc = copySpeed(len(src))
					cpu := loopCPU(b, len(src), func() { enc(wire, src) })
					reportVsCopy(b, len(src), cw, cc, cpu)
				})
				b.Run(name+"/Decode", func(b *testing.B) {
					cpu := loopCPU(b, len(src), func() { dec(dst, wire) })
					reportVsCopy(b, len(src), cw, cc, cpu)
				})
				b.Run(name+"/DecodeAdd", func(b *testing.B) {
					clear(dst)
					cpu := loopCPU(b, len(src), func() { decAdd(dst, wire) })
					reportVsCopy(b, len(src), cw, cc, cpu)
				})
			}
		}
	}
}

// BenchmarkCodecCopy is the floor: copy() of the same float32 bytes.
func BenchmarkCodecCopy(b *testing.B) {
	src := benchInput(benchElems)
	dst := make([]float32, len(src))
	loopCPU(b, len(src), func() { copy(dst, src) })
}

// naiveEncodeInt8 is the textbook int8 block quantizer (division, library
// rounding, clamping, no unrolling), benchmarked to show what the tuned
// kernel gains. It ignores NaN/Inf handling.
func naiveEncodeInt8(dst []byte, src []float32, block int) {
	off := 0
	for start := 0; start < len(src); start += block {
		end := min(start+block, len(src))
		var a float32
		for _, v := range src[start:end] {
			a = max(a, float32(math.Abs(float64(v))))
		}
		s := a / 127
		putScale(dst[off:], s)
		off += 4
		for _, v := range src[start:end] {
			q := 0.0
			if s != 0 {
				q = math.RoundToEven(float64(v / s))
			}
			dst[off] = byte(int8(max(-127, min(127, q))))
			off++
		}
	}
}

func naiveDecodeAddInt8(dst []float32, src []byte, block int) {
	off := 0
	for start := 0; start < len(dst); start += block {
		s := getScale(src[off:])
		off += 4
		for i := start; i < min(start+block, len(dst)); i++ {
			dst[i] += float32(int8(src[off])) * s
			off++
		}
	}
}

// BenchmarkCodecNaiveInt8 runs the textbook loops at B = 128 for comparison
// with BenchmarkCodec/int8/B=128.
func BenchmarkCodecNaiveInt8(b *testing.B) {
	const block = 128
	src := benchInput(benchElems)
	c := mustCodec(b, CodecInt8, block)
	wire := make([]byte, c.EncodedLen(len(src)))
	dst := make([]float32, len(src))
	b.Run("Encode", func(b *testing.B) {
		loopCPU(b, len(src), func() { naiveEncodeInt8(wire, src, block) })
	})
	b.Run("DecodeAdd", func(b *testing.B) {
		loopCPU(b, len(src), func() { naiveDecodeAddInt8(dst, wire, block) })
	})
}

// TestNaiveInt8MatchesCodec keeps the benchmark's textbook quantizer honest:
// on this finite input it must produce the same decoded values within one
// code of the codec (it divides where the codec multiplies by a reciprocal).
func TestNaiveInt8MatchesCodec(t *testing.T) {
	const block = 128
	src := benchInput(4099)
	c := mustCodec(t, CodecInt8, block)
	want := make([]byte, c.EncodedLen(len(src)))
	c.Encode(want, src)
	got := make([]byte, len(want))
	naiveEncodeInt8(got, src, block)
	for i := range want {
		if d := int(int8(want[i])) - int(int8(got[i])); i%(block+4) >= 4 && (d < -1 || d > 1) {
			t.Fatalf("byte %d: naive %d, codec %d", i, int8(got[i]), int8(want[i]))
		}
	}
}
