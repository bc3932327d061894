package weights

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync/atomic"

	"github.com/equarx/equarx/model"
)

// dtype is a stored element type that the readers decode to float32.
type dtype int

const (
	dtF32 dtype = iota
	dtF16
	dtBF16
)

func (d dtype) size() int64 {
	if d == dtF32 {
		return 4
	}
	return 2
}

func (d dtype) String() string {
	switch d {
	case dtF32:
		return "F32"
	case dtF16:
		return "F16"
	case dtBF16:
		return "BF16"
	}
	return fmt.Sprintf("dtype(%d)", int(d))
}

// entry locates one stored tensor: elements of type dt, row-major, starting
// at byte off of r. Every entry has been checked to lie inside its file.
type entry struct {
	shape  []int
	dt     dtype
	r      io.ReaderAt
	off    int64
	origin string // where the tensor comes from, for error messages
}

func (e *entry) numel() int64 {
	n := int64(1)
	for _, d := range e.shape {
		n *= int64(d)
	}
	return n
}

// readerSource serves tensors from checked entries, decoding on demand.
type readerSource struct {
	cfg     model.Config
	entries map[string]*entry
	names   []string
	closers []io.Closer
	closed  atomic.Bool
}

var _ Source = (*readerSource)(nil)

func (s *readerSource) Config() model.Config { return s.cfg }
func (s *readerSource) Names() []string      { return slices.Clone(s.names) }

func (s *readerSource) lookup(name string) (*entry, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("weights: %s: source is closed", name)
	}
	e, ok := s.entries[name]
	if !ok {
		return nil, fmt.Errorf("weights: no tensor %q", name)
	}
	return e, nil
}

func (s *readerSource) Tensor(name string) (*Tensor, error) {
	e, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	t := &Tensor{Name: name, Shape: slices.Clone(e.shape), Data: make([]float32, e.numel())}
	if err := e.read(0, t.Data); err != nil {
		return nil, fmt.Errorf("weights: %s: %w", name, err)
	}
	return t, nil
}

func (s *readerSource) matrix(name string) (*entry, error) {
	e, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	if len(e.shape) != 2 {
		return nil, fmt.Errorf("weights: %s: shape %v is not 2-D", name, e.shape)
	}
	return e, nil
}

func (s *readerSource) Rows(name string, lo, hi int) (*Tensor, error) {
	e, err := s.matrix(name)
	if err != nil {
		return nil, err
	}
	if err := checkRange(name, "rows", lo, hi, e.shape[0]); err != nil {
		return nil, err
	}
	cols := e.shape[1]
	t := &Tensor{Name: name, Shape: []int{hi - lo, cols}, Data: make([]float32, (hi-lo)*cols)}
	if err := e.read(int64(lo)*int64(cols), t.Data); err != nil {
		return nil, fmt.Errorf("weights: %s rows [%d, %d): %w", name, lo, hi, err)
	}
	return t, nil
}

func (s *readerSource) Cols(name string, lo, hi int) (*Tensor, error) {
	e, err := s.matrix(name)
	if err != nil {
		return nil, err
	}
	rows, cols := e.shape[0], e.shape[1]
	if err := checkRange(name, "cols", lo, hi, cols); err != nil {
		return nil, err
	}
	w := hi - lo
	t := &Tensor{Name: name, Shape: []int{rows, w}, Data: make([]float32, rows*w)}
	if w == 0 {
		return t, nil
	}
	scratch := make([]byte, int64(min(w, readChunk/int(e.dt.size())))*e.dt.size())
	for r := range rows {
		if err := e.readInto(int64(r)*int64(cols)+int64(lo), t.Data[r*w:(r+1)*w], scratch); err != nil {
			return nil, fmt.Errorf("weights: %s cols [%d, %d): %w", name, lo, hi, err)
		}
	}
	return t, nil
}

func (s *readerSource) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// readChunk bounds the scratch buffer used while decoding.
const readChunk = 1 << 20

// read decodes len(dst) elements starting at element index first.
func (e *entry) read(first int64, dst []float32) error {
	return e.readInto(first, dst, make([]byte, int64(min(len(dst), readChunk/int(e.dt.size())))*e.dt.size()))
}

// readInto is read with a caller-provided scratch buffer of at least one
// element.
func (e *entry) readInto(first int64, dst []float32, buf []byte) error {
	es := e.dt.size()
	per := len(buf) / int(es)
	for done := 0; done < len(dst); {
		n := min(len(dst)-done, per)
		b := buf[:n*int(es)]
		off := e.off + (first+int64(done))*es
		if k, err := e.r.ReadAt(b, off); k != len(b) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("%w: reading %d bytes at offset %d of %s: %w", ErrCorrupt, len(b), off, e.origin, err)
		}
		decode(e.dt, b, dst[done:done+n])
		done += n
	}
	return nil
}

// decode converts little-endian elements of type dt to float32.
func decode(dt dtype, b []byte, dst []float32) {
	switch dt {
	case dtF32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case dtF16:
		tab := f16Table()
		for i := range dst {
			dst[i] = tab[binary.LittleEndian.Uint16(b[2*i:])]
		}
	case dtBF16:
		for i := range dst {
			dst[i] = bf16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	default:
		panic(fmt.Sprintf("weights: decode of %v", dt))
	}
}
