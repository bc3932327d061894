package evalharness

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// RollingWindows cuts one encoded text (tokens[0] = BOS) into requests of at
// most maxLen tokens so that every token after BOS is scored exactly once:
// the first window is tokens[:maxLen] scored from position 1; every later
// window holds the maxLen-1 next tokens after one token of context. This is
// lm-eval's get_rolling_token_windows with context_len 1 and max_seq_len
// maxLen-1.
func RollingWindows(tokens []int, maxLen int) ([]Request, error) {
	if maxLen < 2 {
		return nil, fmt.Errorf("window %d is too small", maxLen)
	}
	if len(tokens) < 2 {
		return nil, nil
	}
	var out []Request
	end := min(maxLen, len(tokens))
	out = append(out, Request{Tokens: tokens[:end], Start: 1})
	for end < len(tokens) {
		next := min(end+maxLen-1, len(tokens))
		out = append(out, Request{Tokens: tokens[end-1 : next], Start: 1})
		end = next
	}
	return out, nil
}

// PPLMetrics are the corpus-level language-modelling figures of one codec.
type PPLMetrics struct {
	Texts       int   `json:"texts"`
	Tokens      int64 `json:"tokens"` // scored tokens (BOS excluded)
	Bytes       int64 `json:"bytes"`  // UTF-8 bytes of the texts
	NLLPerToken Num   `json:"nll_per_token"`
	// NLLStderr is the standard error of the per-token NLL over texts,
	// weighting each text by its token count (ratio estimator).
	NLLStderr   Num `json:"nll_per_token_stderr"`
	Perplexity  Num `json:"perplexity"`
	BitsPerByte Num `json:"bits_per_byte"`
}

// PPLComparison compares codec A with reference B on the same texts.
type PPLComparison struct {
	NLLDelta Num `json:"nll_delta"` // A - B, nats per token
	PositionStats
}

// PPLEval is the outcome of a perplexity evaluation over several codecs.
type PPLEval struct {
	Metrics []PPLMetrics
	Compare []PPLComparison
	Run     *ScoreRun
	Windows int
}

// EvaluatePerplexity scores every text (encoded with BOS) in rolling windows.
func EvaluatePerplexity(ctx context.Context, be Backend, enc Encoder, texts []string, opt RunOptions) (*PPLEval, error) {
	if len(texts) == 0 {
		return nil, errors.New("perplexity: no texts")
	}
	var reqs []Request
	owner := []int{}
	var bytes int64
	for i, t := range texts {
		ids, err := enc.Encode(t, true)
		if err != nil {
			return nil, fmt.Errorf("perplexity: encode text %d: %w", i, err)
		}
		ws, err := RollingWindows(ids, be.MaxSeqLen())
		if err != nil {
			return nil, fmt.Errorf("perplexity: %w", err)
		}
		for range ws {
			owner = append(owner, i)
		}
		reqs = append(reqs, ws...)
		bytes += int64(len(t))
	}
	run, err := Score(ctx, be, reqs, opt)
	if err != nil {
		return nil, fmt.Errorf("perplexity: %w", err)
	}
	ev := &PPLEval{Run: run, Windows: len(reqs)}
	nll := make([]float64, len(opt.Codecs))
	for c := range opt.Codecs {
		perText := make([]float64, len(texts))
		perTok := make([]float64, len(texts))
		var sum float64
		var tok int64
		for r := range reqs {
			sum -= run.LL[c][r]
			tok += int64(run.Scored[r])
			perText[owner[r]] -= run.LL[c][r]
			perTok[owner[r]] += float64(run.Scored[r])
		}
		m := sum / float64(tok)
		nll[c] = m
		ev.Metrics = append(ev.Metrics, PPLMetrics{
			Texts: len(texts), Tokens: tok, Bytes: bytes,
			NLLPerToken: Num(m),
			NLLStderr:   Num(ratioStderr(perText, perTok)),
			Perplexity:  Num(math.Exp(m)),
			BitsPerByte: Num(sum / math.Ln2 / float64(bytes)),
		})
	}
	idx := map[string]int{}
	for i, c := range opt.Codecs {
		idx[c.Label()] = i
	}
	for i, p := range opt.Pairs {
		ev.Compare = append(ev.Compare, PPLComparison{
			NLLDelta:      Num(nll[idx[p.A]] - nll[idx[p.B]]),
			PositionStats: run.Stats[i],
		})
	}
	return ev, nil
}

// ratioStderr is the linearised standard error of sum(y)/sum(x) over units
// (texts): residuals e_i = y_i - R x_i, se = sqrt(n/(n-1) * sum e_i^2) / sum x.
func ratioStderr(y, x []float64) float64 {
	n := len(y)
	if n < 2 {
		return math.NaN()
	}
	var sy, sx float64
	for i := range y {
		sy += y[i]
		sx += x[i]
	}
	r := sy / sx
	var ss float64
	for i := range y {
		e := y[i] - r*x[i]
		ss += e * e
	}
	return math.Sqrt(float64(n)/float64(n-1)*ss) / sx
}
