package tpu

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestProfiles(t *testing.T) {
	if d := cmp.Diff([]string{"v4", "v5e", "v5p", "v6e"}, ProfileNames()); d != "" {
		t.Fatalf("ProfileNames (-want +got):\n%s", d)
	}
	want := map[string]struct {
		flops, hbm, ici float64
		links           int
	}{
		"v4":  {275e12, 1200e9, 45e9, 6},
		"v5e": {197e12, 819e9, 50e9, 4},
		"v5p": {459e12, 2765e9, 100e9, 6},
		"v6e": {918e12, 1640e9, 100e9, 4},
	}
	for name, w := range want {
		p, err := LoadProfile(name)
		if err != nil {
			t.Fatal(err)
		}
		got := struct {
			flops, hbm, ici float64
			links           int
		}{p.PeakBF16FLOPS, p.HBMBytesPerSec, p.ICIBytesPerSecPerLinkDir, p.LinksPerChip}
		if got != w {
			t.Errorf("%s: got %+v, want %+v", name, got, w)
		}
		if err := p.Validate(); err != nil {
			t.Error(err)
		}
	}
	_, err := LoadProfile("v9")
	if err == nil || !strings.Contains(err.Error(), "v4, v5e, v5p, v6e") {
		t.Errorf("unknown profile: %v, want an error listing the known ones", err)
	}
}

// The embedded copy must match the data in configs/.
func TestProfilesMatchConfigs(t *testing.T) {
	b, err := os.ReadFile("../configs/tpu/profiles.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, profilesJSON) {
		t.Fatal("tpu/profiles.json differs from configs/tpu/profiles.json: copy one over the other")
	}
}

func TestProfileValidate(t *testing.T) {
	p, _ := LoadProfile("v5e")
	bad := []func(*Profile){
		func(p *Profile) { p.HBMBytesPerSec = 0 },
		func(p *Profile) { p.Wraparound = "sometimes" },
		func(p *Profile) { p.HopLatencySeconds = -1 },
		func(p *Profile) { delete(p.Sources, "hbm_bytes_per_sec") },
	}
	for i, f := range bad {
		q := p
		q.Sources = map[string]string{}
		for k, v := range p.Sources {
			q.Sources[k] = v
		}
		f(&q)
		if q.Validate() == nil {
			t.Errorf("case %d: invalid profile accepted", i)
		}
	}
}

func TestParseTopology(t *testing.T) {
	cases := []struct {
		in   string
		want Topology
		err  bool
	}{
		{"ring:8", Topology{KindRing, 8, 1}, false},
		{"ring:1", Topology{KindRing, 1, 1}, false},
		{"torus:2x4", Topology{KindTorus, 2, 4}, false},
		{"torus:16x16", Topology{KindTorus, 16, 16}, false},
		{"ring:0", Topology{}, true},
		{"ring:x", Topology{}, true},
		{"torus:4", Topology{}, true},
		{"mesh:2x2", Topology{}, true},
		{"ring8", Topology{}, true},
		{"torus:64x64", Topology{}, true},
	}
	for _, c := range cases {
		got, err := ParseTopology(c.in)
		if (err != nil) != c.err {
			t.Errorf("%q: err = %v, want error %v", c.in, err, c.err)
			continue
		}
		if got != c.want {
			t.Errorf("%q: got %+v, want %+v", c.in, got, c.want)
		}
		if err == nil && got.String() != c.in {
			t.Errorf("%q: String() = %q", c.in, got.String())
		}
	}
}

func TestRoutes(t *testing.T) {
	cases := []struct {
		topo, prof string
		src, dst   int
		hops       int
	}{
		{"ring:8", "v5e", 0, 1, 1},
		{"ring:8", "v5e", 0, 7, 1}, // the ring closes
		{"ring:8", "v5e", 0, 4, 4},
		{"ring:8", "v5e", 6, 1, 3},
		{"torus:4x4", "v5e", 0, 3, 3},   // v5e: no wraparound below 16
		{"torus:4x4", "v4", 0, 3, 1},    // v4: wraparound
		{"torus:4x4", "v4", 0, 15, 2},   // (0,0) -> (3,3)
		{"torus:4x4", "v5e", 0, 15, 6},  // along the lines
		{"torus:16x2", "v6e", 0, 15, 1}, // full pod dimension wraps
		{"torus:2x4", "v5e", 0, 7, 4},
	}
	for _, c := range cases {
		topo, _ := ParseTopology(c.topo)
		p, _ := LoadProfile(c.prof)
		nw, err := NewNetwork(topo, p)
		if err != nil {
			t.Fatal(err)
		}
		route := nw.Route(c.src, c.dst)
		if len(route) != c.hops {
			t.Errorf("%s on %s: %d->%d: %d hops, want %d", c.topo, c.prof, c.src, c.dst, len(route), c.hops)
		}
		at := c.src
		for _, id := range route {
			l := nw.Links()[id]
			if l.From != at {
				t.Fatalf("%s: route %d->%d is not a path: link %+v at %d", c.topo, c.src, c.dst, l, at)
			}
			at = l.To
		}
		if at != c.dst {
			t.Errorf("%s: route %d->%d ends at %d", c.topo, c.src, c.dst, at)
		}
	}
}

func TestLinksPerDevice(t *testing.T) {
	cases := []struct {
		topo, prof string
		out        []int // out-degree per device
	}{
		{"ring:1", "v5e", []int{0}},
		{"ring:2", "v5e", []int{1, 1}},
		{"ring:3", "v5e", []int{2, 2, 2}},
		{"torus:2x2", "v5e", []int{2, 2, 2, 2}},
		{"torus:3x1", "v4", []int{2, 2, 2}},
		{"torus:3x1", "v5e", []int{1, 2, 1}},
	}
	for _, c := range cases {
		topo, _ := ParseTopology(c.topo)
		p, _ := LoadProfile(c.prof)
		nw, err := NewNetwork(topo, p)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for r := 0; r < topo.Size(); r++ {
			got = append(got, len(nw.OutLinks(r)))
		}
		if d := cmp.Diff(c.out, got); d != "" {
			t.Errorf("%s on %s: out-degree (-want +got):\n%s", c.topo, c.prof, d)
		}
	}
}

func TestRingOrderIsNeighbourWalk(t *testing.T) {
	topo, _ := ParseTopology("torus:4x4")
	p, _ := LoadProfile("v5e")
	nw, _ := NewNetwork(topo, p)
	order := topo.RingOrder()
	seen := map[int]bool{}
	for i, r := range order {
		seen[r] = true
		if i > 0 && len(nw.Route(order[i-1], r)) != 1 {
			t.Errorf("ring order step %d->%d is not a single hop", order[i-1], r)
		}
	}
	if len(seen) != 16 {
		t.Errorf("ring order covers %d devices, want 16", len(seen))
	}
}

func TestClock(t *testing.T) {
	topo, _ := ParseTopology("ring:2")
	p, _ := LoadProfile("v5e")
	m, err := NewMesh(topo, p)
	if err != nil {
		t.Fatal(err)
	}
	d := m.Device(0)
	d.Advance(1.5)
	d.Advance(0.5)
	if got := d.Now(); got != 2 {
		t.Errorf("clock = %v, want 2", got)
	}
	d.AdvanceTo(1)
	if got := d.Now(); got != 2 {
		t.Errorf("AdvanceTo moved the clock back to %v", got)
	}
	if got := m.SyncClocks(); got != 2 || m.Device(1).Now() != 2 {
		t.Errorf("SyncClocks = %v, device 1 at %v; want 2, 2", got, m.Device(1).Now())
	}
	if err := d.SetLinkFree([]float64{5}); err != nil {
		t.Fatal(err)
	}
	if got := d.LinkFree(); !cmp.Equal(got, []float64{5}) {
		t.Errorf("LinkFree = %v", got)
	}
	if err := d.SetLinkFree([]float64{1, 2}); err == nil {
		t.Error("SetLinkFree with the wrong count accepted")
	}
	m.ResetClocks()
	if d.Now() != 0 || d.LinkFree()[0] != 0 {
		t.Error("ResetClocks left state")
	}
}

func newTestMesh(t *testing.T, n int) *Mesh {
	t.Helper()
	topo, _ := ParseTopology("ring:" + string(rune('0'+n)))
	p, _ := LoadProfile("v5e")
	m, err := NewMesh(topo, p)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTransport(t *testing.T) {
	m := newTestMesh(t, 3)
	a, b := m.Device(0), m.Device(1)
	ctx := context.Background()
	tag := Tag{Epoch: 1, Seq: 1, ID: 7}

	// Sent before the receive, and after it.
	if err := a.Send(1, tag, []byte{1, 2}, nil); err != nil {
		t.Fatal(err)
	}
	msg, err := b.Recv(ctx, 0, tag)
	if err != nil || !bytes.Equal(msg.Data, []byte{1, 2}) || msg.From != 0 {
		t.Fatalf("Recv = %+v, %v", msg, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(10 * time.Millisecond)
		a.Send(1, Tag{Epoch: 1, Seq: 1, ID: 8}, []byte{3}, "meta")
	}()
	msg, err = b.Recv(ctx, 0, Tag{Epoch: 1, Seq: 1, ID: 8})
	wg.Wait()
	if err != nil || msg.Meta != "meta" {
		t.Fatalf("Recv = %+v, %v", msg, err)
	}

	// Timeout.
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := b.Recv(tctx, 0, Tag{Epoch: 1, Seq: 1, ID: 9}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Recv without a message: %v, want deadline exceeded", err)
	}

	// Abort wakes a waiting receive and fails later ones of the same call.
	cause := errors.New("boom")
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(10 * time.Millisecond)
		m.Device(2).Abort(1, 1, 2, cause)
	}()
	_, err = b.Recv(ctx, 0, Tag{Epoch: 1, Seq: 2, ID: 0})
	wg.Wait()
	if !errors.Is(err, ErrAborted) || !errors.Is(err, cause) {
		t.Errorf("aborted Recv: %v, want ErrAborted wrapping the cause", err)
	}
	if _, err := b.Recv(ctx, 2, Tag{Epoch: 1, Seq: 2, ID: 1}); !errors.Is(err, ErrAborted) {
		t.Errorf("Recv after abort: %v", err)
	}

	// Messages of older calls are dropped once a newer call is received.
	a.Send(1, Tag{Epoch: 1, Seq: 3, ID: 0}, []byte{9}, nil)
	a.Send(1, Tag{Epoch: 1, Seq: 4, ID: 0}, []byte{10}, nil)
	if msg, err := b.Recv(ctx, 0, Tag{Epoch: 1, Seq: 4, ID: 0}); err != nil || msg.Data[0] != 10 {
		t.Fatalf("Recv = %+v, %v", msg, err)
	}
	tctx2, cancel2 := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel2()
	if _, err := b.Recv(tctx2, 0, Tag{Epoch: 1, Seq: 3, ID: 0}); err == nil {
		t.Error("a message of an older call was still delivered")
	}

	if err := a.Send(0, tag, nil, nil); err == nil {
		t.Error("send to self accepted")
	}
	if err := a.Send(5, tag, nil, nil); err == nil {
		t.Error("send to a missing device accepted")
	}
}

func TestFaultHook(t *testing.T) {
	m := newTestMesh(t, 2)
	m.SetFaultHook(func(to int, msg Message) (Message, bool) {
		if msg.Tag.ID == 1 {
			return msg, false // drop
		}
		c := append([]byte(nil), msg.Data...)
		c[0] ^= 0xff
		msg.Data = c
		return msg, true
	})
	a, b := m.Device(0), m.Device(1)
	a.Send(1, Tag{Epoch: 1, Seq: 1, ID: 1}, []byte{1}, nil)
	a.Send(1, Tag{Epoch: 1, Seq: 1, ID: 2}, []byte{1}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if msg, err := b.Recv(ctx, 0, Tag{Epoch: 1, Seq: 1, ID: 2}); err != nil || msg.Data[0] != 0xfe {
		t.Errorf("corrupted message: %+v, %v", msg, err)
	}
	if _, err := b.Recv(ctx, 0, Tag{Epoch: 1, Seq: 1, ID: 1}); err == nil {
		t.Error("dropped message was delivered")
	}
	m.SetFaultHook(nil)
}

func TestLoadProfileFile(t *testing.T) {
	dir := t.TempDir()
	good := `{"name":"cpu-host","peak_bf16_flops":1e11,"hbm_bytes_per_sec":2e10,"ici_bytes_per_sec_per_link_dir":1.25e9,
"hop_latency_seconds":5e-5,"links_per_chip":1,"wraparound":"always","pod_dim":4,
"sources":{"peak_bf16_flops":"measured","hbm_bytes_per_sec":"measured","ici_bytes_per_sec_per_link_dir":"tc rate",
"hop_latency_seconds":"measured","links_per_chip":"one NIC","wraparound":"ring on a switch"}}`
	path := dir + "/cpu.json"
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadProfile(path)
	if err != nil || p.Name != "cpu-host" || p.ICIBytesPerSecPerLinkDir != 1.25e9 {
		t.Fatalf("%+v %v", p, err)
	}
	bad := dir + "/bad.json"
	os.WriteFile(bad, []byte(`{"name":"x","peak_bf16_flops":1}`), 0o644)
	if _, err := LoadProfile(bad); err == nil {
		t.Fatal("a profile without figures and sources was accepted")
	}
}
