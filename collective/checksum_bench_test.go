package collective

import (
	"fmt"
	"hash/crc32"
	"testing"
)

// BenchmarkPayloadChecksum measures the CRC32-C every payload pays twice
// (once when encoded, once when received), in bytes of payload per second,
// next to the int8 encoder of the same payload for scale.
func BenchmarkPayloadChecksum(b *testing.B) {
	for _, n := range []int{4 << 10, 64 << 10, 1 << 20} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i * 131)
		}
		b.Run(fmt.Sprintf("crc32c/bytes=%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			var sum uint32
			for b.Loop() {
				sum ^= crc32.Checksum(payload, castagnoli)
			}
			_ = sum
		})
		// int8 with the default block: about n bytes of payload from n values.
		src := benchInput(n)
		c := mustCodec(b, CodecInt8, 0)
		dst := make([]byte, c.EncodedLen(n))
		b.Run(fmt.Sprintf("int8-encode/bytes=%d", len(dst)), func(b *testing.B) {
			b.SetBytes(int64(len(dst)))
			for b.Loop() {
				c.Encode(dst, src)
			}
		})
	}
}
