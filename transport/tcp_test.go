package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func listenNode(t *testing.T, k, nodes int, token string, fp byte) *Node {
	t.Helper()
	cfg := NodeConfig{Node: k, Nodes: nodes, Ranks: nodes, Token: token, Listen: "127.0.0.1:0",
		IOTimeout: 2 * time.Second, MaxMessage: 1 << 20, Describe: "model m" + string('0'+fp)}
	cfg.Fingerprint[0] = fp
	n, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func joinAll(t *testing.T, ns ...*Node) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	errs := make([]error, len(ns))
	var wg sync.WaitGroup
	for k, n := range ns {
		wg.Go(func() { errs[k] = n.Join(ctx, ns[0].Addr(), "") })
	}
	wg.Wait()
	return errs
}

func TestJoinAndMessages(t *testing.T) {
	a, b, c := listenNode(t, 0, 3, "tok", 1), listenNode(t, 1, 3, "tok", 1), listenNode(t, 2, 3, "tok", 1)
	if err := errors.Join(joinAll(t, a, b, c)...); err != nil {
		t.Fatal(err)
	}
	ea, _ := a.Endpoint(0)
	ec, _ := c.Endpoint(2)
	tag := Tag{Epoch: 1, Seq: 1, ID: 5}
	payload := bytes.Repeat([]byte("xy"), 5000)
	if err := ec.SendMessage(0, Message{Tag: tag, Data: payload, Sum: 77}); err != nil {
		t.Fatal(err)
	}
	m, err := ea.Recv(context.Background(), 2, tag)
	if err != nil {
		t.Fatal(err)
	}
	if m.From != 2 || m.Sum != 77 || !bytes.Equal(m.Data, payload) {
		t.Fatalf("got from %d sum %d len %d", m.From, m.Sum, len(m.Data))
	}
	if err := b.SendControl(2, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	got, err := c.RecvControl(context.Background(), 1)
	if err != nil || string(got) != "hello" {
		t.Fatalf("control: %q %v", got, err)
	}
}

// A peer without the token is refused before any frame is read, on both
// sides; the group stays incomplete and says which node is missing.
func TestWrongTokenRefused(t *testing.T) {
	a, b := listenNode(t, 0, 2, "right", 1), listenNode(t, 1, 2, "wrong", 1)
	errs := joinAll(t, a, b)
	if !errors.Is(errs[1], ErrAuth) {
		t.Fatalf("joiner: %v, want ErrAuth", errs[1])
	}
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "[1] not ready") {
		t.Fatalf("master: %v, want node 1 missing", errs[0])
	}
}

// A peer serving another model is refused, and both sides name what each
// runs.
func TestFingerprintMismatch(t *testing.T) {
	a, b := listenNode(t, 0, 2, "tok", 1), listenNode(t, 1, 2, "tok", 2)
	errs := joinAll(t, a, b)
	if !errors.Is(errs[1], ErrFingerprint) || !strings.Contains(errs[1].Error(), "model m1") || !strings.Contains(errs[1].Error(), "model m2") {
		t.Fatalf("joiner: %v", errs[1])
	}
}

// Garbage, an oversized frame and a frame for a rank the node does not run
// each close the connection without allocating the announced payload.
func TestBadFramesCloseConnection(t *testing.T) {
	mk := func(h frameHeader) []byte {
		var b [frameHeaderLen]byte
		h.put(b[:])
		return b[:]
	}
	cases := map[string][]byte{
		"garbage":  bytes.Repeat([]byte{0xAB}, 200),
		"oversize": mk(frameHeader{kind: frameData, from: 1, to: 0, n: 1 << 30}),
		"bad rank": mk(frameHeader{kind: frameData, from: 0, to: 0, n: 1}),
		"bad kind": mk(frameHeader{kind: 9, from: 1, to: 0}),
	}
	for name, junk := range cases {
		t.Run(name, func(t *testing.T) {
			a, b := listenNode(t, 0, 2, "tok", 1), listenNode(t, 1, 2, "tok", 1)
			if err := errors.Join(joinAll(t, a, b)...); err != nil {
				t.Fatal(err)
			}
			p := b.peers[0]
			p.mu.Lock()
			c := p.conn
			p.mu.Unlock()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			if _, err := c.Write(junk); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(3 * time.Second)
			for len(a.Missing()) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("node 0 kept the connection")
				}
				time.Sleep(5 * time.Millisecond)
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
				t.Fatalf("allocated %d bytes for a refused frame", grew)
			}
			ea, _ := a.Endpoint(0)
			if _, err := ea.Recv(context.Background(), 1, Tag{Epoch: 1, Seq: 1}); !errors.Is(err, ErrPeerLost) {
				t.Fatalf("receive from the dropped peer: %v", err)
			}
		})
	}
}

// A raw connection that never proves the token is cut off by the
// handshake deadline.
func TestSilentConnectionTimesOut(t *testing.T) {
	a := listenNode(t, 0, 2, "tok", 1)
	c, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hello [helloLen]byte
	if _, err := io.ReadFull(c, hello[:]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Fatalf("closed after %v", el)
	}
}

// A restarted node rejoins: it gets the table at once, dials everyone, and
// messages flow again.
func TestRejoin(t *testing.T) {
	a, b, c := listenNode(t, 0, 3, "tok", 1), listenNode(t, 1, 3, "tok", 1), listenNode(t, 2, 3, "tok", 1)
	if err := errors.Join(joinAll(t, a, b, c)...); err != nil {
		t.Fatal(err)
	}
	b.Close()
	deadline := time.Now().Add(3 * time.Second)
	for len(c.Missing()) == 0 || len(a.Missing()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("loss not noticed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	b2 := listenNode(t, 1, 3, "tok", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := b2.Join(ctx, a.Addr(), ""); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{a, c} {
		if err := n.waitComplete(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e1, _ := b2.Endpoint(1)
	e2, _ := c.Endpoint(2)
	tag := Tag{Epoch: 2, Seq: 1}
	if err := e2.SendMessage(1, Message{Tag: tag, Data: []byte("again")}); err != nil {
		t.Fatal(err)
	}
	if m, err := e1.Recv(ctx, 2, tag); err != nil || string(m.Data) != "again" {
		t.Fatalf("%q %v", m.Data, err)
	}
}

func TestRejoinControl(t *testing.T) {
	a, b := listenNode(t, 0, 2, "tok", 1), listenNode(t, 1, 2, "tok", 1)
	if err := errors.Join(joinAll(t, a, b)...); err != nil {
		t.Fatal(err)
	}
	b.Close()
	deadline := time.Now().Add(3 * time.Second)
	for len(a.Missing()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("loss not noticed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	b2 := listenNode(t, 1, 2, "tok", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := b2.Join(ctx, a.Addr(), ""); err != nil {
		t.Fatal(err)
	}
	if err := a.SendControl(1, []byte("batch")); err != nil {
		t.Fatal(err)
	}
	if m, err := b2.RecvControl(ctx, 0); err != nil || string(m) != "batch" {
		t.Fatalf("%q %v", m, err)
	}
}

// A peer that sends and then closes leaves its messages receivable; only a
// receive that would wait for more fails.
func TestMessagesSurvivePeerClose(t *testing.T) {
	a, b := listenNode(t, 0, 2, "tok", 1), listenNode(t, 1, 2, "tok", 1)
	if err := errors.Join(joinAll(t, a, b)...); err != nil {
		t.Fatal(err)
	}
	eb, _ := b.Endpoint(1)
	tag := Tag{Epoch: 1, Seq: 9, ID: 1}
	if err := eb.SendMessage(0, Message{Tag: tag, Data: []byte("last words")}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	deadline := time.Now().Add(3 * time.Second)
	for len(a.Missing()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("loss not noticed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ea, _ := a.Endpoint(0)
	if m, err := ea.Recv(context.Background(), 1, tag); err != nil || string(m.Data) != "last words" {
		t.Fatalf("%q %v", m.Data, err)
	}
	if _, err := ea.Recv(context.Background(), 1, Tag{Epoch: 1, Seq: 9, ID: 2}); !errors.Is(err, ErrPeerLost) {
		t.Fatalf("a receive of what never came: %v", err)
	}
}
