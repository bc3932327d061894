package tokenizer

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/equarx/equarx/assets"
)

func loadTok512(t testing.TB) *Llama2C {
	t.Helper()
	tok, err := LoadLlama2C(assets.Tok512())
	if err != nil {
		t.Fatalf("LoadLlama2C(assets.Tok512()): %v", err)
	}
	return tok
}

// runcEncode is a direct transliteration of llama2.c run.c's encode (bos
// optional, eos=0): the quadratic merge scan, used as the reference the
// heap-based Encode must agree with.
func runcEncode(t *Llama2C, text string, bos bool) []int {
	ids := []int{}
	if bos {
		ids = append(ids, 1)
	}
	if text != "" {
		ids = append(ids, t.lookup[" "])
	}
	var buf []byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c&0xC0 != 0x80 {
			buf = buf[:0]
		}
		buf = append(buf, c)
		if i+1 < len(text) && text[i+1]&0xC0 == 0x80 && len(buf) < 4 {
			continue
		}
		if id, ok := t.lookup[string(buf)]; ok {
			ids = append(ids, id)
		} else {
			for _, b := range buf {
				ids = append(ids, int(b)+3)
			}
		}
		buf = buf[:0]
	}
	for {
		best, bestID, bestIdx := float32(-1e10), -1, -1
		for i := 0; i+1 < len(ids); i++ {
			id, ok := t.lookup[t.pieces[ids[i]]+t.pieces[ids[i+1]]]
			if ok && t.scores[id] > best {
				best, bestID, bestIdx = t.scores[id], id, i
			}
		}
		if bestIdx == -1 {
			break
		}
		ids[bestIdx] = bestID
		ids = append(ids[:bestIdx+1], ids[bestIdx+2:]...)
	}
	return ids
}

func TestLlama2CKnownEncodings(t *testing.T) {
	tok := loadTok512(t)
	tests := []struct {
		text   string
		addBOS bool
		want   []int
	}{
		{"Once upon a time", true, []int{1, 403, 407, 261, 378}},
		{"Once upon a time", false, []int{403, 407, 261, 378}},
		{"", true, []int{1}},
		{"", false, []int{}},
	}
	for _, tc := range tests {
		got, err := tok.Encode(tc.text, tc.addBOS)
		if err != nil {
			t.Fatalf("Encode(%q, %v): %v", tc.text, tc.addBOS, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Encode(%q, %v) mismatch (-want +got):\n%s", tc.text, tc.addBOS, diff)
		}
	}
}

type greedySample struct {
	IDs  []int  `json:"ids"`
	Text string `json:"text"`
}

func TestLlama2CGreedySample(t *testing.T) {
	tok := loadTok512(t)
	var g greedySample
	if err := json.Unmarshal(assets.GreedyFromBOS(), &g); err != nil {
		t.Fatalf("parse greedy_from_bos.json: %v", err)
	}
	if got := tok.Decode(g.IDs); got != g.Text {
		t.Errorf("Decode(greedy ids) mismatch (-want +got):\n%s", cmp.Diff(g.Text, got))
	}
	enc, err := tok.Encode(g.Text, true)
	if err != nil {
		t.Fatal(err)
	}
	// The greedy sample happens to be the canonical encoding of its text.
	if diff := cmp.Diff(g.IDs, enc); diff != "" {
		t.Errorf("Encode(greedy text) mismatch with run.c's ids (-want +got):\n%s", diff)
	}
}
