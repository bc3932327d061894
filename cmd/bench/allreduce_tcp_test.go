package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/tpu"
)

// TestMain lets this test binary serve as the worker the tcp transport
// re-executes (os.Executable is the test binary under go test).
func TestMain(m *testing.M) {
	if len(os.Args) >= 2 && os.Args[1] == workerCmd {
		if err := workerMain(os.Args[2:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "bench worker: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runTCP runs the command's tcp contract and returns its JSON rows.
func runTCP(t *testing.T, extra ...string) []arRow {
	t.Helper()
	js := filepath.Join(t.TempDir(), "out.json")
	args := append([]string{"--transport", "tcp", "--ranks", "2", "--elements", "1K", "--codecs", "f32,bf16,int8,int4",
		"--algorithms", "auto,oneshot", "--iters", "2", "--warmup", "1", "--call-timeout", "10s", "--json", js}, extra...)
	var out bytes.Buffer
	if err := runAllReduceCmd(args, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "wall ms (median)") || !strings.Contains(out.String(), "sim TPU us") {
		t.Errorf("table does not label its clocks:\n%s", out.String())
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rows []arRow
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	var raw []map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"transport", "codec", "devices", "elements", "wire_bytes", "wall_seconds", "speedup_vs_bf16",
		"rel_err_rms", "link_gbps", "sim_seconds", "codec_seconds", "wire_floor_seconds", "send_seconds"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("row lacks %q", k)
		}
	}
	return rows
}

// checkTCPRows checks rows of 2 ranks x 1K values x 4 codecs x
// {auto, oneshot} against the schedule and the exact sum.
func checkTCPRows(t *testing.T, rows []arRow, gbps float64) {
	t.Helper()
	if len(rows) != 8 {
		t.Fatalf("%d rows, want 8", len(rows))
	}
	prof, _ := tpu.LoadProfile("v5e")
	topo, _ := tpu.ParseTopology("ring:2")
	for _, r := range rows {
		if r.Transport != "tcp" || r.TCPFields == nil || r.Devices != 2 || r.Elements != 1024 || !r.Executed {
			t.Fatalf("row %+v", r)
		}
		if r.LinkGbps != gbps || r.Processes != 2 || r.Calls != 2 || len(r.WallCalls) != 2 {
			t.Errorf("row link %v processes %d calls %d", r.LinkGbps, r.Processes, r.Calls)
		}
		est, err := collective.Estimate(topo, prof, 1024, collective.Options{Codec: collective.CodecKind(r.Codec),
			Algorithm: collective.Algorithm(r.Algorithm), FallbackElems: -1})
		if err != nil {
			t.Fatal(err)
		}
		if r.WireBytes != est.WireBytes || r.AlgorithmUsed != string(est.Algorithm) {
			t.Errorf("%s %s: %d bytes by %s, the schedule %d by %s", r.Codec, r.Algorithm, r.WireBytes, r.AlgorithmUsed, est.WireBytes, est.Algorithm)
		}
		if r.WallSeconds <= 0 || r.SimSeconds <= 0 || r.CodecSeconds <= 0 || r.SocketBytes < r.WireBytes || r.CPUSeconds <= 0 || r.CPUs < 1 {
			t.Errorf("%s %s: wall %g sim %g codec %g, socket bytes %d < %d", r.Codec, r.Algorithm, r.WallSeconds, r.SimSeconds,
				r.CodecSeconds, r.SocketBytes, r.WireBytes)
		}
		if (gbps > 0) != (r.WireFloorSeconds > 0) {
			t.Errorf("wire floor %g on a %g Gbit/s link", r.WireFloorSeconds, gbps)
		}
		// Relative RMS error against the exact float64 sum, by codec: f32
		// adds once in float32; bf16 rounds each partial to 8 bits; int8 and
		// int4 quantize blocks of 256 normal values to 127 and 7 levels.
		lim := map[string]float64{"f32": 1e-7, "bf16": 5e-3, "int8": 2e-2, "int4": 0.3}[r.Codec]
		if !(r.RelErrRMS <= lim) || (r.Codec != "f32" && r.RelErrRMS == 0) {
			t.Errorf("%s %s: relative RMS error %g, limit %g", r.Codec, r.Algorithm, r.RelErrRMS, lim)
		}
		if r.Codec == "bf16" && r.SpeedupVsBF16 != 1 {
			t.Errorf("bf16 row speedup %g", r.SpeedupVsBF16)
		}
	}
}

// The tcp path on loopback: 2 ranks as separate processes, 1K values.
func TestAllReduceTCPLoopback(t *testing.T) {
	rows := runTCP(t)
	checkTCPRows(t, rows, 0)
}

// The tcp path in shaped network namespaces: 2 ranks, briefly; afterwards
// no namespace of this process's prefix is left, also after a run that
// fails while setting the hosts up.
func TestAllReduceTCPShapedNamespaces(t *testing.T) {
	if err := checkNetnsTools(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	if err := probeNetns(); err != nil {
		t.Skipf("skipped: root with iproute2, but this machine cannot make a shaped namespace: %v", err)
	}
	rows := runTCP(t, "--link-gbps", "1")
	checkTCPRows(t, rows, 1)
	if left := leftoverNamespaces(netnsPrefix()); len(left) > 0 {
		t.Fatalf("namespaces left after the run: %v", left)
	}
	// A tbf rate tc refuses fails the setup part-way: what was made goes.
	err := runAllReduceCmd([]string{"--transport", "tcp", "--ranks", "2", "--elements", "1K", "--link-gbps", "1e-9"}, &bytes.Buffer{})
	if err == nil {
		t.Fatal("a zero-kbit link was accepted")
	}
	if left := leftoverNamespaces(netnsPrefix()); len(left) > 0 {
		t.Fatalf("namespaces left after a failed setup (%v): %v", err, left)
	}
}

// probeNetns makes and removes a namespace with a tbf qdisc on its lo.
func probeNetns() error {
	ns := netnsPrefix() + "-probe"
	ctx := context.Background()
	if err := ipCmd(ctx, "ip", "netns", "add", ns); err != nil {
		return err
	}
	defer ipCmd(ctx, "ip", "netns", "del", ns)
	return ipCmd(ctx, "tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1gbit", "burst", "100000", "latency", "5ms")
}

func TestAllReduceTCPCommandErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--transport", "udp"},
		{"--transport", "tcp", "--ranks", "1", "--elements", "1K"},
		{"--transport", "tcp", "--ranks", "2", "--elements", "1K", "--algorithms", "torus2d"},
		{"--transport", "tcp", "--ranks", "2", "--elements", "1K", "--iters", "0"},
		{"--transport", "tcp", "--ranks", "2", "--elements", "1K", "--call-timeout", "0s"},
		{"--transport", "tcp", "--ranks", "2", "--elements", "1K", "--link-delay-us", "50"},
		{"--link-gbps", "10", "--elements", "1K"},
	} {
		if err := runAllReduceCmd(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
