package tpu

import (
	"context"
	"fmt"

	"github.com/equarx/equarx/transport"
)

// Tag identifies a message: the communicator epoch, the call's sequence
// number within the epoch, and the message's id within the call.
type Tag = transport.Tag

// Message is what travels between devices (see transport.Message).
type Message = transport.Message

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
var ErrAborted = transport.ErrAborted

// Send delivers a message to device `to` without blocking. The transport
// itself costs no simulated time: the collective prices transfers from its
// schedule.
func (d *Device) Send(to int, tag Tag, data []byte, meta any) error {
	return d.SendMessage(to, Message{Tag: tag, Data: data, Meta: meta})
}

// SendMessage delivers msg (its From set to this device) to device `to`
// without blocking, as Send does.
func (d *Device) SendMessage(to int, msg Message) error {
	if to < 0 || to >= d.mesh.Size() || to == d.rank {
		return fmt.Errorf("tpu: device %d: send to invalid device %d", d.rank, to)
	}
	msg.From = d.rank
	if h := d.mesh.hook.Load(); h != nil {
		var ok bool
		if msg, ok = (*h)(to, msg); !ok {
			return nil
		}
	}
	d.mesh.devices[to].inbox.Put(msg)
	return nil
}

// Recv waits for the message with the given tag from device `from`. It
// returns an error when ctx ends or when a peer aborts the tag's call.
// Receiving for a call drops every stored message of earlier calls.
func (d *Device) Recv(ctx context.Context, from int, tag Tag) (Message, error) {
	if from < 0 || from >= d.mesh.Size() || from == d.rank {
		return Message{}, fmt.Errorf("tpu: device %d: receive from invalid device %d", d.rank, from)
	}
	m, err := d.inbox.Recv(ctx, from, tag)
	if err != nil {
		return Message{}, fmt.Errorf("tpu: %w", err)
	}
	return m, nil
}

// Abort tells device `to` that this device gave up the call (epoch, seq):
// its pending and future receives for that call fail with ErrAborted.
func (d *Device) Abort(to int, epoch, seq uint64, cause error) {
	if to < 0 || to >= d.mesh.Size() || to == d.rank {
		return
	}
	d.mesh.devices[to].inbox.Abort(d.rank, transport.Call{Epoch: epoch, Seq: seq}, cause)
}
