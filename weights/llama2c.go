package weights

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"

	"github.com/equarx/equarx/model"
)

// llama2cHeaderBytes is the size of the legacy (version 0) llama2.c header:
// seven little-endian int32 values.
const llama2cHeaderBytes = 28

// llama2cMagic opens the versioned llama2.c export formats.
const llama2cMagic = 0x616b3432

// maxLlama2CDim bounds every header value, far above any real model, so that
// size arithmetic cannot overflow.
const maxLlama2CDim = 1 << 24

// ReadLlama2C reads a llama2.c checkpoint held in memory (for example the
// embedded assets.Stories260K()). data is not modified or retained beyond
// the returned source; tensors are decoded into fresh slices.
func ReadLlama2C(data []byte) (Source, error) {
	return newLlama2C(bytes.NewReader(data), int64(len(data)), "llama2.c data", nil)
}

// OpenLlama2C opens a llama2.c checkpoint file. Only the header is read up
// front; tensors and slices are read from the file when asked for.
func OpenLlama2C(path string) (Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("weights: open llama2.c checkpoint: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("weights: stat %s: %w", path, err)
	}
	s, err := newLlama2C(f, st.Size(), path, f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// llama2cHeader is the legacy header, widened to int64.
type llama2cHeader struct {
	dim, hidden, layers, heads, kvHeads, vocab, seqLen int64
}

func newLlama2C(r io.ReaderAt, size int64, origin string, closer io.Closer) (*readerSource, error) {
	if size < llama2cHeaderBytes {
		return nil, fmt.Errorf("%w: llama2.c: file is %d bytes, shorter than the %d-byte header", ErrCorrupt, size, llama2cHeaderBytes)
	}
	var raw [llama2cHeaderBytes]byte
	if _, err := r.ReadAt(raw[:], 0); err != nil {
		return nil, fmt.Errorf("weights: llama2.c: reading header: %w", err)
	}
	// llama2.c's export.py writes versions 1 and 2 with a magic number
	// ("ak42") and a version in front; only the legacy layout is read.
	if binary.LittleEndian.Uint32(raw[:]) == llama2cMagic {
		return nil, fmt.Errorf("%w: llama2.c export version %d (only the legacy version-0 layout is read)",
			ErrUnsupported, int32(binary.LittleEndian.Uint32(raw[4:])))
	}
	var v [7]int64
	for i := range v {
		v[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
	}
	h := llama2cHeader{v[0], v[1], v[2], v[3], v[4], v[5], v[6]}
	if err := h.check(); err != nil {
		return nil, err
	}
	vocab := h.vocab
	tied := vocab > 0
	if !tied {
		vocab = -vocab
	}
	headSize := h.dim / h.heads
	kvDim := h.dim * h.kvHeads / h.heads
	d, hid, L := h.dim, h.hidden, h.layers

	cfg := model.Config{
		Arch:           "llama",
		Dim:            int(d),
		HiddenDim:      int(hid),
		Layers:         int(L),
		Heads:          int(h.heads),
		KVHeads:        int(h.kvHeads),
		HeadDim:        int(headSize),
		Vocab:          int(vocab),
		MaxSeqLen:      int(h.seqLen),
		NormEps:        1e-5,
		RopeTheta:      10000,
		RopeStyle:      model.RopeInterleaved,
		Activation:     model.ActSiLU,
		TiedEmbeddings: tied,
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: llama2.c header: %w", ErrCorrupt, err)
	}
	type array struct {
		name     string
		perLayer bool
		shape    []int64 // of one layer for per-layer arrays
		skip     bool    // stored but not a weight (RoPE tables)
	}
	arrays := []array{
		{"token_embedding", false, []int64{vocab, d}, false},
		{"rms_att", true, []int64{d}, false},
		{"wq", true, []int64{d, d}, false},
		{"wk", true, []int64{kvDim, d}, false},
		{"wv", true, []int64{kvDim, d}, false},
		{"wo", true, []int64{d, d}, false},
		{"rms_ffn", true, []int64{d}, false},
		{"w1", true, []int64{hid, d}, false},
		{"w2", true, []int64{d, hid}, false},
		{"w3", true, []int64{hid, d}, false},
		{"rms_final", false, []int64{d}, false},
		{"freq_cis_real", false, []int64{h.seqLen, headSize / 2}, true},
		{"freq_cis_imag", false, []int64{h.seqLen, headSize / 2}, true},
	}
	if !tied {
		arrays = append(arrays, array{"wcls", false, []int64{vocab, d}, false})
	}

	// Size the file from the header alone, with overflow checks, before
	// anything proportional to a header value is allocated or looped over.
	type sized struct {
		array
		nb    int64 // bytes of one layer (or of the whole array)
		count int64 // 1, or n_layers for per-layer arrays
	}
	var layout []sized
	total := int64(llama2cHeaderBytes)
	for _, a := range arrays {
		n, ok := mulChecked(a.shape...)
		nb, ok2 := mulChecked(n, 4)
		count := int64(1)
		if a.perLayer {
			count = L
		}
		all, ok3 := mulChecked(nb, count)
		if !ok || !ok2 || !ok3 || total > math.MaxInt64-all {
			return nil, fmt.Errorf("%w: llama2.c: size of %s overflows", ErrCorrupt, a.name)
		}
		layout = append(layout, sized{a, nb, count})
		total += all
	}
	nameOf := func(a sized, layer int64) string {
		canon, ok := llama2cCanonical(a.name)
		switch {
		case !ok || a.skip:
			return a.name
		case a.perLayer:
			return layerName(int(layer), canon)
		}
		return canon
	}
	if size < total {
		off := int64(llama2cHeaderBytes)
		for _, a := range layout {
			if off+a.nb*a.count > size {
				l := (size - off) / a.nb
				from := off + l*a.nb
				return nil, fmt.Errorf("%w: llama2.c: file is %d bytes but the header implies %d: it ends inside %s (bytes [%d, %d))",
					ErrCorrupt, size, total, nameOf(a, l), from, from+a.nb)
			}
			off += a.nb * a.count
		}
	}
	if size > total {
		extra := size - total
		if tied && extra == vocab*d*4 {
			return nil, fmt.Errorf("%w: llama2.c: file has %d bytes after rms_final and the RoPE tables, exactly an unshared classifier, but vocab_size %d is positive (shared)",
				ErrCorrupt, extra, h.vocab)
		}
		last := layout[len(layout)-1]
		return nil, fmt.Errorf("%w: llama2.c: file is %d bytes but the header implies %d: %d trailing bytes after %s",
			ErrCorrupt, size, total, extra, nameOf(last, last.count-1))
	}

	// The file holds exactly the arrays, so n_layers is at most size/4.
	entries := make(map[string]*entry)
	shapes := make(map[string][]int)
	off := int64(llama2cHeaderBytes)
	for _, a := range layout {
		for l := range a.count {
			if !a.skip {
				shape := make([]int, len(a.shape))
				for i, x := range a.shape {
					shape[i] = int(x)
				}
				name := nameOf(a, l)
				entries[name] = &entry{shape: shape, dt: dtF32, r: r, off: off, origin: origin}
				shapes[name] = shape
			}
			off += a.nb
		}
	}

	names, err := checkTensors(&cfg, shapes)
	if err != nil {
		return nil, fmt.Errorf("llama2.c: %w", err)
	}
	s := &readerSource{cfg: cfg, entries: entries, names: names}
	if closer != nil {
		s.closers = []io.Closer{closer}
	}
	return s, nil
}

func (h *llama2cHeader) check() error {
	fields := []struct {
		name string
		v    int64
	}{{"dim", h.dim}, {"hidden_dim", h.hidden}, {"n_layers", h.layers}, {"n_heads", h.heads},
		{"n_kv_heads", h.kvHeads}, {"seq_len", h.seqLen}}
	for _, f := range fields {
		if f.v <= 0 || f.v > maxLlama2CDim {
			return fmt.Errorf("%w: llama2.c header: %s is %d, want 1..%d", ErrCorrupt, f.name, f.v, maxLlama2CDim)
		}
	}
	if h.vocab == 0 || h.vocab > maxLlama2CDim || h.vocab < -maxLlama2CDim {
		return fmt.Errorf("%w: llama2.c header: vocab_size is %d, want 1..%d in magnitude", ErrCorrupt, h.vocab, maxLlama2CDim)
	}
	if h.dim%h.heads != 0 {
		return fmt.Errorf("%w: llama2.c header: dim %d is not a multiple of n_heads %d", ErrCorrupt, h.dim, h.heads)
	}
	if h.heads%h.kvHeads != 0 {
		return fmt.Errorf("%w: llama2.c header: n_heads %d is not a multiple of n_kv_heads %d", ErrCorrupt, h.heads, h.kvHeads)
	}
	return nil
}

// mulChecked multiplies non-negative values, reporting overflow of int64.
func mulChecked(xs ...int64) (int64, bool) {
	p := uint64(1)
	for _, x := range xs {
		if x < 0 {
			return 0, false
		}
		hi, lo := bits.Mul64(p, uint64(x))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, false
		}
		p = lo
	}
	return int64(p), true
}
