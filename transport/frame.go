package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Every message between two processes is one frame: a fixed 48-byte
// header, then Len payload bytes. All integers are little endian.
//
//	off size field
//	  0   4  magic "EQXF"
//	  4   1  kind (frameData, frameAbort, frameControl)
//	  5   3  zero
//	  8   4  from rank
//	 12   4  to rank
//	 16   8  epoch
//	 24   8  sequence number
//	 32   4  message id
//	 36   4  payload length
//	 40   4  CRC32-C of the payload, as the sender computed it
//	 44   4  CRC32-C of bytes 0..43
//
// The receiver checks magic, header checksum, kind, ranks and length before
// it allocates anything for the payload; a frame that fails any check
// closes the connection.
const (
	frameHeaderLen = 48
	frameMagic     = 0x46585145 // "EQXF"
)

const (
	frameData    = 1 // a collective's message, for an inbox
	frameAbort   = 2 // a rank gave up a call; payload: the cause, UTF-8
	frameControl = 3 // a control message between processes
)

// maxAbortCause bounds the cause text an abort frame carries.
const maxAbortCause = 1024

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type frameHeader struct {
	kind     uint8
	from, to uint32
	epoch    uint64
	seq      uint64
	id       uint32
	n        uint32
	sum      uint32
}

func (h *frameHeader) put(b []byte) {
	_ = b[frameHeaderLen-1]
	binary.LittleEndian.PutUint32(b[0:], frameMagic)
	b[4], b[5], b[6], b[7] = h.kind, 0, 0, 0
	binary.LittleEndian.PutUint32(b[8:], h.from)
	binary.LittleEndian.PutUint32(b[12:], h.to)
	binary.LittleEndian.PutUint64(b[16:], h.epoch)
	binary.LittleEndian.PutUint64(b[24:], h.seq)
	binary.LittleEndian.PutUint32(b[32:], h.id)
	binary.LittleEndian.PutUint32(b[36:], h.n)
	binary.LittleEndian.PutUint32(b[40:], h.sum)
	binary.LittleEndian.PutUint32(b[44:], crc32.Checksum(b[:44], castagnoli))
}

var errBadFrame = errors.New("malformed frame")

// parseFrameHeader decodes and checks a header read off the wire.
func parseFrameHeader(b []byte) (frameHeader, error) {
	var h frameHeader
	if len(b) < frameHeaderLen {
		return h, fmt.Errorf("%w: %d header bytes", errBadFrame, len(b))
	}
	if m := binary.LittleEndian.Uint32(b[0:]); m != frameMagic {
		return h, fmt.Errorf("%w: magic %08x", errBadFrame, m)
	}
	if got, want := crc32.Checksum(b[:44], castagnoli), binary.LittleEndian.Uint32(b[44:]); got != want {
		return h, fmt.Errorf("%w: header CRC32-C %08x, sent %08x", errBadFrame, got, want)
	}
	if b[5]|b[6]|b[7] != 0 {
		return h, fmt.Errorf("%w: reserved bytes set", errBadFrame)
	}
	h.kind = b[4]
	h.from = binary.LittleEndian.Uint32(b[8:])
	h.to = binary.LittleEndian.Uint32(b[12:])
	h.epoch = binary.LittleEndian.Uint64(b[16:])
	h.seq = binary.LittleEndian.Uint64(b[24:])
	h.id = binary.LittleEndian.Uint32(b[32:])
	h.n = binary.LittleEndian.Uint32(b[36:])
	h.sum = binary.LittleEndian.Uint32(b[40:])
	switch h.kind {
	case frameData, frameControl:
	case frameAbort:
		if h.n > maxAbortCause {
			return h, fmt.Errorf("%w: abort cause of %d bytes", errBadFrame, h.n)
		}
	default:
		return h, fmt.Errorf("%w: kind %d", errBadFrame, h.kind)
	}
	return h, nil
}
