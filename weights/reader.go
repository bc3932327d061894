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
// at byte off of its file, read through m when the file is mapped and
// through r otherwise. Every entry has been checked to lie inside its file.
type entry struct {
	shape  []int
	dt     dtype
	r      io.ReaderAt
	m      *mapping
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

// readerSource serves tensors from checked entries, decoding on demand. It
// counts the bytes of tensor data it reads (headers excluded).
type readerSource struct {
	cfg       model.Config
	entries   map[string]*entry
	names     []string
	closers   []io.Closer
	closed    atomic.Bool
	bytesRead atomic.Int64
}

var (
	_ Source      = (*readerSource)(nil)
	_ ReadCounter = (*readerSource)(nil)
)

func (s *readerSource) Config() model.Config { return s.cfg }
func (s *readerSource) Names() []string      { return slices.Clone(s.names) }

// BytesRead returns the bytes of tensor data read so far through the source
// and all its views.
func (s *readerSource) BytesRead() int64 { return s.bytesRead.Load() }

func (s *readerSource) lookup(name string) (*entry, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("weights: %s: %w", name, errClosed)
	}
	e, ok := s.entries[name]
	if !ok {
		return nil, fmt.Errorf("weights: no tensor %q", name)
	}
	return e, nil
}

// count adds n bytes read to the source and to view (when not nil).
func (s *readerSource) count(view *atomic.Int64, n int64) {
	s.bytesRead.Add(n)
	if view != nil {
		view.Add(n)
	}
}

func (s *readerSource) Tensor(name string) (*Tensor, error) { return s.tensor(name, nil) }
func (s *readerSource) Rows(name string, lo, hi int) (*Tensor, error) {
	return s.rows(name, lo, hi, nil)
}
func (s *readerSource) Cols(name string, lo, hi int) (*Tensor, error) {
	return s.cols(name, lo, hi, nil)
}

func (s *readerSource) tensor(name string, view *atomic.Int64) (*Tensor, error) {
	e, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	t := &Tensor{Name: name, Shape: slices.Clone(e.shape), Data: make([]float32, e.numel())}
	n, err := e.read(0, t.Data)
	s.count(view, n)
	if err != nil {
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

func (s *readerSource) rows(name string, lo, hi int, view *atomic.Int64) (*Tensor, error) {
	e, err := s.matrix(name)
	if err != nil {
		return nil, err
	}
	if err := checkRange(name, "rows", lo, hi, e.shape[0]); err != nil {
		return nil, err
	}
	cols := e.shape[1]
	t := &Tensor{Name: name, Shape: []int{hi - lo, cols}, Data: make([]float32, (hi-lo)*cols)}
	n, err := e.read(int64(lo)*int64(cols), t.Data)
	s.count(view, n)
	if err != nil {
		return nil, fmt.Errorf("weights: %s rows [%d, %d): %w", name, lo, hi, err)
	}
	return t, nil
}

func (s *readerSource) cols(name string, lo, hi int, view *atomic.Int64) (*Tensor, error) {
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
	n, err := e.readCols(lo, w, cols, rows, t.Data)
	s.count(view, n)
	if err != nil {
		return nil, fmt.Errorf("weights: %s cols [%d, %d): %w", name, lo, hi, err)
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

// readerView reads through a readerSource and counts its own reads.
type readerView struct {
	s *readerSource
	n atomic.Int64
}

var _ ReadCounter = (*readerView)(nil)

func (v *readerView) Config() model.Config                { return v.s.cfg }
func (v *readerView) Names() []string                     { return v.s.Names() }
func (v *readerView) Tensor(name string) (*Tensor, error) { return v.s.tensor(name, &v.n) }
func (v *readerView) Rows(name string, lo, hi int) (*Tensor, error) {
	return v.s.rows(name, lo, hi, &v.n)
}
func (v *readerView) Cols(name string, lo, hi int) (*Tensor, error) {
	return v.s.cols(name, lo, hi, &v.n)
}
func (v *readerView) BytesRead() int64 { return v.n.Load() }

// Close does nothing: the view does not own the files.
func (v *readerView) Close() error { return nil }

// readChunk bounds the scratch buffer used while decoding.
const readChunk = 1 << 20

// read decodes len(dst) elements starting at element index first and
// returns the bytes of the file it read.
func (e *entry) read(first int64, dst []float32) (int64, error) {
	if e.m != nil {
		return e.readMapped(first, 0, len(dst), 1, dst)
	}
	return e.readInto(first, dst, make([]byte, int64(min(len(dst), readChunk/int(e.dt.size())))*e.dt.size()))
}

// readCols decodes columns [lo, lo+w) of the rows x cols matrix into dst
// (rows x w), reading only those bytes of every row.
func (e *entry) readCols(lo, w, cols, rows int, dst []float32) (int64, error) {
	if e.m != nil {
		return e.readMapped(int64(lo), int64(cols), w, rows, dst)
	}
	scratch := make([]byte, int64(min(w, readChunk/int(e.dt.size())))*e.dt.size())
	var total int64
	for r := range rows {
		n, err := e.readInto(int64(r)*int64(cols)+int64(lo), dst[r*w:(r+1)*w], scratch)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// readMapped decodes runs of w elements from the mapping: run r starts at
// element first + r*stride. Every run is checked against the mapped length
// before it is touched.
func (e *entry) readMapped(first, stride int64, w, runs int, dst []float32) (int64, error) {
	es := e.dt.size()
	var total int64
	err := e.m.access(func(data []byte) error {
		// Check every run before touching (or prefetching) any.
		start, n := e.off+first*es, int64(w)*es
		for r := range runs {
			if _, err := span(data, start+int64(r)*stride*es, n, e.origin); err != nil {
				return err
			}
		}
		e.m.prefetch(data, start, stride*es, n, runs)
		for r := range runs {
			off := start + int64(r)*stride*es
			decode(e.dt, data[off:off+n], dst[r*w:(r+1)*w])
			total += n
		}
		return nil
	})
	return total, err
}

// readInto is read through ReadAt with a caller-provided scratch buffer of
// at least one element.
func (e *entry) readInto(first int64, dst []float32, buf []byte) (int64, error) {
	es := e.dt.size()
	per := len(buf) / int(es)
	var total int64
	for done := 0; done < len(dst); {
		n := min(len(dst)-done, per)
		b := buf[:n*int(es)]
		off := e.off + (first+int64(done))*es
		k, err := e.r.ReadAt(b, off)
		total += int64(k)
		if k != len(b) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return total, fmt.Errorf("%w: reading %d bytes at offset %d of %s: %w", ErrCorrupt, len(b), off, e.origin, err)
		}
		decode(e.dt, b, dst[done:done+n])
		done += n
	}
	return total, nil
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
