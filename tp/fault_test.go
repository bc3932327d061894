package tp

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/tpu"
)

// TestPrefillSurvivesDeviceFaults injects a transport-level fault into the
// middle of a prefill (a message of a later layer's AllReduce): the prefill
// must fail with an error naming the fault, no rank may be left running,
// and the next prefill on the same engine, with no restart, must equal a
// clean run bitwise.
func TestPrefillSurvivesDeviceFaults(t *testing.T) {
	const (
		shortTimeout = 200 * time.Millisecond // faults only a timeout can see
		longTimeout  = 20 * time.Second       // faults that must be caught at once
		midRun       = 40                     // rank 1's 40th payload message: not the first AllReduce
	)
	errCrash := errors.New("injected device crash")
	cases := []struct {
		name      string
		hook      tpu.FaultHook
		want      error
		immediate bool
	}{
		{"drop", tpu.DropFault(tpu.Nth(midRun, tpu.PayloadFrom(1))), context.DeadlineExceeded, false},
		{"silent device", tpu.DropFault(tpu.FromDevice(1)), context.DeadlineExceeded, false},
		{"stall", tpu.StallFault(tpu.Nth(midRun, tpu.PayloadFrom(1)), 3*shortTimeout), context.DeadlineExceeded, false},
		{"corrupt", tpu.CorruptFault(tpu.Nth(midRun, tpu.PayloadFrom(1))), collective.ErrCorrupt, true},
		{"panic", tpu.PanicFault(tpu.Nth(midRun, tpu.PayloadFrom(1)), errCrash), errCrash, true},
	}
	seqs := [][]int{greedyIDs(t)[:48], greedyIDs(t)[:17]}
	if raceEnabled {
		// The timeout-only faults exercise the same abort path as the
		// immediate ones; under the race detector keep the fast ones.
		cases = []struct {
			name      string
			hook      tpu.FaultHook
			want      error
			immediate bool
		}{cases[0], cases[3], cases[4]}
		seqs = seqs[1:]
	}
	opts := PrefillOptions{Codec: collective.CodecInt8, TopK: 3, FullLogprobs: true}
	clean, err := NewEngine(stories(t), EngineConfig{TP: 4, TPU: "v5e", FallbackElems: -1})
	if err != nil {
		t.Fatal(err)
	}
	want := prefill(t, clean, seqs, opts).Seqs

	before := runtime.NumGoroutine()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			timeout := shortTimeout
			if tc.immediate {
				timeout = longTimeout
			}
			e, err := NewEngine(stories(t), EngineConfig{TP: 4, TPU: "v5e", FallbackElems: -1, Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			mesh := e.cl.(*meshCluster).mesh
			mesh.SetFaultHook(tc.hook)
			start := time.Now()
			_, err = e.Prefill(context.Background(), seqs, opts)
			elapsed := time.Since(start)
			mesh.SetFaultHook(nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("faulty prefill: error %v, want %v", err, tc.want)
			}
			t.Logf("faulty prefill failed after %v: %v", elapsed.Round(time.Millisecond), err)
			if tc.immediate && elapsed >= longTimeout/2 {
				t.Errorf("failed after %v: the ranks waited for the timeout instead of failing at once", elapsed)
			}
			res, err := e.Prefill(context.Background(), seqs, opts)
			if err != nil {
				t.Fatalf("prefill after the fault: %v", err)
			}
			if d := cmp.Diff(want, res.Seqs); d != "" {
				t.Errorf("prefill after the fault differs from a clean engine (-clean +recovered):\n%s", d)
			}
		})
	}
	if after := settleGoroutines(before); after > before {
		t.Errorf("goroutines: %d before the faults, %d after", before, after)
	}
}

// settleGoroutines waits until the goroutine count drops to at most want and
// returns the last count seen.
func settleGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 200 && n > want; i++ {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}
