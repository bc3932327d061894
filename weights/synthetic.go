package weights

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync/atomic"

	"github.com/equarx/equarx/model"
)

// Scales of synthetic weights: matrices are N(0, syntheticStd²); norm
// weights are 1 + N(0, syntheticNormStd²) for Llama (the model multiplies by
// w) and N(0, syntheticNormStd²) for Gemma 3 (the model multiplies by 1+w),
// so every norm starts close to the identity.
const (
	syntheticStd     = 0.02
	syntheticNormStd = 0.02
)

// Synthetic returns deterministic random weights for cfg: the same config,
// name and seed always give the same values, on any machine. Values are
// generated when read, one row at a time from a generator seeded by (seed,
// name, row), so a large config costs only what is read and Rows and Cols
// return exactly the slices of the full tensor.
func Synthetic(cfg model.Config, seed int64) (Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("weights: synthetic: %w", err)
	}
	s := &synthetic{cfg: cfg, seed: uint64(seed), shapes: make(map[string][]int), keys: make(map[string]uint64)}
	for _, t := range expectedTensors(&cfg) {
		s.shapes[t.name] = t.shape
		s.names = append(s.names, t.name)
		h := fnv.New64a()
		h.Write([]byte(t.name))
		s.keys[t.name] = h.Sum64()
	}
	return s, nil
}

type synthetic struct {
	cfg    model.Config
	seed   uint64
	shapes map[string][]int
	keys   map[string]uint64 // FNV-1a hash of each name
	names  []string
	closed atomic.Bool
}

var _ Source = (*synthetic)(nil)

func (s *synthetic) Config() model.Config { return s.cfg }
func (s *synthetic) Names() []string      { return slices.Clone(s.names) }
func (s *synthetic) Close() error         { s.closed.Store(true); return nil }

func (s *synthetic) shape(name string) ([]int, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("weights: %s: source is closed", name)
	}
	sh, ok := s.shapes[name]
	if !ok {
		return nil, fmt.Errorf("weights: no tensor %q", name)
	}
	return sh, nil
}

// rowsCols views any tensor as a matrix: a 1-D tensor is one row.
func rowsCols(shape []int) (int, int) {
	if len(shape) == 1 {
		return 1, shape[0]
	}
	return shape[0], shape[1]
}

// syntheticBlock is the number of columns drawn from one generator, so that
// a column slice costs about as much as the values it returns.
const syntheticBlock = 256

// fill writes columns [c0, c1) of row r of tensor name into dst. Each block
// of syntheticBlock columns of a row has its own generator, seeded by (seed,
// name, row, block), so any slice equals the same slice of the full tensor.
func (s *synthetic) fill(name string, shape []int, r, c0, c1 int, dst []float32) {
	key := s.seed ^ s.keys[name]
	mean, std := 0.0, syntheticStd
	if len(shape) == 1 {
		std = syntheticNormStd
		if s.cfg.Arch != "gemma3" {
			mean = 1
		}
	}
	var pcg rand.PCG
	rng := rand.New(&pcg)
	for b := c0 / syntheticBlock; b*syntheticBlock < c1; b++ {
		pcg.Seed(key, uint64(r)<<32|uint64(b))
		from := b * syntheticBlock
		to := min(from+syntheticBlock, c1)
		for c := from; c < to; c++ {
			v := float32(mean + std*rng.NormFloat64())
			if c >= c0 {
				dst[c-c0] = v
			}
		}
	}
}

func (s *synthetic) Tensor(name string) (*Tensor, error) {
	shape, err := s.shape(name)
	if err != nil {
		return nil, err
	}
	rows, cols := rowsCols(shape)
	t := &Tensor{Name: name, Shape: slices.Clone(shape), Data: make([]float32, rows*cols)}
	for r := range rows {
		s.fill(name, shape, r, 0, cols, t.Data[r*cols:(r+1)*cols])
	}
	return t, nil
}

func (s *synthetic) matrix(name string) ([]int, error) {
	shape, err := s.shape(name)
	if err != nil {
		return nil, err
	}
	if len(shape) != 2 {
		return nil, fmt.Errorf("weights: %s: shape %v is not 2-D", name, shape)
	}
	return shape, nil
}

func (s *synthetic) Rows(name string, lo, hi int) (*Tensor, error) {
	shape, err := s.matrix(name)
	if err != nil {
		return nil, err
	}
	if err := checkRange(name, "rows", lo, hi, shape[0]); err != nil {
		return nil, err
	}
	cols := shape[1]
	t := &Tensor{Name: name, Shape: []int{hi - lo, cols}, Data: make([]float32, (hi-lo)*cols)}
	for r := lo; r < hi; r++ {
		s.fill(name, shape, r, 0, cols, t.Data[(r-lo)*cols:(r-lo+1)*cols])
	}
	return t, nil
}

func (s *synthetic) Cols(name string, lo, hi int) (*Tensor, error) {
	shape, err := s.matrix(name)
	if err != nil {
		return nil, err
	}
	rows, cols := shape[0], shape[1]
	if err := checkRange(name, "cols", lo, hi, cols); err != nil {
		return nil, err
	}
	w := hi - lo
	t := &Tensor{Name: name, Shape: []int{rows, w}, Data: make([]float32, rows*w)}
	if w == 0 {
		return t, nil
	}
	for r := range rows {
		s.fill(name, shape, r, lo, hi, t.Data[r*w:(r+1)*w])
	}
	return t, nil
}
