package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "serve.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	file := writeFile(t, `{"addr":"127.0.0.1:9000","tp":2,"allreduce":"bf16","batch_wait":"5ms","max_batch_size":8}`)
	tests := []struct {
		name string
		args []string
		mod  func(*Config) // applied to the defaults to get the want
	}{
		{"defaults", nil, func(*Config) {}},
		{"flags", []string{"--tp", "8", "--topology", "torus:2x4", "--allreduce", "f32", "--request-timeout", "3s"}, func(c *Config) {
			c.TP, c.Topology, c.AllReduce, c.RequestTimeout = 8, "torus:2x4", "f32", Duration(3*time.Second)
		}},
		{"file", []string{"--config", file}, func(c *Config) {
			c.Addr, c.TP, c.AllReduce, c.BatchWait, c.MaxBatchSize = "127.0.0.1:9000", 2, "bf16", Duration(5*time.Millisecond), 8
		}},
		{"flags override the file", []string{"--config", file, "--tp", "1", "--batch-wait", "1ms"}, func(c *Config) {
			c.Addr, c.TP, c.AllReduce, c.BatchWait, c.MaxBatchSize = "127.0.0.1:9000", 1, "bf16", Duration(time.Millisecond), 8
		}},
		{"no batching", []string{"--config", file, "--no-batching"}, func(c *Config) {
			c.Addr, c.TP, c.AllReduce, c.BatchWait, c.MaxBatchSize = "127.0.0.1:9000", 2, "bf16", Duration(5*time.Millisecond), 1
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadConfig(tc.args, io.Discard)
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			want := defaultConfig()
			// One process, placed by flags: what resolve makes of the
			// defaults when no launcher's variables are set.
			want.Dist.NNodes, want.Dist.NodeRank, want.Dist.Source = 1, 0, "flags"
			tc.mod(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultConfigFileMatchesDefaults(t *testing.T) {
	got, err := loadConfig([]string{"--config", "../../configs/serve/default.json"}, io.Discard)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	want := defaultConfig()
	want.Dist.NNodes, want.Dist.NodeRank, want.Dist.Source = 1, 0, "flags" // resolved: one process
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("configs/serve/default.json differs from the built-in defaults (-code +file):\n%s", diff)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--tensor-parallel", "2"}, "not defined"},
		{"stray argument", []string{"model.bin"}, "unexpected arguments"},
		{"missing file", []string{"--config", "/nonexistent/serve.json"}, "config file"},
		{"unknown field", []string{"--config", writeFile(t, `{"tp":2,"tpp":3}`)}, "unknown field"},
		{"bad duration", []string{"--config", writeFile(t, `{"batch_wait":"soon"}`)}, "duration"},
		{"duration as number", []string{"--config", writeFile(t, `{"batch_wait":5}`)}, "duration must be a string"},
		{"trailing data", []string{"--config", writeFile(t, `{"tp":2}{}`)}, "after the JSON object"},
		{"tp", []string{"--tp", "0"}, "tp must be"},
		{"codec", []string{"--allreduce", "fp16"}, "unknown allreduce codec"},
		{"queue", []string{"--queue-limit", "0"}, "queue limit"},
		{"write timeout", []string{"--request-timeout", "90s"}, "write_timeout"},
		{"log format", []string{"--log-format", "xml"}, "log_format"},
		{"log level", []string{"--log-level", "loud"}, "log_level"},
		{"empty tpu", []string{"--tpu", ""}, "tpu"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("loadConfig(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestClassifyEngineError(t *testing.T) {
	// The engine's sentinels decide 400 vs 413; anything else is the engine's.
	if got := classifyEngineError(io.EOF); got != 0 {
		t.Errorf("unrelated error classified as %d", got)
	}
}
