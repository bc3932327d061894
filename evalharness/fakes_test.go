package evalharness

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/tp"
)

// pieceTokenizer is a greedy longest-match tokenizer over a fixed piece
// list: ids 0..2 are unk/BOS/EOS, 3..258 single bytes, then the pieces.
type pieceTokenizer struct{ pieces []string }

const fakeBOS = 1

func (t pieceTokenizer) vocabSize() int { return 259 + len(t.pieces) }

func (t pieceTokenizer) token(id int) string {
	switch {
	case id == 0:
		return "<unk>"
	case id == fakeBOS:
		return "<s>"
	case id == 2:
		return "</s>"
	case id < 259:
		return string([]byte{byte(id - 3)}) // a byte renders as itself, like llama2.c byte fallback
	}
	return t.pieces[id-259]
}

func (t pieceTokenizer) Encode(text string, addBOS bool) ([]int, error) {
	var ids []int
	if addBOS {
		ids = append(ids, fakeBOS)
	}
	for len(text) > 0 {
		best, bestLen := -1, 0
		for i, p := range t.pieces {
			if len(p) > bestLen && strings.HasPrefix(text, p) {
				best, bestLen = 259+i, len(p)
			}
		}
		if best < 0 {
			best, bestLen = 3+int(text[0]), 1
		}
		ids = append(ids, best)
		text = text[bestLen:]
	}
	return ids, nil
}

var testTok = pieceTokenizer{pieces: []string{" the", " cat", " sat", "Once", " upon", " a", " time", ".", " dog", "at", "bc"}}

// fakeModel is a deterministic toy language model whose distribution
// depends on the previous token and the position, perturbed per codec.
type fakeModel struct {
	vocab int
	calls int
}

func codecEps(k collective.CodecKind, block int) (float64, error) {
	switch k {
	case collective.CodecF32:
		return 0, nil
	case collective.CodecBF16:
		return 2e-3, nil
	case collective.CodecInt8:
		return 1e-2 * (1 + float64(block)/256), nil
	case collective.CodecInt4:
		return 0.2, nil
	case collective.CodecInt6:
		return 0.05, nil
	case collective.CodecFP8:
		return 0.04, nil
	}
	return 0, fmt.Errorf("unknown codec %q", k)
}

// row returns the float32 log-softmax row predicting the token after prefix.
func (m *fakeModel) row(prefix []int, eps float64) []float32 {
	prev := prefix[len(prefix)-1]
	pos := len(prefix)
	logits := make([]float64, m.vocab)
	mx := math.Inf(-1)
	for v := range logits {
		x := 3*math.Sin(float64(prev)*0.37+float64(v)*1.13+float64(pos)*0.05) + eps*math.Cos(float64(v*(prev+1)))
		logits[v] = x
		mx = math.Max(mx, x)
	}
	s := 0.0
	for _, x := range logits {
		s += math.Exp(x - mx)
	}
	out := make([]float32, m.vocab)
	for v, x := range logits {
		out[v] = float32(x - mx - math.Log(s))
	}
	return out
}

func topK(row []float32, k int) []tp.TokenLogprob {
	ids := make([]int, len(row))
	for i := range ids {
		ids[i] = i
	}
	sort.SliceStable(ids, func(a, b int) bool { return row[ids[a]] > row[ids[b]] })
	out := make([]tp.TokenLogprob, k)
	for i := range out {
		out[i] = tp.TokenLogprob{ID: ids[i], Logprob: row[ids[i]]}
	}
	return out
}

// Prefill follows tp.Engine's contract: Logprobs[i] predicts tokens[i+1].
func (m *fakeModel) Prefill(_ context.Context, seqs [][]int, o tp.PrefillOptions) (*tp.PrefillResult, error) {
	m.calls++
	eps, err := codecEps(o.Codec, o.BlockSize)
	if err != nil {
		return nil, err
	}
	res := &tp.PrefillResult{Codec: o.Codec}
	for _, s := range seqs {
		n := len(s)
		sr := tp.SeqResult{TokenLogprobs: make([]float32, n), TopK: make([][]tp.TokenLogprob, n)}
		if o.FullLogprobs {
			sr.Logprobs = make([][]float32, n)
		}
		for i := 0; i < n; i++ {
			row := m.row(s[:i+1], eps)
			if o.FullLogprobs {
				sr.Logprobs[i] = row
			}
			if i+1 < n {
				sr.TokenLogprobs[i+1] = row[s[i+1]]
				sr.TopK[i+1] = topK(row, o.TopK)
			} else {
				sr.Next = topK(row, max(1, o.TopK))
			}
		}
		res.Seqs = append(res.Seqs, sr)
	}
	return res, nil
}

// fakeCompletions serves /v1/completions in the OpenAI echo format from a
// fakeModel, rendering tokens with testTok's token strings.
func fakeCompletions(m *fakeModel, tok pieceTokenizer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) {
		var req completionRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !req.Echo || req.MaxTokens != 0 {
			http.Error(w, `{"error":{"message":"bad request","type":"invalid_request_error"}}`, http.StatusBadRequest)
			return
		}
		res, err := m.Prefill(r.Context(), req.Prompt, tp.PrefillOptions{Codec: collective.CodecKind(req.AllReduce), BlockSize: req.BlockSize, TopK: req.Logprobs})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		type lp struct {
			Tokens        []string             `json:"tokens"`
			TokenLogprobs []*float64           `json:"token_logprobs"`
			TopLogprobs   []map[string]float64 `json:"top_logprobs"`
			TextOffset    []int                `json:"text_offset"`
		}
		type choice struct {
			Index    int    `json:"index"`
			Text     string `json:"text"`
			Logprobs lp     `json:"logprobs"`
		}
		var out struct {
			Choices []choice `json:"choices"`
		}
		for j, s := range res.Seqs {
			c := choice{Index: j}
			off := 0
			for i, id := range req.Prompt[j] {
				c.Logprobs.Tokens = append(c.Logprobs.Tokens, tok.token(id))
				c.Logprobs.TextOffset = append(c.Logprobs.TextOffset, off)
				off += len(tok.token(id))
				if i == 0 {
					c.Logprobs.TokenLogprobs = append(c.Logprobs.TokenLogprobs, nil)
					c.Logprobs.TopLogprobs = append(c.Logprobs.TopLogprobs, nil)
					continue
				}
				v := float64(s.TokenLogprobs[i])
				c.Logprobs.TokenLogprobs = append(c.Logprobs.TokenLogprobs, &v)
				top := map[string]float64{}
				for _, t := range s.TopK[i] {
					// Named as the server names keys (WireText).
					if old, ok := top[WireText(tok.token(t.ID))]; !ok || float64(t.Logprob) > old {
						top[WireText(tok.token(t.ID))] = float64(t.Logprob)
					}
				}
				c.Logprobs.TopLogprobs = append(c.Logprobs.TopLogprobs, top)
			}
			out.Choices = append(out.Choices, c)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
	return mux
}
