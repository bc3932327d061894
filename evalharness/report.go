package evalharness

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// RunInfo describes how a report was produced.
type RunInfo struct {
	Model       string  `json:"model"`
	Tokenizer   string  `json:"tokenizer"`
	Scorer      string  `json:"scorer"` // "engine" (in-process) or "http"
	Server      string  `json:"server,omitempty"`
	TP          int     `json:"tp"`
	Topology    string  `json:"topology,omitempty"`
	TPU         string  `json:"tpu,omitempty"`
	BlockSizes  []int   `json:"block_sizes"` // as requested; 0 = codec default
	TokenBudget int     `json:"token_budget"`
	MaxSeqs     int     `json:"max_seqs_per_batch"`
	TopK        int     `json:"topk"`
	WallSeconds float64 `json:"wall_seconds"` // whole run, CPU wall clock
}

// CodecResult is one codec's multiple-choice figures.
type CodecResult struct {
	Codec     string `json:"codec"`
	BlockSize int    `json:"block_size"` // 0 = codec default or not applicable
	MCMetrics
	PrefillWallSeconds float64 `json:"prefill_wall_seconds"`
}

// Comparison is one pair's multiple-choice and position-level figures.
type Comparison struct {
	MCComparison
	PositionStats
}

// MCReport is the JSON written by the eval command.
type MCReport struct {
	RunInfo
	Task        string                 `json:"task"`
	TaskPath    string                 `json:"task_path"`
	TaskVersion string                 `json:"task_version"`
	Split       string                 `json:"split"`
	N           int                    `json:"n"`
	Shots       int                    `json:"shots"`
	Requests    int                    `json:"requests"`
	Tokens      int64                  `json:"tokens_per_codec"`
	Truncated   int                    `json:"truncated_requests"`
	Codecs      []string               `json:"codecs"`
	Pairs       []string               `json:"pairs"`
	Results     map[string]CodecResult `json:"results"`
	Comparisons map[string]Comparison  `json:"comparisons"`
}

// NewMCReport assembles the report of an evaluation.
func NewMCReport(info RunInfo, task *Task, ev *MCEval) *MCReport {
	r := &MCReport{
		RunInfo: info, Task: task.Name, TaskPath: task.Path, TaskVersion: task.Version,
		Split: task.Split, N: len(ev.Docs), Shots: task.Shots,
		Requests: ev.Requests, Tokens: ev.Tokens, Truncated: ev.Truncated,
		Results: map[string]CodecResult{}, Comparisons: map[string]Comparison{},
	}
	for c, codec := range ev.Run.Codecs {
		r.Codecs = append(r.Codecs, codec.Label())
		r.Results[codec.Label()] = CodecResult{
			Codec: string(codec.Kind), BlockSize: codec.BlockSize,
			MCMetrics: ev.Metrics[c], PrefillWallSeconds: ev.Run.WallSeconds[c],
		}
	}
	for i, p := range ev.Run.Pairs {
		r.Pairs = append(r.Pairs, p.Name())
		r.Comparisons[p.Name()] = Comparison{MCComparison: ev.Compare[i], PositionStats: ev.Run.Stats[i]}
	}
	return r
}

// PPLCodecResult is one codec's perplexity figures.
type PPLCodecResult struct {
	Codec     string `json:"codec"`
	BlockSize int    `json:"block_size"`
	PPLMetrics
	PrefillWallSeconds float64 `json:"prefill_wall_seconds"`
}

// PPLReport is the JSON written by the perplexity command.
type PPLReport struct {
	RunInfo
	Corpus      string                    `json:"corpus"`
	Windows     int                       `json:"windows"`
	Codecs      []string                  `json:"codecs"`
	Pairs       []string                  `json:"pairs"`
	Results     map[string]PPLCodecResult `json:"results"`
	Comparisons map[string]PPLComparison  `json:"comparisons"`
}

// NewPPLReport assembles the report of a perplexity evaluation.
func NewPPLReport(info RunInfo, corpus string, ev *PPLEval) *PPLReport {
	r := &PPLReport{
		RunInfo: info, Corpus: corpus, Windows: ev.Windows,
		Results: map[string]PPLCodecResult{}, Comparisons: map[string]PPLComparison{},
	}
	for c, codec := range ev.Run.Codecs {
		r.Codecs = append(r.Codecs, codec.Label())
		r.Results[codec.Label()] = PPLCodecResult{
			Codec: string(codec.Kind), BlockSize: codec.BlockSize,
			PPLMetrics: ev.Metrics[c], PrefillWallSeconds: ev.Run.WallSeconds[c],
		}
	}
	for i, p := range ev.Run.Pairs {
		r.Pairs = append(r.Pairs, p.Name())
		r.Comparisons[p.Name()] = ev.Compare[i]
	}
	return r
}

func f(x Num, prec int) string {
	v := float64(x)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func sci(x Num) string {
	v := float64(x)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.3g", v)
}

func pct(x, se Num) string {
	return fmt.Sprintf("%s ± %s", f(x*100, 2), f(se*100, 2))
}

// WriteMarkdown renders the report as markdown tables.
func (r *MCReport) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (version %s, split %s, n=%d, %d-shot), model %s, tp %d, scorer %s, wall %.1f s\n\n",
		r.Task, r.TaskVersion, r.Split, r.N, r.Shots, r.Model, r.TP, r.Scorer, r.WallSeconds)
	b.WriteString("| codec | acc % | acc_norm % | acc_bytes % | prefill wall s |\n|---|---|---|---|---|\n")
	for _, c := range r.Codecs {
		m := r.Results[c]
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.1f |\n", c, pct(m.Acc, m.AccStderr),
			pct(m.AccNorm, m.AccNormStderr), pct(m.AccBytes, m.AccBytesStderr), m.PrefillWallSeconds)
	}
	if len(r.Pairs) > 0 {
		b.WriteString("\n| pair (A_vs_B) | agreement % | acc Δ (A−B) % | flips B✓→A✗ | flips B✗→A✓ | mean KL | max KL | mean KL top-k | mean \\|Δ logprob\\| | max \\|Δ logprob\\| |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, p := range r.Pairs {
			c := r.Comparisons[p]
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %s | %s | %s | %s | %s |\n", p, f(c.Agreement*100, 1),
				pct(c.AccDelta, c.AccDeltaStderr), c.FlipsCorrectToWrong, c.FlipsWrongToCorrect,
				sci(c.MeanKL), sci(c.MaxKL), sci(c.MeanKLTopK), sci(c.MeanAbsDeltaLogprob), sci(c.MaxAbsDeltaLogprob))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdown renders the perplexity report as markdown tables.
func (r *PPLReport) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "perplexity on %s, model %s, tp %d, scorer %s, wall %.1f s\n\n", r.Corpus, r.Model, r.TP, r.Scorer, r.WallSeconds)
	b.WriteString("| codec | texts | tokens | NLL/token (nats) | perplexity | bits/byte | prefill wall s |\n|---|---|---|---|---|---|---|\n")
	for _, c := range r.Codecs {
		m := r.Results[c]
		fmt.Fprintf(&b, "| %s | %d | %d | %s ± %s | %s | %s | %.1f |\n", c, m.Texts, m.Tokens,
			f(m.NLLPerToken, 5), f(m.NLLStderr, 5), f(m.Perplexity, 4), f(m.BitsPerByte, 5), m.PrefillWallSeconds)
	}
	if len(r.Pairs) > 0 {
		b.WriteString("\n| pair (A_vs_B) | NLL Δ (A−B) | mean KL | max KL | mean KL top-k | mean \\|Δ logprob\\| | max \\|Δ logprob\\| |\n|---|---|---|---|---|---|---|\n")
		for _, p := range r.Pairs {
			c := r.Comparisons[p]
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", p, sci(c.NLLDelta), sci(c.MeanKL), sci(c.MaxKL),
				sci(c.MeanKLTopK), sci(c.MeanAbsDeltaLogprob), sci(c.MaxAbsDeltaLogprob))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
