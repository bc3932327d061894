package collective

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"sync"

	"github.com/equarx/equarx/tpu"
	"github.com/equarx/equarx/transport"
)

// ErrMismatch is wrapped when the ranks of a call disagree on its length or
// options.
var ErrMismatch = errors.New("ranks disagree")

// ErrPanic is wrapped when this rank panicked during a call: the panic is
// recovered on the rank's goroutine, its peers are aborted, and the call
// returns this error instead of crashing the process.
var ErrPanic = errors.New("panic during the call")

// ErrCorrupt is wrapped when a received payload fails its length or
// checksum check: the bytes were altered between sender and receiver.
var ErrCorrupt = errors.New("payload corrupted in transit")

// castagnoli is the CRC32-C table (hardware-accelerated on amd64 and arm64).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Transport moves one rank's tagged messages to and from its peers: the
// emulated device of a tpu.Mesh in one process, or a network endpoint
// (package transport) between processes. Messages carry the CRC32-C of
// their payload as the sender computed it; the communicator checks length
// and checksum before decoding anything.
type Transport interface {
	SendMessage(to int, m transport.Message) error
	Recv(ctx context.Context, from int, tag transport.Tag) (transport.Message, error)
	Abort(to int, epoch, seq uint64, cause error)
}

var _ Transport = (*tpu.Device)(nil)

// headerID is the message id of a call's header.
const headerID = math.MaxUint32

// Communicator is one rank's handle on a group: it runs that rank's part of
// every collective call. A Communicator is used by one goroutine at a time
// (the goroutine driving its device); every rank of the group makes the same
// sequence of calls (SPMD).
type Communicator struct {
	rank  int
	mesh  *tpu.Mesh
	dev   *tpu.Device // this rank's simulated clock and link state
	tr    Transport
	epoch uint64
	seq   uint64
	g     *group
	// scratch is the encode arena kept between calls (see arena); exact
	// holds an owner's reduced values while it measures their final
	// quantization.
	scratch []byte
	exact   []float32
}

// group is the state the communicators of one group share in-process: the
// priced schedule of each call, computed once instead of once per rank
// (every rank would compute the same result from the same headers).
type group struct {
	mu    sync.Mutex
	sims  map[uint64]*simEntry
	local int // ranks of the group in this process
}

type simEntry struct {
	once sync.Once
	res  simResult
	err  error
	left int // ranks that have not read it yet
}

// simulateOnce prices call seq's schedule once for the whole group.
func (g *group) simulateOnce(seq uint64, f func() (simResult, error)) (simResult, error) {
	g.mu.Lock()
	e, ok := g.sims[seq]
	if !ok {
		e = &simEntry{left: g.local}
		g.sims[seq] = e
		for k := range g.sims {
			if k+16 < seq { // left behind by a call that failed on some rank
				delete(g.sims, k)
			}
		}
	}
	g.mu.Unlock()
	e.once.Do(func() { e.res, e.err = f() })
	g.mu.Lock()
	if e.left--; e.left == 0 {
		delete(g.sims, seq)
	}
	g.mu.Unlock()
	return e.res, e.err
}

// NewGroup returns one communicator per device of the mesh, rank i driving
// m.Device(i). Each group gets a fresh epoch: a group created after a failed
// call never sees the old group's messages.
func NewGroup(m *tpu.Mesh) ([]*Communicator, error) {
	if m == nil {
		return nil, errors.New("collective: new group: nil mesh")
	}
	epoch := m.NewEpoch()
	g := &group{sims: map[uint64]*simEntry{}, local: m.Size()}
	cs := make([]*Communicator, m.Size())
	for r := range cs {
		cs[r] = &Communicator{rank: r, mesh: m, dev: m.Device(r), tr: m.Device(r), epoch: epoch, g: g}
	}
	return cs, nil
}

// NewRemoteGroup returns the communicators of the ranks this process runs
// in a group that spans processes. m describes the whole group (topology
// and profile, used to plan and price every call) and holds the simulated
// clocks of this process's devices; tr[i] is the transport of rank
// local[i]. Every process of the group must pass the same epoch: it tags
// every message, so a group formed after a failure never sees the
// messages of the one before.
func NewRemoteGroup(m *tpu.Mesh, epoch uint64, local []int, tr []Transport) ([]*Communicator, error) {
	if m == nil {
		return nil, errors.New("collective: new remote group: nil mesh")
	}
	if len(local) == 0 || len(local) != len(tr) {
		return nil, fmt.Errorf("collective: new remote group: %d local ranks, %d transports", len(local), len(tr))
	}
	g := &group{sims: map[uint64]*simEntry{}, local: len(local)}
	cs := make([]*Communicator, len(local))
	seen := map[int]bool{}
	for i, r := range local {
		if r < 0 || r >= m.Size() || seen[r] {
			return nil, fmt.Errorf("collective: new remote group: bad or repeated local rank %d of %d", r, m.Size())
		}
		if tr[i] == nil {
			return nil, fmt.Errorf("collective: new remote group: rank %d has no transport", r)
		}
		seen[r] = true
		cs[i] = &Communicator{rank: r, mesh: m, dev: m.Device(r), tr: tr[i], epoch: epoch, g: g}
	}
	return cs, nil
}

// Epoch is the epoch that tags this communicator's messages.
func (c *Communicator) Epoch() uint64 { return c.epoch }

// Rank is this communicator's rank.
func (c *Communicator) Rank() int { return c.rank }

// Size is the number of ranks in the group.
func (c *Communicator) Size() int { return c.mesh.Size() }

// Device is the device this communicator drives.
func (c *Communicator) Device() *tpu.Device { return c.dev }

// header is the first message of every call, sent by every rank to every
// other: it lets each rank check that all agree on the call, and carries
// each rank's clock and link state so that every rank prices the schedule
// identically.
type header struct {
	seq      uint64
	n        int
	opts     Options // Timeout zeroed
	clock    float64
	linkFree []float64
}

// AllReduce replaces buf, on every rank, with the element-wise sum of all
// ranks' buf. Every rank must call it concurrently with the same length and
// options. A rank that calls with another length or options, or does not
// call within the timeout, makes every rank's call return an error; so does
// a cancelled ctx on any rank (its peers see an abort). The device's
// simulated clock advances by the call's priced schedule.
func (c *Communicator) AllReduce(ctx context.Context, buf []float32, opts Options) (st Stats, err error) {
	err = c.call(ctx, "AllReduce", len(buf), opts.Timeout, func(ctx context.Context, seq uint64) error {
		var err error
		st, err = c.allReduce(ctx, seq, buf, opts)
		return err
	})
	if err != nil {
		return Stats{}, err
	}
	return st, nil
}

// allReduce is one AllReduce call's work, inside call's timeout and abort
// handling.
func (c *Communicator) allReduce(ctx context.Context, seq uint64, buf []float32, opts Options) (Stats, error) {
	hs, err := c.handshake(ctx, seq, len(buf), opts)
	if err != nil {
		return Stats{}, err
	}
	nw := c.mesh.Network()
	p, err := resolve(nw, len(buf), opts)
	if err != nil {
		return Stats{}, err
	}
	s, err := buildSchedule(c.mesh.Topology(), p)
	if err != nil {
		return Stats{}, err
	}
	var qe quantErr
	var lay *stripeLayout
	if p.stripes > 1 {
		lay = &stripeLayout{w: p.rowElems, sw: p.unit(), rows: len(buf) / p.rowElems}
	}
	if err := c.execute(ctx, s, seq, buf, lay, &qe); err != nil {
		return Stats{}, err
	}
	if opts.Untimed {
		return Stats{
			Codec: p.codec.Kind(), Algorithm: p.algorithm, Elements: len(buf), Stripes: p.stripes,
			WireBytes: s.wire[c.rank], QuantErrSq: qe.errSq, QuantRefSq: qe.refSq,
		}, nil
	}
	start := make([]float64, c.Size())
	linkFree := make([]float64, nw.NumLinks())
	for r, h := range hs {
		start[r] = h.clock
		for i, id := range nw.OutLinks(r) {
			linkFree[id] = h.linkFree[i]
		}
	}
	res, err := c.g.simulateOnce(seq, func() (simResult, error) {
		return simulate(s, nw, start, linkFree)
	})
	if err != nil {
		return Stats{}, err
	}
	out := nw.OutLinks(c.rank)
	mine := make([]float64, len(out))
	for i, id := range out {
		mine[i] = res.linkFree[id]
	}
	if err := c.dev.SetLinkFree(mine); err != nil {
		return Stats{}, err
	}
	c.dev.AdvanceTo(res.end[c.rank])
	return Stats{
		Codec: p.codec.Kind(), Algorithm: p.algorithm, Elements: len(buf), Stripes: p.stripes,
		WireBytes: s.wire[c.rank], SimSeconds: res.end[c.rank] - start[c.rank],
		QuantErrSq: qe.errSq, QuantRefSq: qe.refSq,
	}, nil
}

// handshake exchanges headers with every peer and checks that they agree.
// It returns every rank's header, indexed by rank.
func (c *Communicator) handshake(ctx context.Context, seq uint64, n int, opts Options) ([]header, error) {
	opts.Timeout, opts.Untimed = 0, false
	mine := header{seq: seq, n: n, opts: opts, clock: c.dev.Now(), linkFree: c.dev.LinkFree()}
	tag := transport.Tag{Epoch: c.epoch, Seq: seq, ID: headerID}
	enc := mine.marshal()
	sum := crc32.Checksum(enc, castagnoli)
	for r := 0; r < c.Size(); r++ {
		if r != c.rank {
			if err := c.tr.SendMessage(r, transport.Message{Tag: tag, Data: enc, Sum: sum}); err != nil {
				return nil, err
			}
		}
	}
	hs := make([]header, c.Size())
	hs[c.rank] = mine
	for r := 0; r < c.Size(); r++ {
		if r == c.rank {
			continue
		}
		m, err := c.tr.Recv(ctx, r, tag)
		if err != nil {
			return nil, fmt.Errorf("waiting for rank %d to join: %w", r, err)
		}
		if got := crc32.Checksum(m.Data, castagnoli); got != m.Sum {
			return nil, fmt.Errorf("header from rank %d: CRC32-C %08x, its sender sent %08x: %w", r, got, m.Sum, ErrCorrupt)
		}
		h, err := unmarshalHeader(m.Data, len(c.mesh.Network().OutLinks(r)))
		if rel, ok := c.tr.(releaser); ok {
			rel.Release(m.Data)
		}
		if err != nil {
			return nil, fmt.Errorf("rank %d sent a malformed header: %w", r, err)
		}
		if h.seq != seq {
			return nil, fmt.Errorf("rank %d sent the header of call %d in call %d: %w", r, h.seq, seq, ErrMismatch)
		}
		if h.n != n {
			return nil, fmt.Errorf("rank %d called with %d values, this rank with %d: %w", r, h.n, n, ErrMismatch)
		}
		if h.opts != opts {
			return nil, fmt.Errorf("rank %d called with options %+v, this rank with %+v: %w", r, h.opts, opts, ErrMismatch)
		}
		hs[r] = h
	}
	return hs, nil
}

// stripeLayout maps the batch-invariant layout's stripe-major element
// ranges onto the row-major buffer: unit u (sw values) of the schedule is
// stripe u/rows of row u%rows, at offset row*w + stripe*sw of the buffer.
// The schedule's ranges are whole units, so every range is a list of row
// stripes, each contiguous in the buffer; the executor encodes and decodes
// them in place instead of reordering the buffer twice.
type stripeLayout struct{ w, sw, rows int }

// piece returns the row stripe of unit u.
func (l *stripeLayout) piece(buf []float32, u int) []float32 {
	o := (u%l.rows)*l.w + (u/l.rows)*l.sw
	return buf[o : o+l.sw : o+l.sw]
}

// execute runs this rank's steps of the schedule on buf (through lay when
// the call is batch invariant).
func (c *Communicator) execute(ctx context.Context, s *schedule, seq uint64, buf []float32, lay *stripeLayout, qe *quantErr) error {
	ops := s.ops[c.rank]
	slots := make([][]byte, s.slots[c.rank])
	sums := make([]uint32, len(slots)) // CRC32-C of each slot's bytes
	local := make([]bool, len(slots))  // slot holds bytes this rank encoded
	codec := s.codec
	// One allocation per call for everything this rank encodes. Sent
	// buffers are never written again, so receivers may keep reading them.
	arena := c.arena(s.encoded[c.rank])
	rel, _ := c.tr.(releaser)
	for i := range ops {
		o := &ops[i]
		switch o.kind {
		case opEncode:
			b := arena[:o.encLen:o.encLen]
			arena = arena[o.encLen:]
			if lay == nil {
				codec.Encode(b, buf[o.lo:o.hi])
			} else {
				e := codec.EncodedLen(lay.sw)
				for u, k := o.lo/lay.sw, 0; u < o.hi/lay.sw; u, k = u+1, k+e {
					codec.Encode(b[k:k+e], lay.piece(buf, u))
				}
			}
			slots[o.slot] = b
			sums[o.slot] = crc32.Checksum(b, castagnoli)
			local[o.slot] = true
		case opSend:
			tag := transport.Tag{Epoch: c.epoch, Seq: seq, ID: uint32(o.msg)}
			if err := c.tr.SendMessage(o.peer, transport.Message{Tag: tag, Data: slots[o.slot], Sum: sums[o.slot]}); err != nil {
				return err
			}
		case opRecv:
			tag := transport.Tag{Epoch: c.epoch, Seq: seq, ID: uint32(o.msg)}
			m, err := c.tr.Recv(ctx, o.peer, tag)
			if err != nil {
				return err
			}
			if len(m.Data) != o.encLen {
				return fmt.Errorf("message %d from rank %d has %d bytes, want %d: %w", o.msg, o.peer, len(m.Data), o.encLen, ErrCorrupt)
			}
			if got := crc32.Checksum(m.Data, castagnoli); got != m.Sum {
				return fmt.Errorf("message %d from rank %d: CRC32-C %08x, its sender sent %08x: %w", o.msg, o.peer, got, m.Sum, ErrCorrupt)
			}
			slots[o.slot] = m.Data
			sums[o.slot] = m.Sum
			local[o.slot] = false
		case opDecodeAdd:
			if lay == nil {
				codec.DecodeAdd(buf[o.lo:o.hi], slots[o.slot])
				break
			}
			src, e := slots[o.slot], codec.EncodedLen(lay.sw)
			for u, k := o.lo/lay.sw, 0; u < o.hi/lay.sw; u, k = u+1, k+e {
				codec.DecodeAdd(lay.piece(buf, u), src[k:k+e])
			}
		case opDecode:
			measure := local[o.slot] && codec.Kind() != CodecF32
			if lay == nil {
				c.decode(codec, buf[o.lo:o.hi], slots[o.slot], measure, qe)
				break
			}
			src, e := slots[o.slot], codec.EncodedLen(lay.sw)
			for u, k := o.lo/lay.sw, 0; u < o.hi/lay.sw; u, k = u+1, k+e {
				c.decode(codec, lay.piece(buf, u), src[k:k+e], measure, qe)
			}
		}
		if o.last {
			if rel != nil && !local[o.slot] && slots[o.slot] != nil {
				rel.Release(slots[o.slot])
			}
			slots[o.slot] = nil
		}
	}
	return nil
}

// decode sets dst from src. With measure (the owner replacing its exact
// reduced values with what its peers will decode) it also records what
// that costs.
func (c *Communicator) decode(codec Codec, dst []float32, src []byte, measure bool, qe *quantErr) {
	if !measure {
		codec.Decode(dst, src)
		return
	}
	c.exact = append(c.exact[:0], dst...)
	codec.Decode(dst, src)
	qe.add(c.exact, dst)
}

// releaser is a transport that takes received payloads back for reuse.
type releaser interface{ Release([]byte) }

// copier is a transport whose sends copy the payload before returning.
type copier interface{ SendCopies() bool }

// arena returns n bytes for what this rank encodes in one call. Over a
// transport that copies on send the buffer is kept for the next call;
// otherwise receivers may still read it, so every call gets a new one.
func (c *Communicator) arena(n int) []byte {
	if cp, ok := c.tr.(copier); !ok || !cp.SendCopies() {
		return make([]byte, n)
	}
	if cap(c.scratch) < n {
		c.scratch = make([]byte, n)
	}
	return c.scratch[:n]
}

// quantErr accumulates, in float64, the squared error the final quantization
// of a rank's reduced values causes and the squared values themselves.
// Non-finite pairs are skipped: they have no finite error to report.
type quantErr struct{ errSq, refSq float64 }

func (q *quantErr) add(exact, got []float32) {
	got = got[:len(exact)]
	for i, x := range exact {
		e := float64(x) - float64(got[i])
		if math.IsNaN(e) || math.IsInf(e, 0) {
			continue
		}
		q.errSq += e * e
		q.refSq += float64(x) * float64(x)
	}
}
