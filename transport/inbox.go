// Package transport moves tagged byte messages between the ranks of a
// communicator group. It holds what every transport shares (tags, the
// receive-side inbox that matches messages to waiting receivers, aborts) and
// the TCP transport that carries messages between processes; the emulated
// in-process transport lives with the emulated devices in package tpu.
package transport

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

// Call returns the (epoch, sequence) pair of the tag's call.
func (t Tag) Call() Call { return Call{t.Epoch, t.Seq} }

// Call identifies one collective call of a group.
type Call struct{ Epoch, Seq uint64 }

// Less orders calls: by epoch, then by sequence number.
func (c Call) Less(o Call) bool {
	return c.Epoch < o.Epoch || (c.Epoch == o.Epoch && c.Seq < o.Seq)
}

// Message is what travels between ranks. Data is immutable once sent:
// receivers may forward it but never modify it. Sum is the CRC32-C of Data
// as its sender computed it (0 when the sender did not compute one). Meta
// carries in-process control information and never crosses a process.
type Message struct {
	From int
	Tag  Tag
	Data []byte
	Sum  uint32
	Meta any
}

// ErrAborted is wrapped by Recv when a peer aborted the call.
var ErrAborted = errors.New("call aborted by a peer")

// ErrPeerLost is wrapped by Recv when the connection to the sending peer
// is gone (the peer's process died or the link failed).
var ErrPeerLost = errors.New("peer connection lost")

type msgKey struct {
	from int
	tag  Tag
}

type abortMark struct {
	from  int
	cause error
}

// Inbox is the receive side of one rank: messages that arrived before
// their receiver asked for them wait here, receivers that asked first wait
// for their message. Receiving for a call drops every stored message of
// earlier calls, so a failed call's leftovers never pile up.
type Inbox struct {
	rank    int
	mu      sync.Mutex
	msgs    map[msgKey]Message
	waiters map[msgKey]chan Message
	aborts  map[Call]abortMark
	abortCh map[Call]chan struct{}
	lost    map[int]error         // peers whose connection is gone
	lostCh  map[int]chan struct{} // closed when the peer is lost
	oldest  Call                  // messages of calls before this one are dropped
	chans   []chan Message        // empty waiter channels for reuse
}

// NewInbox returns the empty inbox of a rank.
func NewInbox(rank int) *Inbox {
	return &Inbox{
		rank:    rank,
		msgs:    map[msgKey]Message{},
		waiters: map[msgKey]chan Message{},
		aborts:  map[Call]abortMark{},
		abortCh: map[Call]chan struct{}{},
		lost:    map[int]error{},
		lostCh:  map[int]chan struct{}{},
	}
}

// Put delivers a message. It never blocks.
func (b *Inbox) Put(m Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m.Tag.Call().Less(b.oldest) {
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

func (a abortMark) err(rank, from int, tag Tag) error {
	if a.cause == nil {
		return fmt.Errorf("rank %d: receive from %d (seq %d, id %d): %w", rank, from, tag.Seq, tag.ID, ErrAborted)
	}
	return fmt.Errorf("rank %d: receive from %d (seq %d, id %d): %w by rank %d: %w",
		rank, from, tag.Seq, tag.ID, ErrAborted, a.from, a.cause)
}

// Recv waits for the message with the given tag from rank `from`. It
// returns an error when ctx ends, when a peer aborts the tag's call, or when
// the connection to `from` is lost.
func (b *Inbox) Recv(ctx context.Context, from int, tag Tag) (Message, error) {
	k := msgKey{from, tag}
	b.mu.Lock()
	b.advance(tag.Call())
	if m, ok := b.msgs[k]; ok {
		delete(b.msgs, k)
		b.mu.Unlock()
		return m, nil
	}
	if a, ok := b.aborts[tag.Call()]; ok {
		b.mu.Unlock()
		return Message{}, a.err(b.rank, from, tag)
	}
	if err, ok := b.lost[from]; ok {
		b.mu.Unlock()
		return Message{}, fmt.Errorf("rank %d: receive from %d (seq %d, id %d): %w", b.rank, from, tag.Seq, tag.ID, err)
	}
	var ch chan Message
	if n := len(b.chans); n > 0 {
		ch, b.chans = b.chans[n-1], b.chans[:n-1]
	} else {
		ch = make(chan Message, 1)
	}
	b.waiters[k] = ch
	abort := b.abortChan(tag.Call())
	lost := b.lostChan(from)
	b.mu.Unlock()
	fail := func(err error) (Message, error) {
		b.mu.Lock()
		delete(b.waiters, k)
		b.mu.Unlock()
		select {
		case m := <-ch:
			return m, nil
		default:
		}
		return Message{}, err
	}
	select {
	case m := <-ch:
		b.mu.Lock()
		b.chans = append(b.chans, ch) // empty again: reuse it
		b.mu.Unlock()
		return m, nil
	case <-abort:
		b.mu.Lock()
		a := b.aborts[tag.Call()]
		b.mu.Unlock()
		return fail(a.err(b.rank, from, tag))
	case <-lost:
		b.mu.Lock()
		err := b.lost[from]
		b.mu.Unlock()
		if err == nil {
			err = ErrPeerLost
		}
		return fail(fmt.Errorf("rank %d: receive from %d (seq %d, id %d): %w", b.rank, from, tag.Seq, tag.ID, err))
	case <-ctx.Done():
		return fail(fmt.Errorf("rank %d: receive from %d (seq %d, id %d): %w", b.rank, from, tag.Seq, tag.ID, ctx.Err()))
	}
}

// abortChan returns the channel closed when the call is aborted. b.mu held.
func (b *Inbox) abortChan(c Call) chan struct{} {
	ch, ok := b.abortCh[c]
	if !ok {
		ch = make(chan struct{})
		b.abortCh[c] = ch
	}
	return ch
}

// lostChan returns the channel closed when peer `from` is lost. b.mu held.
func (b *Inbox) lostChan(from int) chan struct{} {
	ch, ok := b.lostCh[from]
	if !ok {
		ch = make(chan struct{})
		b.lostCh[from] = ch
	}
	return ch
}

// advance drops messages and abort marks of calls older than c. b.mu held.
func (b *Inbox) advance(c Call) {
	if !b.oldest.Less(c) {
		return
	}
	b.oldest = c
	for k := range b.msgs {
		if k.tag.Call().Less(c) {
			delete(b.msgs, k)
		}
	}
	for k := range b.aborts {
		if k.Less(c) {
			delete(b.aborts, k)
		}
	}
	for k, ch := range b.abortCh {
		if k.Less(c) {
			select {
			case <-ch:
			default:
				close(ch)
			}
			delete(b.abortCh, k)
		}
	}
}

// Abort records that rank `from` gave up call c: pending and future
// receives of that call fail with ErrAborted.
func (b *Inbox) Abort(from int, c Call, cause error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.Less(b.oldest) {
		return
	}
	if _, ok := b.aborts[c]; ok {
		return
	}
	b.aborts[c] = abortMark{from: from, cause: cause}
	close(b.abortChan(c))
}

// PeerLost records that the connection to rank `from` is gone: pending and
// future receives from it fail with err (which should wrap ErrPeerLost)
// until PeerBack is called. Messages it sent before it went stay
// receivable: a peer that finished its part and closed cleanly must not
// fail the receives of messages it already delivered.
func (b *Inbox) PeerLost(from int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.lost[from]; ok {
		return
	}
	if err == nil {
		err = ErrPeerLost
	}
	b.lost[from] = err
	close(b.lostChan(from))
}

// PeerBack records that rank `from` is connected again.
func (b *Inbox) PeerBack(from int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.lost, from)
	delete(b.lostCh, from)
}
