package tokenizer

import "testing"

func TestBytesRoundTrip(t *testing.T) {
	tok, err := NewBytes(32000)
	if err != nil {
		t.Fatal(err)
	}
	text := "Once upon a time, é€"
	ids, err := tok.Encode(text, true)
	if err != nil {
		t.Fatal(err)
	}
	if ids[0] != 1 || ids[1] != 3+'O' || len(ids) != len(text)+1 {
		t.Fatalf("ids %v", ids[:3])
	}
	if got := tok.Decode(ids); got != text {
		t.Fatalf("decode %q, want %q", got, text)
	}
	if _, err := NewBytes(100); err == nil {
		t.Fatal("a 100-id vocabulary was accepted")
	}
}
