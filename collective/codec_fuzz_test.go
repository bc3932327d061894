package collective

import (
	"encoding/binary"
	"math"
	"testing"
)

var fuzzBlocks = []int{8, 16, 24, 64, 256, 1024}

func fuzzCodec(t *testing.T, kindSel, blockSel uint8) Codec {
	return mustCodec(t, allCodecKinds[int(kindSel)%len(allCodecKinds)], fuzzBlocks[int(blockSel)%len(fuzzBlocks)])
}

// FuzzCodecDecode decodes arbitrary bytes of the right length: it must not
// panic, must match the reference decoder bit for bit, and DecodeAdd must
// match Decode followed by an add.
func FuzzCodecDecode(f *testing.F) {
	f.Add(uint8(2), uint8(0), uint16(9), []byte{0, 0, 0x80, 0x7f, 0x81, 0x7f, 0})
	f.Add(uint8(3), uint8(1), uint16(33), []byte{1, 0, 0, 0, 0x88, 0x77})
	f.Add(uint8(1), uint8(0), uint16(3), []byte{0x80, 0x7f, 0xc1, 0xff})
	f.Add(uint8(4), uint8(0), uint16(11), []byte{0, 0, 0x80, 0x3f, 0x20, 0x08, 0x82, 0xff, 0x7f})
	f.Add(uint8(5), uint8(1), uint16(19), []byte{1, 0, 0x80, 0x7f, 0x7f, 0xff, 0x7e, 0xfe, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, kindSel, blockSel uint8, n uint16, data []byte) {
		c := fuzzCodec(t, kindSel, blockSel)
		count := int(n % 4096)
		wire := make([]byte, c.EncodedLen(count))
		if len(data) > 0 {
			for i := range wire {
				wire[i] = data[i%len(data)]
			}
		}
		got := make([]float32, count)
		c.Decode(got, wire)
		if d := decodeDiff(c.Kind(), c.BlockSize(), wire, refDecode(c.Kind(), c.BlockSize(), wire, count), got); d != "" {
			t.Fatalf("%s B=%d: Decode differs from reference: %s", c.Kind(), c.BlockSize(), d)
		}
		acc := make([]float32, count)
		for i := range acc {
			acc[i] = float32(math.Copysign(0, -1)) // -0 + v == v for every v
		}
		c.DecodeAdd(acc, wire)
		if d := nanEquivDiff(got, acc); d != "" {
			t.Fatalf("%s B=%d: DecodeAdd onto -0 differs from Decode: %s", c.Kind(), c.BlockSize(), d)
		}
	})
}

// FuzzCodecRoundTrip encodes arbitrary float32s: the wire bytes must match
// the reference encoder. Then, with NaN and Inf replaced by 0, the decoded
// values must stay within the documented bounds.
func FuzzCodecRoundTrip(f *testing.F) {
	le := func(xs ...float32) []byte {
		var b []byte
		for _, x := range xs {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
		return b
	}
	f.Add(uint8(2), uint8(0), le(1, -2, 3.5, 127, -63.5, 0, 0.1, 1e-3, 7))
	f.Add(uint8(3), uint8(0), le(math.MaxFloat32, -math.MaxFloat32, 1, 0))
	f.Add(uint8(2), uint8(1), le(0x1p-149, -0x1p-149, 0x1p-140, 0x1p-126))
	f.Add(uint8(1), uint8(2), le(1+0x1p-8, math.MaxFloat32, 0x1p-133, 3.3961e38))
	f.Add(uint8(4), uint8(0), le(31, -15.5, 2.5, -0.5, 1.5, 0, -31, 3, 62, -31, 1))
	f.Add(uint8(5), uint8(0), le(448, -1, 0.5, 1.0625, 1.1875, 0x1p-9, 0x1p-10, -3*0x1p-11, 464, -480))
	f.Add(uint8(5), uint8(1), le(math.MaxFloat32, 0x1p-149, -0x1p-140, 1e-30, 1e30))
	f.Fuzz(func(t *testing.T, kindSel, blockSel uint8, data []byte) {
		c := fuzzCodec(t, kindSel, blockSel)
		src := make([]float32, len(data)/4)
		for i := range src {
			src[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		wire := make([]byte, c.EncodedLen(len(src)))
		c.Encode(wire, src)
		if d := bytesDiff(refEncode(c.Kind(), c.BlockSize(), src), wire); d != "" {
			t.Fatalf("%s B=%d: Encode differs from reference: %s", c.Kind(), c.BlockSize(), d)
		}
		for i, v := range src {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				src[i] = 0
			}
		}
		c.Encode(wire, src)
		if d := bytesDiff(refEncode(c.Kind(), c.BlockSize(), src), wire); d != "" {
			t.Fatalf("%s B=%d: Encode differs from reference: %s", c.Kind(), c.BlockSize(), d)
		}
		got := make([]float32, len(src))
		c.Decode(got, wire)
		switch c.Kind() {
		case CodecF32:
			if d := bitsDiff(src, got); d != "" {
				t.Fatalf("f32 not exact: %s", d)
			}
		case CodecBF16:
			checkBF16Bound(t, src, got)
		default:
			checkQuantBound(t, c, src, got)
		}
	})
}
