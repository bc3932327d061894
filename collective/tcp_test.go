package collective

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/equarx/equarx/transport"
)

// tcpGroup forms a group of size ranks over real loopback TCP connections:
// nodes processes' worth of transport.Nodes in this test process, each
// with its own mesh (so its own clocks), as separate processes would have.
func tcpGroup(t testing.TB, topo, prof string, nodes int) ([]*Communicator, []*transport.Node) {
	t.Helper()
	size := newMesh(t, topo, prof).Size()
	ns := make([]*transport.Node, nodes)
	for k := range ns {
		n, err := transport.Listen(transport.NodeConfig{
			Node: k, Nodes: nodes, Ranks: size, Token: "test-token", Listen: "127.0.0.1:0",
			IOTimeout: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		ns[k] = n
		t.Cleanup(func() { n.Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for k, n := range ns {
		wg.Go(func() { errs[k] = n.Join(ctx, ns[0].Addr(), "") })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	comms := make([]*Communicator, size)
	for _, n := range ns {
		m := newMesh(t, topo, prof)
		local := n.LocalRanks()
		trs := make([]Transport, len(local))
		for i, r := range local {
			ep, err := n.Endpoint(r)
			if err != nil {
				t.Fatal(err)
			}
			trs[i] = ep
		}
		cs, err := NewRemoteGroup(m, 1, local, trs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range local {
			comms[r] = cs[i]
		}
	}
	return comms, ns
}

// Over TCP every codec and algorithm gives bitwise the results of the
// emulated in-process transport, on every rank, and the same simulated
// time: the transport moves bytes, it does not change the schedule.
func TestTCPMatchesEmulated(t *testing.T) {
	cases := []struct {
		topo  string
		nodes int
	}{{"ring:4", 4}, {"ring:4", 2}, {"torus:2x2", 4}, {"ring:3", 3}}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%dnodes", tc.topo, tc.nodes), func(t *testing.T) {
			comms, _ := tcpGroup(t, tc.topo, "v5e", tc.nodes)
			emul := mustGroup(t, tc.topo)
			size := len(comms)
			for _, n := range []int{0, 1, 1000, 65537} {
				for _, ck := range allCodecKinds {
					in := makeInputs(inHeavy, size, n, 7)
					o := Options{Codec: ck, BlockSize: 64, FallbackElems: -1, SegmentElems: 4096}
					want, wst, werrs := runGroup(t, emul, in, sameOpts(size, o), nil)
					got, gst, gerrs := runGroup(t, comms, in, sameOpts(size, o), nil)
					for r := range got {
						if werrs[r] != nil || gerrs[r] != nil {
							t.Fatalf("n %d %s rank %d: emulated err %v, tcp err %v", n, ck, r, werrs[r], gerrs[r])
						}
						for i := range got[r] {
							if math.Float32bits(got[r][i]) != math.Float32bits(want[r][i]) {
								t.Fatalf("n %d %s rank %d element %d: tcp %v, emulated %v", n, ck, r, i, got[r][i], want[r][i])
							}
						}
						if gst[r].SimSeconds != wst[r].SimSeconds || gst[r].WireBytes != wst[r].WireBytes {
							t.Fatalf("n %d %s rank %d: tcp stats %+v, emulated %+v", n, ck, r, gst[r], wst[r])
						}
					}
				}
			}
		})
	}
}

func mustGroup(t testing.TB, topo string) []*Communicator {
	t.Helper()
	cs, err := NewGroup(newMesh(t, topo, "v5e"))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestTCPBroadcastGatherBarrier(t *testing.T) {
	comms, _ := tcpGroup(t, "ring:4", "v5e", 2)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, len(comms))
	got := make([][]byte, len(comms))
	var gathered [][]byte
	for r, c := range comms {
		wg.Go(func() {
			var data []byte
			if r == 0 {
				data = []byte("batch 42")
			}
			b, err := c.Broadcast(ctx, 0, data, time.Second)
			if err != nil {
				errs[r] = err
				return
			}
			got[r] = slices.Clone(b)
			g, err := c.Gather(ctx, 0, []byte{byte(r), 'x'}, time.Second)
			if err != nil {
				errs[r] = err
				return
			}
			if r == 0 {
				gathered = g
			}
			errs[r] = c.Barrier(ctx, time.Second)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for r, b := range got {
		if string(b) != "batch 42" {
			t.Fatalf("rank %d got %q", r, b)
		}
	}
	for r, b := range gathered {
		if len(b) != 2 || b[0] != byte(r) || b[1] != 'x' {
			t.Fatalf("gathered from rank %d: %v", r, b)
		}
	}
}

// A node that dies fails the call on every other rank within the timeout,
// naming the lost peer, never a hang.
func TestTCPPeerLossFailsCall(t *testing.T) {
	comms, ns := tcpGroup(t, "ring:4", "v5e", 4)
	ns[2].Close()
	in := makeInputs(inNormal, 4, 100000, 3)
	o := Options{Codec: CodecInt8, Timeout: 5 * time.Second}
	start := time.Now()
	_, _, errs := runGroup(t, comms, in, sameOpts(4, o), map[int]bool{2: true})
	if el := time.Since(start); el > 6*time.Second {
		t.Fatalf("failing took %v", el)
	}
	for r, err := range errs {
		if r == 2 {
			continue
		}
		if err == nil {
			t.Fatalf("rank %d: no error with rank 2 dead", r)
		}
		if !errors.Is(err, transport.ErrPeerLost) && !errors.Is(err, transport.ErrAborted) {
			t.Fatalf("rank %d: %v, want a lost peer or an abort", r, err)
		}
	}
	if miss := ns[0].Missing(); !slices.Equal(miss, []int{2}) {
		t.Fatalf("node 0 misses %v, want [2]", miss)
	}
}

// In steady state a call over TCP allocates nothing per message: received
// payloads come from pooled buffers and go back after use, headers are
// written from a per-connection buffer, the encode arena is kept. So the
// allocations of a call do not grow with the number of messages (here
// 2 x 64 segments against 2 x 1).
func TestTCPNoPerMessageAllocation(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	comms, _ := tcpGroup(t, "ring:2", "v5e", 2)
	in := makeInputs(inNormal, 2, 1<<18, 5)
	allocs := func(segment int) float64 {
		o := Options{Codec: CodecInt8, FallbackElems: -1, SegmentElems: segment, Algorithm: AlgoRing}
		for i := 0; i < 3; i++ { // warm the pools
			runGroup(t, comms, in, sameOpts(2, o), nil)
		}
		var before, after runtime.MemStats
		const calls = 10
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := 0; i < calls; i++ {
			if _, _, errs := runGroup(t, comms, in, sameOpts(2, o), nil); errors.Join(errs...) != nil {
				t.Fatal(errors.Join(errs...))
			}
		}
		runtime.ReadMemStats(&after)
		return float64(after.Mallocs-before.Mallocs) / calls
	}
	few, many := allocs(1<<17), allocs(1<<11)
	t.Logf("allocations per call (both ranks): %.0f with 2 segments per chunk, %.0f with 64", few, many)
	// 62 more segments per chunk means 2 x 2 x 62 more messages per call.
	if extra := many - few; extra > 31 { // under one allocation per 8 messages
		t.Fatalf("%.0f more allocations per call for 248 more messages", extra)
	}
}
