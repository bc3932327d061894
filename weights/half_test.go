package weights

import (
	"math"
	"testing"
)

// f16Ref is the value of a binary16 bit pattern computed from the IEEE 754
// definition in float64.
func f16Ref(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, man := int(h>>10)&0x1f, float64(h&0x3ff)
	switch exp {
	case 0x1f:
		if man != 0 {
			return math.NaN()
		}
		return math.Inf(int(sign))
	case 0:
		return sign * man / 1024 * math.Pow(2, -14)
	}
	return sign * (1 + man/1024) * math.Pow(2, float64(exp-15))
}

// bf16Ref is the value of a bfloat16 bit pattern from its definition.
func bf16Ref(b uint16) float64 {
	sign := 1.0
	if b&0x8000 != 0 {
		sign = -1
	}
	exp, man := int(b>>7)&0xff, float64(b&0x7f)
	switch exp {
	case 0xff:
		if man != 0 {
			return math.NaN()
		}
		return math.Inf(int(sign))
	case 0:
		return sign * man / 128 * math.Pow(2, -126)
	}
	return sign * (1 + man/128) * math.Pow(2, float64(exp-127))
}

func TestHalfToF32Exhaustive(t *testing.T) {
	tests := []struct {
		name string
		conv func(uint16) float32
		ref  func(uint16) float64
		back func(float32) uint16
	}{
		{"f16", f16ToF32, f16Ref, f32ToF16},
		{"bf16", bf16ToF32, bf16Ref, f32ToBF16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := 0
			for i := range 1 << 16 {
				h := uint16(i)
				got, want := tc.conv(h), tc.ref(h)
				ok := float64(got) == want && math.Signbit(float64(got)) == math.Signbit(want)
				if math.IsNaN(want) {
					ok = math.IsNaN(float64(got))
				}
				if !ok {
					if bad++; bad <= 10 {
						t.Errorf("%#04x: got %v, want %v", h, got, want)
					}
					continue
				}
				// Every representable value survives the conversion back.
				if !math.IsNaN(want) {
					if b := tc.back(got); b != h {
						if bad++; bad <= 10 {
							t.Errorf("%#04x -> %v -> %#04x", h, got, b)
						}
					}
				} else if b := tc.back(got); !math.IsNaN(tc.ref(b)) {
					t.Errorf("NaN %#04x -> %#04x is not NaN", h, b)
				}
			}
		})
	}
}

func TestF32ToHalfRounding(t *testing.T) {
	tests := []struct {
		name string
		in   float32
		f16  uint16
		bf16 uint16
	}{
		{"one", 1, 0x3c00, 0x3f80},
		{"minus two", -2, 0xc000, 0xc000},
		{"f16 tie to even down", 1 + 1.0/2048, 0x3c00, 0x3f80},
		{"f16 tie to even up", 1 + 3.0/2048, 0x3c02, 0x3f80},
		{"f16 above tie", 1 + 1.0/2048 + 1.0/(1<<20), 0x3c01, 0x3f80},
		{"bf16 tie to even down", 1 + 1.0/256, 0x3c04, 0x3f80},
		{"bf16 tie to even up", 1 + 3.0/256, 0x3c0c, 0x3f82},
		{"f16 max", 65504, 0x7bff, 0x4780},
		{"f16 overflow rounds to inf", 65520, 0x7c00, 0x4780},
		{"f16 just below overflow", 65519, 0x7bff, 0x4780},
		{"f16 smallest subnormal", 0x1p-24, 0x0001, 0x3380},
		{"f16 half smallest subnormal ties to zero", 0x1p-25, 0x0000, 0x3300},
		{"f16 above half smallest subnormal", 0x1.000002p-25, 0x0001, 0x3300},
		{"f16 subnormal rounds up to normal", 0x1.ffcp-15, 0x0400, 0x3880},
		{"negative zero", float32(math.Copysign(0, -1)), 0x8000, 0x8000},
		{"inf", float32(math.Inf(1)), 0x7c00, 0x7f80},
		{"minus inf", float32(math.Inf(-1)), 0xfc00, 0xff80},
		{"f32 subnormal", 0x1p-130, 0x0000, 0x0008},
		{"f16 carry into exponent", 0x1.ffep0, 0x4000, 0x4000},
		{"bf16 carry into exponent", 0x1.ffp0, 0x3ffc, 0x4000},
	}
	for _, tc := range tests {
		if got := f32ToF16(tc.in); got != tc.f16 {
			t.Errorf("%s: f32ToF16(%g) = %#04x, want %#04x", tc.name, tc.in, got, tc.f16)
		}
		if got := f32ToBF16(tc.in); got != tc.bf16 {
			t.Errorf("%s: f32ToBF16(%g) = %#04x, want %#04x", tc.name, tc.in, got, tc.bf16)
		}
	}
}

func TestDecodeMatchesConversions(t *testing.T) {
	raw := make([]byte, 2<<16)
	for i := range 1 << 16 {
		raw[2*i], raw[2*i+1] = byte(i), byte(i>>8)
	}
	for _, tc := range []struct {
		dt   dtype
		conv func(uint16) float32
	}{{dtF16, f16ToF32}, {dtBF16, bf16ToF32}} {
		got := make([]float32, 1<<16)
		decode(tc.dt, raw, got)
		for i, g := range got {
			if want := tc.conv(uint16(i)); math.Float32bits(g) != math.Float32bits(want) {
				t.Fatalf("%v: decode of %#04x = %#08x, want %#08x", tc.dt, i, math.Float32bits(g), math.Float32bits(want))
			}
		}
	}
}
