package collective

import (
	"errors"
	"strings"
	"testing"
)

// Every registered codec builds, parses by its name, reports its kind and
// has a finite error bound; unknown names are refused with the list.
func TestRegistry(t *testing.T) {
	kinds := Codecs()
	if len(kinds) < 4 {
		t.Fatalf("registry lists %v", kinds)
	}
	for _, k := range kinds {
		got, err := ParseCodec(string(k))
		if err != nil || got != k {
			t.Fatalf("ParseCodec(%q) = %q, %v", k, got, err)
		}
		c, err := NewCodec(k, 64)
		if err != nil {
			t.Fatal(err)
		}
		if c.Kind() != k {
			t.Fatalf("NewCodec(%q).Kind() = %q", k, c.Kind())
		}
		if k.Quantized() != (c.BlockSize() > 1) {
			t.Fatalf("%s: Quantized() = %v but BlockSize() = %d", k, k.Quantized(), c.BlockSize())
		}
		if _, err := ErrorBound(k, 1); err != nil {
			t.Fatal(err)
		}
	}
	_, err := ParseCodec("int3")
	if !errors.Is(err, ErrCodecKind) {
		t.Fatalf("ParseCodec(int3): %v", err)
	}
	for _, k := range kinds {
		if !strings.Contains(err.Error(), string(k)) {
			t.Fatalf("error %q does not list %q", err, k)
		}
	}
	if CodecKind("int3").Quantized() {
		t.Fatal("unknown kind reported quantized")
	}
}
