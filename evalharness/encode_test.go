package evalharness

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEncodePair(t *testing.T) {
	// testTok pieces: " the"=259, " cat"=260, " sat"=261, "Once"=262, " upon"=263,
	// " a"=264, " time"=265, "."=266, " dog"=267, "at"=268, "bc"=269; bytes are b+3.
	tests := []struct {
		name      string
		ctx, cont string
		wantCtx   []int
		wantCont  []int
	}{
		{"plain", "Once upon", " a time", []int{1, 262, 263}, []int{264, 265}},
		// The trailing space moves to the continuation: " cat" is one piece.
		{"trailing space", "Once ", "cat", []int{1, 262}, []int{260}},
		{"two trailing spaces", "Once  ", "cat", []int{1, 262}, []int{3 + ' ', 260}},
		// Context "a" then "bc": the whole string encodes as [a, bc], the
		// context as [a], so the continuation is [bc]...
		{"boundary piece", "a", "bc", []int{1, 3 + 'a'}, []int{269}},
		// ...but when the context's last byte merges with the continuation
		// ("ab" + "c" -> "a", "bc"), the whole encoding has no tokens beyond
		// len(context encoding) = 3, so the continuation is empty.
		{"merge across the boundary", "ab", "c", []int{1, 3 + 'a', 3 + 'b'}, []int{}},
		{"empty context", "", " the cat", []int{1}, []int{259, 260}},
		{"empty continuation", "Once", "", []int{1, 262}, []int{}},
	}
	for _, tt := range tests {
		gotCtx, gotCont, err := EncodePair(testTok, tt.ctx, tt.cont)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.wantCtx, gotCtx); diff != "" {
			t.Errorf("%s: context (-want +got):\n%s", tt.name, diff)
		}
		if diff := cmp.Diff(tt.wantCont, gotCont, cmp.Comparer(func(a, b []int) bool { return len(a) == len(b) && (len(a) == 0 || cmp.Equal(a, b)) })); diff != "" {
			t.Errorf("%s: continuation (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestNewRequest(t *testing.T) {
	tests := []struct {
		name          string
		ctx, cont     []int
		maxLen        int
		want          Request
		wantTruncated bool
	}{
		{"fits", []int{1, 5, 6}, []int{7, 8}, 8, Request{Tokens: []int{1, 5, 6, 7, 8}, Start: 3}, false},
		{"exactly fits", []int{1, 5, 6}, []int{7, 8}, 5, Request{Tokens: []int{1, 5, 6, 7, 8}, Start: 3}, false},
		{"left-truncated", []int{1, 5, 6}, []int{7, 8}, 3, Request{Tokens: []int{6, 7, 8}, Start: 1}, true},
		{"empty continuation", []int{1, 5}, nil, 4, Request{Tokens: []int{1, 5}, Start: 2}, false},
	}
	for _, tt := range tests {
		got, tr, err := NewRequest(tt.ctx, tt.cont, tt.maxLen)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" || tr != tt.wantTruncated {
			t.Errorf("%s: truncated %v (-want +got):\n%s", tt.name, tr, diff)
		}
	}
	if _, _, err := NewRequest([]int{1, 2}, []int{3, 4, 5}, 3); !errors.Is(err, ErrTooLong) {
		t.Errorf("continuation filling the window: err %v, want ErrTooLong", err)
	}
}
