package weights

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// FuzzLlama2C checks that any input either fails with ErrCorrupt or
// ErrUnsupported or yields
// a source whose tensors all decode, and that nothing larger than the input
// is ever allocated for tensor data.
func FuzzLlama2C(f *testing.F) {
	// Committed seeds live in testdata/fuzz/FuzzLlama2C; these are small
	// so that mutations stay cheap.
	good := llama2cBytes([7]int32{4, 4, 1, 2, 1, 4, 2}, 0)
	f.Add(good)
	f.Add(good[:100])
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ReadLlama2C(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v wraps neither ErrCorrupt nor ErrUnsupported", err)
			}
			return
		}
		defer s.Close()
		if cfg := s.Config(); cfg.Validate() != nil {
			err := cfg.Validate()
			t.Fatalf("accepted an invalid config: %v", err)
		}
		total := 0
		for _, n := range s.Names() {
			x, err := s.Tensor(n)
			if err != nil {
				t.Fatalf("Tensor(%s): %v", n, err)
			}
			total += 4 * len(x.Data)
			if len(x.Shape) == 2 {
				if _, err := s.Rows(n, 0, x.Shape[0]/2); err != nil {
					t.Fatalf("Rows(%s): %v", n, err)
				}
				if _, err := s.Cols(n, x.Shape[1]/2, x.Shape[1]); err != nil {
					t.Fatalf("Cols(%s): %v", n, err)
				}
			}
		}
		if total > len(data) {
			t.Fatalf("decoded %d bytes of tensors from %d bytes of input", total, len(data))
		}
	})
}

// FuzzSafetensors checks that header parsing never panics, that every
// accepted tensor lies inside the file without overlapping another, and that
// every accepted F32/F16/BF16 tensor decodes.
func FuzzSafetensors(f *testing.F) {
	var buf bytes.Buffer
	WriteSafetensors(&buf, []*Tensor{
		{Name: "a", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
		{Name: "b", Shape: []int{1}, Data: []float32{-1}},
	}, "BF16", map[string]string{"format": "pt"})
	f.Add(buf.Bytes())
	f.Add(rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12))
	f.Fuzz(func(t *testing.T, data []byte) {
		size := int64(len(data))
		ts, _, err := parseSafetensors(bytes.NewReader(data), size)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v wraps neither ErrCorrupt nor ErrUnsupported", err)
			}
			return
		}
		var prevEnd int64
		for _, x := range ts {
			if x.begin < prevEnd || x.end < x.begin || x.end > size {
				t.Fatalf("tensor %q at [%d, %d) overlaps or leaves the %d-byte file", x.name, x.begin, x.end, size)
			}
			prevEnd = x.end
			dt, ok := stDecodable(x.dtype)
			if !ok {
				continue
			}
			e := &entry{shape: x.shape, dt: dt, r: bytes.NewReader(data), off: x.begin, origin: x.name}
			if e.numel()*dt.size() != x.end-x.begin {
				t.Fatalf("tensor %q: %v elements of %v in %d bytes", x.name, x.shape, dt, x.end-x.begin)
			}
			viaReadAt := make([]float32, e.numel())
			if n, err := e.read(0, viaReadAt); err != nil || n != x.end-x.begin {
				t.Fatalf("tensor %q: read %d bytes of %d: %v", x.name, n, x.end-x.begin, err)
			}
			// The same tensor through the mapped path (a mapping over the
			// input bytes) decodes to the same values.
			e.r, e.m = nil, &mapping{data: data, origin: "fuzz input"}
			viaMap := make([]float32, e.numel())
			if n, err := e.read(0, viaMap); err != nil || n != x.end-x.begin {
				t.Fatalf("tensor %q (mapped): read %d bytes of %d: %v", x.name, n, x.end-x.begin, err)
			}
			for i := range viaMap {
				if math.Float32bits(viaMap[i]) != math.Float32bits(viaReadAt[i]) {
					t.Fatalf("tensor %q: element %d is %v mapped, %v through ReadAt", x.name, i, viaMap[i], viaReadAt[i])
				}
			}
		}
	})
}

// FuzzHFConfig checks that config.json parsing never panics and only
// returns valid configs.
func FuzzHFConfig(f *testing.F) {
	f.Add([]byte(gemma31BConfig))
	f.Add([]byte(gemma34BConfig))
	f.Add([]byte(tinyLlamaConfig))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseHFConfig(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v wraps neither ErrCorrupt nor ErrUnsupported", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
	})
}
