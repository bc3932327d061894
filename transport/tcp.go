package transport

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// NodeConfig describes one process of a group that spans processes. The
// group's ranks are split into equal contiguous blocks, one per node
// (process): node k runs ranks [k·R/N, (k+1)·R/N).
type NodeConfig struct {
	Node  int // this process's index, 0..Nodes-1
	Nodes int // processes in the group
	Ranks int // ranks in the group; a multiple of Nodes
	// Token is the shared cluster secret every connection proves (both
	// ways) before anything else is exchanged. It must not be empty.
	Token string
	// Fingerprint identifies what this process serves (model, shape, tp
	// degree, build); Describe says it in words. A peer with another
	// fingerprint is refused, and both sides name the difference.
	Fingerprint [32]byte
	Describe    string
	// Listen is the data-plane address to bind (host:port; port 0 picks
	// one). Node 0 binds the group's master address here.
	Listen string
	// MaxMessage bounds a payload: a peer that announces more gets its
	// connection closed before anything is allocated. 0 = 256 MiB.
	MaxMessage int
	// IOTimeout bounds a connection handshake and each frame write.
	// 0 = 30 s.
	IOTimeout time.Duration
	// SocketBuffer sets SO_SNDBUF and SO_RCVBUF; 0 = 4 MiB.
	SocketBuffer int
	Logger       *slog.Logger
}

func (c *NodeConfig) check() error {
	switch {
	case c.Nodes < 1:
		return fmt.Errorf("transport: %d nodes", c.Nodes)
	case c.Node < 0 || c.Node >= c.Nodes:
		return fmt.Errorf("transport: node %d of %d", c.Node, c.Nodes)
	case c.Ranks < c.Nodes || c.Ranks%c.Nodes != 0:
		return fmt.Errorf("transport: %d ranks do not split evenly over %d nodes", c.Ranks, c.Nodes)
	case c.Token == "":
		return errors.New("transport: empty cluster token")
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = 256 << 20
	}
	if c.IOTimeout <= 0 {
		c.IOTimeout = 30 * time.Second
	}
	if c.SocketBuffer <= 0 {
		c.SocketBuffer = 4 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Node is this process's end of the group: a listener, one connection per
// peer process, an inbox per local rank and a control queue per peer.
type Node struct {
	cfg      NodeConfig
	perNode  int
	ln       net.Listener
	inboxes  []*Inbox // by local index
	peers    []*peer  // by node; nil for this node
	ctrl     []*ctrlQueue
	closed   atomic.Bool
	done     chan struct{}
	mu       sync.Mutex
	master   *master // node 0's store, once serveJoins runs
	wg       sync.WaitGroup
	onChange atomic.Pointer[func()]

	stats struct {
		framesIn, framesOut, bytesIn, bytesOut atomic.Int64
	}
}

type peer struct {
	node int
	mu   sync.Mutex // guards conn and gen
	conn net.Conn
	gen  uint64
	wmu  sync.Mutex // serializes writes on conn
	hdr  [frameHeaderLen]byte
	bufs [2][]byte
	nb   net.Buffers // reused so a write allocates nothing
}

// Listen binds the data-plane address of node cfg.Node and starts
// accepting peers. Connections are made by Connect (and by peers).
func Listen(cfg NodeConfig) (*Node, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("transport: node %d: listen on %s: %w", cfg.Node, cfg.Listen, err)
	}
	n := &Node{cfg: cfg, perNode: cfg.Ranks / cfg.Nodes, ln: ln, done: make(chan struct{})}
	n.inboxes = make([]*Inbox, n.perNode)
	for i := range n.inboxes {
		n.inboxes[i] = NewInbox(cfg.Node*n.perNode + i)
	}
	n.peers = make([]*peer, cfg.Nodes)
	n.ctrl = make([]*ctrlQueue, cfg.Nodes)
	for k := range n.peers {
		if k != cfg.Node {
			n.peers[k] = &peer{node: k}
			n.ctrl[k] = newCtrlQueue()
			// Until a peer connects, receives from it fail at once.
			n.markLost(k, nil, fmt.Errorf("node %d has not joined: %w", k, ErrPeerLost))
		}
	}
	n.wg.Add(1)
	go n.acceptLoop()
	return n, nil
}

// Addr is the bound data-plane address.
func (n *Node) Addr() string { return n.ln.Addr().String() }

// NodeOf returns the node that runs a rank.
func (n *Node) NodeOf(rank int) int { return rank / n.perNode }

// LocalRanks returns the ranks this node runs.
func (n *Node) LocalRanks() []int {
	rs := make([]int, n.perNode)
	for i := range rs {
		rs[i] = n.cfg.Node*n.perNode + i
	}
	return rs
}

// Config returns the node's configuration (with defaults filled in).
func (n *Node) Config() NodeConfig { return n.cfg }

// OnChange registers f, called (on a transport goroutine) whenever a peer
// connects or is lost. Set it before Connect.
func (n *Node) OnChange(f func()) { n.onChange.Store(&f) }

func (n *Node) changed() {
	if f := n.onChange.Load(); f != nil {
		(*f)()
	}
}

// Missing returns the peer nodes that are not connected now.
func (n *Node) Missing() []int {
	var out []int
	for k, p := range n.peers {
		if p == nil {
			continue
		}
		p.mu.Lock()
		if p.conn == nil {
			out = append(out, k)
		}
		p.mu.Unlock()
	}
	return out
}

// Traffic returns frames and bytes (headers included) received and sent.
func (n *Node) Traffic() (framesIn, bytesIn, framesOut, bytesOut int64) {
	return n.stats.framesIn.Load(), n.stats.bytesIn.Load(), n.stats.framesOut.Load(), n.stats.bytesOut.Load()
}

// Close closes the listener and every connection and waits for the
// node's goroutines.
func (n *Node) Close() error {
	if n.closed.Swap(true) {
		return nil
	}
	close(n.done)
	err := n.ln.Close()
	for _, p := range n.peers {
		if p == nil {
			continue
		}
		p.mu.Lock()
		if p.conn != nil {
			p.conn.Close()
		}
		p.mu.Unlock()
	}
	n.wg.Wait()
	return err
}

func (n *Node) acceptLoop() {
	defer n.wg.Done()
	for {
		c, err := n.ln.Accept()
		if err != nil {
			if n.closed.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			n.cfg.Logger.Warn("transport: accept", "node", n.cfg.Node, "err", err)
			select {
			case <-n.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			k, err := n.handshake(c, -1)
			if err != nil {
				n.cfg.Logger.Warn("transport: refused a connection", "node", n.cfg.Node, "remote", c.RemoteAddr().String(), "err", err)
				c.Close()
				return
			}
			n.attach(k, c)
		}()
	}
}

// Dial connects to node k at addr, proving the token both ways, and makes
// it that peer's connection (replacing any earlier one).
func (n *Node) Dial(ctx context.Context, k int, addr string) error {
	if k < 0 || k >= n.cfg.Nodes || k == n.cfg.Node {
		return fmt.Errorf("transport: node %d: dial invalid node %d", n.cfg.Node, k)
	}
	d := net.Dialer{Timeout: n.cfg.IOTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("transport: node %d: dial node %d at %s: %w", n.cfg.Node, k, addr, err)
	}
	if _, err := n.handshake(c, k); err != nil {
		c.Close()
		return fmt.Errorf("transport: node %d: node %d at %s: %w", n.cfg.Node, k, addr, err)
	}
	n.attach(k, c)
	return nil
}

// The connection preamble, both ways: a fixed 76-byte hello, then a 32-byte
// proof. hello = magic "EQXH", version, node, 32-byte random nonce, 32-byte
// fingerprint. proof = HMAC-SHA256(token, role || own hello || peer hello).
// Nothing is allocated from what a peer sends before its proof checks.
const (
	helloLen     = 76
	proofLen     = 32
	helloMagic   = 0x48585145 // "EQXH"
	helloVersion = 1
	maxDescribe  = 4096
)

// ErrAuth is wrapped when a peer cannot prove the cluster token.
var ErrAuth = errors.New("peer failed the cluster-token check")

// ErrFingerprint is wrapped when a peer serves another model, shape, tp
// degree or build.
var ErrFingerprint = errors.New("peer runs another configuration")

func (n *Node) hello() ([helloLen]byte, error) {
	var h [helloLen]byte
	binary.LittleEndian.PutUint32(h[0:], helloMagic)
	binary.LittleEndian.PutUint32(h[4:], helloVersion)
	binary.LittleEndian.PutUint32(h[8:], uint32(n.cfg.Node))
	if _, err := rand.Read(h[12:44]); err != nil {
		return h, err
	}
	copy(h[44:], n.cfg.Fingerprint[:])
	return h, nil
}

func (n *Node) proof(role byte, own, peer []byte) []byte {
	m := hmac.New(sha256.New, []byte(n.cfg.Token))
	m.Write([]byte{role})
	m.Write(own)
	m.Write(peer)
	return m.Sum(nil)
}

// handshake authenticates a fresh connection. want is the node the dialer
// meant to reach, or -1 on the accepting side. It returns the peer's node.
func (n *Node) handshake(c net.Conn, want int) (int, error) {
	dialer := want >= 0
	if err := c.SetDeadline(time.Now().Add(n.cfg.IOTimeout)); err != nil {
		return -1, err
	}
	own, err := n.hello()
	if err != nil {
		return -1, err
	}
	if _, err := c.Write(own[:]); err != nil {
		return -1, fmt.Errorf("send hello: %w", err)
	}
	var theirs [helloLen]byte
	if _, err := io.ReadFull(c, theirs[:]); err != nil {
		return -1, fmt.Errorf("read hello: %w", err)
	}
	myRole, peerRole := byte('A'), byte('D')
	if dialer {
		myRole, peerRole = 'D', 'A'
	}
	var theirProof [proofLen]byte
	if dialer {
		// The dialer proves first; the acceptor proves only to a peer that
		// has proven itself.
		if _, err := c.Write(n.proof(myRole, own[:], theirs[:])); err != nil {
			return -1, fmt.Errorf("send proof: %w", err)
		}
		if _, err := io.ReadFull(c, theirProof[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				// The acceptor closes on a proof it cannot verify.
				return -1, fmt.Errorf("the peer closed the connection after this node's proof (its cluster token differs?): %w", ErrAuth)
			}
			return -1, fmt.Errorf("read proof: %w", err)
		}
	} else {
		if _, err := io.ReadFull(c, theirProof[:]); err != nil {
			return -1, fmt.Errorf("read proof: %w", err)
		}
	}
	if !hmac.Equal(theirProof[:], n.proof(peerRole, theirs[:], own[:])) {
		return -1, ErrAuth
	}
	if !dialer {
		if _, err := c.Write(n.proof(myRole, own[:], theirs[:])); err != nil {
			return -1, fmt.Errorf("send proof: %w", err)
		}
	}
	if binary.LittleEndian.Uint32(theirs[0:]) != helloMagic || binary.LittleEndian.Uint32(theirs[4:]) != helloVersion {
		return -1, fmt.Errorf("peer speaks another protocol (magic %08x, version %d)",
			binary.LittleEndian.Uint32(theirs[0:]), binary.LittleEndian.Uint32(theirs[4:]))
	}
	k := int(binary.LittleEndian.Uint32(theirs[8:]))
	if k >= n.cfg.Nodes || k == n.cfg.Node || (dialer && k != want) {
		return -1, fmt.Errorf("peer says it is node %d (group of %d, this is node %d, dialed %d)", k, n.cfg.Nodes, n.cfg.Node, want)
	}
	if !hmac.Equal(theirs[44:76], n.cfg.Fingerprint[:]) {
		// Both sides tell each other what they run, then give up.
		desc := n.cfg.Describe
		if len(desc) > maxDescribe {
			desc = desc[:maxDescribe]
		}
		var l [4]byte
		binary.LittleEndian.PutUint32(l[:], uint32(len(desc)))
		c.Write(l[:])
		io.WriteString(c, desc)
		var theirDesc string
		if _, err := io.ReadFull(c, l[:]); err == nil {
			if m := binary.LittleEndian.Uint32(l[:]); m <= maxDescribe {
				b := make([]byte, m)
				if _, err := io.ReadFull(c, b); err == nil {
					theirDesc = string(b)
				}
			}
		}
		return -1, fmt.Errorf("node %d runs %q, this node runs %q (fingerprints %s vs %s): %w",
			k, theirDesc, n.cfg.Describe, hex.EncodeToString(theirs[44:52]), hex.EncodeToString(n.cfg.Fingerprint[:8]), ErrFingerprint)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return -1, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetReadBuffer(n.cfg.SocketBuffer)
		tc.SetWriteBuffer(n.cfg.SocketBuffer)
		tc.SetKeepAlive(true)
		tc.SetKeepAlivePeriod(5 * time.Second)
	}
	return k, nil
}

// attach makes c the connection of peer k and starts its reader.
func (n *Node) attach(k int, c net.Conn) {
	p := n.peers[k]
	p.mu.Lock()
	if n.closed.Load() {
		p.mu.Unlock()
		c.Close()
		return
	}
	old := p.conn
	p.conn = c
	p.gen++
	gen := p.gen
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	for _, b := range n.inboxes {
		for r := k * n.perNode; r < (k+1)*n.perNode; r++ {
			b.PeerBack(r)
		}
	}
	n.ctrl[k].back()
	n.cfg.Logger.Info("transport: peer connected", "node", n.cfg.Node, "peer", k, "remote", c.RemoteAddr().String())
	n.changed()
	n.wg.Add(1)
	go n.readLoop(p, c, gen)
}

// markLost fails receives from peer k's ranks, if c (or, for nil, no
// connection at all) is still that peer's connection.
func (n *Node) markLost(k int, c net.Conn, cause error) {
	p := n.peers[k]
	p.mu.Lock()
	if p.conn != c {
		p.mu.Unlock()
		return
	}
	p.conn = nil
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
	for _, b := range n.inboxes {
		for r := k * n.perNode; r < (k+1)*n.perNode; r++ {
			b.PeerLost(r, cause)
		}
	}
	n.ctrl[k].lost(cause)
	n.mu.Lock()
	if m := n.master; m != nil {
		m.mu.Lock()
		m.ready[k] = false
		m.mu.Unlock()
	}
	n.mu.Unlock()
	if c != nil {
		n.cfg.Logger.Warn("transport: peer lost", "node", n.cfg.Node, "peer", k, "err", cause)
		n.changed()
	}
}

func (n *Node) readLoop(p *peer, c net.Conn, gen uint64) {
	defer n.wg.Done()
	err := n.read(p, c)
	if n.closed.Load() {
		return
	}
	n.markLost(p.node, c, fmt.Errorf("connection to node %d: %v: %w", p.node, err, ErrPeerLost))
}

// read receives frames from peer p until the connection fails or a frame
// breaks the protocol.
func (n *Node) read(p *peer, c net.Conn) error {
	var hb [frameHeaderLen]byte
	lo, hi := uint32(p.node*n.perNode), uint32((p.node+1)*n.perNode)
	myLo := uint32(n.cfg.Node * n.perNode)
	for {
		if _, err := io.ReadFull(c, hb[:]); err != nil {
			return err
		}
		h, err := parseFrameHeader(hb[:])
		if err != nil {
			return err
		}
		switch {
		case h.kind != frameControl && (h.from < lo || h.from >= hi):
			return fmt.Errorf("%w: from rank %d, node %d runs ranks %d..%d", errBadFrame, h.from, p.node, lo, hi-1)
		case h.kind != frameControl && (h.to < myLo || h.to >= myLo+uint32(n.perNode)):
			return fmt.Errorf("%w: to rank %d, not on node %d", errBadFrame, h.to, n.cfg.Node)
		case int64(h.n) > int64(n.cfg.MaxMessage):
			return fmt.Errorf("%w: %d-byte payload, limit %d", errBadFrame, h.n, n.cfg.MaxMessage)
		}
		var data []byte
		if h.n > 0 {
			data = getBuf(int(h.n))
			if _, err := io.ReadFull(c, data); err != nil {
				return err
			}
		}
		n.stats.framesIn.Add(1)
		n.stats.bytesIn.Add(int64(frameHeaderLen) + int64(h.n))
		switch h.kind {
		case frameData:
			n.inboxes[h.to-myLo].Put(Message{From: int(h.from), Tag: Tag{Epoch: h.epoch, Seq: h.seq, ID: h.id}, Data: data, Sum: h.sum})
		case frameAbort:
			cause := errors.New(string(data))
			putBuf(data)
			n.inboxes[h.to-myLo].Abort(int(h.from), Call{Epoch: h.epoch, Seq: h.seq}, cause)
		case frameControl:
			if got := crc32.Checksum(data, castagnoli); got != h.sum {
				return fmt.Errorf("%w: control payload CRC32-C %08x, sent %08x", errBadFrame, got, h.sum)
			}
			n.ctrl[p.node].put(data)
		}
	}
}

// write sends one frame to peer k.
func (n *Node) write(k int, h *frameHeader, data []byte) error {
	p := n.peers[k]
	p.mu.Lock()
	c := p.conn
	p.mu.Unlock()
	if c == nil {
		return fmt.Errorf("transport: node %d: send to node %d: not connected: %w", n.cfg.Node, k, ErrPeerLost)
	}
	h.n = uint32(len(data))
	p.wmu.Lock()
	h.put(p.hdr[:])
	p.bufs[0], p.bufs[1] = p.hdr[:], data
	p.nb = p.bufs[:]
	if len(data) == 0 {
		p.nb = p.nb[:1]
	}
	c.SetWriteDeadline(time.Now().Add(n.cfg.IOTimeout))
	_, err := p.nb.WriteTo(c)
	p.bufs[1], p.nb = nil, nil
	p.wmu.Unlock()
	if err != nil {
		err = fmt.Errorf("transport: node %d: send to node %d: %v: %w", n.cfg.Node, k, err, ErrPeerLost)
		n.markLost(k, c, err)
		return err
	}
	n.stats.framesOut.Add(1)
	n.stats.bytesOut.Add(int64(frameHeaderLen + len(data)))
	return nil
}

// Endpoint returns the transport of a rank this node runs.
func (n *Node) Endpoint(rank int) (*Endpoint, error) {
	i := rank - n.cfg.Node*n.perNode
	if i < 0 || i >= n.perNode {
		return nil, fmt.Errorf("transport: node %d does not run rank %d", n.cfg.Node, rank)
	}
	return &Endpoint{n: n, rank: rank, inbox: n.inboxes[i]}, nil
}

// Endpoint is one rank's transport on a Node: it sends to ranks of the same
// node through their inboxes and to other nodes over their connection.
type Endpoint struct {
	n     *Node
	rank  int
	inbox *Inbox
}

// Rank is the endpoint's rank.
func (e *Endpoint) Rank() int { return e.rank }

// SendMessage sends m to rank `to`. The payload is copied (into the
// socket, or into a buffer for a rank of this node) before it returns, so
// the caller may reuse it.
func (e *Endpoint) SendMessage(to int, m Message) error {
	if to < 0 || to >= e.n.cfg.Ranks || to == e.rank {
		return fmt.Errorf("transport: rank %d: send to invalid rank %d", e.rank, to)
	}
	if len(m.Data) > e.n.cfg.MaxMessage {
		return fmt.Errorf("transport: rank %d: %d-byte message exceeds the %d-byte limit", e.rank, len(m.Data), e.n.cfg.MaxMessage)
	}
	k := e.n.NodeOf(to)
	if k == e.n.cfg.Node {
		var data []byte
		if len(m.Data) > 0 {
			data = getBuf(len(m.Data))
			copy(data, m.Data)
		}
		e.n.inboxes[to-k*e.n.perNode].Put(Message{From: e.rank, Tag: m.Tag, Data: data, Sum: m.Sum})
		return nil
	}
	h := frameHeader{kind: frameData, from: uint32(e.rank), to: uint32(to), epoch: m.Tag.Epoch, seq: m.Tag.Seq, id: m.Tag.ID, sum: m.Sum}
	return e.n.write(k, &h, m.Data)
}

// Recv waits for the message with the given tag from rank `from`.
func (e *Endpoint) Recv(ctx context.Context, from int, tag Tag) (Message, error) {
	if from < 0 || from >= e.n.cfg.Ranks || from == e.rank {
		return Message{}, fmt.Errorf("transport: rank %d: receive from invalid rank %d", e.rank, from)
	}
	m, err := e.inbox.Recv(ctx, from, tag)
	if err != nil {
		return Message{}, fmt.Errorf("transport: %w", err)
	}
	return m, nil
}

// Release hands a received payload back for reuse. The caller must not
// touch it afterwards.
func (e *Endpoint) Release(b []byte) { putBuf(b) }

// SendCopies reports that SendMessage copies the payload before it
// returns, so senders may reuse their buffers.
func (e *Endpoint) SendCopies() bool { return true }

// Abort tells rank `to` that this rank gave up call (epoch, seq).
func (e *Endpoint) Abort(to int, epoch, seq uint64, cause error) {
	if to < 0 || to >= e.n.cfg.Ranks || to == e.rank {
		return
	}
	k := e.n.NodeOf(to)
	if k == e.n.cfg.Node {
		e.n.inboxes[to-k*e.n.perNode].Abort(e.rank, Call{Epoch: epoch, Seq: seq}, cause)
		return
	}
	msg := "aborted"
	if cause != nil {
		msg = cause.Error()
	}
	if len(msg) > maxAbortCause {
		msg = msg[:maxAbortCause]
	}
	h := frameHeader{kind: frameAbort, from: uint32(e.rank), to: uint32(to), epoch: epoch, seq: seq}
	e.n.write(k, &h, []byte(msg)) // best effort: a lost peer fails on its own
}

// SendControl sends a control message to node k. Control messages between
// two nodes arrive in order, outside any collective call.
func (n *Node) SendControl(k int, payload []byte) error {
	if k < 0 || k >= n.cfg.Nodes || k == n.cfg.Node {
		return fmt.Errorf("transport: node %d: control to invalid node %d", n.cfg.Node, k)
	}
	h := frameHeader{kind: frameControl, from: uint32(n.cfg.Node), to: uint32(k), sum: crc32.Checksum(payload, castagnoli)}
	return n.write(k, &h, payload)
}

// RecvControl returns the next control message from node k. It fails when
// ctx ends or when k's connection is lost with nothing left to read.
func (n *Node) RecvControl(ctx context.Context, k int) ([]byte, error) {
	if k < 0 || k >= n.cfg.Nodes || k == n.cfg.Node {
		return nil, fmt.Errorf("transport: node %d: control from invalid node %d", n.cfg.Node, k)
	}
	b, err := n.ctrl[k].get(ctx)
	if err != nil {
		return nil, fmt.Errorf("transport: node %d: control from node %d: %w", n.cfg.Node, k, err)
	}
	return b, nil
}

// ctrlQueue holds one peer's control messages in arrival order.
type ctrlQueue struct {
	mu     sync.Mutex
	msgs   [][]byte
	err    error
	notify chan struct{} // closed and replaced on every change
}

func newCtrlQueue() *ctrlQueue { return &ctrlQueue{notify: make(chan struct{})} }

func (q *ctrlQueue) signal() {
	close(q.notify)
	q.notify = make(chan struct{})
}

func (q *ctrlQueue) put(b []byte) {
	q.mu.Lock()
	q.msgs = append(q.msgs, b)
	q.signal()
	q.mu.Unlock()
}

func (q *ctrlQueue) lost(err error) {
	q.mu.Lock()
	q.err = err
	q.signal()
	q.mu.Unlock()
}

func (q *ctrlQueue) back() {
	q.mu.Lock()
	q.err = nil
	q.signal()
	q.mu.Unlock()
}

func (q *ctrlQueue) get(ctx context.Context) ([]byte, error) {
	for {
		q.mu.Lock()
		if len(q.msgs) > 0 {
			b := q.msgs[0]
			q.msgs[0] = nil
			q.msgs = q.msgs[1:]
			q.mu.Unlock()
			return b, nil
		}
		if q.err != nil {
			err := q.err
			q.mu.Unlock()
			return nil, err
		}
		ch := q.notify
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
