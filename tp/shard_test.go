package tp

import (
	"testing"

	"github.com/equarx/equarx/model"
	"github.com/google/go-cmp/cmp"
)

func TestSplitRange(t *testing.T) {
	tests := []struct {
		n, size int
		want    [][2]int
	}{
		{172, 8, [][2]int{{0, 22}, {22, 44}, {44, 66}, {66, 88}, {88, 109}, {109, 130}, {130, 151}, {151, 172}}},
		{172, 1, [][2]int{{0, 172}}},
		{8, 4, [][2]int{{0, 2}, {2, 4}, {4, 6}, {6, 8}}},
		{3, 4, [][2]int{{0, 1}, {1, 2}, {2, 3}, {3, 3}}},
		{512, 3, [][2]int{{0, 171}, {171, 342}, {342, 512}}},
	}
	for _, tc := range tests {
		var got [][2]int
		for r := 0; r < tc.size; r++ {
			lo, hi := SplitRange(tc.n, tc.size, r)
			got = append(got, [2]int{lo, hi})
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("SplitRange(%d, %d) (-want +got):\n%s", tc.n, tc.size, diff)
		}
	}
}

func TestDivide(t *testing.T) {
	tests := []struct {
		n, d, want int
		wantErr    bool
	}{
		{8, 4, 2, false}, {8, 8, 1, false}, {8, 3, 0, true}, {4, 8, 0, true}, {8, 0, 0, true},
	}
	for _, tc := range tests {
		got, err := divide(tc.n, tc.d)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("divide(%d, %d) = %d, %v; want %d, error %v", tc.n, tc.d, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestHeadShard(t *testing.T) {
	cfg := func(h, kv int) model.Config { return model.Config{Heads: h, KVHeads: kv} }
	type S = model.HeadShard
	hs := func(q, qf, kv, kvf int) S { return S{QHeads: q, QFirst: qf, KVHeads: kv, KVFirst: kvf} }
	tests := []struct {
		name    string
		cfg     model.Config
		size    int
		want    []S
		wantErr bool
	}{
		{"stories tp2: kv split", cfg(8, 4), 2, []S{hs(4, 0, 2, 0), hs(4, 4, 2, 2)}, false},
		{"stories tp4: one kv head each", cfg(8, 4), 4, []S{hs(2, 0, 1, 0), hs(2, 2, 1, 1), hs(2, 4, 1, 2), hs(2, 6, 1, 3)}, false},
		{"stories tp8: kv replicated on pairs", cfg(8, 4), 8,
			[]S{hs(1, 0, 1, 0), hs(1, 1, 1, 0), hs(1, 2, 1, 1), hs(1, 3, 1, 1), hs(1, 4, 1, 2), hs(1, 5, 1, 2), hs(1, 6, 1, 3), hs(1, 7, 1, 3)}, false},
		{"gemma3-1b tp4: one kv head on all", cfg(4, 1), 4, []S{hs(1, 0, 1, 0), hs(1, 1, 1, 0), hs(1, 2, 1, 0), hs(1, 3, 1, 0)}, false},
		{"mha tp2", cfg(4, 4), 2, []S{hs(2, 0, 2, 0), hs(2, 2, 2, 2)}, false},
		{"heads not divisible", cfg(8, 4), 3, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []S
			for r := 0; r < tc.size; r++ {
				s, err := HeadShard(tc.cfg, tc.size, r)
				if err != nil {
					if !tc.wantErr {
						t.Fatalf("rank %d: %v", r, err)
					}
					return
				}
				got = append(got, s)
			}
			if tc.wantErr {
				t.Fatal("no error for heads that do not divide by tp")
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
