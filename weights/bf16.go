package weights

import (
	"fmt"
	"runtime"
	"sync"
)

// Weight dtypes a model can be held in.
const (
	DTypeF32  = "f32"
	DTypeBF16 = "bf16"
)

// ParseDType checks a weight dtype name: "f32", "bf16", or "" (as stored).
func ParseDType(s string) (string, error) {
	switch s {
	case "", DTypeF32, DTypeBF16:
		return s, nil
	}
	return "", fmt.Errorf("weights dtype %q: want f32 or bf16", s)
}

// StoredDType returns the dtype a source's weights are held in when no
// dtype is asked for: "bf16" when every matrix is stored as bfloat16 (a
// Hugging Face bf16 checkpoint), otherwise "f32" (llama2.c files, f32 or f16
// checkpoints, synthetic weights, which are generated as float32). A source
// can say itself by implementing StoredDType() string.
func StoredDType(src Source) string {
	if s, ok := src.(interface{ StoredDType() string }); ok {
		return s.StoredDType()
	}
	return DTypeF32
}

// StoredDType is "bf16" when every 2-D tensor is stored as BF16.
func (s *readerSource) StoredDType() string {
	any := false
	for _, e := range s.entries {
		if len(e.shape) != 2 {
			continue
		}
		if e.dt != dtBF16 {
			return DTypeF32
		}
		any = true
	}
	if any {
		return DTypeBF16
	}
	return DTypeF32
}

// toBF16 rounds src to bfloat16 bits in dst, on all cores for large slices.
func toBF16(dst []uint16, src []float32) {
	const grain = 1 << 18
	work := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst[i] = f32ToBF16(src[i])
		}
	}
	n := len(src)
	workers := min(runtime.GOMAXPROCS(0), n/grain)
	if workers < 2 {
		work(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { work(n*i/workers, n*(i+1)/workers) })
	}
	wg.Wait()
}

// bf16Chunk bounds the float32 values read at once by RowsBF16.
const bf16Chunk = 4 << 20

// RowsBF16 reads rows [lo, hi) of a 2-D tensor rounded to bfloat16 (bit
// patterns, row-major), a chunk of rows at a time, so at most bf16Chunk
// float32 values are held besides the result. For a tensor stored as BF16
// the values are exactly the stored ones.
func RowsBF16(src Source, name string, lo, hi int) ([]uint16, error) {
	if u, ok := src.(uncounted); ok {
		src = u.Source
	}
	if s, ok := src.(*synthetic); ok {
		return s.rowsBF16(name, lo, hi)
	}
	t, err := src.Rows(name, lo, lo) // checks the name and range, gives the width
	if err != nil {
		return nil, err
	}
	if len(t.Shape) != 2 {
		return nil, fmt.Errorf("weights: %s: shape %v is not 2-D", name, t.Shape)
	}
	cols := t.Shape[1]
	out := make([]uint16, (hi-lo)*cols)
	step := max(1, bf16Chunk/max(cols, 1))
	for r := lo; r < hi; r += step {
		end := min(hi, r+step)
		t, err := src.Rows(name, r, end)
		if err != nil {
			return nil, err
		}
		if len(t.Data) != (end-r)*cols {
			return nil, fmt.Errorf("weights: %s rows [%d, %d): %d values, want %d", name, r, end, len(t.Data), (end-r)*cols)
		}
		toBF16(out[(r-lo)*cols:(end-lo)*cols], t.Data)
	}
	return out, nil
}

// ColsBF16 reads columns [lo, hi) of a 2-D tensor rounded to bfloat16.
func ColsBF16(src Source, name string, lo, hi int) ([]uint16, error) {
	t, err := src.Cols(name, lo, hi)
	if err != nil {
		return nil, err
	}
	out := make([]uint16, len(t.Data))
	toBF16(out, t.Data)
	return out, nil
}

// rowsBF16 generates rows [lo, hi) of a matrix straight into bfloat16, a
// row at a time through a float32 row buffer per goroutine: the values are
// those of Rows, rounded.
func (s *synthetic) rowsBF16(name string, lo, hi int) ([]uint16, error) {
	shape, err := s.matrix(name)
	if err != nil {
		return nil, err
	}
	if err := checkRange(name, "rows", lo, hi, shape[0]); err != nil {
		return nil, err
	}
	cols := shape[1]
	out := make([]uint16, (hi-lo)*cols)
	key := s.synthKey(name)
	work := func(r0, r1 int) {
		buf := make([]float32, cols)
		for r := r0; r < r1; r++ {
			s.fill(key, shape, r, 0, cols, buf)
			o := out[(r-lo)*cols : (r-lo+1)*cols]
			for i, v := range buf {
				o[i] = f32ToBF16(v)
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), hi-lo)
	if len(out) < parallelFill || workers < 2 {
		work(lo, hi)
		return out, nil
	}
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { work(lo+(hi-lo)*i/workers, lo+(hi-lo)*(i+1)/workers) })
	}
	wg.Wait()
	return out, nil
}
