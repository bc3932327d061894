package tpu

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Tag identifies a message: the communicator epoch, the call's sequence
// number within the epoch, and the message's id within the call.
type Tag struct {
	Epoch, Seq uint64
	ID         uint32
}

func (t Tag) call() callKey { return callKey{t.Epoch, t.Seq} }

type callKey struct{ epoch, seq uint64 }

func (c callKey) less(o callKey) bool {
	return c.epoch < o.epoch || (c.epoch == o.epoch && c.seq < o.seq)
}

// Message is what travels between devices. Data is immutable once sent:
// receivers may forward it but never modify it. Meta carries control
// information (for example a call header) and must also be immutable.
type Message struct {
	From int
	Tag  Tag
	Data []byte
	Meta any
}

// FaultHook sees every message before delivery. It may delay (sleep),
// replace the message (a corrupted copy), or drop it (deliver = false). It
// runs on the sender's goroutine and must be safe for concurrent use.
type FaultHook func(to int, m Message) (out Message, deliver bool)

// SetFaultHook installs a hook on every link of the mesh; nil removes it.
func (m *Mesh) SetFaultHook(h FaultHook) {
	if h == nil {
		m.hook.Store(nil)
		return
	}
	m.hook.Store(&h)
}

// ErrAborted is wrapped by Recv when a peer aborted the call.
var ErrAborted = errors.New("call aborted by a peer")

type msgKey struct {
	from int
	tag  Tag
}

type inbox struct {
	mu      sync.Mutex
	msgs    map[msgKey]Message
	waiters map[msgKey]chan Message
	aborts  map[callKey]abortMark
	abortCh map[callKey]chan struct{}
	oldest  callKey // messages of calls before this one are dropped
}

type abortMark struct {
	from  int
	cause error
}

func (a abortMark) err(rank, from int, tag Tag) error {
	if a.cause == nil {
		return fmt.Errorf("tpu: device %d: receive from %d (seq %d, id %d): %w", rank, from, tag.Seq, tag.ID, ErrAborted)
	}
	return fmt.Errorf("tpu: device %d: receive from %d (seq %d, id %d): %w by device %d: %w",
		rank, from, tag.Seq, tag.ID, ErrAborted, a.from, a.cause)
}

func newInbox() *inbox {
	return &inbox{
		msgs:    map[msgKey]Message{},
		waiters: map[msgKey]chan Message{},
		aborts:  map[callKey]abortMark{},
		abortCh: map[callKey]chan struct{}{},
	}
}

// Send delivers a message to device `to` without blocking. The transport
// itself costs no simulated time: the collective prices transfers from its
// schedule.
func (d *Device) Send(to int, tag Tag, data []byte, meta any) error {
	if to < 0 || to >= d.mesh.Size() || to == d.rank {
		return fmt.Errorf("tpu: device %d: send to invalid device %d", d.rank, to)
	}
	msg := Message{From: d.rank, Tag: tag, Data: data, Meta: meta}
	if h := d.mesh.hook.Load(); h != nil {
		var ok bool
		if msg, ok = (*h)(to, msg); !ok {
			return nil
		}
	}
	d.mesh.devices[to].inbox.put(msg)
	return nil
}

func (b *inbox) put(m Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m.Tag.call().less(b.oldest) {
		return // a call every receiver has moved past
	}
	k := msgKey{m.From, m.Tag}
	if ch, ok := b.waiters[k]; ok {
		delete(b.waiters, k)
		ch <- m
		return
	}
	b.msgs[k] = m
}

// Recv waits for the message with the given tag from device `from`. It
// returns an error when ctx ends or when a peer aborts the tag's call.
// Receiving for a call drops every stored message of earlier calls.
func (d *Device) Recv(ctx context.Context, from int, tag Tag) (Message, error) {
	if from < 0 || from >= d.mesh.Size() || from == d.rank {
		return Message{}, fmt.Errorf("tpu: device %d: receive from invalid device %d", d.rank, from)
	}
	b := d.inbox
	k := msgKey{from, tag}
	b.mu.Lock()
	b.advance(tag.call())
	if m, ok := b.msgs[k]; ok {
		delete(b.msgs, k)
		b.mu.Unlock()
		return m, nil
	}
	if a, ok := b.aborts[tag.call()]; ok {
		b.mu.Unlock()
		return Message{}, a.err(d.rank, from, tag)
	}
	ch := make(chan Message, 1)
	b.waiters[k] = ch
	abort := b.abortChan(tag.call())
	b.mu.Unlock()
	select {
	case m := <-ch:
		return m, nil
	case <-abort:
		b.mu.Lock()
		a := b.aborts[tag.call()]
		delete(b.waiters, k)
		b.mu.Unlock()
		return Message{}, a.err(d.rank, from, tag)
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.waiters, k)
		b.mu.Unlock()
		select {
		case m := <-ch:
			return m, nil
		default:
		}
		return Message{}, fmt.Errorf("tpu: device %d: receive from %d (seq %d, id %d): %w",
			d.rank, from, tag.Seq, tag.ID, ctx.Err())
	}
}

// abortChan returns the channel closed when the call is aborted. b.mu held.
func (b *inbox) abortChan(c callKey) chan struct{} {
	ch, ok := b.abortCh[c]
	if !ok {
		ch = make(chan struct{})
		b.abortCh[c] = ch
	}
	return ch
}

// advance drops messages and abort marks of calls older than c. b.mu held.
func (b *inbox) advance(c callKey) {
	if !b.oldest.less(c) {
		return
	}
	b.oldest = c
	for k := range b.msgs {
		if k.tag.call().less(c) {
			delete(b.msgs, k)
		}
	}
	for k := range b.aborts {
		if k.less(c) {
			delete(b.aborts, k)
		}
	}
	for k, ch := range b.abortCh {
		if k.less(c) {
			select {
			case <-ch:
			default:
				close(ch)
			}
			delete(b.abortCh, k)
		}
	}
}

// Abort tells device `to` that this device gave up the call (epoch, seq):
// its pending and future receives for that call fail with ErrAborted.
func (d *Device) Abort(to int, epoch, seq uint64, cause error) {
	if to < 0 || to >= d.mesh.Size() || to == d.rank {
		return
	}
	b := d.mesh.devices[to].inbox
	c := callKey{epoch, seq}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.less(b.oldest) {
		return
	}
	if _, ok := b.aborts[c]; ok {
		return
	}
	b.aborts[c] = abortMark{from: d.rank, cause: cause}
	ch := b.abortChan(c)
	close(ch)
}
