package tp

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/transport"
)

// distGroup starts a driver and nodes-1 workers of stories260K at tp over
// loopback TCP (one transport node per would-be process, all in this test
// process) and returns the driver engine and a function that stops worker
// k (closing its node, as if its process died).
type distGroup struct {
	t       *testing.T
	tp      int
	nodes   []*transport.Node
	driver  *Engine
	cancels []context.CancelFunc
	done    []chan error
	ecfg    EngineConfig
}

func nodeCfg(k, nodes, tp int) transport.NodeConfig {
	return transport.NodeConfig{Node: k, Nodes: nodes, Ranks: tp, Token: "t", Listen: "127.0.0.1:0", IOTimeout: 5 * time.Second}
}

func startDist(t *testing.T, tp, nodes int, ecfg EngineConfig) *distGroup {
	t.Helper()
	g := &distGroup{t: t, tp: tp, nodes: make([]*transport.Node, nodes), cancels: make([]context.CancelFunc, nodes), done: make([]chan error, nodes)}
	for k := range g.nodes {
		n, err := transport.Listen(nodeCfg(k, nodes, tp))
		if err != nil {
			t.Fatal(err)
		}
		g.nodes[k] = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	for k, n := range g.nodes {
		wg.Go(func() { errs[k] = n.Join(ctx, g.nodes[0].Addr(), "") })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	ecfg.TP = tp
	ecfg.TPU = "v5e"
	g.ecfg = ecfg
	d, err := NewDriver(stories(t), ecfg, g.nodes[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	g.nodes[0].OnChange(d.MarkPeersChanged)
	g.driver = d
	for k := 1; k < nodes; k++ {
		g.startWorker(k)
	}
	t.Cleanup(func() {
		for k := 1; k < nodes; k++ {
			g.stopWorker(k)
		}
		g.nodes[0].Close()
	})
	return g
}

func (g *distGroup) startWorker(k int) {
	ecfg := g.ecfg
	ctx, cancel := context.WithCancel(context.Background())
	g.cancels[k] = cancel
	done := make(chan error, 1)
	g.done[k] = done
	n := g.nodes[k]
	go func() {
		err := RunWorker(ctx, stories(g.t), ecfg, n, nil)
		if err != nil {
			g.t.Logf("worker %d: %v", k, err)
		}
		done <- err
	}()
}

func (g *distGroup) stopWorker(k int) {
	if g.cancels[k] == nil {
		return
	}
	g.nodes[k].Close()
	g.cancels[k]()
	<-g.done[k]
	g.cancels[k] = nil
}

// Multi-process prefill (over real loopback sockets) equals the
// in-process engine: f32 log-probs within 1e-5 with the same argmax at tp 2
// and 4, and every quantized codec bitwise (the schedule, codecs and
// summation order are the same; only the transport differs).
func TestDistMatchesInProcess(t *testing.T) {
	seqs := [][]int{greedyIDs(t)[:120], {1, 403, 407, 261, 378}, greedyIDs(t)[30:90]}
	for _, c := range []struct{ tp, nodes int }{{2, 2}, {4, 4}, {4, 2}} {
		g := startDist(t, c.tp, c.nodes, EngineConfig{FallbackElems: -1})
		ref := storiesEngine(t, c.tp)
		for _, codec := range []collective.CodecKind{collective.CodecF32, collective.CodecBF16, collective.CodecInt8, collective.CodecInt4} {
			opts := PrefillOptions{Codec: codec, TopK: 3}
			want, err := ref.Prefill(context.Background(), seqs, opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := g.driver.Prefill(context.Background(), seqs, opts)
			if err != nil {
				t.Fatalf("tp %d nodes %d %s: %v", c.tp, c.nodes, codec, err)
			}
			for i := range seqs {
				w, h := want.Seqs[i], got.Seqs[i]
				for j := range w.TokenLogprobs {
					d := math.Abs(float64(w.TokenLogprobs[j] - h.TokenLogprobs[j]))
					if d > 1e-5 || (codec != collective.CodecF32 && d != 0) {
						t.Fatalf("tp %d nodes %d %s seq %d pos %d: %v vs in-process %v", c.tp, c.nodes, codec, i, j, h.TokenLogprobs[j], w.TokenLogprobs[j])
					}
					if j > 0 && w.TopK[j][0].ID != h.TopK[j][0].ID {
						t.Fatalf("tp %d nodes %d %s seq %d pos %d: argmax %d vs %d", c.tp, c.nodes, codec, i, j, h.TopK[j][0].ID, w.TopK[j][0].ID)
					}
				}
			}
			if got.WireBytes != want.WireBytes || got.AllReduceCalls != want.AllReduceCalls || got.Codec != want.Codec {
				t.Fatalf("%s: stats %d/%d/%s vs in-process %d/%d/%s", codec, got.WireBytes, got.AllReduceCalls, got.Codec, want.WireBytes, want.AllReduceCalls, want.Codec)
			}
			if got.SimSeconds <= 0 {
				t.Fatalf("%s: simulated time %v", codec, got.SimSeconds)
			}
		}
	}
}

// A worker that dies fails the batch it is in (or the next) within the
// AllReduce timeout and the driver reports the group incomplete; once the
// worker's node joins again the driver serves again, on a fresh epoch.
func TestDistWorkerLossAndRejoin(t *testing.T) {
	ecfg := EngineConfig{FallbackElems: -1, Timeout: 3 * time.Second}
	g := startDist(t, 2, 2, ecfg)
	seqs := [][]int{greedyIDs(t)[:64]}
	ok, err := g.driver.Prefill(context.Background(), seqs, PrefillOptions{Codec: collective.CodecInt8})
	if err != nil {
		t.Fatal(err)
	}
	g.stopWorker(1)
	start := time.Now()
	_, err = g.driver.Prefill(context.Background(), seqs, PrefillOptions{Codec: collective.CodecInt8})
	if err == nil {
		t.Fatal("prefill succeeded with the worker dead")
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Fatalf("failing took %v", el)
	}
	if h := g.driver.Healthy(); !errors.Is(h, ErrGroupIncomplete) {
		t.Fatalf("healthy: %v", h)
	}
	n, err := transport.Listen(nodeCfg(1, 2, 2))
	if err != nil {
		t.Fatal(err)
	}
	g.nodes[1] = n
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Join(ctx, g.nodes[0].Addr(), ""); err != nil {
		t.Fatal(err)
	}
	g.startWorker(1)
	for g.driver.Healthy() != nil { // node 0 reads the worker's ready message
		if ctx.Err() != nil {
			t.Fatalf("healthy after rejoin: %v", g.driver.Healthy())
		}
		time.Sleep(5 * time.Millisecond)
	}
	again, err := g.driver.Prefill(context.Background(), seqs, PrefillOptions{Codec: collective.CodecInt8})
	if err != nil {
		t.Fatalf("after rejoin: %v", err)
	}
	for j, v := range ok.Seqs[0].TokenLogprobs {
		if again.Seqs[0].TokenLogprobs[j] != v {
			t.Fatalf("position %d: %v after rejoin, %v before", j, again.Seqs[0].TokenLogprobs[j], v)
		}
	}
}

// A batch from the wire decodes or fails; it never panics and never
// allocates beyond what its bytes can hold.
func FuzzDecodeBatch(f *testing.F) {
	in := &batchIn{ids: []int{1, 403, 407, 2, 5}, seqs: [][2]int{{0, 3}, {3, 5}}}
	f.Add(encodeBatch(in, PrefillOptions{Codec: collective.CodecInt8, TopK: 2}, 1.5))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		seqs, _, _, err := decodeBatch(b)
		if err != nil {
			return
		}
		n := 0
		for _, s := range seqs {
			n += len(s)
		}
		if 4*(n+len(seqs)) > len(b) {
			t.Fatalf("%d ids in %d sequences from %d bytes", n, len(seqs), len(b))
		}
	})
}

// TestDistBF16 runs the multi-process path with bf16 weights and the
// vocab-parallel embedding (every node holds only its ranks' vocab rows and
// the embedding exchange crosses the sockets): int8 answers bitwise those
// of the in-process engine, f32 within 1e-5.
func TestDistBF16(t *testing.T) {
	seqs := [][]int{greedyIDs(t)[:100], {1, 403, 407, 261, 378}}
	ecfg := EngineConfig{FallbackElems: -1, WeightsDType: "bf16"}
	g := startDist(t, 4, 2, ecfg)
	ecfg.TP, ecfg.TPU = 4, "v5e"
	ref, err := NewEngine(stories(t), ecfg)
	if err != nil {
		t.Fatal(err)
	}
	if g.driver.WeightsDType() != "bf16" {
		t.Fatalf("driver holds %s weights", g.driver.WeightsDType())
	}
	for _, codec := range []collective.CodecKind{collective.CodecF32, collective.CodecInt8} {
		opts := PrefillOptions{Codec: codec, TopK: 3}
		want, err := ref.Prefill(context.Background(), seqs, opts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := g.driver.Prefill(context.Background(), seqs, opts)
		if err != nil {
			t.Fatalf("%s: %v", codec, err)
		}
		for i := range seqs {
			for j, w := range want.Seqs[i].TokenLogprobs {
				h := got.Seqs[i].TokenLogprobs[j]
				if d := math.Abs(float64(w - h)); d > 1e-5 || (codec != collective.CodecF32 && d != 0) {
					t.Fatalf("%s seq %d pos %d: %v vs in-process %v", codec, i, j, h, w)
				}
			}
		}
	}
}
