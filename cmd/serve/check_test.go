package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/equarx/equarx/server"
)

// badArgs are settings that must be refused before the server listens.
var badArgs = []struct {
	args []string
	want string // in the message
}{
	{[]string{"--tp", "3"}, "--tp 3 does not shard the model: n_heads: 8 is not divisible by 3"},
	{[]string{"--tp", "16"}, "--tp 16 does not shard the model"},
	{[]string{"--tp", "0"}, "tp must be >= 1"},
	{[]string{"--topology", "mesh:4"}, `--topology: topology "mesh:4": unknown kind "mesh"`},
	{[]string{"--tp", "2", "--topology", "ring:4"}, "--topology ring:4 has 4 devices but --tp is 2"},
	{[]string{"--tpu", "v7"}, `--tpu: unknown profile "v7"`},
	{[]string{"--allreduce", "int3"}, "int3"},
	{[]string{"--model", "/nonexistent/model.bin"}, "--model: stat /nonexistent/model.bin"},
	{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
	{[]string{"--tp", "x"}, `invalid value "x" for flag -tp`},
	{[]string{"stray"}, `unexpected arguments ["stray"]`},
	{[]string{"--weights-dtype", "fp8"}, `--weights-dtype: weights dtype "fp8": want f32 or bf16`},
	{[]string{"--max-memory", "lots"}, `--max-memory: size "lots"`},
	{[]string{"--max-memory", "-5GB"}, `--max-memory: size "-5GB"`},
	{[]string{"--max-memory", "1MiB"}, "more than 1.0 MiB (--max-memory 1MiB)"},
	{[]string{"--model", "synthetic:gemma3-4b", "--max-memory", "8GiB", "--weights-dtype", "bf16"}, "the model needs"},
	{[]string{"--model", "synthetic:gemma3-4b", "--tp", "4", "--max-memory", "12GiB"}, "as f32, batch of 2048 tokens"},
	{[]string{"--model", "synthetic:gemma3-4b", "--tp", "4", "--max-memory", "12GiB"}, "with --weights-dtype bf16 it needs 8.05 GiB and would fit"},
	{[]string{"--model", "synthetic:gemma3-4b", "--tp", "4", "--max-memory", "4GiB"}, "would not fit either"},
}

// validateArgs is what run does before it listens.
func validateArgs(args []string) error {
	cfg, err := loadConfig(args, io.Discard)
	if err != nil {
		return err
	}
	_, err = cfg.checkModel()
	return err
}

func TestBadSettingsAreUsageErrors(t *testing.T) {
	for _, tc := range badArgs {
		err := validateArgs(tc.args)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("%q: err = %v (%T), want a usage error", tc.args, err, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: message %q, want one line containing %q", tc.args, err, tc.want)
		}
	}
	for _, ok := range [][]string{nil, {"--tp", "8"}, {"--tp", "2", "--topology", "torus:1x2", "--tpu", "v6e"}, {"--tp", "1"},
		{"--max-memory", "512MiB", "--weights-dtype", "bf16"}, {"--max-memory", "1e9"}} {
		if err := validateArgs(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// TestBadFlagExitsBeforeListening runs the binary: a bad setting is one line
// on stderr, exit status 2, and nothing is logged (nothing listened).
func TestBadFlagExitsBeforeListening(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the serve binary")
	}
	bin := buildBinary(t)
	for _, tc := range badArgs {
		cmd := exec.Command(bin, append([]string{"--addr", "127.0.0.1:0"}, tc.args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%q: exit %v, want status 2", tc.args, err)
		}
		lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "serve: ") || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%q: stderr %q, want one line \"serve: ...%s...\"", tc.args, stderr.String(), tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("%q: stdout %q, want nothing", tc.args, stdout.String())
		}
	}

	// --help: usage line, description, flags; exit 0.
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), usageLine+"\n") || !strings.Contains(string(out), "-allreduce-timeout") {
		t.Errorf("--help: %v\n%s", err, out)
	}
	// --version: the build as JSON on stdout; exit 0.
	out, err = exec.Command(bin, "--version").Output()
	var v server.VersionInfo
	if err != nil || json.Unmarshal(out, &v) != nil || v.GoVersion == "" || v.BLAS == "" {
		t.Errorf("--version: %v\n%s", err, out)
	}
}
