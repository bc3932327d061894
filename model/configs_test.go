package model

import (
	"path/filepath"
	"testing"
)

func TestCommittedConfigs(t *testing.T) {
	tests := []struct {
		file   string
		arch   string
		lo, hi int64 // parameter count range; gemma-3-1b is published as 1B
	}{
		{"stories260k.json", "llama", 250_000, 300_000},
		{"gemma3-1b.json", "gemma3", 950_000_000, 1_050_000_000},
	}
	for _, tc := range tests {
		c, err := LoadConfig(filepath.Join("..", "configs", "models", tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if c.Arch != tc.arch {
			t.Errorf("%s: arch %q", tc.file, c.Arch)
		}
		if p := c.Params(); p < tc.lo || p > tc.hi {
			t.Errorf("%s: %d parameters, want in [%d, %d]", tc.file, p, tc.lo, tc.hi)
		} else {
			t.Logf("%s: %d parameters", tc.file, p)
		}
		if _, err := New(c); err != nil {
			t.Errorf("%s: %v", tc.file, err)
		}
	}
	if _, err := ParseConfig([]byte(`{"arch": "llama", "dimm": 3}`)); err == nil {
		t.Error("unknown field accepted")
	}
}
