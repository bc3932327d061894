package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/weights"
)

func init() {
	register("gguf", "write a Llama model's weights as an F32 GGUF v3 file for llama.cpp (--model synthetic:NAME)", runGGUFCmd)
}

// ggufSyntheticSeed is the seed of synthetic weights, the one cmd/serve
// uses for --model synthetic:NAME, so both serve the same values.
const ggufSyntheticSeed = 1

// GGUF constants (the GGUF v3 format of the ggml project): metadata value
// types, the F32 tensor type, the llama file type "all F32", the default
// alignment and the SentencePiece token types.
const (
	ggufMagic     = "GGUF"
	ggufVersion   = 3
	ggufAlignment = 32

	ggufTypeUint32  = 4
	ggufTypeInt32   = 5
	ggufTypeFloat32 = 6
	ggufTypeString  = 8
	ggufTypeArray   = 9

	ggmlTypeF32    = 0
	ggufFileAllF32 = 0

	tokNormal  = 1
	tokUnknown = 2
	tokControl = 3
	tokByte    = 6
)

// ggufSpecialTokens is the Llama 2 SentencePiece layout: <unk>, <s>, </s>,
// then the 256 byte tokens <0x00>..<0xFF>.
const ggufSpecialTokens = 3 + 256

func runGGUFCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("gguf", flag.ContinueOnError)
	modelArg := fs.String("model", "synthetic:llama-110m", "synthetic:NAME (a config in configs/models, seed 1 as in cmd/serve), a llama2.c checkpoint or a safetensors file/directory")
	out := fs.String("out", "", "GGUF file to write (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return errors.New("usage: bench gguf --model synthetic:NAME --out FILE")
	}
	src, err := openGGUFSource(*modelArg)
	if err != nil {
		return err
	}
	defer src.Close()
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	n, err := writeGGUF(f, src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out)
		return err
	}
	cfg := src.Config()
	fmt.Fprintf(stdout, "wrote %s: %s, %d tensors, %d bytes (F32, GGUF v%d, llama.cpp architecture \"llama\")\n",
		*out, cfg.Name, len(ggufTensors(cfg)), n, ggufVersion)
	return nil
}

func openGGUFSource(arg string) (weights.Source, error) {
	if name, ok := strings.CutPrefix(arg, "synthetic:"); ok {
		mc, err := model.LoadNamed(name, "")
		if err != nil {
			return nil, fmt.Errorf("synthetic model: %w", err)
		}
		return weights.Synthetic(mc, ggufSyntheticSeed)
	}
	st, err := os.Stat(arg)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if st.IsDir() || strings.HasSuffix(arg, ".safetensors") {
		return weights.OpenSafetensors(arg)
	}
	return weights.OpenLlama2C(arg)
}

// ggufTensor is one tensor of the file: llama.cpp's name, the canonical
// name it is read from, its ggml shape (ne[0] is the contiguous dimension,
// so a canonical [out, in] matrix is ne = [in, out]) and, for Q and K, the
// number of heads whose rows are permuted for llama.cpp's RoPE (0: none).
type ggufTensor struct {
	name, src string
	ne        []uint64
	permHeads int
}

func (t ggufTensor) bytes() uint64 {
	n := uint64(4)
	for _, d := range t.ne {
		n *= d
	}
	return n
}

// ggufTensors lists the tensors of a Llama config in llama.cpp's names.
//
// llama.cpp's "llama" architecture rotates adjacent pairs (2i, 2i+1), as
// llama2.c checkpoints and rope_style "interleaved" do. For rope_style
// "half" (pairs (i, i+d/2), Hugging Face's layout) the rows of each Q and K
// head are permuted, as llama.cpp's converter does for Hugging Face
// checkpoints, so that the same pairs rotate at the same frequencies; the
// attention scores are unchanged because Q and K are permuted alike.
func ggufTensors(cfg model.Config) []ggufTensor {
	d, h, hd := uint64(cfg.Dim), uint64(cfg.HiddenDim), uint64(cfg.HeadDim)
	q, kv := uint64(cfg.Heads)*hd, uint64(cfg.KVHeads)*hd
	qh, kh := 0, 0
	if cfg.RopeStyle == model.RopeHalf {
		qh, kh = cfg.Heads, cfg.KVHeads
	}
	head := "lm_head"
	if cfg.TiedEmbeddings {
		head = "embed"
	}
	ts := []ggufTensor{{name: "token_embd.weight", src: "embed", ne: []uint64{d, uint64(cfg.Vocab)}}}
	for l := 0; l < cfg.Layers; l++ {
		b, s := fmt.Sprintf("blk.%d.", l), fmt.Sprintf("layers.%d.", l)
		ts = append(ts,
			ggufTensor{name: b + "attn_norm.weight", src: s + "attn_norm", ne: []uint64{d}},
			ggufTensor{name: b + "attn_q.weight", src: s + "wq", ne: []uint64{d, q}, permHeads: qh},
			ggufTensor{name: b + "attn_k.weight", src: s + "wk", ne: []uint64{d, kv}, permHeads: kh},
			ggufTensor{name: b + "attn_v.weight", src: s + "wv", ne: []uint64{d, kv}},
			ggufTensor{name: b + "attn_output.weight", src: s + "wo", ne: []uint64{q, d}},
			ggufTensor{name: b + "ffn_norm.weight", src: s + "ffn_norm", ne: []uint64{d}},
			ggufTensor{name: b + "ffn_gate.weight", src: s + "w_gate", ne: []uint64{d, h}},
			ggufTensor{name: b + "ffn_up.weight", src: s + "w_up", ne: []uint64{d, h}},
			ggufTensor{name: b + "ffn_down.weight", src: s + "w_down", ne: []uint64{h, d}},
		)
	}
	return append(ts,
		ggufTensor{name: "output_norm.weight", src: "final_norm", ne: []uint64{d}},
		ggufTensor{name: "output.weight", src: head, ne: []uint64{d, uint64(cfg.Vocab)}},
	)
}

// ggufPermuteRows reorders the rows of a [heads·hd, cols] matrix within
// each head from rotate-half order to interleaved order: new row
// h·hd + 2i + j is old row h·hd + j·hd/2 + i.
func ggufPermuteRows(data []float32, heads, cols int) []float32 {
	hd := len(data) / cols / heads
	out := make([]float32, len(data))
	for h := 0; h < heads; h++ {
		for i := 0; i < hd/2; i++ {
			for j := 0; j < 2; j++ {
				dst, src := h*hd+2*i+j, h*hd+j*hd/2+i
				copy(out[dst*cols:(dst+1)*cols], data[src*cols:(src+1)*cols])
			}
		}
	}
	return out
}

// ggufWriter writes little-endian GGUF values and counts the bytes.
type ggufWriter struct {
	w   *bufio.Writer
	n   uint64
	err error
}

func (g *ggufWriter) raw(b []byte) {
	if g.err == nil {
		_, g.err = g.w.Write(b)
		g.n += uint64(len(b))
	}
}
func (g *ggufWriter) u32(v uint32) { g.raw(binary.LittleEndian.AppendUint32(nil, v)) }
func (g *ggufWriter) u64(v uint64) { g.raw(binary.LittleEndian.AppendUint64(nil, v)) }
func (g *ggufWriter) str(s string) { g.u64(uint64(len(s))); g.raw([]byte(s)) }
func (g *ggufWriter) pad() {
	if r := g.n % ggufAlignment; r != 0 {
		g.raw(make([]byte, ggufAlignment-r))
	}
}

// ggufKV is one metadata pair; write emits its type and value.
type ggufKV struct {
	key   string
	write func(g *ggufWriter)
}

func kvU32(key string, v uint32) ggufKV {
	return ggufKV{key, func(g *ggufWriter) { g.u32(ggufTypeUint32); g.u32(v) }}
}
func kvF32(key string, v float64) ggufKV {
	return ggufKV{key, func(g *ggufWriter) { g.u32(ggufTypeFloat32); g.u32(math.Float32bits(float32(v))) }}
}
func kvStr(key, v string) ggufKV {
	return ggufKV{key, func(g *ggufWriter) { g.u32(ggufTypeString); g.str(v) }}
}

// kvArray writes an array of n elements of type typ; elem writes element i.
func kvArray(key string, typ uint32, n int, elem func(g *ggufWriter, i int)) ggufKV {
	return ggufKV{key, func(g *ggufWriter) {
		g.u32(ggufTypeArray)
		g.u32(typ)
		g.u64(uint64(n))
		for i := 0; i < n; i++ {
			elem(g, i)
		}
	}}
}

// ggufToken is the placeholder vocabulary: the Llama 2 specials and byte
// tokens, then "tN" for every other id (benchmarks feed token ids).
func ggufToken(i int) (piece string, score float32, typ int32) {
	switch {
	case i == 0:
		return "<unk>", 0, tokUnknown
	case i == 1:
		return "<s>", 0, tokControl
	case i == 2:
		return "</s>", 0, tokControl
	case i < ggufSpecialTokens:
		return fmt.Sprintf("<0x%02X>", i-3), 0, tokByte
	}
	return fmt.Sprintf("t%d", i), -float32(i - ggufSpecialTokens), tokNormal
}

func ggufMetadata(cfg model.Config) []ggufKV {
	kvs := []ggufKV{
		kvStr("general.architecture", "llama"),
		kvStr("general.name", cfg.Name),
		kvU32("general.file_type", ggufFileAllF32),
		kvU32("general.alignment", ggufAlignment),
		kvU32("llama.context_length", uint32(cfg.MaxSeqLen)),
		kvU32("llama.embedding_length", uint32(cfg.Dim)),
		kvU32("llama.block_count", uint32(cfg.Layers)),
		kvU32("llama.feed_forward_length", uint32(cfg.HiddenDim)),
		kvU32("llama.attention.head_count", uint32(cfg.Heads)),
		kvU32("llama.attention.head_count_kv", uint32(cfg.KVHeads)),
		kvU32("llama.attention.key_length", uint32(cfg.HeadDim)),
		kvU32("llama.attention.value_length", uint32(cfg.HeadDim)),
		kvF32("llama.attention.layer_norm_rms_epsilon", cfg.NormEps),
		kvF32("llama.rope.freq_base", cfg.RopeTheta),
		kvU32("llama.rope.dimension_count", uint32(cfg.HeadDim)),
		kvU32("llama.vocab_size", uint32(cfg.Vocab)),
	}
	if f := cfg.RopeScalingFactor; f != 0 {
		kvs = append(kvs, kvStr("llama.rope.scaling.type", "linear"), kvF32("llama.rope.scaling.factor", f))
	}
	return append(kvs,
		kvStr("tokenizer.ggml.model", "llama"),
		kvArray("tokenizer.ggml.tokens", ggufTypeString, cfg.Vocab, func(g *ggufWriter, i int) {
			p, _, _ := ggufToken(i)
			g.str(p)
		}),
		kvArray("tokenizer.ggml.scores", ggufTypeFloat32, cfg.Vocab, func(g *ggufWriter, i int) {
			_, s, _ := ggufToken(i)
			g.u32(math.Float32bits(s))
		}),
		kvArray("tokenizer.ggml.token_type", ggufTypeInt32, cfg.Vocab, func(g *ggufWriter, i int) {
			_, _, t := ggufToken(i)
			g.u32(uint32(t))
		}),
		kvU32("tokenizer.ggml.unknown_token_id", 0),
		kvU32("tokenizer.ggml.bos_token_id", 1),
		kvU32("tokenizer.ggml.eos_token_id", 2),
	)
}

// writeGGUF writes src as a GGUF v3 file with F32 tensors and returns the
// number of bytes written.
func writeGGUF(w io.Writer, src weights.Source) (uint64, error) {
	cfg := src.Config()
	if cfg.Arch != "llama" {
		return 0, fmt.Errorf("gguf: architecture %q: only llama is written", cfg.Arch)
	}
	if cfg.Vocab < ggufSpecialTokens {
		return 0, fmt.Errorf("gguf: vocabulary of %d tokens: the Llama tokenizer layout needs at least %d", cfg.Vocab, ggufSpecialTokens)
	}
	if cfg.HeadDim%2 != 0 {
		return 0, fmt.Errorf("gguf: odd head_dim %d", cfg.HeadDim)
	}
	ts := ggufTensors(cfg)
	kvs := ggufMetadata(cfg)
	g := &ggufWriter{w: bufio.NewWriterSize(w, 1<<20)}
	g.raw([]byte(ggufMagic))
	g.u32(ggufVersion)
	g.u64(uint64(len(ts)))
	g.u64(uint64(len(kvs)))
	for _, kv := range kvs {
		g.str(kv.key)
		kv.write(g)
	}
	var off uint64
	for _, t := range ts {
		g.str(t.name)
		g.u32(uint32(len(t.ne)))
		for _, d := range t.ne {
			g.u64(d)
		}
		g.u32(ggmlTypeF32)
		g.u64(off)
		off += (t.bytes() + ggufAlignment - 1) / ggufAlignment * ggufAlignment
	}
	g.pad()
	var buf []byte
	for _, t := range ts {
		if g.err != nil {
			break
		}
		tt, err := src.Tensor(t.src)
		if err != nil {
			return g.n, fmt.Errorf("gguf: %s: %w", t.name, err)
		}
		if uint64(4*len(tt.Data)) != t.bytes() {
			return g.n, fmt.Errorf("gguf: %s: %s has %d values, want %d", t.name, t.src, len(tt.Data), t.bytes()/4)
		}
		data := tt.Data
		if t.permHeads > 0 {
			data = ggufPermuteRows(data, t.permHeads, int(t.ne[0]))
		}
		buf = buf[:0]
		for _, v := range data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		g.raw(buf)
		g.pad()
	}
	if g.err == nil {
		g.err = g.w.Flush()
	}
	return g.n, g.err
}
