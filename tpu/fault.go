package tpu

import (
	"sync/atomic"
	"time"
)

// Ready-made fault hooks for SetFaultHook. Each applies its fault to the
// messages a MessageFilter selects and delivers every other message
// unchanged. Combine a filter with Once to hit only the first match.

// MessageFilter selects the messages a fault applies to.
type MessageFilter func(to int, m Message) bool

// FromDevice selects every message sent by device rank.
func FromDevice(rank int) MessageFilter {
	return func(_ int, m Message) bool { return m.From == rank }
}

// PayloadFrom selects the messages with a non-empty payload sent by device
// rank (the data of a collective, not its control messages).
func PayloadFrom(rank int) MessageFilter {
	return func(_ int, m Message) bool { return m.From == rank && len(m.Data) > 0 }
}

// Once selects only the first message f selects, across all goroutines.
func Once(f MessageFilter) MessageFilter { return Nth(1, f) }

// Nth selects only the n-th message (counting from 1) f selects, across
// all goroutines: a fault in the middle of a run rather than at its start.
func Nth(n int64, f MessageFilter) MessageFilter {
	var seen atomic.Int64
	return func(to int, m Message) bool {
		return f(to, m) && seen.Add(1) == n
	}
}

// DropFault loses the selected messages.
func DropFault(f MessageFilter) FaultHook {
	return func(to int, m Message) (Message, bool) {
		return m, !f(to, m)
	}
}

// CorruptFault delivers a copy of each selected message's payload with one
// bit flipped in its middle byte; the sender's buffer is left intact.
// Messages without a payload are delivered unchanged.
func CorruptFault(f MessageFilter) FaultHook {
	return func(to int, m Message) (Message, bool) {
		if len(m.Data) == 0 || !f(to, m) {
			return m, true
		}
		c := append([]byte(nil), m.Data...)
		c[len(c)/2] ^= 0x10
		m.Data = c
		return m, true
	}
}

// TruncateFault delivers the selected messages with their last payload
// byte cut off.
func TruncateFault(f MessageFilter) FaultHook {
	return func(to int, m Message) (Message, bool) {
		if len(m.Data) == 0 || !f(to, m) {
			return m, true
		}
		m.Data = m.Data[:len(m.Data)-1]
		return m, true
	}
}

// StallFault holds the sender of each selected message for d before
// delivering it: the sending device stalls, as a chip that stops
// answering for a while.
func StallFault(f MessageFilter, d time.Duration) FaultHook {
	return func(to int, m Message) (Message, bool) {
		if f(to, m) {
			time.Sleep(d)
		}
		return m, true
	}
}

// PanicFault panics on the sender's goroutine when it sends a selected
// message, with value v: a device that crashes in the middle of a call.
func PanicFault(f MessageFilter, v any) FaultHook {
	return func(to int, m Message) (Message, bool) {
		if f(to, m) {
			panic(v)
		}
		return m, true
	}
}
