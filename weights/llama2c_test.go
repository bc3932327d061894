package weights

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/model"
)

// stories260K layout constants, from the llama2.c header of the checkpoint.
const (
	s260Dim, s260Hidden, s260Layers, s260Heads, s260KV, s260Vocab, s260Seq = 64, 172, 5, 8, 4, 512, 512
	s260KVDim                                                              = s260Dim * s260KV / s260Heads
)

func stories260K(t testing.TB) Source {
	t.Helper()
	s, err := ReadLlama2C(assets.Stories260K())
	if err != nil {
		t.Fatalf("ReadLlama2C(stories260K): %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestLlama2CStories260KConfig(t *testing.T) {
	s := stories260K(t)
	want := model.Config{
		Arch: "llama", Dim: 64, HiddenDim: 172, Layers: 5, Heads: 8, KVHeads: 4, HeadDim: 8,
		Vocab: 512, MaxSeqLen: 512, NormEps: 1e-5, RopeTheta: 10000,
		RopeStyle: model.RopeInterleaved, Activation: model.ActSiLU, TiedEmbeddings: true,
	}
	if diff := cmp.Diff(want, s.Config()); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	names := s.Names()
	if got, want := len(names), 2+9*s260Layers; got != want {
		t.Errorf("len(Names()) = %d, want %d: %v", got, want, names)
	}
	if names[0] != "embed" || names[len(names)-1] != "final_norm" {
		t.Errorf("Names() = %v, want embed first and final_norm last", names)
	}
}

// rawF32 reads float32 number i of the file directly.
func rawF32(data []byte, i int64) float32 {
	return math.Float32frombits(binary.LittleEndian.Uint32(data[llama2cHeaderBytes+4*i:]))
}

func TestLlama2CStories260KValues(t *testing.T) {
	data := assets.Stories260K()
	if len(data) != 1056540 {
		t.Fatalf("stories260K is %d bytes, want 1056540", len(data))
	}
	const (
		d, h, L, kv = s260Dim, s260Hidden, s260Layers, s260KVDim
	)
	// Element offsets of the llama2.c arrays.
	embed := int64(0)
	rmsAtt := embed + s260Vocab*d
	wq := rmsAtt + L*d
	wk := wq + L*d*d
	wv := wk + L*kv*d
	wo := wv + L*kv*d
	rmsFFN := wo + L*d*d
	w1 := rmsFFN + L*d
	w2 := w1 + L*h*d
	w3 := w2 + L*d*h
	rmsFinal := w3 + L*h*d

	s := stories260K(t)
	tests := []struct {
		name     string
		row, col int
		at       int64 // element index in the file
	}{
		{"embed", 0, 0, embed},
		{"embed", 403, 17, embed + 403*d + 17},
		{"embed", 511, 63, embed + 511*d + 63},
		{"layers.0.attn_norm", 0, 5, rmsAtt + 5},
		{"layers.4.attn_norm", 0, 63, rmsAtt + 4*d + 63},
		{"layers.2.wq", 10, 20, wq + 2*d*d + 10*d + 20},
		{"layers.3.wk", 31, 1, wk + 3*kv*d + 31*d + 1},
		{"layers.1.wv", 7, 63, wv + 1*kv*d + 7*d + 63},
		{"layers.4.wo", 63, 0, wo + 4*d*d + 63*d},
		{"layers.0.ffn_norm", 0, 9, rmsFFN + 9},
		{"layers.2.w_gate", 171, 3, w1 + 2*h*d + 171*d + 3},
		{"layers.1.w_down", 5, 170, w2 + 1*d*h + 5*h + 170},
		{"layers.3.w_up", 100, 50, w3 + 3*h*d + 100*d + 50},
		{"final_norm", 0, 42, rmsFinal + 42},
	}
	for _, tc := range tests {
		tt, err := s.Tensor(tc.name)
		if err != nil {
			t.Fatalf("Tensor(%s): %v", tc.name, err)
		}
		var got float32
		if len(tt.Shape) == 1 {
			got = tt.Data[tc.col]
		} else {
			got = tt.Data[tc.row*tt.Shape[1]+tc.col]
		}
		if want := rawF32(data, tc.at); math.Float32bits(got) != math.Float32bits(want) {
			t.Errorf("%s[%d,%d] = %v, want %v (file element %d)", tc.name, tc.row, tc.col, got, want, tc.at)
		}
	}
	// The final norm of a trained model is far from its initial ones.
	fn, _ := s.Tensor("final_norm")
	allOnes := true
	for _, x := range fn.Data {
		allOnes = allOnes && x == 1
	}
	if allOnes {
		t.Errorf("final_norm is all ones: not a trained checkpoint?")
	}
}

func TestOpenLlama2CMatchesRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.bin")
	if err := os.WriteFile(path, assets.Stories260K(), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenLlama2C(path)
	if err != nil {
		t.Fatalf("OpenLlama2C: %v", err)
	}
	defer f.Close()
	m := stories260K(t)
	if diff := cmp.Diff(m.Config(), f.Config()); diff != "" {
		t.Errorf("config differs (-read +open):\n%s", diff)
	}
	for _, n := range m.Names() {
		a, err := m.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		b, err := f.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		if diff := tensorDiff(a, b); diff != "" {
			t.Errorf("%s differs (-read +open):\n%s", n, diff)
		}
	}
	if err := f.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := f.Tensor("embed"); err == nil {
		t.Errorf("Tensor after Close succeeded")
	}
}

// llama2cBytes builds a llama2.c checkpoint with the given header whose
// float number i is float32(i) / 1024 (exact in float32 for small files).
func llama2cBytes(hdr [7]int32, extraFloats int) []byte {
	dim, hid, L, heads, kvh, vocab, seq := int(hdr[0]), int(hdr[1]), int(hdr[2]), int(hdr[3]), int(hdr[4]), int(hdr[5]), int(hdr[6])
	kv := dim * kvh / heads
	v := vocab
	if v < 0 {
		v = -v
	}
	n := v*dim + L*(2*dim+2*dim*dim+2*kv*dim+3*hid*dim) + dim + seq*(dim/heads)
	if vocab < 0 {
		n += v * dim
	}
	n += extraFloats
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, hdr)
	for i := range n {
		binary.Write(&buf, binary.LittleEndian, float32(i)/1024)
	}
	return buf.Bytes()
}

var tinyHeader = [7]int32{8, 12, 2, 2, 1, 16, 4}

func TestLlama2CUntiedClassifier(t *testing.T) {
	hdr := tinyHeader
	hdr[5] = -16
	data := llama2cBytes(hdr, 0)
	s, err := ReadLlama2C(data)
	if err != nil {
		t.Fatalf("ReadLlama2C: %v", err)
	}
	cfg := s.Config()
	if cfg.TiedEmbeddings || cfg.Vocab != 16 {
		t.Errorf("config: tied %v vocab %d, want untied 16", cfg.TiedEmbeddings, cfg.Vocab)
	}
	head, err := s.Tensor("lm_head")
	if err != nil {
		t.Fatalf("Tensor(lm_head): %v", err)
	}
	// wcls is the last array of the file.
	total := (len(data) - llama2cHeaderBytes) / 4
	first := total - 16*8
	if got, want := head.Data[0], float32(first)/1024; got != want {
		t.Errorf("lm_head[0] = %v, want %v", got, want)
	}
	if got, want := head.Data[len(head.Data)-1], float32(total-1)/1024; got != want {
		t.Errorf("lm_head[last] = %v, want %v", got, want)
	}
}

func TestLlama2CCorrupt(t *testing.T) {
	good := llama2cBytes(tinyHeader, 0)
	withHeader := func(i int, v int32) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
		return b
	}
	tests := []struct {
		name string
		data []byte
		want string // substring of the error
	}{
		{"empty", nil, "shorter than the 28-byte header"},
		{"short header", good[:20], "shorter than the 28-byte header"},
		{"header only", good[:28], "ends inside embed"},
		{"truncated in layer 1 wq", good[:28+4*(16*8+2*8+8*8+3)], "ends inside layers.1.wq"},
		{"truncated in rope table", good[:len(good)-4], "ends inside freq_cis_imag"},
		{"trailing bytes", append(bytes.Clone(good), 0, 0, 0, 0), "4 trailing bytes after freq_cis_imag"},
		{"classifier with positive vocab", llama2cBytes(tinyHeader, 16*8), "exactly an unshared classifier"},
		{"zero dim", withHeader(0, 0), "dim is 0"},
		{"negative layers", withHeader(2, -3), "n_layers is -3"},
		{"huge hidden", withHeader(1, math.MaxInt32), "hidden_dim is 2147483647"},
		{"zero vocab", withHeader(5, 0), "vocab_size is 0"},
		{"min int vocab", withHeader(5, math.MinInt32), "vocab_size is -2147483648"},
		{"heads not dividing dim", withHeader(3, 3), "not a multiple of n_heads"},
		{"kv heads not dividing heads", withHeader(4, 3), "not a multiple of n_kv_heads"},
		{"odd head dim", withHeader(3, 8), "head_dim 1 must be even"},
		{"versioned export", append(binary.LittleEndian.AppendUint32(nil, llama2cMagic), good[4:]...), "llama2.c export version 12"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadLlama2C(tc.data)
			if err == nil {
				t.Fatalf("ReadLlama2C succeeded, want error containing %q", tc.want)
			}
			if want := !strings.Contains(tc.name, "versioned"); errors.Is(err, ErrCorrupt) != want {
				t.Errorf("error %v: wraps ErrCorrupt = %v, want %v", err, !want, want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}
