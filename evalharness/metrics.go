package evalharness

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Argmax returns the index of the largest value with numpy.argmax's rules:
// the first maximum wins ties, and the first NaN wins over everything.
// It returns -1 for an empty slice.
func Argmax(xs []float64) int {
	best := -1
	for i, x := range xs {
		if math.IsNaN(x) {
			return i
		}
		if best < 0 || x > xs[best] {
			best = i
		}
	}
	return best
}

// DocScore is the outcome of one multiple-choice item under one model setting.
type DocScore struct {
	LLs       []float64 // summed log-likelihood of each choice
	Pred      int       // argmax LL
	PredNorm  int       // argmax LL / len(choice) in characters
	PredBytes int       // argmax LL / len(choice) in UTF-8 bytes
	Acc       float64   // 1 if Pred == gold
	AccNorm   float64
	AccBytes  float64
}

// ScoreDoc applies lm-eval's multiple-choice rules to one item. Division by a
// zero length follows IEEE (and numpy): a negative LL gives -Inf, a zero LL NaN.
func ScoreDoc(d Doc, lls []float64) (DocScore, error) {
	if len(lls) != len(d.Choices) {
		return DocScore{}, fmt.Errorf("doc %s: %d log-likelihoods for %d choices", d.ID, len(lls), len(d.Choices))
	}
	norm := make([]float64, len(lls))
	byt := make([]float64, len(lls))
	for i, c := range d.Choices {
		norm[i] = lls[i] / float64(utf8.RuneCountInString(c))
		byt[i] = lls[i] / float64(len(c))
	}
	s := DocScore{
		LLs:       append([]float64(nil), lls...),
		Pred:      Argmax(lls),
		PredNorm:  Argmax(norm),
		PredBytes: Argmax(byt),
	}
	s.Acc = b2f(s.Pred == d.Gold)
	s.AccNorm = b2f(s.PredNorm == d.Gold)
	s.AccBytes = b2f(s.PredBytes == d.Gold)
	return s, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Mean returns the arithmetic mean (NaN for no values).
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// Stderr is lm-eval's mean_stderr: the sample standard deviation (divisor
// n-1) over sqrt(n). It is NaN for fewer than two values.
func Stderr(xs []float64) float64 {
	n := len(xs)
	if n < 2 {
		return math.NaN()
	}
	mu := Mean(xs)
	ss := 0.0
	for _, x := range xs {
		ss += (x - mu) * (x - mu)
	}
	return math.Sqrt(ss/float64(n-1)) / math.Sqrt(float64(n))
}

// MCMetrics are the aggregate multiple-choice metrics of one model setting.
type MCMetrics struct {
	N              int `json:"n"`
	Acc            Num `json:"acc"`
	AccStderr      Num `json:"acc_stderr"`
	AccNorm        Num `json:"acc_norm"`
	AccNormStderr  Num `json:"acc_norm_stderr"`
	AccBytes       Num `json:"acc_bytes"`
	AccBytesStderr Num `json:"acc_bytes_stderr"`
}

// Aggregate computes acc, acc_norm and acc_bytes with standard errors.
func Aggregate(scores []DocScore) MCMetrics {
	acc := make([]float64, len(scores))
	nrm := make([]float64, len(scores))
	byt := make([]float64, len(scores))
	for i, s := range scores {
		acc[i], nrm[i], byt[i] = s.Acc, s.AccNorm, s.AccBytes
	}
	return MCMetrics{
		N:   len(scores),
		Acc: Num(Mean(acc)), AccStderr: Num(Stderr(acc)),
		AccNorm: Num(Mean(nrm)), AccNormStderr: Num(Stderr(nrm)),
		AccBytes: Num(Mean(byt)), AccBytesStderr: Num(Stderr(byt)),
	}
}

// MCComparison compares setting A against reference setting B on the same
// items ("A_vs_B"). Deltas are A - B.
type MCComparison struct {
	N                   int `json:"n"`
	Agreement           Num `json:"agreement"`      // fraction of items where both pick the same choice (acc rule)
	AgreementNorm       Num `json:"agreement_norm"` // same, acc_norm rule
	AccDelta            Num `json:"acc_delta"`
	AccDeltaStderr      Num `json:"acc_delta_stderr"` // paired: stderr of per-item differences
	AccNormDelta        Num `json:"acc_norm_delta"`
	AccNormDeltaStderr  Num `json:"acc_norm_delta_stderr"`
	FlipsCorrectToWrong int `json:"flips_correct_to_wrong"` // B right, A wrong (acc rule)
	FlipsWrongToCorrect int `json:"flips_wrong_to_correct"` // B wrong, A right (acc rule)
	// MeanAbsLLDelta is the mean over items and choices of |LL_A - LL_B|.
	MeanAbsLLDelta Num `json:"mean_abs_ll_delta"`
}

// CompareMC pairs two settings' scores of the same items.
func CompareMC(a, b []DocScore) (MCComparison, error) {
	if len(a) != len(b) {
		return MCComparison{}, fmt.Errorf("compare: %d vs %d items", len(a), len(b))
	}
	n := len(a)
	c := MCComparison{N: n}
	agree := make([]float64, n)
	agreeN := make([]float64, n)
	dAcc := make([]float64, n)
	dNorm := make([]float64, n)
	var absSum float64
	var absN int
	for i := range a {
		if len(a[i].LLs) != len(b[i].LLs) {
			return MCComparison{}, fmt.Errorf("compare item %d: %d vs %d choices", i, len(a[i].LLs), len(b[i].LLs))
		}
		agree[i] = b2f(a[i].Pred == b[i].Pred)
		agreeN[i] = b2f(a[i].PredNorm == b[i].PredNorm)
		dAcc[i] = a[i].Acc - b[i].Acc
		dNorm[i] = a[i].AccNorm - b[i].AccNorm
		switch {
		case b[i].Acc == 1 && a[i].Acc == 0:
			c.FlipsCorrectToWrong++
		case b[i].Acc == 0 && a[i].Acc == 1:
			c.FlipsWrongToCorrect++
		}
		for j := range a[i].LLs {
			absSum += math.Abs(a[i].LLs[j] - b[i].LLs[j])
			absN++
		}
	}
	c.Agreement = Num(Mean(agree))
	c.AgreementNorm = Num(Mean(agreeN))
	c.AccDelta, c.AccDeltaStderr = Num(Mean(dAcc)), Num(Stderr(dAcc))
	c.AccNormDelta, c.AccNormDeltaStderr = Num(Mean(dNorm)), Num(Stderr(dNorm))
	c.MeanAbsLLDelta = Num(math.NaN())
	if absN > 0 {
		c.MeanAbsLLDelta = Num(absSum / float64(absN))
	}
	return c, nil
}

// Num is a float64 that encodes NaN and ±Inf as JSON null.
type Num float64

// MarshalJSON writes null for values JSON cannot hold.
func (x Num) MarshalJSON() ([]byte, error) {
	f := float64(x)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// UnmarshalJSON reads a number or null (as NaN).
func (x *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*x = Num(math.NaN())
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("number %q: %w", string(b), err)
	}
	*x = Num(f)
	return nil
}
