package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{{"8GiB", 8 << 30}, {"500MB", 500e6}, {"1.5GiB", 3 << 29}, {"1048576", 1 << 20}, {"2 KiB", 2048}, {"7B", 7}} {
		got, err := parseSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "GiB", "-1GiB", "0", "8XB", "1e30TB", "NaN", "0.1"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q): no error", bad)
		}
	}
	data := []byte("MemTotal:       24683568 kB\nMemAvailable:   20000000 kB\nVmHWM:\t  1234 kB\n")
	if n, ok := meminfoField(data, "MemAvailable"); !ok || n != 20000000<<10 {
		t.Errorf("MemAvailable = %d, %v", n, ok)
	}
	if _, ok := meminfoField(data, "Missing"); ok {
		t.Errorf("a missing field was found")
	}
}

// TestServeLogsMemory runs the binary: the memory estimate is logged before
// the model loads, and the peak RSS once it has.
func TestServeLogsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the serve binary")
	}
	base, stop := servedBinary(t, "--model", "synthetic:stories260k", "--tp", "2", "--weights-dtype", "bf16", "--max-memory", "2GiB")
	waitHealthy(t, base)
	log := stop()
	var est, loaded map[string]any
	for _, line := range strings.Split(log, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		switch rec["msg"] {
		case "memory estimate":
			est = rec
		case "model loaded":
			loaded = rec
		}
	}
	if est == nil || loaded == nil {
		t.Fatalf("no memory estimate or model loaded line:\n%s", log)
	}
	if est["weights_dtype"] != "bf16" || est["total_bytes"].(float64) <= 0 || est["budget_bytes"].(float64) != 2<<30 {
		t.Errorf("memory estimate line %v", est)
	}
	if loaded["weights_dtype"] != "bf16" || loaded["peak_rss_bytes"].(float64) <= 0 {
		t.Errorf("model loaded line %v", loaded)
	}
}
