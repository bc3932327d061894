package tp

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/cost"
	"github.com/equarx/equarx/tpu"
	"github.com/equarx/equarx/transport"
	"github.com/equarx/equarx/weights"
)

// Ranks in several processes. Node 0 (the driver) runs the engine that
// callers use; every other node runs RunWorker. For each batch the driver
// sends each worker node a control message naming the communicator epoch,
// then every rank of every node takes part in three kinds of collective
// calls of that epoch: a Broadcast of the batch from rank 0, the model's
// AllReduces, and a Gather of each rank's log-softmax statistics to rank 0,
// which assembles the answer exactly as the in-process engine does. A
// failed batch, or any peer connecting or leaving, makes the driver move
// every node to a fresh epoch for the next batch, so no rank ever waits
// for a message of a call its peers gave up.

// ErrGroupIncomplete is wrapped when a batch cannot run because a worker
// node is not connected.
var ErrGroupIncomplete = errors.New("tensor-parallel group incomplete")

// remoteCluster is this process's share of a group spanning processes.
type remoteCluster struct {
	mesh  *tpu.Mesh
	cm    *cost.Model
	node  *transport.Node
	local []int
	eps   []collective.Transport
	epoch uint64
}

func newRemoteCluster(cfg EngineConfig, node *transport.Node) (*remoteCluster, error) {
	if node == nil {
		return nil, errors.New("tp: nil transport node")
	}
	if cfg.TP != node.Config().Ranks {
		return nil, fmt.Errorf("tp: tp is %d, the transport group has %d ranks", cfg.TP, node.Config().Ranks)
	}
	mesh, cm, err := newMesh(cfg)
	if err != nil {
		return nil, err
	}
	c := &remoteCluster{mesh: mesh, cm: cm, node: node, local: node.LocalRanks()}
	for _, r := range c.local {
		ep, err := node.Endpoint(r)
		if err != nil {
			return nil, err
		}
		c.eps = append(c.eps, ep)
	}
	return c, nil
}

func (c *remoteCluster) Size() int           { return c.mesh.Size() }
func (c *remoteCluster) Local() []int        { return c.local }
func (c *remoteCluster) Device(r int) device { return c.mesh.Device(r) }
func (c *remoteCluster) Mesh() *tpu.Mesh     { return c.mesh }

// SyncClocks sets this process's device clocks to their latest.
func (c *remoteCluster) SyncClocks() float64 {
	t := 0.0
	for _, r := range c.local {
		t = max(t, c.mesh.Device(r).Now())
	}
	for _, r := range c.local {
		c.mesh.Device(r).AdvanceTo(t)
	}
	return t
}

func (c *remoteCluster) NewGroup() ([]communicator, error) {
	cs, err := collective.NewRemoteGroup(c.mesh, c.epoch, c.local, c.eps)
	if err != nil {
		return nil, err
	}
	out := make([]communicator, len(cs))
	for i, cm := range cs {
		out[i] = cm
	}
	return out, nil
}

// distComm is what a rank needs of its communicator across processes.
type distComm interface {
	Broadcast(ctx context.Context, root int, data []byte, timeout time.Duration) ([]byte, error)
	Gather(ctx context.Context, root int, data []byte, timeout time.Duration) ([][]byte, error)
}

// driver is the distributed state of node 0's engine.
type driver struct {
	cl      *remoteCluster
	stale   atomic.Bool // the peer set changed: next batch on a new epoch
	batchNo uint64
	simNow  float64 // latest simulated clock over every rank
	log     *slog.Logger
}

// NewDriver builds the engine of node 0 of a multi-process group: it holds
// the ranks node 0 runs and serves Prefill, with the other nodes' ranks
// running RunWorker. node must have joined (transport.Node.Join).
func NewDriver(src weights.Source, cfg EngineConfig, node *transport.Node, log *slog.Logger) (*Engine, error) {
	if node != nil && node.Config().Node != 0 {
		return nil, fmt.Errorf("tp: the driver runs on node 0, this is node %d", node.Config().Node)
	}
	cl, err := newRemoteCluster(cfg, node)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl.epoch = 1
	e, err := newEngine(src, cfg, cl, cl.cm)
	if err != nil {
		return nil, err
	}
	e.dist = &driver{cl: cl, log: log}
	return e, nil
}

// MarkPeersChanged tells the driver that a peer connected or was lost, so
// the next batch starts every node on a fresh epoch. Wire it to the
// transport node's OnChange.
func (e *Engine) MarkPeersChanged() {
	if e.dist != nil {
		e.dist.stale.Store(true)
	}
}

// Healthy reports why the engine cannot serve now: a closed engine, or a
// multi-process group with a node missing.
func (e *Engine) Healthy() error {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if e.dist != nil {
		if miss := e.dist.cl.node.Unready(); len(miss) > 0 {
			return fmt.Errorf("%w: nodes %v not connected", ErrGroupIncomplete, miss)
		}
	}
	return nil
}

// control message: magic, epoch, batch number.
const ctrlMagic = 0x43515845 // "EQXC"

func (e *Engine) prefillDist(ctx context.Context, in *batchIn, opts PrefillOptions) (*PrefillResult, error) {
	d := e.dist
	node := d.cl.node
	if miss := node.Unready(); len(miss) > 0 {
		return nil, fmt.Errorf("tp: prefill: %w: nodes %v not connected", ErrGroupIncomplete, miss)
	}
	if d.stale.Swap(false) {
		if err := e.setEpoch(d.cl, d.cl.epoch+1); err != nil {
			return nil, err
		}
	}
	d.batchNo++
	var ctl [20]byte
	binary.LittleEndian.PutUint32(ctl[0:], ctrlMagic)
	binary.LittleEndian.PutUint64(ctl[4:], d.cl.epoch)
	binary.LittleEndian.PutUint64(ctl[12:], d.batchNo)
	for k := 1; k < node.Config().Nodes; k++ {
		if err := node.SendControl(k, ctl[:]); err != nil {
			d.stale.Store(true)
			return nil, fmt.Errorf("tp: prefill: %w: %w", ErrGroupIncomplete, err)
		}
	}
	wall := time.Now()
	t0 := max(d.simNow, d.cl.SyncClocks())
	batch := encodeBatch(in, opts, t0)
	res, simEnd, err := e.runDistRanks(ctx, batch)
	if err != nil {
		// Ranks may have stopped at different calls: the next batch runs
		// every node on a fresh epoch.
		d.stale.Store(true)
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("tp: prefill: %w", cerr)
		}
		return nil, fmt.Errorf("tp: prefill: %w", err)
	}
	d.simNow = simEnd
	res.SimSeconds = simEnd - t0
	res.WallSeconds = time.Since(wall).Seconds()
	return res, nil
}

// setEpoch moves this node's ranks to a new communicator group of the
// given epoch.
func (e *Engine) setEpoch(cl *remoteCluster, epoch uint64) error {
	cl.epoch = epoch
	comms, err := cl.NewGroup()
	if err != nil {
		return fmt.Errorf("tp: communicator group: %w", err)
	}
	for i, rk := range e.ranks {
		rk.comm = comms[i]
	}
	return nil
}

// runDistRanks runs this process's ranks on one batch (rank 0 broadcasts
// batch); on the node of rank 0 it returns the assembled result and the
// latest simulated clock over every rank.
func (e *Engine) runDistRanks(ctx context.Context, batch []byte) (*PrefillResult, float64, error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gathered := make([][][]byte, len(e.ranks))
	errs := make([]error, len(e.ranks))
	var wg sync.WaitGroup
	for i, rk := range e.ranks {
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					errs[i] = fmt.Errorf("tp rank %d: panic: %v", rk.id, p)
					cancel()
				}
			}()
			gathered[i], errs[i] = e.distRank(rctx, rk, batch)
			if errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	if err := firstCause(errs); err != nil {
		return nil, 0, err
	}
	for i, rk := range e.ranks {
		if rk.id == 0 {
			return e.assembleDist(batch, gathered[i])
		}
	}
	return nil, 0, nil
}

// distRank is one rank's part of a batch: receive it, run the model, send
// the statistics to rank 0 (which returns everyone's).
func (e *Engine) distRank(ctx context.Context, rk *rank, batch []byte) ([][]byte, error) {
	dc, ok := rk.comm.(distComm)
	if !ok {
		return nil, fmt.Errorf("tp rank %d: communicator cannot broadcast", rk.id)
	}
	timeout := e.ecfg.Timeout
	b, err := dc.Broadcast(ctx, 0, batch, timeout)
	if err != nil {
		return nil, fmt.Errorf("tp rank %d: receive batch: %w", rk.id, err)
	}
	seqs, opts, t0, err := decodeBatch(b)
	if err != nil {
		return nil, fmt.Errorf("tp rank %d: %w", rk.id, err)
	}
	in, err := e.validate(seqs, opts)
	if err != nil {
		return nil, fmt.Errorf("tp rank %d: batch: %w", rk.id, err)
	}
	if adv, ok := rk.dev.(interface{ AdvanceTo(float64) }); ok {
		adv.AdvanceTo(t0) // every rank starts the batch at the driver's clock
	}
	rk.opts, _ = e.siteOptions(opts)
	rk.stats = newRankStats(len(rk.opts))
	var full []float32
	vs := rk.vhi - rk.vlo
	if opts.FullLogprobs {
		full = make([]float32, in.b.N*vs)
	}
	rows, err := e.runRank(ctx, rk, in, max(1, opts.TopK), full, vs, 0)
	if err != nil {
		return nil, err
	}
	out := encodeRankResult(rk, rows, full)
	g, err := dc.Gather(ctx, 0, out, timeout)
	if err != nil {
		return nil, fmt.Errorf("tp rank %d: gather: %w", rk.id, err)
	}
	return g, nil
}

// assembleDist combines every rank's gathered statistics on rank 0.
func (e *Engine) assembleDist(batch []byte, parts [][]byte) (*PrefillResult, float64, error) {
	seqs, opts, _, err := decodeBatch(batch)
	if err != nil {
		return nil, 0, err
	}
	in, err := e.validate(seqs, opts)
	if err != nil {
		return nil, 0, err
	}
	n := in.b.N
	V := e.cfg.Vocab
	var full []float32
	if opts.FullLogprobs {
		full = make([]float32, n*V)
	}
	k := max(1, opts.TopK)
	stats := make([][]rowStats, len(parts))
	res := &PrefillResult{}
	codecs := map[collective.CodecKind]int{}
	var simEnd, qErr, qRef float64
	var ran []collective.CodecKind
	for r, p := range parts {
		vlo, vhi := SplitRange(V, len(parts), r)
		rr, err := decodeRankResult(p, n, k, vhi-vlo, opts.FullLogprobs)
		if err != nil {
			return nil, 0, fmt.Errorf("rank %d's statistics: %w", r, err)
		}
		stats[r] = rr.rows
		if full != nil {
			vs := vhi - vlo
			for t := 0; t < n; t++ {
				copy(full[t*V+vlo:t*V+vhi], rr.full[t*vs:(t+1)*vs])
			}
		}
		qErr += rr.st.quantErrSq
		qRef += rr.st.quantRefSq
		simEnd = max(simEnd, rr.now)
		res.SimAllReduceSeconds = max(res.SimAllReduceSeconds, rr.st.simSeconds)
		res.WireBytes += rr.st.wireBytes
		for c, m := range rr.st.codecs {
			codecs[c] += m
		}
		if r == 0 {
			res.AllReduceCalls = rr.st.calls
			ran = rr.st.siteCodecs
		}
	}
	if qRef > 0 {
		res.QuantRelErrRMS = math.Sqrt(qErr / qRef)
	}
	e.summarize(res, opts, ran)
	if len(codecs) > 0 {
		names := make([]string, 0, len(codecs))
		for c := range codecs {
			names = append(names, string(c))
		}
		sort.Strings(names)
		res.Codec = collective.CodecKind(strings.Join(names, "+"))
	}
	res.Seqs = e.assemble(in, stats, opts, full)
	return res, simEnd, nil
}

// RunWorker serves node k > 0 of a multi-process group until ctx ends or
// the driver's connection is lost: for each batch the driver announces, it
// runs this node's ranks. node must have joined the group.
func RunWorker(ctx context.Context, src weights.Source, cfg EngineConfig, node *transport.Node, log *slog.Logger) error {
	if node.Config().Node == 0 {
		return errors.New("tp: node 0 is the driver, not a worker")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl, err := newRemoteCluster(cfg, node)
	if err != nil {
		return err
	}
	e, err := newEngine(src, cfg, cl, cl.cm)
	if err != nil {
		return err
	}
	e.LoadStats().Log(log)
	log.Info("shard loaded", "ranks", cl.local, "weights_dtype", e.dtype)
	for {
		msg, err := node.RecvControl(ctx, 0)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tp: worker node %d: the driver is gone: %w", node.Config().Node, err)
		}
		if len(msg) != 20 || binary.LittleEndian.Uint32(msg) != ctrlMagic {
			log.Warn("malformed control message from the driver", "bytes", len(msg))
			continue
		}
		epoch := binary.LittleEndian.Uint64(msg[4:])
		batchNo := binary.LittleEndian.Uint64(msg[12:])
		log.Debug("batch announced", "batch", batchNo, "epoch", epoch)
		if epoch != cl.epoch {
			if err := e.setEpoch(cl, epoch); err != nil {
				return err
			}
		}
		start := time.Now()
		if _, _, err := e.runDistRanks(ctx, nil); err != nil {
			log.Warn("batch failed", "batch", batchNo, "epoch", epoch, "err", err)
			continue
		}
		log.Debug("batch done", "batch", batchNo, "epoch", epoch, "wall_seconds", time.Since(start).Seconds())
	}
}

// The batch on the wire (little endian): magic "EQXB", t0 (f64, simulated
// seconds), codec name (u8 length + bytes), block size (u32), top-k (u8),
// full logprobs (u8), the reduction policy as JSON (u32 length, 0 = none),
// number of sequences (u32), then per sequence its length (u32) and ids
// (u32 each).
const batchMagic = 0x42515845 // "EQXB"

func encodeBatch(in *batchIn, opts PrefillOptions, t0 float64) []byte {
	b := make([]byte, 0, 32+len(opts.Codec)+4*(len(in.seqs)+len(in.ids)))
	b = binary.LittleEndian.AppendUint32(b, batchMagic)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(t0))
	b = append(b, byte(len(opts.Codec)))
	b = append(b, opts.Codec...)
	b = binary.LittleEndian.AppendUint32(b, uint32(opts.BlockSize))
	b = append(b, byte(opts.TopK))
	full := byte(0)
	if opts.FullLogprobs {
		full = 1
	}
	b = append(b, full)
	var pol []byte
	if opts.Policy != nil {
		pol, _ = json.Marshal(opts.Policy) // plain fields: cannot fail
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(pol)))
	b = append(b, pol...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(in.seqs)))
	for _, sp := range in.seqs {
		b = binary.LittleEndian.AppendUint32(b, uint32(sp[1]-sp[0]))
		for _, id := range in.ids[sp[0]:sp[1]] {
			b = binary.LittleEndian.AppendUint32(b, uint32(id))
		}
	}
	return b
}

var errBatch = errors.New("malformed batch")

func decodeBatch(b []byte) (seqs [][]int, opts PrefillOptions, t0 float64, err error) {
	r := byteReader{b: b}
	if r.u32() != batchMagic {
		return nil, opts, 0, errBatch
	}
	t0 = math.Float64frombits(r.u64())
	opts.Codec = collective.CodecKind(r.bytes(int(r.u8())))
	opts.BlockSize = int(int32(r.u32()))
	opts.TopK = int(r.u8())
	opts.FullLogprobs = r.u8() == 1
	if np := int(r.u32()); np > 0 {
		if np > len(r.b) {
			return nil, opts, 0, errBatch
		}
		var p Policy
		if err := json.Unmarshal(r.bytes(np), &p); err != nil {
			return nil, opts, 0, fmt.Errorf("%w: policy: %v", errBatch, err)
		}
		opts.Policy = &p
	}
	ns := int(r.u32())
	if r.err != nil || ns > len(r.b)/4 {
		return nil, opts, 0, errBatch
	}
	seqs = make([][]int, ns)
	for i := range seqs {
		l := int(r.u32())
		if r.err != nil || l > len(r.b)/4 {
			return nil, opts, 0, errBatch
		}
		seqs[i] = make([]int, l)
		for j := range seqs[i] {
			seqs[i][j] = int(r.u32())
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, opts, 0, errBatch
	}
	return seqs, opts, t0, nil
}

type rankResult struct {
	rows []rowStats
	st   rankStats
	now  float64
	full []float32
}

// encodeRankResult serializes one rank's statistics: per row max (f32),
// Σexp (f64), target logit (f32), has-target (u8), top count (u8) and
// (id u32, logit f32) pairs; then calls (u32), wire bytes (i64), simulated
// AllReduce seconds, squared quantization error and reference (f64), the
// codecs used (u8 count, then name and u32 count each), the codec of each
// reduction site (u32 count, then u8 length and name each), the rank's clock
// (f64), and its slice of full logits when asked for.
func encodeRankResult(rk *rank, rows []rowStats, full []float32) []byte {
	b := make([]byte, 0, len(rows)*(18+8*4)+64+4*len(full))
	for _, s := range rows {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(s.max))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.sumExp))
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(s.target))
		h := byte(0)
		if s.hasTgt {
			h = 1
		}
		b = append(b, h, byte(len(s.top)))
		for _, t := range s.top {
			b = binary.LittleEndian.AppendUint32(b, uint32(t.ID))
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(t.Logprob))
		}
	}
	st := rk.stats
	b = binary.LittleEndian.AppendUint32(b, uint32(st.calls))
	b = binary.LittleEndian.AppendUint64(b, uint64(st.wireBytes))
	for _, f := range []float64{st.simSeconds, st.quantErrSq, st.quantRefSq} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	names := make([]string, 0, len(st.codecs))
	for c := range st.codecs {
		names = append(names, string(c))
	}
	sort.Strings(names)
	b = append(b, byte(len(names)))
	for _, n := range names {
		b = append(b, byte(len(n)))
		b = append(b, n...)
		b = binary.LittleEndian.AppendUint32(b, uint32(st.codecs[collective.CodecKind(n)]))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(st.siteCodecs)))
	for _, c := range st.siteCodecs {
		b = append(b, byte(len(c)))
		b = append(b, c...)
	}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(rk.dev.Now()))
	for _, v := range full {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func decodeRankResult(b []byte, n, k, vs int, full bool) (rankResult, error) {
	r := byteReader{b: b}
	var out rankResult
	out.rows = make([]rowStats, n)
	for i := range out.rows {
		s := &out.rows[i]
		s.max = math.Float32frombits(r.u32())
		s.sumExp = math.Float64frombits(r.u64())
		s.target = math.Float32frombits(r.u32())
		s.hasTgt = r.u8() == 1
		nt := int(r.u8())
		if nt > k {
			return out, fmt.Errorf("%w: %d top entries, k is %d", errBatch, nt, k)
		}
		s.top = make([]TokenLogprob, nt)
		for j := range s.top {
			s.top[j] = TokenLogprob{ID: int(r.u32()), Logprob: math.Float32frombits(r.u32())}
		}
	}
	out.st.calls = int(r.u32())
	out.st.wireBytes = int64(r.u64())
	out.st.simSeconds = math.Float64frombits(r.u64())
	out.st.quantErrSq = math.Float64frombits(r.u64())
	out.st.quantRefSq = math.Float64frombits(r.u64())
	nc := int(r.u8())
	out.st.codecs = map[collective.CodecKind]int{}
	for i := 0; i < nc; i++ {
		name := r.bytes(int(r.u8()))
		out.st.codecs[collective.CodecKind(name)] = int(r.u32())
	}
	ns := int(r.u32())
	if ns > len(r.b) {
		return out, fmt.Errorf("%w: %d site codecs", errBatch, ns)
	}
	out.st.siteCodecs = make([]collective.CodecKind, ns)
	for i := range out.st.siteCodecs {
		out.st.siteCodecs[i] = collective.CodecKind(r.bytes(int(r.u8())))
	}
	out.now = math.Float64frombits(r.u64())
	if full {
		if len(r.b) != 4*n*vs {
			return out, fmt.Errorf("%w: %d bytes of logits, want %d", errBatch, len(r.b), 4*n*vs)
		}
		out.full = make([]float32, n*vs)
		for i := range out.full {
			out.full[i] = math.Float32frombits(r.u32())
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return out, fmt.Errorf("%w: %d trailing bytes", errBatch, len(r.b))
	}
	return out, nil
}

// byteReader reads little-endian fields, remembering a short read.
type byteReader struct {
	b   []byte
	err error
}

func (r *byteReader) take(n int) []byte {
	if r.err != nil || n < 0 || len(r.b) < n {
		r.err = errBatch
		r.b = nil
		return make([]byte, max(n, 0))
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *byteReader) u8() uint8          { return r.take(1)[0] }
func (r *byteReader) u32() uint32        { return binary.LittleEndian.Uint32(r.take(4)) }
func (r *byteReader) u64() uint64        { return binary.LittleEndian.Uint64(r.take(8)) }
func (r *byteReader) bytes(n int) []byte { return r.take(n) }
