package collective

import (
	"errors"
	"fmt"
)

// Codec turns float32 values into wire bytes and back. A Codec holds no
// mutable state, so one value may be shared by any number of goroutines.
//
// Wire layouts (all multi-byte fields little-endian):
//
//   - f32: 4 bytes per value, the IEEE-754 bits unchanged.
//   - bf16: 2 bytes per value, the top 16 bits of the float32 after
//     round-to-nearest-even; NaN stays NaN (quiet).
//   - int8: per block of B values (the last block may be shorter): a 4-byte
//     float32 scale, then one signed byte per value. Blocks follow each other
//     back to back, so the encoding of whole blocks src[a:b] (a a multiple of
//     B) is exactly the byte range EncodedLen(a):EncodedLen(b) of the
//     encoding of the whole buffer.
//   - int4: per block: a 4-byte float32 scale, then ceil(n/2) bytes holding
//     two signed 4-bit codes each (value 2i in the low nibble, 2i+1 in the
//     high nibble; an odd final value leaves the high nibble 0). Same
//     back-to-back block property as int8.
//   - int6: per block: a 4-byte float32 scale, then ceil(6n/8) bytes of
//     signed 6-bit codes (two's complement, in [-31, 31] when encoded).
//     Every group of four codes c0..c3 (values 4i..4i+3 of the block) is
//     the 24-bit little-endian word c0 | c1<<6 | c2<<12 | c3<<18 in three
//     bytes; a final group of 1-3 codes is the same word with the missing
//     codes 0, truncated to ceil(6m/8) bytes (1, 2 or 3). Same back-to-back
//     block property as int8.
//   - fp8: per block: a 4-byte float32 scale, then one OCP FP8 E4M3FN byte
//     per value (sign, 4 exponent bits with bias 7, 3 mantissa bits;
//     subnormals m*2^-9; no infinities; 0x7f and 0xff are NaN; largest
//     finite 448). A value decodes to the byte's E4M3 value times the
//     scale. Same back-to-back block property as int8.
//
// The exact quantization rules, the treatment of NaN, Inf and denormals and
// the error bounds are documented in docs/CODECS.md.
type Codec interface {
	Kind() CodecKind
	// BlockSize is the number of values per block (1 for f32 and bf16).
	BlockSize() int
	// EncodedLen is the number of wire bytes for n values.
	EncodedLen(n int) int
	// Encode writes the wire form of src into dst. Blocks start at src[0];
	// the last block may be short. It panics unless
	// len(dst) == EncodedLen(len(src)).
	Encode(dst []byte, src []float32)
	// Decode sets dst to the values encoded in src. It panics unless
	// len(src) == EncodedLen(len(dst)). Any byte string of that length
	// decodes without panicking.
	Decode(dst []float32, src []byte)
	// DecodeAdd adds the values encoded in src to dst with float32 adds; the
	// result is bitwise what Decode followed by an element-wise add gives.
	// It panics unless len(src) == EncodedLen(len(dst)).
	DecodeAdd(dst []float32, src []byte)
}

// DefaultBlockSize is the block size NewCodec uses when asked for 0. It is
// chosen from the measured error-versus-wire-bytes table in docs/CODECS.md.
const DefaultBlockSize = 256

// MinBlockSize and MaxBlockSize bound the block sizes NewCodec accepts; a
// block size must also be a multiple of BlockSizeMultiple.
const (
	MinBlockSize      = 8
	MaxBlockSize      = 1 << 16
	BlockSizeMultiple = 8
)

// ErrBlockSize is wrapped by NewCodec when the block size is invalid.
var ErrBlockSize = errors.New("invalid block size")

// ErrCodecKind is wrapped by NewCodec when the codec kind is unknown.
var ErrCodecKind = errors.New("unknown codec kind")

// NewCodec returns the codec of the given kind. blockSize 0 means
// DefaultBlockSize; otherwise it must lie in [MinBlockSize, MaxBlockSize] and
// be a multiple of BlockSizeMultiple. The block size is validated for every
// kind, so an invalid setting is reported even when the f32 or bf16 codec is
// chosen, but those two codecs have no blocks and report BlockSize() == 1.
func NewCodec(kind CodecKind, blockSize int) (Codec, error) {
	b, err := resolveBlockSize(blockSize)
	if err != nil {
		return nil, fmt.Errorf("collective: codec %q: %w", kind, err)
	}
	spec, ok := lookup(kind)
	if !ok {
		return nil, fmt.Errorf("collective: codec %q (want %s): %w", kind, codecList(), ErrCodecKind)
	}
	return spec.make(b), nil
}

func resolveBlockSize(blockSize int) (int, error) {
	if blockSize == 0 {
		return DefaultBlockSize, nil
	}
	if blockSize < MinBlockSize || blockSize > MaxBlockSize || blockSize%BlockSizeMultiple != 0 {
		return 0, fmt.Errorf("block size %d not a multiple of %d in [%d, %d]: %w",
			blockSize, BlockSizeMultiple, MinBlockSize, MaxBlockSize, ErrBlockSize)
	}
	return blockSize, nil
}

// checkEncodeLen panics unless len(dst) == want, the encoded length of n
// values. It takes plain values (not the Codec) so the hot path does not
// box the codec into an interface.
func checkEncodeLen(kind CodecKind, dst []byte, n, want int) {
	if len(dst) != want {
		panic(fmt.Sprintf("collective: %s Encode of %d values: len(dst) = %d, want %d",
			kind, n, len(dst), want))
	}
}

// checkDecodeLen panics unless len(src) == want, the encoded length of n
// values.
func checkDecodeLen(kind CodecKind, op string, src []byte, n, want int) {
	if len(src) != want {
		panic(fmt.Sprintf("collective: %s %s into %d values: len(src) = %d, want %d",
			kind, op, n, len(src), want))
	}
}

// ErrorBound returns the largest |x - Decode(Encode(x))| the codec of the
// given kind can produce for a finite value x of a block whose largest
// magnitude is absmax (for f32 and bf16 a block is one value, so absmax may
// be |x| itself). It is the bound derived in docs/CODECS.md, computed in
// float64:
//
//	f32:       0
//	bf16:      absmax * 2^-8 + 2^-134 (for absmax below the bfloat16
//	           overflow threshold 0x7f7f8000; above it the value becomes Inf)
//	int8/int6/int4: absmax/(2L) + absmax*2^-21 + (L+1)*2^-149,
//	           L = 127, 31 or 7
//	fp8:       absmax/28 + absmax*2^-21 + 449*2^-149 (half the E4M3
//	           spacing 32 of the top binade [256, 448], scaled by
//	           absmax/448)
//
// A collective that re-quantizes at every hop can sum these per-hop bounds
// (with each hop's own block absmax) plus the float32 rounding of its adds.
func ErrorBound(kind CodecKind, absmax float64) (float64, error) {
	if spec, ok := lookup(kind); ok {
		return spec.bound(absmax), nil
	}
	return 0, fmt.Errorf("collective: error bound of codec %q: %w", kind, ErrCodecKind)
}

// quantErrorBound is half a quantization step a/(2L), plus a*2^-21 for the
// float32 roundings of the reciprocal, of x times it, of the stored scale
// (one or two ulps when stepped down near MaxFloat32) and of the decoded
// product (five roundings of at most 2^-24 relative each, with margin), plus
// (L+1)*2^-149 for a scale or a decoded product in the denormal range, where
// rounding is absolute.
func quantErrorBound(a float64, levels int) float64 {
	L := float64(levels)
	return a/(2*L) + a*0x1p-21 + (L+1)*0x1p-149
}

// fp8ErrorBound is ErrorBound for fp8: half the spacing of the E4M3 values
// in their top binade [256, 448] (32 there, so 16 code units, a*16/448 =
// a/28), plus a*2^-21 for the float32 roundings (as for int8) and
// 449*2^-149 for a scale or decoded product in the denormal range.
func fp8ErrorBound(a float64) float64 {
	return a/28 + a*0x1p-21 + (fp8Levels+1)*0x1p-149
}
