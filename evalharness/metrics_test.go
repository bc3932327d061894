package evalharness

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestArgmax(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		in   []float64
		want int
	}{
		{nil, -1},
		{[]float64{-3, -1, -2}, 1},
		{[]float64{-1, -1, -2}, 0},         // tie: first wins
		{[]float64{-2, -1, -1}, 1},         // tie: first of the maxima
		{[]float64{-1, nan, -0.5, nan}, 1}, // first NaN wins, like numpy
		{[]float64{math.Inf(-1), math.Inf(-1)}, 0},
		{[]float64{-5, inf, -1}, 1},
	}
	for _, tt := range tests {
		if got := Argmax(tt.in); got != tt.want {
			t.Errorf("Argmax(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestScoreDoc(t *testing.T) {
	tests := []struct {
		name string
		doc  Doc
		lls  []float64
		want DocScore
	}{
		{
			// acc picks the largest LL (-3.6); per character -4/4=-1, -6/12=-0.5,
			// -3.6/3=-1.2 -> choice 1; per byte ("ééé" is 6 bytes) -0.6 -> choice 1.
			name: "length normalisation flips the choice",
			doc:  Doc{Choices: []string{"abcd", "abcdefghijkl", "ééé"}, Gold: 1},
			lls:  []float64{-4, -6, -3.6},
			want: DocScore{Pred: 2, PredNorm: 1, PredBytes: 1, Acc: 0, AccNorm: 1, AccBytes: 1},
		},
		{
			// -2.4 is the largest LL; per char -2.4/3=-0.8 loses to -0.5; per byte -0.4 wins.
			name: "chars vs bytes",
			doc:  Doc{Choices: []string{"abcd", "abcdefghijkl", "ééé"}, Gold: 1},
			lls:  []float64{-8, -6, -2.4},
			want: DocScore{Pred: 2, PredNorm: 1, PredBytes: 2, Acc: 0, AccNorm: 1, AccBytes: 0},
		},
		{
			name: "tie goes to the first",
			doc:  Doc{Choices: []string{"ab", "cd"}, Gold: 1},
			lls:  []float64{-1, -1},
			want: DocScore{Pred: 0, PredNorm: 0, PredBytes: 0},
		},
		{
			// An empty choice with a negative LL divides to -Inf: never chosen by the norms.
			name: "empty choice, negative ll",
			doc:  Doc{Choices: []string{"", "abc"}, Gold: 1},
			lls:  []float64{-0.1, -3},
			want: DocScore{Pred: 0, PredNorm: 1, PredBytes: 1, Acc: 0, AccNorm: 1, AccBytes: 1},
		},
		{
			// 0/0 is NaN, which numpy.argmax returns first.
			name: "empty choice, zero ll",
			doc:  Doc{Choices: []string{"abc", ""}, Gold: 0},
			lls:  []float64{-0.3, 0},
			want: DocScore{Pred: 1, PredNorm: 1, PredBytes: 1},
		},
	}
	for _, tt := range tests {
		got, err := ScoreDoc(tt.doc, tt.lls)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		tt.want.LLs = tt.lls
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
	if _, err := ScoreDoc(Doc{Choices: []string{"a", "b"}}, []float64{1}); err == nil {
		t.Error("ScoreDoc with a missing LL succeeded")
	}
}

func TestStderr(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		// mean 0.75; squared deviations 3*0.0625 + 0.5625 = 0.75; var 0.75/3 = 0.25; sd 0.5; /sqrt(4) = 0.25.
		{[]float64{1, 0, 1, 1}, 0.25},
		// mean 0.5; deviations 0.25 each, sum 0.5; var 0.5/1; sd sqrt(0.5); /sqrt(2) = 0.5.
		{[]float64{1, 0}, 0.5},
		{[]float64{1, 1, 1}, 0},
		// 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sum of squares 32, var 32/7, se sqrt(32/7)/sqrt(8) = sqrt(4/7).
		{[]float64{2, 4, 4, 4, 5, 5, 7, 9}, math.Sqrt(4.0 / 7)},
	}
	for _, tt := range tests {
		if got := Stderr(tt.in); math.Abs(got-tt.want) > 1e-15 {
			t.Errorf("Stderr(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := Stderr([]float64{1}); !math.IsNaN(got) {
		t.Errorf("Stderr of one value = %v, want NaN", got)
	}
}

func TestAggregateAndCompare(t *testing.T) {
	docs := []Doc{
		{ID: "0", Choices: []string{"aa", "bbbb"}, Gold: 0},
		{ID: "1", Choices: []string{"aa", "bbbb"}, Gold: 1},
		{ID: "2", Choices: []string{"aa", "bbbb"}, Gold: 1},
		{ID: "3", Choices: []string{"aa", "bbbb"}, Gold: 0},
	}
	// Reference B: preds 0,1,1,1 -> acc 1,1,1,0. Norm (len 2 vs 4): preds 0,1,1,1.
	llB := [][]float64{{-1, -3}, {-3, -1}, {-4, -2}, {-5, -3}}
	// A: preds 0,0,1,1 -> acc 1,0,1,0. Norm: -2/2=-1 vs -3/4 -> 1 for doc 1; preds 0,1,1,1.
	llA := [][]float64{{-1, -3}, {-2, -3}, {-4, -2}, {-5, -3}}
	score := func(lls [][]float64) []DocScore {
		var out []DocScore
		for i, d := range docs {
			s, err := ScoreDoc(d, lls[i])
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	a, b := score(llA), score(llB)
	gotB := Aggregate(b)
	// acc 1,1,1,0: mean 0.75, stderr 0.25 (see TestStderr).
	wantB := MCMetrics{N: 4, Acc: 0.75, AccStderr: 0.25, AccNorm: 0.75, AccNormStderr: 0.25, AccBytes: 0.75, AccBytesStderr: 0.25}
	if diff := cmp.Diff(wantB, gotB, cmpopts.EquateApprox(0, 1e-15)); diff != "" {
		t.Errorf("Aggregate (-want +got):\n%s", diff)
	}
	got, err := CompareMC(a, b)
	if err != nil {
		t.Fatal(err)
	}
	// differences a-b: 0,-1,0,0: mean -0.25; sum of squares 3*0.0625+0.5625=0.75, var 0.25, se 0.5/2=0.25.
	// |LL deltas|: doc 1 has |-2+3| + |-3+1| = 3, over 8 values: 0.375.
	want := MCComparison{
		N: 4, Agreement: 0.75, AgreementNorm: 1,
		AccDelta: -0.25, AccDeltaStderr: 0.25, AccNormDelta: 0, AccNormDeltaStderr: 0,
		FlipsCorrectToWrong: 1, FlipsWrongToCorrect: 0, MeanAbsLLDelta: 0.375,
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-15)); diff != "" {
		t.Errorf("CompareMC (-want +got):\n%s", diff)
	}
	back, err := CompareMC(b, a)
	if err != nil {
		t.Fatal(err)
	}
	if back.FlipsWrongToCorrect != 1 || back.FlipsCorrectToWrong != 0 || back.AccDelta != 0.25 {
		t.Errorf("reversed comparison: %+v", back)
	}
}

func TestNumJSON(t *testing.T) {
	b, err := json.Marshal([]Num{Num(math.NaN()), Num(math.Inf(1)), 0.1, 1e-300})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "[null,null,0.1,1e-300]"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	var back []Num
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(float64(back[0])) || back[2] != 0.1 {
		t.Errorf("round trip: %v", back)
	}
}

func TestWireText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{" Once", " Once"},
		{"é", "é"},
		{"\xe2", `bytes:\xe2`},
		{"a\xe2b\xff", `bytes:\x61\xe2\x62\xff`},
	} {
		if got := WireText(c.in); got != c.want {
			t.Errorf("WireText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
