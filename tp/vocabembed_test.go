package tp

import (
	"context"
	"math"
	"sync"
	"testing"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/weights"
)

// negZeroEmbed is a source whose embedding row 3 holds a -0, so the test
// below sees signed zeros survive the exchange.
type negZeroEmbed struct{ weights.Source }

func (s negZeroEmbed) fix(t *weights.Tensor, lo int) *weights.Tensor {
	d := s.Config().Dim
	if i := (3-lo)*d + 1; t.Name == "embed" && i >= 0 && i < len(t.Data) {
		t.Data[i] = float32(math.Copysign(0, -1))
	}
	return t
}

func (s negZeroEmbed) Tensor(name string) (*weights.Tensor, error) {
	t, err := s.Source.Tensor(name)
	if err != nil {
		return nil, err
	}
	return s.fix(t, 0), nil
}

func (s negZeroEmbed) Rows(name string, lo, hi int) (*weights.Tensor, error) {
	t, err := s.Source.Rows(name, lo, hi)
	if err != nil {
		return nil, err
	}
	return s.fix(t, lo), nil
}

// TestVocabParallelEmbedding: each rank holds only its vocab rows of the
// embedding, and the exchange gives every rank bitwise the replicated
// lookup (signed zeros included), at tp 1, 2 and 4 with vocab sizes that
// tp does not divide, tied and untied, f32 and bf16 weights, batch-invariant
// layout or not.
func TestVocabParallelEmbedding(t *testing.T) {
	gemma := tinyGemma3()
	gemma.Vocab = 97
	for _, cfg := range []model.Config{gemma, tinyLlamaUntied()} {
		base, err := weights.Synthetic(cfg, 5)
		if err != nil {
			t.Fatal(err)
		}
		src := negZeroEmbed{base}
		table, err := src.Tensor("embed")
		if err != nil {
			t.Fatal(err)
		}
		var ids []int
		for i := range 2 * cfg.Vocab {
			ids = append(ids, (i*37+3)%cfg.Vocab)
		}
		ids = append(ids, 3, 3)
		arch, err := model.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, dtype := range []string{weights.DTypeF32, weights.DTypeBF16} {
			tab := table.Data
			if dtype == weights.DTypeBF16 {
				h, err := weights.RowsBF16(src, "embed", 0, cfg.Vocab)
				if err != nil {
					t.Fatal(err)
				}
				tab = make([]float32, len(h))
				for i, b := range h {
					tab[i] = math.Float32frombits(uint32(b) << 16)
				}
			}
			want := make([]float32, len(ids)*cfg.Dim)
			arch.Embed(want, tab, ids)
			for _, size := range []int{1, 2, 4} {
				for _, inv := range []bool{false, true} {
					if inv && !model.RowInvariant {
						continue // this build cannot run batch-invariant
					}
					e, err := NewEngine(src, EngineConfig{TP: size, TPU: "v5e", WeightsDType: dtype, BatchInvariant: inv})
					if err != nil {
						t.Fatal(err)
					}
					held := 0
					for _, rk := range e.ranks {
						held += rk.vhi - rk.vlo
						if rk.emb.Out != rk.vhi-rk.vlo || rk.emb.IsBF16() != (dtype == weights.DTypeBF16) {
							t.Fatalf("rank %d holds %d embedding rows (bf16 %v), owns [%d, %d)", rk.id, rk.emb.Out, rk.emb.IsBF16(), rk.vlo, rk.vhi)
						}
						if cfg.TiedEmbeddings != (rk.emb == rk.head) {
							t.Fatalf("tied %v, but embedding and head shards shared: %v", cfg.TiedEmbeddings, rk.emb == rk.head)
						}
					}
					if held != cfg.Vocab {
						t.Fatalf("ranks hold %d embedding rows in all, vocab is %d", held, cfg.Vocab)
					}
					xs := make([][]float32, size)
					errs := make([]error, size)
					var wg sync.WaitGroup
					for r, rk := range e.ranks {
						xs[r] = make([]float32, len(ids)*cfg.Dim)
						wg.Go(func() { errs[r] = e.embed(context.Background(), rk, xs[r], ids) })
					}
					wg.Wait()
					for r := range size {
						if errs[r] != nil {
							t.Fatal(errs[r])
						}
						for i := range want {
							if math.Float32bits(xs[r][i]) != math.Float32bits(want[i]) {
								t.Fatalf("%s %s tp %d invariant %v rank %d: value %d (token %d) = %v, replicated %v",
									cfg.Arch, dtype, size, inv, r, i, ids[i/cfg.Dim], xs[r][i], want[i])
							}
						}
					}
					e.Close()
				}
			}
		}
	}
}

// roundedSource rounds every matrix of a source to bfloat16 values (kept as
// float32); vectors are unchanged.
type roundedSource struct{ weights.Source }

func roundTensor(t *weights.Tensor) *weights.Tensor {
	if len(t.Shape) == 2 {
		for i, v := range t.Data {
			b := math.Float32bits(v)
			t.Data[i] = math.Float32frombits(((b + 0x7fff + (b>>16)&1) >> 16) << 16)
		}
	}
	return t
}

func (s roundedSource) Tensor(name string) (*weights.Tensor, error) {
	t, err := s.Source.Tensor(name)
	if err != nil {
		return nil, err
	}
	return roundTensor(t), nil
}

func (s roundedSource) Rows(name string, lo, hi int) (*weights.Tensor, error) {
	t, err := s.Source.Rows(name, lo, hi)
	if err != nil {
		return nil, err
	}
	return roundTensor(t), nil
}

func (s roundedSource) Cols(name string, lo, hi int) (*weights.Tensor, error) {
	t, err := s.Source.Cols(name, lo, hi)
	if err != nil {
		return nil, err
	}
	return roundTensor(t), nil
}

// TestBF16WeightsMatchRoundedF32: an engine holding bf16 weights answers
// bitwise as one holding the bf16-rounded weights in f32, at tp 1 and 2,
// with a quantized codec too; and a sequence's answer is the same alone or
// in a batch.
func TestBF16WeightsMatchRoundedF32(t *testing.T) {
	if !model.RowInvariant {
		t.Skip("this build's products are not row invariant")
	}
	seqs := [][]int{{2, 17, 5, 33, 8, 1, 0, 60, 12, 9, 41, 3, 7}, {5, 4}, {70, 1, 2, 3, 4, 5, 6, 7, 8}}
	for _, cfg := range []model.Config{tinyGemma3(), tinyLlamaUntied()} {
		src, err := weights.Synthetic(cfg, 9)
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{1, 2} {
			for _, codec := range []string{"f32", "int8"} {
				e16, err := NewEngine(src, EngineConfig{TP: size, TPU: "v5e", WeightsDType: "bf16", BatchInvariant: true})
				if err != nil {
					t.Fatal(err)
				}
				e32, err := NewEngine(roundedSource{src}, EngineConfig{TP: size, TPU: "v5e", WeightsDType: "f32", BatchInvariant: true})
				if err != nil {
					t.Fatal(err)
				}
				opts := PrefillOptions{Codec: collective.CodecKind(codec), FullLogprobs: true, TopK: 2}
				a := prefill(t, e16, seqs, opts)
				b := prefill(t, e32, seqs, opts)
				alone := prefill(t, e16, seqs[:1], opts)
				for i := range seqs {
					for j := range a.Seqs[i].Logprobs {
						for v, x := range a.Seqs[i].Logprobs[j] {
							if y := b.Seqs[i].Logprobs[j][v]; math.Float32bits(x) != math.Float32bits(y) {
								t.Fatalf("%s tp %d %s: seq %d pos %d token %d: bf16 weights %v, rounded f32 %v", cfg.Arch, size, codec, i, j, v, x, y)
							}
							if i == 0 {
								if y := alone.Seqs[0].Logprobs[j][v]; math.Float32bits(x) != math.Float32bits(y) {
									t.Fatalf("%s tp %d %s: pos %d token %d: %v in a batch, %v alone", cfg.Arch, size, codec, j, v, x, y)
								}
							}
						}
					}
				}
				e16.Close()
				e32.Close()
			}
		}
	}
}
