package collective

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// TestCodecTable prints the error-versus-wire-bytes table of docs/CODECS.md.
// It runs only when EQUARX_CODEC_TABLE=1:
//
//	EQUARX_CODEC_TABLE=1 go test ./collective -run TestCodecTable -v
func TestCodecTable(t *testing.T) {
	if os.Getenv("EQUARX_CODEC_TABLE") != "1" {
		t.Skip("set EQUARX_CODEC_TABLE=1 to print the codec table")
	}
	const n = 1 << 20
	r := rand.New(rand.NewPCG(2026, 11))
	normal := genEach(func(r *rand.Rand, _ int) float32 { return float32(r.NormFloat64()) })(r, n)
	heavy := genEach(heavyTailed)(r, n)

	fmt.Printf("n = %d values per distribution; normal = N(0,1); heavy = N(0,1) with each value x1000 with probability 1/512\n", n)
	fmt.Printf("speed: best of 3 runs of testing.Benchmark on %d values, in values per second of the thread's CPU time; encode = quantize, decode-add = dequantize-accumulate; kernel set %q\n\n", benchElems, CodecKernel())
	fmt.Println("| codec | B | wire bytes/value | ratio vs bf16 | normal: RMS rel err | normal: max err / absmax | heavy: RMS rel err | heavy: max err / absmax | heavy: bulk RMS rel err | encode Gelem/cpu-s | decode-add Gelem/cpu-s |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	row := func(c Codec) {
		bpv := float64(c.EncodedLen(n)) / n
		rmsN, maxN, _ := codecErrStats(c, normal)
		rmsH, maxH, bulkH := codecErrStats(c, heavy)
		enc, dec := codecSpeed(c)
		fmt.Printf("| %s | %d | %.4f | %.3f | %.3e | %.4f | %.3e | %.4f | %.3e | %.2f | %.2f |\n",
			c.Kind(), c.BlockSize(), bpv, 2/bpv, rmsN, maxN, rmsH, maxH, bulkH, enc, dec)
	}
	row(mustCodec(t, CodecBF16, 0))
	for _, kind := range []CodecKind{CodecInt8, CodecFP8, CodecInt6, CodecInt4} {
		for _, b := range []int{16, 32, 64, 128, 256, 512, 1024} {
			row(mustCodec(t, kind, b))
		}
	}
}

// codecErrStats returns the RMS relative error sqrt(sum (x-y)^2 / sum x^2),
// the largest |x-y| divided by the absmax of x's block (for f32/bf16, a
// block of B = 1 is the value itself), and the RMS relative error over the
// bulk, the values with |x| < 50 (every value but the outliers), all in
// float64.
func codecErrStats(c Codec, src []float32) (rms, maxRel, bulk float64) {
	wire := make([]byte, c.EncodedLen(len(src)))
	c.Encode(wire, src)
	got := make([]float32, len(src))
	c.Decode(got, wire)
	var se, sx, seBulk, sxBulk float64
	b := c.BlockSize()
	for start := 0; start < len(src); start += b {
		end := min(start+b, len(src))
		a := 0.0
		for _, v := range src[start:end] {
			a = max(a, math.Abs(float64(v)))
		}
		for i := start; i < end; i++ {
			e := float64(src[i]) - float64(got[i])
			se += e * e
			sx += float64(src[i]) * float64(src[i])
			if math.Abs(float64(src[i])) < 50 {
				seBulk += e * e
				sxBulk += float64(src[i]) * float64(src[i])
			}
			if a > 0 {
				maxRel = max(maxRel, math.Abs(e)/a)
			}
		}
	}
	return math.Sqrt(se / sx), maxRel, math.Sqrt(seBulk / sxBulk)
}

// codecSpeed returns the best-of-3 Encode and DecodeAdd speeds in values
// per second of CPU time (see loopCPU), in Gelem/s.
func codecSpeed(c Codec) (enc, dec float64) {
	src := benchInput(benchElems)
	wire := make([]byte, c.EncodedLen(len(src)))
	dst := make([]float32, len(src))
	c.Encode(wire, src)
	for range 3 {
		enc = max(enc, testing.Benchmark(func(b *testing.B) {
			loopCPU(b, len(src), func() { c.Encode(wire, src) })
		}).Extra["Gelem/cpu-s"])
		dec = max(dec, testing.Benchmark(func(b *testing.B) {
			loopCPU(b, len(src), func() { c.DecodeAdd(dst, wire) })
		}).Extra["Gelem/cpu-s"])
	}
	return enc, dec
}
