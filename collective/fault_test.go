package collective

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/equarx/equarx/tpu"
)

// faultCase is one injected fault: the hook, the error every rank's failure
// must trace back to (or tpu.ErrAborted, for ranks a peer aborted), and
// whether the failure is detected at once (the call ends well before its
// timeout) or only by the timeout.
type faultCase struct {
	name      string
	hook      func() tpu.FaultHook
	want      error
	immediate bool
}

// faultTimeout bounds calls whose fault is only seen by a timeout;
// immediateTimeout is the long bound under which immediately detected
// faults must fail (they must not wait for it).
const (
	faultTimeout     = 150 * time.Millisecond
	immediateTimeout = 20 * time.Second
)

var errInjected = errors.New("injected device crash")

func faultCases() []faultCase {
	return []faultCase{
		{"drop-one-payload", func() tpu.FaultHook { return tpu.DropFault(tpu.Once(tpu.PayloadFrom(1))) }, context.DeadlineExceeded, false},
		{"silent-device", func() tpu.FaultHook { return tpu.DropFault(tpu.FromDevice(1)) }, context.DeadlineExceeded, false},
		{"stall-past-timeout", func() tpu.FaultHook { return tpu.StallFault(tpu.Once(tpu.FromDevice(1)), 3*faultTimeout) }, context.DeadlineExceeded, false},
		{"corrupt-payload", func() tpu.FaultHook { return tpu.CorruptFault(tpu.Once(tpu.PayloadFrom(1))) }, ErrCorrupt, true},
		{"truncate-payload", func() tpu.FaultHook { return tpu.TruncateFault(tpu.Once(tpu.PayloadFrom(1))) }, ErrCorrupt, true},
		{"panic-mid-call", func() tpu.FaultHook { return tpu.PanicFault(tpu.Once(tpu.PayloadFrom(1)), errInjected) }, errInjected, true},
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

// TestAllReduceFaults injects each fault into one call per algorithm and
// codec: every rank's call must return an error naming the fault (or the
// abort it caused), the immediately detectable faults without waiting for
// the timeout; no goroutine may be left behind; and a fresh group on the
// same mesh must then produce bitwise the result of a clean run.
func TestAllReduceFaults(t *testing.T) {
	configs := []struct {
		topo string
		opts Options
	}{
		{"ring:4", Options{Codec: CodecInt8, Algorithm: AlgoRing, FallbackElems: -1}},
		{"ring:3", Options{Codec: CodecBF16, Algorithm: AlgoBiRing, SegmentElems: 256}},
		{"ring:4", Options{Codec: CodecInt4, Algorithm: AlgoTwoShot, FallbackElems: -1}},
		{"torus:2x2", Options{Codec: CodecF32, Algorithm: AlgoTorus2D}},
	}
	cases := faultCases()
	if raceEnabled {
		configs = configs[:2]
	}
	const n = 3001
	before := runtime.NumGoroutine()
	for _, cf := range configs {
		size := mustTopoSize(t, cf.topo)
		in := makeInputs(inNormal, size, n, 7)
		clean := newMesh(t, cf.topo, "v5e")
		cleanComms, err := NewGroup(clean)
		if err != nil {
			t.Fatal(err)
		}
		want, _, errs := runGroup(t, cleanComms, in, sameOpts(size, cf.opts), nil)
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("%s %+v: clean run: %v", cf.topo, cf.opts, err)
		}
		for _, fc := range cases {
			t.Run(cf.topo+"/"+string(cf.opts.Codec)+"/"+string(cf.opts.Algorithm)+"/"+fc.name, func(t *testing.T) {
				m := newMesh(t, cf.topo, "v5e")
				comms, err := NewGroup(m)
				if err != nil {
					t.Fatal(err)
				}
				opts := cf.opts
				opts.Timeout = faultTimeout
				if fc.immediate {
					opts.Timeout = immediateTimeout
				}
				m.SetFaultHook(fc.hook())
				start := time.Now()
				_, _, errs := runGroup(t, comms, in, sameOpts(size, opts), nil)
				elapsed := time.Since(start)
				m.SetFaultHook(nil)
				seen := false
				for r, err := range errs {
					switch {
					case err == nil:
						t.Errorf("rank %d: faulty call returned no error", r)
					case errors.Is(err, fc.want):
						seen = true
					case !errors.Is(err, tpu.ErrAborted):
						t.Errorf("rank %d: error %v is neither %v nor an abort", r, err, fc.want)
					}
				}
				if !seen {
					t.Errorf("no rank reported %v: %v", fc.want, errs)
				}
				if fc.immediate && elapsed >= immediateTimeout/2 {
					t.Errorf("detected after %v: the ranks waited for the timeout instead of failing at once", elapsed)
				}

				// Recovery: a fresh group on the same mesh, no restart.
				comms, err = NewGroup(m)
				if err != nil {
					t.Fatal(err)
				}
				opts.Timeout = immediateTimeout
				got, _, errs := runGroup(t, comms, in, sameOpts(size, opts), nil)
				if err := errors.Join(errs...); err != nil {
					t.Fatalf("call on a fresh group after the fault: %v", err)
				}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("result after recovery differs from a clean run (-clean +recovered):\n%s", d)
				}
			})
		}
	}
	if after := settleGoroutines(before); after > before {
		t.Errorf("goroutines: %d before the faults, %d after", before, after)
	}
}

// TestCorruptPayloadNamesTheCheck checks the error a corrupted payload
// produces tells the operator what was wrong: the checksum, the message and
// its sender.
func TestCorruptPayloadNamesTheCheck(t *testing.T) {
	m := newMesh(t, "ring:2", "v5e")
	m.SetFaultHook(tpu.CorruptFault(tpu.Once(tpu.PayloadFrom(1))))
	comms, err := NewGroup(m)
	if err != nil {
		t.Fatal(err)
	}
	in := makeInputs(inNormal, 2, 1000, 3)
	_, _, errs := runGroup(t, comms, in, sameOpts(2, Options{Codec: CodecInt8, FallbackElems: -1, Timeout: immediateTimeout}), nil)
	// Rank 0 receives rank 1's corrupted payload.
	if errs[0] == nil || !errors.Is(errs[0], ErrCorrupt) {
		t.Fatalf("rank 0: error %v, want %v", errs[0], ErrCorrupt)
	}
	for _, s := range []string{"CRC32-C", "from rank 1", "rank 0"} {
		if !strings.Contains(errs[0].Error(), s) {
			t.Errorf("rank 0 error %q does not mention %q", errs[0], s)
		}
	}
}

func mustTopoSize(t *testing.T, s string) int {
	t.Helper()
	topo, err := tpu.ParseTopology(s)
	if err != nil {
		t.Fatal(err)
	}
	return topo.Size()
}
