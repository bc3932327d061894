package server

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/tp"
)

// batchKey groups requests that can share one engine call.
type batchKey struct {
	codec     collective.CodecKind
	blockSize int
	policy    string // a named reduction policy; then codec is its default's
}

// job is one sequence waiting for the engine.
type job struct {
	ctx  context.Context
	seq  []int
	key  batchKey
	topK int
	done chan jobResult // buffered: the batcher never blocks on a gone handler
}

// batchInfo describes the engine call a sequence rode in.
type batchInfo struct {
	ID                  uint64 // engine call number, from 1
	Sequences           int
	Tokens              int
	WallSeconds         float64
	SimSeconds          float64
	SimAllReduceSeconds float64
	AllReduceCalls      int
	WireBytes           int64
	QuantRelErrRMS      float64
	Codec               collective.CodecKind
	Reductions          string // per-site summary (tp.PrefillResult.Reductions)
}

type jobResult struct {
	seq   tp.SeqResult
	batch batchInfo
	err   error
}

// batcher packs queued sequences with the same codec and block size into one
// ragged engine call, up to a token budget and a sequence count.
type batcher struct {
	eng      Engine
	opts     Options
	m        *metrics
	queue    chan *job
	stop     chan struct{}
	finished chan struct{}
	stopOnce sync.Once
	closed   atomic.Bool
	calls    atomic.Uint64 // engine calls made, numbering batchInfo.ID
	pending  atomic.Int64  // jobs queued or carried over, not yet handed to the engine
}

func newBatcher(eng Engine, opts Options, m *metrics) *batcher {
	b := &batcher{
		eng:      eng,
		opts:     opts,
		m:        m,
		queue:    make(chan *job, opts.QueueLimit),
		stop:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	go b.loop()
	return b
}

// submit queues j or reports ErrQueueFull / ErrShuttingDown at once.
func (b *batcher) submit(j *job) error {
	if b.closed.Load() {
		return ErrShuttingDown
	}
	b.pending.Add(1)
	select {
	case b.queue <- j:
		return nil
	default:
		b.pending.Add(-1)
		return ErrQueueFull
	}
}

// close stops taking work, fails what is still queued and waits for the
// engine call in flight to finish.
func (b *batcher) close() {
	b.stopOnce.Do(func() {
		b.closed.Store(true)
		close(b.stop)
	})
	<-b.finished
}

func (b *batcher) loop() {
	defer close(b.finished)
	var carry []*job // pulled from the queue but not yet run
	for {
		var first *job
		if len(carry) > 0 {
			first, carry = carry[0], carry[1:]
		} else {
			select {
			case first = <-b.queue:
			case <-b.stop:
				b.failQueued(carry)
				return
			}
		}
		select {
		case <-b.stop:
			b.failQueued(append(carry, first))
			return
		default:
		}
		if first.ctx.Err() != nil {
			b.pending.Add(-1)
			b.finish(first, jobResult{err: first.ctx.Err()})
			continue
		}
		batch := []*job{first}
		tokens := len(first.seq)
		fits := func(j *job) bool {
			return j.key == first.key && len(batch) < b.opts.MaxBatchSize && tokens+len(j.seq) <= b.opts.BatchTokenBudget
		}
		// Carried-over jobs go first, in arrival order.
		rest := carry[:0]
		for _, j := range carry {
			if fits(j) {
				batch = append(batch, j)
				tokens += len(j.seq)
			} else {
				rest = append(rest, j)
			}
		}
		carry = rest
		carry = b.gather(first, &batch, &tokens, fits, carry)
		b.run(batch)
	}
}

// gather pulls more jobs from the queue for up to the batch wait window.
// Jobs that do not fit are carried over to later batches; it stops pulling
// once the carry-over holds a queue's worth, so memory stays bounded.
func (b *batcher) gather(first *job, batch *[]*job, tokens *int, fits func(*job) bool, carry []*job) []*job {
	if b.opts.MaxBatchSize == 1 {
		return carry
	}
	var timeout <-chan time.Time
	if b.opts.BatchWait > 0 {
		t := time.NewTimer(b.opts.BatchWait)
		defer t.Stop()
		timeout = t.C
	}
	for len(*batch) < b.opts.MaxBatchSize && *tokens < b.opts.BatchTokenBudget && len(carry) < b.opts.QueueLimit {
		var j *job
		if timeout == nil {
			select {
			case j = <-b.queue:
			default:
				return carry
			}
		} else {
			select {
			case j = <-b.queue:
			case <-timeout:
				return carry
			case <-b.stop:
				return carry
			}
		}
		if fits(j) {
			*batch = append(*batch, j)
			*tokens += len(j.seq)
		} else {
			carry = append(carry, j)
		}
	}
	return carry
}

func (b *batcher) failQueued(carry []*job) {
	for _, j := range carry {
		b.pending.Add(-1)
		b.finish(j, jobResult{err: ErrShuttingDown})
	}
	for {
		select {
		case j := <-b.queue:
			b.pending.Add(-1)
			b.finish(j, jobResult{err: ErrShuttingDown})
		default:
			return
		}
	}
}

// finish answers a job that has left the queue.
func (b *batcher) finish(j *job, r jobResult) { j.done <- r }

// run makes one engine call for batch. The call is cancelled only when every
// request in it has gone (timed out or disconnected).
func (b *batcher) run(batch []*job) {
	b.pending.Add(-int64(len(batch)))
	live := batch[:0]
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			b.finish(j, jobResult{err: err})
			continue
		}
		live = append(live, j)
	}
	batch = live
	if len(batch) == 0 {
		return
	}
	tokens := 0
	seqs := make([][]int, len(batch))
	topK := 0
	for i, j := range batch {
		seqs[i] = j.seq
		tokens += len(j.seq)
		topK = max(topK, j.topK)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var remaining atomic.Int64
	remaining.Store(int64(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, j := range batch {
		stops[i] = context.AfterFunc(j.ctx, func() {
			if remaining.Add(-1) == 0 {
				cancel()
			}
		})
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()

	key := batch[0].key
	opts := tp.PrefillOptions{Codec: key.codec, BlockSize: key.blockSize, TopK: topK}
	if key.policy != "" {
		opts.Codec, opts.BlockSize, opts.Policy = "", 0, b.opts.Policies[key.policy]
	}
	start := time.Now()
	res, err := b.callEngine(ctx, seqs, opts)
	wall := time.Since(start).Seconds()
	if err == nil && len(res.Seqs) != len(batch) {
		err = &engineError{fmt.Errorf("engine returned %d sequences for a batch of %d", len(res.Seqs), len(batch))}
	}
	b.m.observeBatch(len(batch), tokens, key.codec, res, err, wall)
	if err != nil {
		for _, j := range batch {
			b.finish(j, jobResult{err: err})
		}
		return
	}
	info := batchInfo{
		ID:                  b.calls.Add(1),
		Sequences:           len(batch),
		Tokens:              tokens,
		WallSeconds:         res.WallSeconds,
		SimSeconds:          res.SimSeconds,
		SimAllReduceSeconds: res.SimAllReduceSeconds,
		AllReduceCalls:      res.AllReduceCalls,
		WireBytes:           res.WireBytes,
		QuantRelErrRMS:      res.QuantRelErrRMS,
		Codec:               res.Codec,
		Reductions:          res.Reductions,
	}
	if info.Codec == "" {
		info.Codec = key.codec
	}
	for i, j := range batch {
		b.finish(j, jobResult{seq: res.Seqs[i], batch: info})
	}
}

// callEngine runs one Prefill and turns an engine panic into an error, so a
// failing device fails its batch and the server keeps serving.
func (b *batcher) callEngine(ctx context.Context, seqs [][]int, opts tp.PrefillOptions) (res *tp.PrefillResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			b.opts.Logger.Error("engine panic", "panic", p, "stack", string(debug.Stack()))
			res, err = nil, &engineError{fmt.Errorf("panic: %v", p)}
		}
	}()
	res, err = b.eng.Prefill(ctx, seqs, opts)
	if err != nil {
		what := string(opts.Codec)
		if opts.Policy != nil {
			what = "policy " + opts.Policy.Name
		}
		return nil, &engineError{fmt.Errorf("prefill of %d sequences (%s): %w", len(seqs), what, err)}
	}
	if res == nil {
		return nil, &engineError{fmt.Errorf("prefill returned no result")}
	}
	return res, nil
}
