package collective

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// allCodecKinds lists every codec; new ones are appended, so the kind
// selectors of the committed fuzz corpora keep their meaning.
var allCodecKinds = []CodecKind{CodecF32, CodecBF16, CodecInt8, CodecInt4, CodecInt6, CodecFP8}

// quantKinds are the block-scaled codecs.
var quantKinds = []CodecKind{CodecInt8, CodecInt4, CodecInt6, CodecFP8}

// TestAllCodecKinds keeps the test lists in step with the registry.
func TestAllCodecKinds(t *testing.T) {
	reg := map[CodecKind]bool{}
	for _, k := range Codecs() {
		reg[k] = true
	}
	if len(reg) != len(allCodecKinds) {
		t.Fatalf("registry %v, tests cover %v", Codecs(), allCodecKinds)
	}
	nq := 0
	for _, k := range allCodecKinds {
		if !reg[k] {
			t.Fatalf("%s is not registered", k)
		}
		if k.Quantized() {
			nq++
		}
	}
	if nq != len(quantKinds) {
		t.Fatalf("%d quantized codecs registered, tests cover %v", nq, quantKinds)
	}
}

// codecLevels is L, the largest code magnitude, of a quantized codec (448,
// the largest E4M3 value, for fp8).
func codecLevels(kind CodecKind) int {
	switch kind {
	case CodecInt8:
		return int8Levels
	case CodecInt4:
		return int4Levels
	case CodecInt6:
		return int6Levels
	case CodecFP8:
		return fp8Levels
	}
	panic("codecLevels: not a quantized codec: " + string(kind))
}

// codecStep is the largest quantization step of a quantized codec as a
// fraction of the block absmax: 1/L for the integer codecs, and for fp8 the
// spacing 32 of the E4M3 values in their top binade [256, 448], divided by
// 448 (1/14). The error bound is half of it plus float32 rounding terms.
func codecStep(kind CodecKind) float64 {
	if kind == CodecFP8 {
		return 32.0 / fp8Levels
	}
	return 1 / float64(codecLevels(kind))
}

// fp8ValueBound is the per-value fp8 bound of docs/CODECS.md, finer than
// ErrorBound: for a value x of a block with absmax a, half an E4M3 ulp
// relative to x (3 mantissa bits: 2^-4 |x|), or below the normal E4M3 range
// half the subnormal spacing, 2^-10 code units = (a/448) 2^-10; plus the
// float32-rounding and denormal terms of ErrorBound.
func fp8ValueBound(x, a float64) float64 {
	return math.Abs(x)*0x1p-4 + a/fp8Levels*0x1p-10 + a*0x1p-21 + (fp8Levels+1)*0x1p-149
}

func mustCodec(t testing.TB, kind CodecKind, block int) Codec {
	t.Helper()
	c, err := NewCodec(kind, block)
	if err != nil {
		t.Fatalf("NewCodec(%q, %d): %v", kind, block, err)
	}
	return c
}

// testDist generates n test values.
type testDist struct {
	name   string
	finite bool // every value finite
	gen    func(r *rand.Rand, n int) []float32
}

func genEach(f func(r *rand.Rand, i int) float32) func(*rand.Rand, int) []float32 {
	return func(r *rand.Rand, n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = f(r, i)
		}
		return x
	}
}

// heavyTailed is N(0,1) where each value independently, with probability
// 1/512, is multiplied by 1000.
func heavyTailed(r *rand.Rand, _ int) float32 {
	v := float32(r.NormFloat64())
	if r.IntN(512) == 0 {
		v *= 1000
	}
	return v
}

var testDists = []testDist{
	{"normal", true, genEach(func(r *rand.Rand, _ int) float32 { return float32(r.NormFloat64()) })},
	{"heavy", true, genEach(heavyTailed)},
	{"zero", true, genEach(func(*rand.Rand, int) float32 { return 0 })},
	{"negzero", true, genEach(func(*rand.Rand, int) float32 { return float32(math.Copysign(0, -1)) })},
	{"constant", true, genEach(func(*rand.Rand, int) float32 { return 0.3 })},
	{"negconstant", true, genEach(func(*rand.Rand, int) float32 { return -1e-3 })},
	{"negative", true, genEach(func(r *rand.Rand, _ int) float32 { return -float32(math.Abs(r.NormFloat64())) })},
	{"negspike", true, genEach(func(r *rand.Rand, i int) float32 {
		if i%37 == 3 {
			return -50
		}
		return float32(r.NormFloat64())
	})},
	{"ties", true, genEach(func(r *rand.Rand, i int) float32 {
		// Half-integer multiples of the scale 1 (absmax 127 set every 8th).
		if i%8 == 0 {
			return 127
		}
		return float32(r.IntN(254)-127) + 0.5
	})},
	{"denormal", true, genEach(func(r *rand.Rand, _ int) float32 {
		return math.Float32frombits(uint32(r.IntN(1 << 23)))
	})},
	{"tinydenormal", true, genEach(func(r *rand.Rand, _ int) float32 {
		return float32(r.IntN(121)-60) * 0x1p-149
	})},
	{"tiny", true, genEach(func(r *rand.Rand, _ int) float32 { return float32(r.NormFloat64() * 0x1p-70) })},
	{"huge", true, genEach(func(r *rand.Rand, _ int) float32 {
		return float32(math.Copysign(math.MaxFloat32*(1-r.Float64()/4), r.NormFloat64()))
	})},
	{"maxfloat", true, genEach(func(r *rand.Rand, _ int) float32 {
		return float32(math.Copysign(math.MaxFloat32, r.NormFloat64()))
	})},
	{"wild", true, genEach(func(r *rand.Rand, _ int) float32 {
		return float32(math.Ldexp(r.NormFloat64(), r.IntN(270)-150))
	})},
	{"nan", false, genEach(func(r *rand.Rand, _ int) float32 {
		if r.IntN(300) == 0 {
			return float32(math.NaN())
		}
		return float32(r.NormFloat64())
	})},
	{"negnan", false, genEach(func(r *rand.Rand, _ int) float32 {
		if r.IntN(300) == 0 {
			return math.Float32frombits(0xffc00001)
		}
		return float32(r.NormFloat64())
	})},
	{"inf", false, genEach(func(r *rand.Rand, _ int) float32 {
		switch r.IntN(400) {
		case 0:
			return float32(math.Inf(1))
		case 1:
			return float32(math.Inf(-1))
		}
		return float32(r.NormFloat64())
	})},
}

// testLengths are the awkward lengths every codec test sweeps; the long one
// (65537) only for the distributions in longDists, to keep -race runs short.
func testLengths(block int, dist string) []int {
	l := []int{0, 1, 5, 7, 8, block - 1, block, block + 1, 2*block + 3, 1000}
	if longDists[dist] {
		l = append(l, 65537)
	}
	return l
}

var longDists = map[string]bool{"normal": true, "heavy": true, "wild": true, "inf": true}

// bitsDiff reports the first mismatch of two float32 slices compared by bits
// (so NaN payloads and signed zeros count), or "" when equal.
func bitsDiff(want, got []float32) string {
	if len(want) != len(got) {
		return fmt.Sprintf("len %d, want %d", len(got), len(want))
	}
	bad, first := 0, -1
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			if first < 0 {
				first = i
			}
			bad++
		}
	}
	if bad == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d differ; first at %d: got %g (%#08x), want %g (%#08x)", bad, len(want), first,
		got[first], math.Float32bits(got[first]), want[first], math.Float32bits(want[first]))
}

// nanEquivDiff is bitsDiff except that any two NaNs match: the payload of a
// NaN sum depends on the operand order the compiler picks.
func nanEquivDiff(want, got []float32) string {
	w := append([]float32(nil), want...)
	for i := range w {
		if math.IsNaN(float64(w[i])) && math.IsNaN(float64(got[i])) {
			w[i] = got[i]
		}
	}
	return bitsDiff(w, got)
}

func bytesDiff(want, got []byte) string {
	if len(want) != len(got) {
		return fmt.Sprintf("len %d, want %d", len(got), len(want))
	}
	for i := range want {
		if want[i] != got[i] {
			return fmt.Sprintf("first difference at byte %d: got %#02x, want %#02x", i, got[i], want[i])
		}
	}
	return ""
}

// TestCodecMatchesReference checks the tuned kernels against the
// straightforward reference, bit for bit, and DecodeAdd against Decode
// followed by a float32 add.
func TestCodecMatchesReference(t *testing.T) {
	for _, kind := range allCodecKinds {
		blocks := []int{8, 24, 256, 1024}
		if kind == CodecF32 || kind == CodecBF16 {
			blocks = []int{0}
		}
		for _, block := range blocks {
			c := mustCodec(t, kind, block)
			for _, dist := range testDists {
				t.Run(fmt.Sprintf("%s/B=%d/%s", kind, c.BlockSize(), dist.name), func(t *testing.T) {
					r := rand.New(rand.NewPCG(uint64(len(dist.name)), uint64(block)))
					for _, n := range testLengths(c.BlockSize(), dist.name) {
						src := dist.gen(r, n)
						wire := make([]byte, c.EncodedLen(n))
						c.Encode(wire, src)
						want := refEncode(kind, c.BlockSize(), src)
						if d := bytesDiff(want, wire); d != "" {
							t.Fatalf("n=%d: Encode differs from reference: %s", n, d)
						}
						got := make([]float32, n)
						c.Decode(got, wire)
						if d := bitsDiff(refDecode(kind, c.BlockSize(), wire, n), got); d != "" {
							t.Fatalf("n=%d: Decode differs from reference: %s", n, d)
						}
						acc := dist.gen(r, n)
						wantAcc := make([]float32, n)
						for i := range acc {
							wantAcc[i] = acc[i] + got[i]
						}
						c.DecodeAdd(acc, wire)
						if d := nanEquivDiff(wantAcc, acc); d != "" {
							t.Fatalf("n=%d: DecodeAdd differs from Decode + add: %s", n, d)
						}
					}
				})
			}
		}
	}
}

// checkQuantBound checks every decoded value of a quantized codec against
// ErrorBound computed in float64, returning the largest error seen divided
// by the largest step a*codecStep (over blocks with a > 0); fp8 values are
// also checked against the finer per-value bound fp8ValueBound.
func checkQuantBound(t testing.TB, c Codec, src, got []float32) float64 {
	t.Helper()
	step := codecStep(c.Kind())
	worst := 0.0
	bound := func(a float64) float64 {
		b, err := ErrorBound(c.Kind(), a)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for start := 0; start < len(src); start += c.BlockSize() {
		end := min(start+c.BlockSize(), len(src))
		a := 0.0
		for _, v := range src[start:end] {
			a = max(a, math.Abs(float64(v)))
		}
		bound := bound(a)
		for i := start; i < end; i++ {
			e := math.Abs(float64(src[i]) - float64(got[i]))
			if !(e <= bound) { // also catches NaN
				t.Fatalf("%s B=%d: value %d = %g (%#08x) decodes to %g, error %g > bound %g (block absmax %g)",
					c.Kind(), c.BlockSize(), i, src[i], math.Float32bits(src[i]), got[i], e, bound, a)
			}
			if vb := fp8ValueBound(float64(src[i]), a); c.Kind() == CodecFP8 && !(e <= vb) {
				t.Fatalf("fp8 B=%d: value %d = %g (%#08x) decodes to %g, error %g > per-value bound %g (block absmax %g)",
					c.BlockSize(), i, src[i], math.Float32bits(src[i]), got[i], e, vb, a)
			}
			if a > 0 {
				worst = max(worst, e/(a*step))
			}
		}
	}
	return worst
}

// TestCodecErrorBound checks the derived per-element bounds against float64
// for every finite distribution, and that the quantizers' bound is nearly
// reached (so a looser quantizer would fail).
func TestCodecErrorBound(t *testing.T) {
	for _, kind := range allCodecKinds {
		blocks := []int{8, 40, 256, 1024}
		if kind == CodecF32 || kind == CodecBF16 {
			blocks = []int{0}
		}
		for _, block := range blocks {
			c := mustCodec(t, kind, block)
			for _, dist := range testDists {
				if !dist.finite {
					continue
				}
				t.Run(fmt.Sprintf("%s/B=%d/%s", kind, c.BlockSize(), dist.name), func(t *testing.T) {
					r := rand.New(rand.NewPCG(7, uint64(block)))
					worst := 0.0
					for _, n := range testLengths(c.BlockSize(), dist.name) {
						src := dist.gen(r, n)
						wire := make([]byte, c.EncodedLen(n))
						c.Encode(wire, src)
						got := make([]float32, n)
						c.Decode(got, wire)
						switch kind {
						case CodecF32:
							if d := bitsDiff(src, got); d != "" {
								t.Fatalf("n=%d: f32 is not exact: %s", n, d)
							}
						case CodecBF16:
							checkBF16Bound(t, src, got)
						default:
							worst = max(worst, checkQuantBound(t, c, src, got))
						}
					}
					if kind.Quantized() && (dist.name == "normal" || dist.name == "heavy") && worst < 0.49 {
						t.Errorf("largest error is %.3f steps; half a step (0.5) should be nearly reached", worst)
					}
				})
			}
		}
	}
}

// checkBF16Bound checks round-to-nearest-even to bfloat16: relative error at
// most u/(1+u) with u = 2^-8 (bfloat16 keeps 8 significant bits, so half an
// ulp is 2^-8 relative to the leading power of two) in the normal range, absolute error at most 2^-134 (half the
// bfloat16 denormal spacing) below it, and Inf exactly for values at or above
// the overflow threshold 0x7f7f8000 in magnitude.
func checkBF16Bound(t testing.TB, src, got []float32) {
	t.Helper()
	overflow := float64(math.Float32frombits(0x7f7f8000))
	for i, v := range src {
		x, y := float64(v), float64(got[i])
		ax := math.Abs(x)
		var ok bool
		switch {
		case ax >= overflow:
			ok = math.IsInf(y, 0) && math.Signbit(x) == math.Signbit(y)
		case ax < 0x1p-126:
			ok = math.Abs(x-y) <= 0x1p-134
		default:
			ok = math.Abs(x-y) <= ax*(0x1p-8/(1+0x1p-8))
		}
		if !ok {
			t.Fatalf("bf16: value %d = %g (%#08x) decodes to %g (%#08x)", i, v, math.Float32bits(v), got[i], math.Float32bits(got[i]))
		}
	}
}

// TestCodecNonFinite checks what NaN and Inf inputs decode to.
func TestCodecNonFinite(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	// kinds of decoded values
	const (
		F = 'f' // finite
		N = 'n' // NaN
		P = '+' // +Inf
		M = '-' // -Inf
	)
	classify := func(xs []float32) string {
		b := make([]byte, len(xs))
		for i, v := range xs {
			switch {
			case math.IsNaN(float64(v)):
				b[i] = N
			case math.IsInf(float64(v), 1):
				b[i] = P
			case math.IsInf(float64(v), -1):
				b[i] = M
			default:
				b[i] = F
			}
		}
		return string(b)
	}
	// Blocks of 8; the second block is always finite and must stay so.
	tests := []struct {
		name   string
		first  []float32
		want   map[CodecKind]string
		second []float32
	}{
		{
			name:  "nan",
			first: []float32{1, 2, nan, 4, 5, 6, 7, 8},
			want: map[CodecKind]string{
				CodecF32: "ffnfffff", CodecBF16: "ffnfffff", CodecInt8: "nnnnnnnn", CodecInt4: "nnnnnnnn",
				CodecInt6: "nnnnnnnn", CodecFP8: "nnnnnnnn",
			},
		},
		{
			name:  "plus-inf",
			first: []float32{1, 2, inf, 4, 5, 6, 7, 8},
			want: map[CodecKind]string{
				CodecF32: "ff+fffff", CodecBF16: "ff+fffff", CodecInt8: "nn+nnnnn", CodecInt4: "nn+nnnnn",
				CodecInt6: "nn+nnnnn", CodecFP8: "nn+nnnnn",
			},
		},
		{
			name:  "both-infs",
			first: []float32{-inf, 2, inf, 4, 5, 6, 7, 0},
			want: map[CodecKind]string{
				CodecF32: "-f+fffff", CodecBF16: "-f+fffff", CodecInt8: "-n+nnnnn", CodecInt4: "-n+nnnnn",
				CodecInt6: "-n+nnnnn", CodecFP8: "-n+nnnnn",
			},
		},
		{
			name:  "inf-and-nan",
			first: []float32{-inf, 2, nan, 4, 5, 6, 7, 0},
			want: map[CodecKind]string{
				CodecF32: "-fnfffff", CodecBF16: "-fnfffff", CodecInt8: "nnnnnnnn", CodecInt4: "nnnnnnnn",
				CodecInt6: "nnnnnnnn", CodecFP8: "nnnnnnnn",
			},
		},
		{
			name:  "max-float",
			first: []float32{math.MaxFloat32, -math.MaxFloat32, 1, 0, 0, 0, 0, 0},
			want: map[CodecKind]string{
				CodecF32: "ffffffff", CodecBF16: "+-ffffff", CodecInt8: "ffffffff", CodecInt4: "ffffffff",
				CodecInt6: "ffffffff", CodecFP8: "ffffffff",
			},
		},
	}
	for _, tc := range tests {
		for _, kind := range allCodecKinds {
			t.Run(tc.name+"/"+string(kind), func(t *testing.T) {
				c := mustCodec(t, kind, 8)
				src := append(append([]float32{}, tc.first...), 1, -2, 3, 0.5, 0, 0, 9, 1e-3, 7)
				wire := make([]byte, c.EncodedLen(len(src)))
				c.Encode(wire, src)
				got := make([]float32, len(src))
				c.Decode(got, wire)
				want := tc.want[kind] + "fffffffff"
				if diff := cmp.Diff(want, classify(got)); diff != "" {
					t.Errorf("Decode classes (-want +got):\n%s\nvalues %v", diff, got)
				}
				acc := make([]float32, len(src))
				for i := range acc {
					acc[i] = 1
				}
				c.DecodeAdd(acc, wire)
				if diff := cmp.Diff(want, classify(acc)); diff != "" {
					t.Errorf("DecodeAdd classes (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestCodecWireLayout pins the documented byte layouts on worked examples,
// including round-half-even on exact ties.
func TestCodecWireLayout(t *testing.T) {
	tests := []struct {
		kind  CodecKind
		block int
		src   []float32
		want  []byte
	}{
		{CodecF32, 8, []float32{1, -2}, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0}},
		// 1+2^-8 is a tie between 1 and 1+2^-7: even keeps 1. 1+3*2^-8 ties up.
		{CodecBF16, 8, []float32{1, 1 + 0x1p-8, 1 + 3*0x1p-8, float32(math.Inf(-1))},
			[]byte{0x80, 0x3f, 0x80, 0x3f, 0x82, 0x3f, 0x80, 0xff}},
		{CodecBF16, 8, []float32{math.Float32frombits(0x7f800001)}, []byte{0xc0, 0x7f}},
		// absmax 127 -> scale 1 (0x3f800000); -63.5 ties to -64, 2.5 to 2, -0.5 to 0.
		// Second block: 9 values of absmax 254 -> scale 2, then a short block.
		{CodecInt8, 8, []float32{127, -63.5, 2.5, -0.5, 1.5, 0, -127, 3,
			254, 1, 3, 0, 0, 0, 0, 0, -127},
			[]byte{0, 0, 0x80, 0x3f, 127, 0xc0, 2, 0, 2, 0, 0x81, 3,
				0, 0, 0, 0x40, 127, 0, 2, 0, 0, 0, 0, 0,
				0, 0, 0x80, 0x3f, 0x81}},
		// absmax 7 -> scale 1; codes 7,-4 | 2,0 | 0,2 | -7,1 packed low nibble first.
		{CodecInt4, 8, []float32{7, -3.5, 2.5, 0.5, -0.5, 1.5, -7, 1, 3.5},
			[]byte{0, 0, 0x80, 0x3f, 0xc7, 0x02, 0x20, 0x19,
				0, 0, 0, 0x3f, 0x07}},
		{CodecInt8, 8, []float32{0, 0, 0}, []byte{0, 0, 0, 0, 0, 0, 0}},
		// absmax 31 -> scale 1; codes 31,-16 (tie),2,0 | 2,0,-31,3 as the
		// 24-bit words 0x002c1f and 0x0e1002. Second block: absmax 62 ->
		// scale 2, codes 31,-16,0 (ties -15.5 and 0.5) in ceil(18/8) = 3 bytes.
		{CodecInt6, 8, []float32{31, -15.5, 2.5, -0.5, 1.5, 0, -31, 3,
			62, -31, 1},
			[]byte{0, 0, 0x80, 0x3f, 0x1f, 0x2c, 0x00, 0x02, 0x10, 0x0e,
				0, 0, 0, 0x40, 0x1f, 0x0c, 0x00}},
		// A final group of one code takes one byte, of two codes two.
		{CodecInt6, 8, []float32{31, 0, 0, 0, 0, 0, 0, 0, -31},
			[]byte{0, 0, 0x80, 0x3f, 0x1f, 0, 0, 0, 0, 0,
				0, 0, 0x80, 0x3f, 0x21}},
		{CodecInt6, 8, []float32{-62, 62},
			[]byte{0, 0, 0, 0x40, 0xe1, 0x07}},
		// absmax 448 -> scale 1: 448, -1, 0.5, 1+1/16 (tie -> 1), 1+3/16
		// (tie -> 1.25), 2^-9 (smallest subnormal), 2^-10 (tie -> 0),
		// -1.5*2^-10 (-> -2^-9); a short block of signed zeros: scale 0.
		{CodecFP8, 8, []float32{448, -1, 0.5, 1.0625, 1.1875, 0x1p-9, 0x1p-10, -3 * 0x1p-11,
			float32(math.Copysign(0, -1)), 0},
			[]byte{0, 0, 0x80, 0x3f, 0x7e, 0xb8, 0x30, 0x38, 0x3a, 0x01, 0x00, 0x81,
				0, 0, 0, 0, 0, 0}},
		// absmax 896 -> scale 2: 448, 232 (tie 224/240 -> 224), -240, 7.5;
		// a value that rounds to zero gets +0, whatever its sign.
		{CodecFP8, 8, []float32{896, 464, -480, 15, -0x1p-12},
			[]byte{0, 0, 0, 0x40, 0x7e, 0x76, 0xf7, 0x4f, 0x00}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%v", tc.kind, tc.src), func(t *testing.T) {
			c := mustCodec(t, tc.kind, tc.block)
			got := make([]byte, c.EncodedLen(len(tc.src)))
			c.Encode(got, tc.src)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Encode (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCodecBlockRanges checks that encoding whole blocks src[a:b] gives bytes
// EncodedLen(a):EncodedLen(b) of the whole buffer's encoding, so a buffer
// may be encoded and decoded segment by segment.
func TestCodecBlockRanges(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	src := genEach(heavyTailed)(r, 1003)
	for _, kind := range allCodecKinds {
		c := mustCodec(t, kind, 16)
		b := c.BlockSize()
		whole := make([]byte, c.EncodedLen(len(src)))
		c.Encode(whole, src)
		for _, seg := range [][2]int{{0, 0}, {0, b}, {b, 5 * b}, {16 * b, len(src)}, {0, len(src)}} {
			a, e := seg[0], seg[1]
			part := make([]byte, c.EncodedLen(e-a))
			c.Encode(part, src[a:e])
			if d := bytesDiff(whole[c.EncodedLen(a):c.EncodedLen(e)], part); d != "" {
				t.Errorf("%s: segment [%d,%d): %s", kind, a, e, d)
			}
		}
	}
}

func TestCodecEncodedLen(t *testing.T) {
	tests := []struct {
		kind  CodecKind
		block int
		n     int
		want  int
	}{
		{CodecF32, 0, 0, 0}, {CodecF32, 0, 5, 20},
		{CodecBF16, 256, 5, 10},
		{CodecInt8, 8, 0, 0}, {CodecInt8, 8, 1, 5}, {CodecInt8, 8, 8, 12}, {CodecInt8, 8, 9, 17},
		{CodecInt8, 0, 65537, 65537 + 4*257},
		{CodecInt4, 8, 0, 0}, {CodecInt4, 8, 1, 5}, {CodecInt4, 8, 8, 8}, {CodecInt4, 8, 11, 14},
		{CodecInt4, 256, 1000, 3*132 + 4 + 116},
		{CodecInt6, 8, 0, 0}, {CodecInt6, 8, 1, 5}, {CodecInt6, 8, 2, 6}, {CodecInt6, 8, 3, 7},
		{CodecInt6, 8, 4, 7}, {CodecInt6, 8, 8, 10}, {CodecInt6, 8, 9, 15}, {CodecInt6, 8, 11, 17},
		{CodecInt6, 256, 1000, 3*196 + 4 + 174},
		{CodecFP8, 8, 0, 0}, {CodecFP8, 8, 1, 5}, {CodecFP8, 8, 9, 17},
		{CodecFP8, 0, 65537, 65537 + 4*257},
	}
	for _, tc := range tests {
		c := mustCodec(t, tc.kind, tc.block)
		if got := c.EncodedLen(tc.n); got != tc.want {
			t.Errorf("%s B=%d: EncodedLen(%d) = %d, want %d", tc.kind, tc.block, tc.n, got, tc.want)
		}
	}
}

func TestNewCodec(t *testing.T) {
	tests := []struct {
		kind      CodecKind
		block     int
		wantErr   error
		wantBlock int
	}{
		{CodecF32, 0, nil, 1},
		{CodecF32, 256, nil, 1},
		{CodecBF16, 64, nil, 1},
		{CodecInt8, 0, nil, DefaultBlockSize},
		{CodecInt8, 8, nil, 8},
		{CodecInt8, MaxBlockSize, nil, MaxBlockSize},
		{CodecInt4, 1024, nil, 1024},
		{CodecInt8, -8, ErrBlockSize, 0},
		{CodecInt8, 4, ErrBlockSize, 0},
		{CodecInt8, 100, ErrBlockSize, 0},
		{CodecInt4, 2 * MaxBlockSize, ErrBlockSize, 0},
		{CodecBF16, 3, ErrBlockSize, 0},
		{"", 0, ErrCodecKind, 0},
		{"fp16", 0, ErrCodecKind, 0},
		{CodecInt6, 0, nil, DefaultBlockSize},
		{CodecFP8, 64, nil, 64},
		{CodecFP8, 12, ErrBlockSize, 0},
	}
	if _, err := ErrorBound("fp16", 1); !errors.Is(err, ErrCodecKind) {
		t.Errorf("ErrorBound(fp16) error = %v, want %v", err, ErrCodecKind)
	}
	for _, tc := range tests {
		c, err := NewCodec(tc.kind, tc.block)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("NewCodec(%q, %d) error = %v, want %v", tc.kind, tc.block, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if c.Kind() != tc.kind || c.BlockSize() != tc.wantBlock {
			t.Errorf("NewCodec(%q, %d) = kind %q block %d, want %q %d", tc.kind, tc.block, c.Kind(), c.BlockSize(), tc.kind, tc.wantBlock)
		}
	}
}

func TestCodecLengthMismatchPanics(t *testing.T) {
	for _, kind := range allCodecKinds {
		c := mustCodec(t, kind, 8)
		n := 10
		ops := map[string]func(){
			"Encode short":    func() { c.Encode(make([]byte, c.EncodedLen(n)-1), make([]float32, n)) },
			"Encode long":     func() { c.Encode(make([]byte, c.EncodedLen(n)+1), make([]float32, n)) },
			"Decode short":    func() { c.Decode(make([]float32, n), make([]byte, c.EncodedLen(n)-1)) },
			"DecodeAdd long":  func() { c.DecodeAdd(make([]float32, n), make([]byte, c.EncodedLen(n)+1)) },
			"DecodeAdd short": func() { c.DecodeAdd(make([]float32, n), make([]byte, c.EncodedLen(n)-1)) },
		}
		for name, op := range ops {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("%s %s: no panic", kind, name)
					}
				}()
				op()
			}()
		}
	}
}

// TestBF16RelativeErrorIsTight shows the bfloat16 relative bound u/(1+u),
// u = 2^-8, is reached: 1+2^-8 is a tie that rounds to even (1).
func TestBF16RelativeErrorIsTight(t *testing.T) {
	c := mustCodec(t, CodecBF16, 0)
	x := []float32{1 + 0x1p-8}
	wire := make([]byte, c.EncodedLen(1))
	c.Encode(wire, x)
	got := make([]float32, 1)
	c.Decode(got, wire)
	rel := math.Abs(float64(x[0])-float64(got[0])) / float64(x[0])
	if want := 0x1p-8 / (1 + 0x1p-8); rel != want {
		t.Errorf("relative error of %g -> %g is %g, want %g", x[0], got[0], rel, want)
	}
}

func TestErrorBoundValues(t *testing.T) {
	tests := []struct {
		kind   CodecKind
		absmax float64
		want   float64
	}{
		{CodecF32, 3, 0},
		{CodecBF16, 1, 0x1p-8 + 0x1p-134},
		{CodecInt8, 127, 0.5 + 127*0x1p-21 + 128*0x1p-149},
		{CodecInt4, 7, 0.5 + 7*0x1p-21 + 8*0x1p-149},
		{CodecInt8, 0, 128 * 0x1p-149},
		{CodecInt6, 31, 0.5 + 31*0x1p-21 + 32*0x1p-149},
		{CodecFP8, 448, 16 + 448*0x1p-21 + 449*0x1p-149},
	}
	for _, tc := range tests {
		got, err := ErrorBound(tc.kind, tc.absmax)
		if err != nil || got != tc.want {
			t.Errorf("ErrorBound(%s, %g) = %g, %v; want %g", tc.kind, tc.absmax, got, err, tc.want)
		}
	}
}

// TestCodecDoesNotAllocate: the kernels run once per segment per hop, so
// they must not allocate.
func TestCodecDoesNotAllocate(t *testing.T) {
	src := genEach(heavyTailed)(rand.New(rand.NewPCG(5, 6)), 1000)
	for _, kind := range allCodecKinds {
		for _, block := range []int{8, 256, 4096} {
			c := mustCodec(t, kind, block)
			wire := make([]byte, c.EncodedLen(len(src)))
			dst := make([]float32, len(src))
			ops := map[string]func(){
				"Encode":    func() { c.Encode(wire, src) },
				"Decode":    func() { c.Decode(dst, wire) },
				"DecodeAdd": func() { c.DecodeAdd(dst, wire) },
			}
			for name, op := range ops {
				if n := testing.AllocsPerRun(10, op); n != 0 {
					t.Errorf("%s B=%d %s: %v allocations per call, want 0", kind, block, name, n)
				}
			}
		}
	}
}

func TestQuickParamsConstants(t *testing.T) {
	if got := math.Float32bits(tinyAbsMax); got != tinyAbsMaxBits {
		t.Errorf("tinyAbsMaxBits = %#x, want %#x", tinyAbsMaxBits, got)
	}
	if got := math.Float32bits(math.MaxFloat32); got != maxFloatBits {
		t.Errorf("maxFloatBits = %#x, want %#x", maxFloatBits, got)
	}
	// quickParams must agree with blockParams wherever it answers, at the
	// edges of its range and on the blocks near MaxFloat32 it hands over.
	for _, levels := range []float32{int8Levels, int4Levels, int6Levels, fp8Levels} {
		for _, m := range []uint32{tinyAbsMaxBits - 1, tinyAbsMaxBits, 0x3f800000, maxFloatBits - 1, maxFloatBits, infBits, 1} {
			s, r, ok := quickParams(m, levels)
			bs, br, pre, kind := blockParams(m, levels)
			if ok && (s != bs || r != br || pre != 1 || kind != blockFinite) {
				t.Errorf("L=%v m=%#x: quickParams (%g, %g) != blockParams (%g, %g, pre %g, kind %d)", levels, m, s, r, bs, br, pre, kind)
			}
			if wantOK := m >= tinyAbsMaxBits && m < maxFloatBits; ok != wantOK {
				t.Errorf("L=%v m=%#x: ok = %v, want %v", levels, m, ok, wantOK)
			}
		}
	}
}

// TestCodecAdversarial runs every quantized codec on the adversarial inputs
// of the kernel tests (blocks of ties, values at ±absmax, signed zeros,
// denormals, values around the 2^-64 pre-scale threshold, ±MaxFloat32, NaN
// and ±Inf between ordinary blocks of magnitudes 1e-30 to 1e30) and on
// random wire bytes (NaN, Inf, zero and denormal scales, codes no encoder
// writes): Encode and Decode must match the reference bit for bit, DecodeAdd
// onto accumulators holding NaN, ±Inf and -0 must equal Decode then add.
func TestCodecAdversarial(t *testing.T) {
	for _, kind := range quantKinds {
		for _, block := range []int{8, 16, 24, 40, 64, 256, 1000} {
			c := mustCodec(t, kind, block)
			r := rand.New(rand.NewPCG(uint64(block), 17))
			for _, n := range []int{0, 1, 3, block - 1, block, block + 2, 3*block + 5, 17 * block} {
				src := adversarialInput(r, n, block, 0)
				wire := make([]byte, c.EncodedLen(n))
				c.Encode(wire, src)
				if d := bytesDiff(refEncode(kind, block, src), wire); d != "" {
					t.Fatalf("%s B=%d n=%d: Encode differs from reference: %s", kind, block, n, d)
				}
				for _, w := range [][]byte{wire, randomWire(r, c, n)} {
					got := make([]float32, n)
					c.Decode(got, w)
					if d := decodeDiff(kind, block, w, refDecode(kind, block, w, n), got); d != "" {
						t.Fatalf("%s B=%d n=%d: Decode differs from reference: %s", kind, block, n, d)
					}
					acc := randomAcc(r, n)
					want := make([]float32, n)
					for i := range want {
						want[i] = acc[i] + got[i]
					}
					sum := append([]float32(nil), acc...)
					c.DecodeAdd(sum, w)
					if d := addDiff(want, sum, acc, got); d != "" {
						t.Fatalf("%s B=%d n=%d: DecodeAdd differs from Decode + add: %s", kind, block, n, d)
					}
				}
			}
		}
	}
}

// TestRowCodec checks the stripe-restarting codec over every quantized
// codec, with stripes that are not a whole number of blocks (and not of
// int6's 4-code groups): the wire is the inner codec's encoding of each
// stripe, back to back; Decode and DecodeAdd agree; the error bound holds
// with blocks restarting at every stripe.
func TestRowCodec(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 8))
	for _, kind := range quantKinds {
		for _, width := range []int{5, 21, 38, 270} {
			inner := mustCodec(t, kind, 16)
			c := rowCodec{inner: inner, width: width}
			for _, n := range []int{0, 3, width, 4*width + 7} {
				src := genEach(heavyTailed)(r, n)
				var want []byte
				for lo := 0; lo < n; lo += width {
					x := src[lo:min(lo+width, n)]
					w := make([]byte, inner.EncodedLen(len(x)))
					inner.Encode(w, x)
					want = append(want, w...)
				}
				if c.EncodedLen(n) != len(want) {
					t.Fatalf("%s width %d n=%d: EncodedLen %d, want %d", kind, width, n, c.EncodedLen(n), len(want))
				}
				wire := make([]byte, c.EncodedLen(n))
				c.Encode(wire, src)
				if d := bytesDiff(want, wire); d != "" && n > 0 {
					t.Fatalf("%s width %d n=%d: %s", kind, width, n, d)
				}
				got := make([]float32, n)
				c.Decode(got, wire)
				acc := genEach(heavyTailed)(r, n)
				sum := append([]float32(nil), acc...)
				c.DecodeAdd(sum, wire)
				for i := range sum {
					if math.Float32bits(sum[i]) != math.Float32bits(acc[i]+got[i]) {
						t.Fatalf("%s width %d n=%d: DecodeAdd value %d = %g, Decode then add %g", kind, width, n, i, sum[i], acc[i]+got[i])
					}
				}
				for lo := 0; lo < n; lo += width {
					hi := min(lo+width, n)
					checkQuantBound(t, inner, src[lo:hi], got[lo:hi])
				}
			}
		}
	}
}
