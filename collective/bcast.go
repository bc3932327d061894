package collective

import (
	"context"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/equarx/equarx/transport"
)

// The engine's other collectives: Broadcast (rank 0 sends each batch to the
// workers), Gather (each rank's log-softmax statistics go back to rank 0)
// and Barrier. They share the AllReduce's sequence numbers, timeout and
// abort path: a failure on one rank aborts the call on every peer. Their
// payloads are opaque bytes, checked by length and CRC32-C; they cost no
// simulated TPU time (the data they move is host-side control).

// call runs f as collective call number c.seq+1 with the given timeout
// (0 = DefaultTimeout): a panic in f becomes ErrPanic, and on any failure
// every peer is aborted and the error names the call ("what #seq", and
// "of n values" when values >= 0).
// A rank whose context is already done does not join: its header would let
// peers run ahead, and whether its own receives then fail is a race;
// failing at once aborts every peer before any of them can finish.
func (c *Communicator) call(ctx context.Context, what string, values int, timeout time.Duration, f func(ctx context.Context, seq uint64) error) (err error) {
	c.seq++
	seq := c.seq
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if timeout < 0 {
		return fmt.Errorf("collective: rank %d: %s #%d: negative timeout %v", c.rank, what, seq, timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			if pe, ok := p.(error); ok {
				err = fmt.Errorf("%w: %w", ErrPanic, pe)
			} else {
				err = fmt.Errorf("%w: %v", ErrPanic, p)
			}
		}
		if err != nil {
			for r := 0; r < c.Size(); r++ {
				if r != c.rank {
					c.tr.Abort(r, c.epoch, seq, err)
				}
			}
			if values >= 0 {
				err = fmt.Errorf("collective: rank %d: %s #%d of %d values: %w", c.rank, what, seq, values, err)
			} else {
				err = fmt.Errorf("collective: rank %d: %s #%d: %w", c.rank, what, seq, err)
			}
		}
	}()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("called with a done context: %w", err)
	}
	return f(ctx, seq)
}

func (c *Communicator) sendBytes(to int, seq uint64, id uint32, data []byte) error {
	tag := transport.Tag{Epoch: c.epoch, Seq: seq, ID: id}
	return c.tr.SendMessage(to, transport.Message{Tag: tag, Data: data, Sum: crc32.Checksum(data, castagnoli)})
}

func (c *Communicator) recvBytes(ctx context.Context, from int, seq uint64, id uint32) ([]byte, error) {
	m, err := c.tr.Recv(ctx, from, transport.Tag{Epoch: c.epoch, Seq: seq, ID: id})
	if err != nil {
		return nil, err
	}
	if got := crc32.Checksum(m.Data, castagnoli); got != m.Sum {
		return nil, fmt.Errorf("message from rank %d: CRC32-C %08x, its sender sent %08x: %w", from, got, m.Sum, ErrCorrupt)
	}
	return m.Data, nil
}

// Broadcast returns root's data on every rank (root gets data back). The
// other ranks' data arguments are ignored. timeout 0 = DefaultTimeout.
func (c *Communicator) Broadcast(ctx context.Context, root int, data []byte, timeout time.Duration) (out []byte, err error) {
	if root < 0 || root >= c.Size() {
		return nil, fmt.Errorf("collective: broadcast from invalid root %d", root)
	}
	err = c.call(ctx, "Broadcast", -1, timeout, func(ctx context.Context, seq uint64) error {
		if c.rank == root {
			for r := 0; r < c.Size(); r++ {
				if r != root {
					if err := c.sendBytes(r, seq, 0, data); err != nil {
						return err
					}
				}
			}
			out = data
			return nil
		}
		var err error
		out, err = c.recvBytes(ctx, root, seq, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Gather returns, on root, every rank's data indexed by rank; other ranks
// get nil. timeout 0 = DefaultTimeout.
func (c *Communicator) Gather(ctx context.Context, root int, data []byte, timeout time.Duration) (out [][]byte, err error) {
	if root < 0 || root >= c.Size() {
		return nil, fmt.Errorf("collective: gather to invalid root %d", root)
	}
	err = c.call(ctx, "Gather", -1, timeout, func(ctx context.Context, seq uint64) error {
		if c.rank != root {
			return c.sendBytes(root, seq, uint32(c.rank), data)
		}
		out = make([][]byte, c.Size())
		out[root] = data
		for r := 0; r < c.Size(); r++ {
			if r == root {
				continue
			}
			b, err := c.recvBytes(ctx, r, seq, uint32(r))
			if err != nil {
				return err
			}
			out[r] = b
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Barrier returns when every rank has called it (a gather to rank 0 and a
// broadcast back). timeout 0 = DefaultTimeout.
func (c *Communicator) Barrier(ctx context.Context, timeout time.Duration) error {
	return c.call(ctx, "Barrier", -1, timeout, func(ctx context.Context, seq uint64) error {
		if c.rank != 0 {
			if err := c.sendBytes(0, seq, 0, nil); err != nil {
				return err
			}
			_, err := c.recvBytes(ctx, 0, seq, 1)
			return err
		}
		for r := 1; r < c.Size(); r++ {
			if _, err := c.recvBytes(ctx, r, seq, 0); err != nil {
				return err
			}
		}
		for r := 1; r < c.Size(); r++ {
			if err := c.sendBytes(r, seq, 1, nil); err != nil {
				return err
			}
		}
		return nil
	})
}
