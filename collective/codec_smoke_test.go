package collective

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCodecSmokeRoundTrip(t *testing.T) {
	src := []float32{0, 1, -2, 3.5, 0.125, -7, 100, 0.25, 42}
	for _, kind := range []CodecKind{CodecF32, CodecBF16, CodecInt8, CodecInt4} {
		c, err := NewCodec(kind, 8)
		if err != nil {
			t.Fatalf("NewCodec(%s): %v", kind, err)
		}
		buf := make([]byte, c.EncodedLen(len(src)))
		c.Encode(buf, src)
		got := make([]float32, len(src))
		c.Decode(got, buf)
		if kind == CodecF32 || kind == CodecBF16 {
			if diff := cmp.Diff(src, got); diff != "" {
				t.Errorf("%s round trip (-want +got):\n%s", kind, diff)
			}
		}
	}
}
