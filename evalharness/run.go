package evalharness

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/equarx/equarx/collective"
)

// Pair is a comparison of setting A against reference setting B, by label.
type Pair struct{ A, B string }

// Name is "A_vs_B".
func (p Pair) Name() string { return p.A + "_vs_" + p.B }

// canonicalPairs are the comparisons reported by default when both codecs run.
var canonicalPairs = [][2]collective.CodecKind{
	{collective.CodecInt8, collective.CodecBF16},
	{collective.CodecInt8, collective.CodecF32},
	{collective.CodecBF16, collective.CodecF32},
	{collective.CodecInt4, collective.CodecBF16},
}

// DefaultPairs lists int8_vs_bf16, int8_vs_f32, bf16_vs_f32 and int4_vs_bf16
// for every setting of those codecs present (one per block size).
func DefaultPairs(codecs []Codec) []Pair {
	var out []Pair
	for _, cp := range canonicalPairs {
		for _, a := range codecs {
			if a.Kind != cp[0] {
				continue
			}
			for _, b := range codecs {
				if b.Kind == cp[1] {
					out = append(out, Pair{A: a.Label(), B: b.Label()})
				}
			}
		}
	}
	return out
}

// ParsePairs reads "int8_vs_bf16,int4_vs_int8" and checks the labels exist.
func ParsePairs(s string, codecs []Codec) ([]Pair, error) {
	have := map[string]bool{}
	for _, c := range codecs {
		have[c.Label()] = true
	}
	var out []Pair
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		a, b, ok := strings.Cut(f, "_vs_")
		if !ok {
			return nil, fmt.Errorf("pair %q: want A_vs_B", f)
		}
		if !have[a] || !have[b] {
			return nil, fmt.Errorf("pair %q: both codecs must be evaluated (have %v)", f, labels(codecs))
		}
		out = append(out, Pair{A: a, B: b})
	}
	return out, nil
}

func labels(cs []Codec) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Label()
	}
	return out
}

// PositionStats compare two settings' next-token distributions at every
// scored position. KL is KL(B || A): the reference B's distribution against A's.
type PositionStats struct {
	Positions int64 `json:"positions"`
	// Full-row KL; NaN when the backend gives no full rows (HTTP).
	MeanKL Num `json:"mean_kl"`
	MaxKL  Num `json:"max_kl"`
	// Top-K KL: both distributions coarse-grained to the tokens in both
	// top-K lists plus one bin holding the rest of the mass (KLTopK). Up to
	// the collapsing of ids that render to the same text it is a lower
	// bound of the full KL (data processing inequality); both scorers
	// compute it identically.
	MeanKLTopK Num `json:"mean_kl_topk"`
	MaxKLTopK  Num `json:"max_kl_topk"`
	TopK       int `json:"topk"`
	// |log p_A(token) - log p_B(token)| of the actual next token.
	MeanAbsDeltaLogprob Num `json:"mean_abs_delta_logprob"`
	MaxAbsDeltaLogprob  Num `json:"max_abs_delta_logprob"`

	sumKL, sumKLTopK, sumAbs float64
	full                     bool
}

func (s *PositionStats) finish() {
	n := float64(s.Positions)
	s.MeanAbsDeltaLogprob = Num(s.sumAbs / n)
	s.MeanKLTopK = Num(s.sumKLTopK / n)
	if s.full {
		s.MeanKL = Num(s.sumKL / n)
	} else {
		s.MeanKL, s.MaxKL = Num(math.NaN()), Num(math.NaN())
	}
	if s.Positions == 0 {
		for _, p := range []*Num{&s.MeanKL, &s.MaxKL, &s.MeanKLTopK, &s.MaxKLTopK, &s.MeanAbsDeltaLogprob, &s.MaxAbsDeltaLogprob} {
			*p = Num(math.NaN())
		}
	}
}

// RunOptions configure Score.
type RunOptions struct {
	Codecs      []Codec
	Pairs       []Pair
	TokenBudget int // maximum tokens per Prefill call; a longer sequence goes alone
	MaxSeqs     int // maximum sequences per Prefill call
	TopK        int // alternatives requested per position, 1..20
	// Concurrency is how many batches are in flight at once (0 or 1: one
	// after the other). Results are combined in batch order, so scores do
	// not depend on it when the backend's answers do not depend on what
	// else it is running (a batch-invariant engine or server).
	Concurrency int
	// Progress, when set, is called after every Prefill with the tokens done
	// and the total (summed over codecs).
	Progress func(done, total int64)
}

// ScoreRun holds per-request log-likelihoods per codec and the per-pair
// position statistics.
type ScoreRun struct {
	Codecs []Codec
	LL     [][]float64 // LL[c][r]: summed log-probability of request r's scored tokens (float64 sum of float32 values)
	Scored []int       // scored tokens per request
	Pairs  []Pair
	Stats  []PositionStats
	// Per-codec CPU wall seconds spent in Prefill calls.
	WallSeconds []float64
	Batches     int
}

// Score runs every request through every codec, batch by batch: each batch
// goes through all codecs before the next one, so full rows of different
// codecs can be compared without keeping them all.
func Score(ctx context.Context, be Backend, reqs []Request, opt RunOptions) (*ScoreRun, error) {
	if len(opt.Codecs) == 0 {
		return nil, fmt.Errorf("score: no codecs")
	}
	if opt.TokenBudget <= 0 {
		return nil, fmt.Errorf("score: token budget %d must be positive", opt.TokenBudget)
	}
	if opt.MaxSeqs <= 0 {
		return nil, fmt.Errorf("score: max sequences per batch %d must be positive", opt.MaxSeqs)
	}
	if opt.TopK < 1 || opt.TopK > 20 {
		return nil, fmt.Errorf("score: topk %d out of 1..20", opt.TopK)
	}
	idx := map[string]int{}
	for i, c := range opt.Codecs {
		idx[c.Label()] = i
	}
	pis := make([]pairIdx, len(opt.Pairs))
	for i, p := range opt.Pairs {
		a, okA := idx[p.A]
		b, okB := idx[p.B]
		if !okA || !okB {
			return nil, fmt.Errorf("score: pair %s names a codec not in %v", p.Name(), labels(opt.Codecs))
		}
		pis[i] = pairIdx{a, b}
	}
	maxLen := be.MaxSeqLen()
	var total int64
	for i, r := range reqs {
		if len(r.Tokens) > maxLen {
			return nil, fmt.Errorf("score: request %d has %d tokens, window is %d", i, len(r.Tokens), maxLen)
		}
		if r.Start < 1 || r.Start > len(r.Tokens) {
			return nil, fmt.Errorf("score: request %d: start %d out of 1..%d", i, r.Start, len(r.Tokens))
		}
		total += int64(len(r.Tokens))
	}
	total *= int64(len(opt.Codecs))
	full := be.FullRows()
	run := &ScoreRun{
		Codecs:      opt.Codecs,
		LL:          make([][]float64, len(opt.Codecs)),
		Scored:      make([]int, len(reqs)),
		Pairs:       opt.Pairs,
		Stats:       make([]PositionStats, len(opt.Pairs)),
		WallSeconds: make([]float64, len(opt.Codecs)),
	}
	for c := range run.LL {
		run.LL[c] = make([]float64, len(reqs))
	}
	for i := range run.Stats {
		run.Stats[i].full = full
		run.Stats[i].TopK = opt.TopK
	}
	for i, r := range reqs {
		run.Scored[i] = len(r.Tokens) - r.Start
	}
	var done int64
	conc := max(1, opt.Concurrency)
	batches := Batches(reqs, opt.TokenBudget, opt.MaxSeqs)
	// run scores one batch with every codec: outs[c] and the wall seconds
	// of each codec's call.
	type result struct {
		outs [][]SeqOutput
		wall []float64
		err  error
	}
	run1 := func(ctx context.Context, batch []int) result {
		seqs := make([][]int, len(batch))
		from := make([]int, len(batch))
		for j, r := range batch {
			seqs[j] = reqs[r].Tokens
			from[j] = reqs[r].Start
		}
		res := result{outs: make([][]SeqOutput, len(opt.Codecs)), wall: make([]float64, len(opt.Codecs))}
		for c, codec := range opt.Codecs {
			t0 := time.Now()
			o, err := be.Prefill(ctx, PrefillSpec{Codec: codec, TopK: opt.TopK, Full: full, TopFrom: from}, seqs)
			res.wall[c] = time.Since(t0).Seconds()
			if err != nil {
				res.err = fmt.Errorf("score: codec %s, batch of %d sequences: %w", codec.Label(), len(seqs), err)
				return res
			}
			if err := checkOutputs(o, seqs, from, opt.TopK, full); err != nil {
				res.err = fmt.Errorf("score: codec %s: %w", codec.Label(), err)
				return res
			}
			res.outs[c] = o
		}
		return res
	}
	for w0 := 0; w0 < len(batches); w0 += conc {
		window := batches[w0:min(w0+conc, len(batches))]
		results := make([]result, len(window))
		if len(window) == 1 {
			results[0] = run1(ctx, window[0])
		} else {
			wctx, cancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			for i, b := range window {
				wg.Go(func() {
					results[i] = run1(wctx, b)
					if results[i].err != nil {
						cancel()
					}
				})
			}
			wg.Wait()
			cancel()
		}
		for i, batch := range window {
			if err := results[i].err; err != nil {
				return nil, err
			}
			if err := scoreBatch(run, reqs, batch, results[i].outs, results[i].wall, pis, full, &done, total, opt.Progress); err != nil {
				return nil, err
			}
		}
	}
	for i := range run.Stats {
		run.Stats[i].finish()
	}
	return run, nil
}

// pairIdx is a pair's two codec indices.
type pairIdx struct{ a, b int }

// scoreBatch adds one batch's outputs (outs[c] per codec) to the run, in
// the order the batch lists its requests.
func scoreBatch(run *ScoreRun, reqs []Request, batch []int, outs [][]SeqOutput, wall []float64, pis []pairIdx, full bool, done *int64, total int64, progress func(int64, int64)) error {
	seqs := make([][]int, len(batch))
	var btok int64
	for j, r := range batch {
		seqs[j] = reqs[r].Tokens
		btok += int64(len(seqs[j]))
	}
	for c, o := range outs {
		run.WallSeconds[c] += wall[c]
		for j, r := range batch {
			s := 0.0
			for _, lp := range o[j].TokenLogprobs[reqs[r].Start:] {
				s += float64(lp)
			}
			run.LL[c][r] = s
		}
		*done += btok
		if progress != nil {
			progress(*done, total)
		}
	}
	for p, pi := range pis {
		st := &run.Stats[p]
		for j, r := range batch {
			a, b := outs[pi.a][j], outs[pi.b][j]
			for pos := reqs[r].Start; pos < len(seqs[j]); pos++ {
				st.Positions++
				d := math.Abs(float64(a.TokenLogprobs[pos]) - float64(b.TokenLogprobs[pos]))
				st.sumAbs += d
				st.MaxAbsDeltaLogprob = Num(math.Max(float64(st.MaxAbsDeltaLogprob), d))
				kt := KLTopK(b.Top[pos], a.Top[pos])
				st.sumKLTopK += kt
				st.MaxKLTopK = Num(math.Max(float64(st.MaxKLTopK), kt))
				if full {
					k := KLRows(b.Rows[pos], a.Rows[pos])
					st.sumKL += k
					st.MaxKL = Num(math.Max(float64(st.MaxKL), k))
				}
			}
		}
	}
	run.Batches++
	return nil
}

func checkOutputs(o []SeqOutput, seqs [][]int, from []int, topK int, full bool) error {
	if len(o) != len(seqs) {
		return fmt.Errorf("backend returned %d sequences for %d", len(o), len(seqs))
	}
	for j, s := range o {
		n := len(seqs[j])
		if len(s.TokenLogprobs) != n || len(s.Top) != n {
			return fmt.Errorf("sequence %d: %d token logprobs and %d top-k lists for %d tokens", j, len(s.TokenLogprobs), len(s.Top), n)
		}
		for i := max(1, from[j]); i < n; i++ {
			if k := len(s.Top[i]); k < 1 || k > topK {
				return fmt.Errorf("sequence %d position %d: %d alternatives, asked for %d", j, i, k, topK)
			}
		}
		if full && len(s.Rows) != n {
			return fmt.Errorf("sequence %d: %d full rows for %d tokens", j, len(s.Rows), n)
		}
	}
	return nil
}

// Batches groups request indices into batches of at most budget tokens and
// maxSeqs sequences, longest requests first (a request longer than the
// budget is a batch of its own). The grouping depends only on the lengths,
// so every scorer sends the same batches: quantized reductions with blocks
// that span several tokens make results depend on the batch a sequence
// rides in.
func Batches(reqs []Request, budget, maxSeqs int) [][]int {
	order := make([]int, len(reqs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(x, y int) bool { return len(reqs[order[x]].Tokens) > len(reqs[order[y]].Tokens) })
	var out [][]int
	var cur []int
	n := 0
	for _, r := range order {
		l := len(reqs[r].Tokens)
		if len(cur) > 0 && (n+l > budget || len(cur) == maxSeqs) {
			out = append(out, cur)
			cur, n = nil, 0
		}
		cur = append(cur, r)
		n += l
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// KLRows is KL(P || Q) in nats for two full log-softmax rows, in float64.
func KLRows(logP, logQ []float32) float64 {
	if len(logP) != len(logQ) {
		return math.NaN()
	}
	kl := 0.0
	for i, lp := range logP {
		p := math.Exp(float64(lp))
		if p == 0 {
			continue
		}
		kl += p * (float64(lp) - float64(logQ[i]))
	}
	return kl
}

// KLTopK is KL(P || Q) after coarse-graining both distributions to the
// tokens present in both top-K lists plus one bin for everything else. The
// rest masses are 1 minus the listed mass, floored at RestFloor: below it
// they are rounding noise of float32 log-softmax values, whose
// probabilities sum to 1 only within about 1e-6.
func KLTopK(p, q []TopEntry) float64 {
	qm := make(map[string]float64, len(q))
	for _, t := range q {
		qm[t.Token] = float64(t.Logprob)
	}
	kl, pS, qS := 0.0, 0.0, 0.0
	for _, t := range p {
		lq, ok := qm[t.Token]
		if !ok {
			continue
		}
		lp := float64(t.Logprob)
		pp := math.Exp(lp)
		pS += pp
		qS += math.Exp(lq)
		kl += pp * (lp - lq)
	}
	pr, qr := math.Max(RestFloor, 1-pS), math.Max(RestFloor, 1-qS)
	return kl + pr*math.Log(pr/qr)
}

// RestFloor is the smallest rest-bin mass KLTopK uses.
const RestFloor = 1e-6
