package collective

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
)

// The vector kernels must give bitwise the wire bytes and decoded values of
// the plain Go loops (goKernels), which codec_test.go checks against the
// straightforward reference. These tests run every kernel set the machine
// can run against goKernels.

// vectorKernels returns the kernel sets other than goKernels that this
// machine runs.
func vectorKernels() []*codecKernels {
	var ks []*codecKernels
	for _, k := range availableKernels() {
		if k != goKernels {
			ks = append(ks, k)
		}
	}
	return ks
}

// cpuinfoFlags returns the CPU flags of /proc/cpuinfo, or nil where there is
// none. It is an independent check on what golang.org/x/sys/cpu reports.
func cpuinfoFlags() map[string]bool {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		if name, val, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "flags" {
			m := map[string]bool{}
			for _, f := range strings.Fields(val) {
				m[f] = true
			}
			return m
		}
	}
	return nil
}

// TestCodecKernelSelected checks that the codecs run the fastest kernel set
// the CPU supports: on a Linux amd64 machine whose /proc/cpuinfo lists
// avx512f, avx512bw and avx512vl that is "avx512", with avx2 (and no
// AVX-512) "avx2"; built with -tags purego or on other architectures "go".
func TestCodecKernelSelected(t *testing.T) {
	got := CodecKernel()
	t.Logf("codec kernel: %s", got)
	if got != activeKernels.name || availableKernels()[0] != activeKernels {
		t.Fatalf("CodecKernel() = %q, active set %q, first available %q", got, activeKernels.name, availableKernels()[0].name)
	}
	if runtime.GOARCH != "amd64" || purego {
		if got != "go" {
			t.Fatalf("CodecKernel() = %q on %s (purego %v), want go", got, runtime.GOARCH, purego)
		}
		return
	}
	flags := cpuinfoFlags()
	if flags == nil {
		t.Skip("no /proc/cpuinfo to compare with")
	}
	want := "go"
	switch {
	case flags["avx512f"] && flags["avx512bw"] && flags["avx512vl"]:
		want = "avx512"
	case flags["avx2"] && wantAVX2Kernels:
		want = "avx2"
	}
	if got != want {
		t.Fatalf("CodecKernel() = %q, want %q for the CPU flags in /proc/cpuinfo", got, want)
	}
}

// kernelBlockSizes are the block sizes the differential tests sweep: every
// multiple of 8 up to 272 (so every remainder modulo 16, 32 and 64 a kernel
// loop can see, and both parities of block/8), some larger ones and the
// largest allowed; a few of them under the race detector.
func kernelBlockSizes() []int {
	if raceEnabled {
		return []int{8, 16, 24, 40, 64, 256, 1000} // numerics need no race detector
	}
	var bs []int
	for b := MinBlockSize; b <= 272; b += BlockSizeMultiple {
		bs = append(bs, b)
	}
	return append(bs, 1000, 1024, 4104, MaxBlockSize)
}

// adversarialBlock fills x with one of several kinds of awkward block,
// chosen by mode: ordinary values at a random magnitude from 1e-30 to 1e30,
// exact rounding ties, values at the code limits, signed zeros, denormals,
// values just around the 2^-64 pre-scale threshold, ±MaxFloat32, NaN, ±Inf
// and mixtures.
func adversarialBlock(r *rand.Rand, x []float32, mode int) {
	mag := float32(math.Pow(10, -30+60*r.Float64()))
	for i := range x {
		var v float32
		switch mode {
		case 0: // ordinary, random magnitude
			v = float32(r.NormFloat64()) * mag
		case 1: // ties: absmax 127 (or 7) makes r exactly 1 (int8) and x*r = k+0.5
			v = float32(r.IntN(254)-127) + 0.5
			if i == 0 {
				v = 127
			}
		case 2: // ties for int4: absmax 7
			v = float32(r.IntN(14)-7) + 0.5
			if i == 0 {
				v = -7
			}
		case 3: // codes at the limits: many values equal to ±absmax
			v = mag
			if r.IntN(2) == 0 {
				v = -mag
			}
			if r.IntN(4) == 0 {
				v = mag * float32(r.Float64())
			}
		case 4: // all zero, some negative
			v = 0
			if r.IntN(2) == 0 {
				v = float32(math.Copysign(0, -1))
			}
		case 5: // denormals only (absmax < 2^-64: pre-scaled, or scale 0)
			v = math.Float32frombits(uint32(r.IntN(1 << 23)))
			if r.IntN(2) == 0 {
				v = -v
			}
		case 6: // around the 2^-64 threshold
			v = math.Float32frombits(tinyAbsMaxBits + uint32(r.IntN(5)) - 2)
			if r.IntN(3) == 0 {
				v = float32(r.NormFloat64()) * 0x1p-66
			}
		case 7: // around MaxFloat32
			v = math.Float32frombits(maxFloatBits - uint32(r.IntN(3)))
			if r.IntN(2) == 0 {
				v = -v
			}
		case 8: // a NaN somewhere (random payload and sign)
			v = float32(r.NormFloat64())
			if i == len(x)/2 || r.IntN(50) == 0 {
				v = math.Float32frombits(0x7f800001 + uint32(r.IntN(1<<23-1)) | uint32(r.IntN(2))<<31)
			}
		case 9: // ±Inf among finite values
			v = float32(r.NormFloat64()) * mag
			if i == len(x)-1 || r.IntN(20) == 0 {
				v = float32(math.Inf(1 - 2*r.IntN(2)))
			}
		case 10: // wild bit patterns, mostly finite
			v = math.Float32frombits(r.Uint32())
			if math.IsNaN(float64(v)) && r.IntN(8) != 0 {
				v = 1
			}
		default: // small and huge mixed: denormals next to 1e30
			v = float32(r.NormFloat64()) * 1e30
			if r.IntN(2) == 0 {
				v = math.Float32frombits(uint32(r.IntN(1 << 23)))
			}
		}
		x[i] = v
	}
}

// adversarialInput returns n values made of blocks of block values, each of
// a random kind, so special blocks sit between ordinary ones; 1 in rare
// blocks is special (the others ordinary), or about 2 in 3 when rare is 0.
func adversarialInput(r *rand.Rand, n, block, rare int) []float32 {
	x := make([]float32, n)
	for start := 0; start < n; start += block {
		mode := r.IntN(16)
		if mode > 11 || rare > 0 && r.IntN(rare) != 0 {
			mode = 0
		}
		adversarialBlock(r, x[start:min(start+block, n)], mode)
	}
	return x
}

// randomWire returns n bytes: random scales and codes (including the int8
// code -128, the int4 code -8, the int6 code -32 and the fp8 NaN bytes,
// which no encoder writes) where each block's scale is sometimes NaN, ±Inf,
// 0 or a denormal.
func randomWire(r *rand.Rand, c Codec, n int) []byte {
	w := make([]byte, c.EncodedLen(n))
	for i := range w {
		w[i] = byte(r.Uint32())
	}
	if !c.Kind().Quantized() {
		return w
	}
	for start := 0; start < n; start += c.BlockSize() {
		off := c.EncodedLen(start)
		switch r.IntN(8) {
		case 0:
			putScale(w[off:], float32(math.NaN()))
		case 1:
			putScale(w[off:], float32(math.Inf(1-2*r.IntN(2))))
		case 2:
			putScale(w[off:], 0)
		case 3:
			putScale(w[off:], math.Float32frombits(uint32(r.IntN(1<<23))))
		case 4, 5, 6:
			putScale(w[off:], float32(r.NormFloat64()))
		}
	}
	return w
}

// randomAcc returns n accumulator values, some NaN, ±Inf and -0.
func randomAcc(r *rand.Rand, n int) []float32 {
	a := make([]float32, n)
	for i := range a {
		switch r.IntN(16) {
		case 0:
			a[i] = math.Float32frombits(0x7fc00000 | r.Uint32()&0x803fffff)
		case 1:
			a[i] = float32(math.Inf(1 - 2*r.IntN(2)))
		case 2:
			a[i] = float32(math.Copysign(0, -1))
		default:
			a[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(20)-10)))
		}
	}
	return a
}

// addDiff compares DecodeAdd results bit for bit, except that where the
// accumulator and the decoded value were both NaN either NaN may come out
// (the payload then depends on the operand order of the add, which the Go
// compiler picks).
func addDiff(want, got, acc, dec []float32) string {
	w := append([]float32(nil), want...)
	for i := range w {
		if math.IsNaN(float64(acc[i])) && math.IsNaN(float64(dec[i])) && math.IsNaN(float64(got[i])) {
			w[i] = got[i]
		}
	}
	return bitsDiff(w, got)
}

// kernelCodec is one codec whose operations can run on a given kernel set.
type kernelCodec interface {
	Codec
	encode(k *codecKernels, dst []byte, src []float32)
	decode(k *codecKernels, dst []float32, src []byte)
	decodeAdd(k *codecKernels, dst []float32, src []byte)
}

// checkKernel runs k and goKernels on the same src (and on a random wire)
// and reports the first difference. The buffers k sees are followed by
// guard values (ordinary floats after src, so an encoder that ran on would
// quantize them; marker bytes and values after its outputs), which must
// stay untouched.
func checkKernel(t testing.TB, k *codecKernels, c kernelCodec, src []float32, wire2 []byte, acc []float32) {
	t.Helper()
	n := len(src)
	guard := 4096 + 2*c.BlockSize()
	name := fmt.Sprintf("%s on %s B=%d n=%d", k.name, c.Kind(), c.BlockSize(), n)
	srcG := make([]float32, n+guard)
	copy(srcG, src)
	for i := n; i < len(srcG); i++ {
		srcG[i] = 1 + float32(i%7)
	}
	src = srcG[:n:n]
	enc := c.EncodedLen(n)
	want := make([]byte, enc)
	gotG := make([]byte, enc+guard)
	for i := range gotG {
		gotG[i] = 0xa5 // every byte must be written, and none after
	}
	got := gotG[:enc:enc]
	c.encode(goKernels, want, src)
	c.encode(k, got, src)
	if d := bytesDiff(want, got); d != "" {
		t.Fatalf("%s: Encode differs from the Go loop: %s", name, d)
	}
	checkGuard := func(op string, b []byte, f []float32) {
		t.Helper()
		for i, v := range b {
			if v != 0xa5 {
				t.Fatalf("%s: %s wrote byte %d past the end of its output", name, op, i)
			}
		}
		for i, v := range f {
			if math.Float32bits(v) != 0x7fa5a5a5 {
				t.Fatalf("%s: %s wrote value %d past the end of its output", name, op, i)
			}
		}
	}
	checkGuard("Encode", gotG[enc:], nil)
	outG := make([]float32, n+guard)
	for _, w := range [][]byte{want, wire2} {
		for i := range outG {
			outG[i] = math.Float32frombits(0x7fa5a5a5)
		}
		dw, dg := make([]float32, n), outG[:n:n]
		c.decode(goKernels, dw, w)
		c.decode(k, dg, w)
		if d := bitsDiff(dw, dg); d != "" {
			t.Fatalf("%s: Decode differs from the Go loop: %s", name, d)
		}
		checkGuard("Decode", nil, outG[n:])
		aw, ag := append([]float32(nil), acc...), outG[:n:n]
		copy(ag, acc)
		c.decodeAdd(goKernels, aw, w)
		c.decodeAdd(k, ag, w)
		if d := addDiff(aw, ag, acc, dw); d != "" {
			t.Fatalf("%s: DecodeAdd differs from the Go loop: %s", name, d)
		}
		checkGuard("DecodeAdd", nil, outG[n:])
	}
}

func asKernelCodec(t testing.TB, kind CodecKind, block int) kernelCodec {
	t.Helper()
	c, ok := mustCodec(t, kind, block).(kernelCodec)
	if !ok {
		t.Fatalf("%s codec has no kernel entry points", kind)
	}
	return c
}

// TestCodecKernelsMatchGo compares every vector kernel set with the Go
// loops on adversarial inputs: for int8 and int4 every block size in
// kernelBlockSizes and lengths around multiples of the block, of 16, 32 and
// 64; for bf16 every length up to 130 and some long ones, on random bit
// patterns (every NaN payload, ties of the rounding, denormals, Inf). The
// inputs start at several offsets, so the kernels see unaligned addresses.
func TestCodecKernelsMatchGo(t *testing.T) {
	ks := vectorKernels()
	if len(ks) == 0 {
		t.Skipf("no vector kernels on this machine (CodecKernel %q)", CodecKernel())
	}
	for _, k := range ks {
		for _, kind := range []CodecKind{CodecInt8, CodecInt4} {
			t.Run(k.name+"/"+string(kind), func(t *testing.T) {
				for _, block := range kernelBlockSizes() {
					c := asKernelCodec(t, kind, block)
					r := rand.New(rand.NewPCG(uint64(block), 7))
					lengths := []int{0, 1, block - 1, block, block + 1, 2*block + 7, 3*block + 16, 5*block + 33}
					if block <= 64 {
						lengths = append(lengths, 24*block, 40*block+63)
					}
					if block == MaxBlockSize {
						lengths = []int{block - 1, block, block + 9}
					}
					for _, n := range lengths {
						for _, shift := range []int{0, 1, 3} {
							buf := adversarialInput(r, n+shift, block, 0)
							checkKernel(t, k, c, buf[shift:], randomWire(r, c, n), randomAcc(r, n))
						}
					}
					// Long inputs, mostly ordinary blocks: the encoders work
					// in chunks of up to 4096 values, which these cross.
					if !raceEnabled && block < MaxBlockSize {
						n := 3*4096 + 2*block + 8
						buf := adversarialInput(r, n, block, 40)
						checkKernel(t, k, c, buf, randomWire(r, c, n), randomAcc(r, n))
					}
				}
			})
		}
		t.Run(k.name+"/bf16", func(t *testing.T) {
			c := asKernelCodec(t, CodecBF16, 0)
			r := rand.New(rand.NewPCG(16, 16))
			lengths := []int{1000, 4099, 65536 + 15}
			for n := 0; n <= 130; n++ {
				lengths = append(lengths, n)
			}
			for _, n := range lengths {
				for _, shift := range []int{0, 1} {
					buf := make([]float32, n+shift)
					for i := range buf {
						b := r.Uint32()
						switch r.IntN(6) {
						case 0: // a rounding tie
							b = b&^0xffff | 0x8000
						case 1: // near Inf, or a NaN
							b = b&0x80000000 | 0x7f7f0000 | b&0x1ffff
						case 2: // ±Inf, a NaN with a tiny payload, ±MaxFloat32, ±0
							b = b&0x80000000 | []uint32{0x7f800000, 0x7f800001, 0x7f7fffff, 0x7f7f8000, 0}[r.IntN(5)]
						}
						buf[i] = math.Float32frombits(b)
					}
					checkKernel(t, k, c, buf[shift:], randomWire(r, c, n), randomAcc(r, n))
				}
			}
		})
	}
}

// FuzzCodecKernels compares every vector kernel set with the Go loops on
// arbitrary float32 input, and on the same bytes read as wire data.
func FuzzCodecKernels(f *testing.F) {
	le := func(xs ...float32) []byte {
		var b []byte
		for _, x := range xs {
			b = append(b, byte(math.Float32bits(x)), byte(math.Float32bits(x)>>8), byte(math.Float32bits(x)>>16), byte(math.Float32bits(x)>>24))
		}
		return b
	}
	f.Add(uint8(0), uint8(0), uint16(3), le(1, -2, 3.5, 127, -63.5, 0, 0.1, 1e-3, 7, 0.5, 1.5, 2.5, 126.5, -126.5, 3, 4, 5))
	f.Add(uint8(1), uint8(1), uint16(40), le(math.MaxFloat32, -math.MaxFloat32, 1, 0, 7, 3.5, -0.5))
	f.Add(uint8(0), uint8(2), uint16(200), le(0x1p-149, -0x1p-149, 0x1p-140, 0x1p-126, 0x1p-64, 0x1p-65))
	f.Add(uint8(2), uint8(3), uint16(17), le(1+0x1p-8, float32(math.NaN()), float32(math.Inf(-1)), 3.3961e38))
	kinds := []CodecKind{CodecInt8, CodecInt4, CodecBF16}
	blocks := []int{8, 16, 24, 40, 64, 256}
	f.Fuzz(func(t *testing.T, kindSel, blockSel uint8, reps uint16, data []byte) {
		ks := vectorKernels()
		if len(ks) == 0 {
			t.Skip("no vector kernels on this machine")
		}
		c := asKernelCodec(t, kinds[int(kindSel)%len(kinds)], blocks[int(blockSel)%len(blocks)])
		// The input, repeated to reach reps%1024 values, so short fuzz inputs
		// still cover whole blocks.
		raw := make([]float32, len(data)/4)
		for i := range raw {
			raw[i] = math.Float32frombits(uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24)
		}
		n := max(len(raw), int(reps%1024))
		src := make([]float32, n)
		if len(raw) > 0 {
			for i := range src {
				src[i] = raw[i%len(raw)]
			}
		}
		wire := make([]byte, c.EncodedLen(n))
		acc := make([]float32, n)
		if len(data) > 0 {
			for i := range wire {
				wire[i] = data[(i+1)%len(data)]
			}
			for i := range acc {
				acc[i] = src[(i+3)%n]
			}
		}
		for _, k := range ks {
			checkKernel(t, k, c, src, wire, acc)
		}
	})
}

// TestCodecKernelsMatchReference runs every kernel set the machine has,
// the Go loops included, through the reference comparison of
// TestCodecMatchesReference (which covers only the active set): every
// distribution of testDists at block sizes 8, 24, 64 and 256.
func TestCodecKernelsMatchReference(t *testing.T) {
	if raceEnabled {
		t.Skip("numerics only; the race detector adds nothing here")
	}
	for _, k := range availableKernels() {
		for _, kind := range []CodecKind{CodecBF16, CodecInt8, CodecInt4} {
			blocks := []int{8, 24, 64, 256}
			if kind == CodecBF16 {
				blocks = []int{0}
			}
			for _, block := range blocks {
				c := asKernelCodec(t, kind, block)
				for _, dist := range testDists {
					r := rand.New(rand.NewPCG(uint64(len(dist.name)), uint64(block)+99))
					for _, n := range testLengths(c.BlockSize(), dist.name) {
						src := dist.gen(r, n)
						wire := make([]byte, c.EncodedLen(n))
						c.encode(k, wire, src)
						if d := bytesDiff(refEncode(kind, c.BlockSize(), src), wire); d != "" {
							t.Fatalf("%s %s B=%d %s n=%d: Encode differs from reference: %s", k.name, kind, block, dist.name, n, d)
						}
						got := make([]float32, n)
						c.decode(k, got, wire)
						if d := bitsDiff(refDecode(kind, c.BlockSize(), wire, n), got); d != "" {
							t.Fatalf("%s %s B=%d %s n=%d: Decode differs from reference: %s", k.name, kind, block, dist.name, n, d)
						}
						acc := dist.gen(r, n)
						want := make([]float32, n)
						for i := range acc {
							want[i] = acc[i] + got[i]
						}
						c.decodeAdd(k, acc, wire)
						if d := nanEquivDiff(want, acc); d != "" {
							t.Fatalf("%s %s B=%d %s n=%d: DecodeAdd differs from Decode + add: %s", k.name, kind, block, dist.name, n, d)
						}
					}
				}
			}
		}
	}
}
