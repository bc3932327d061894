package perfmodel

import (
	"path/filepath"
	"testing"

	"github.com/equarx/equarx/model"
)

// TestGemma3Configs loads the committed Gemma 3 configs and checks their
// text-decoder parameter counts against the published sizes (4B, 12B, 27B
// count the vision encoder too, about 0.4B, which these configs omit).
func TestGemma3Configs(t *testing.T) {
	tests := []struct {
		file   string
		lo, hi int64
	}{
		{"gemma3-1b.json", 0.95e9, 1.05e9},
		{"gemma3-4b.json", 3.7e9, 4.1e9},
		{"gemma3-12b.json", 11.5e9, 12.2e9},
		{"gemma3-27b.json", 26.5e9, 27.5e9},
	}
	for _, tc := range tests {
		c, err := model.LoadConfig(filepath.Join("..", "configs", "models", tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		p := c.Params()
		t.Logf("%s: %d parameters", tc.file, p)
		if p < tc.lo || p > tc.hi {
			t.Errorf("%s: %d parameters, want in [%d, %d]", tc.file, p, tc.lo, tc.hi)
		}
		if _, err := model.New(c); err != nil {
			t.Errorf("%s: %v", tc.file, err)
		}
	}
}
