package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Bounds applied to every safetensors file before anything is allocated
// from its header values.
const (
	maxHeaderBytes  = 100 << 20 // JSON header length
	maxTensors      = 1 << 16   // tensors per file
	maxRank         = 8         // dimensions per tensor
	maxShards       = 4096      // files in a sharded checkpoint
	maxIndexBytes   = 64 << 20  // model.safetensors.index.json
	maxConfigBytes  = 16 << 20  // config.json
	metadataKey     = "__metadata__"
	indexFileName   = "model.safetensors.index.json"
	singleFileName  = "model.safetensors"
	configFileName  = "config.json"
	safetensorsExt  = ".safetensors"
	headerLenPrefix = 8
)

// stDtypeSizes lists the element size of every safetensors dtype, so that
// sizes can be checked even for tensors this package does not decode.
var stDtypeSizes = map[string]int64{
	"F64": 8, "F32": 4, "F16": 2, "BF16": 2,
	"I64": 8, "I32": 4, "I16": 2, "I8": 1,
	"U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
	"F8_E4M3": 1, "F8_E5M2": 1,
}

func stDecodable(name string) (dtype, bool) {
	switch name {
	case "F32":
		return dtF32, true
	case "F16":
		return dtF16, true
	case "BF16":
		return dtBF16, true
	}
	return 0, false
}

// stTensor is one validated header entry; begin and end are absolute file
// offsets.
type stTensor struct {
	name       string
	dtype      string
	shape      []int
	begin, end int64
}

type stHeaderEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// parseSafetensors reads and validates the header of a safetensors file of
// the given size. Every tensor's dtype, shape, size and offsets are checked;
// tensors are returned in offset order.
func parseSafetensors(r io.ReaderAt, size int64) ([]stTensor, map[string]string, error) {
	if size < headerLenPrefix {
		return nil, nil, fmt.Errorf("%w: safetensors: file is %d bytes, shorter than the 8-byte header length", ErrCorrupt, size)
	}
	var pre [headerLenPrefix]byte
	if _, err := r.ReadAt(pre[:], 0); err != nil {
		return nil, nil, fmt.Errorf("weights: safetensors: reading header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(pre[:])
	if n > maxHeaderBytes {
		return nil, nil, fmt.Errorf("%w: safetensors: header length %d exceeds the %d-byte limit", ErrCorrupt, n, maxHeaderBytes)
	}
	if int64(n) > size-headerLenPrefix {
		return nil, nil, fmt.Errorf("%w: safetensors: header length %d exceeds the %d bytes after the length prefix", ErrCorrupt, n, size-headerLenPrefix)
	}
	if n < 2 {
		return nil, nil, fmt.Errorf("%w: safetensors: header length %d is too short for a JSON object", ErrCorrupt, n)
	}
	hdr := make([]byte, n)
	if k, err := r.ReadAt(hdr, headerLenPrefix); k != len(hdr) {
		return nil, nil, fmt.Errorf("%w: safetensors: reading %d-byte header: %v", ErrCorrupt, n, err)
	}
	dataStart := int64(headerLenPrefix + n)
	dataLen := size - dataStart

	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: safetensors header: %s", ErrCorrupt, fmt.Sprintf(format, a...))
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, bad("not a JSON object")
	}
	seen := make(map[string]bool)
	var tensors []stTensor
	var meta map[string]string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, bad("%v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, nil, bad("key %v is not a string", tok)
		}
		if seen[key] {
			return nil, nil, bad("duplicate key %q", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, bad("value of %q: %v", key, err)
		}
		if key == metadataKey {
			if err := strictUnmarshal(raw, &meta); err != nil {
				return nil, nil, bad("%s must map strings to strings: %v", metadataKey, err)
			}
			continue
		}
		if len(tensors) == maxTensors {
			return nil, nil, bad("more than %d tensors", maxTensors)
		}
		t, err := checkSTEntry(key, raw, dataStart, dataLen)
		if err != nil {
			return nil, nil, err
		}
		tensors = append(tensors, t)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, bad("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, bad("data after the JSON object")
	}
	sort.Slice(tensors, func(i, j int) bool {
		if tensors[i].begin != tensors[j].begin {
			return tensors[i].begin < tensors[j].begin
		}
		return tensors[i].end < tensors[j].end
	})
	for i := 1; i < len(tensors); i++ {
		if p, t := tensors[i-1], tensors[i]; t.begin < p.end {
			return nil, nil, fmt.Errorf("%w: safetensors: tensor %q bytes [%d, %d) overlap tensor %q bytes [%d, %d)",
				ErrCorrupt, t.name, t.begin-dataStart, t.end-dataStart, p.name, p.begin-dataStart, p.end-dataStart)
		}
	}
	return tensors, meta, nil
}

func checkSTEntry(name string, raw json.RawMessage, dataStart, dataLen int64) (stTensor, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: safetensors: tensor %q: %s", ErrCorrupt, name, fmt.Sprintf(format, a...))
	}
	var e stHeaderEntry
	if err := strictUnmarshal(raw, &e); err != nil {
		return stTensor{}, bad("%v", err)
	}
	if e.DType == "" || e.Shape == nil || e.DataOffsets == nil {
		return stTensor{}, bad("needs dtype, shape and data_offsets")
	}
	es, ok := stDtypeSizes[e.DType]
	if !ok {
		return stTensor{}, fmt.Errorf("%w: safetensors: tensor %q: dtype %q", ErrUnsupported, name, e.DType)
	}
	if len(e.Shape) > maxRank {
		return stTensor{}, bad("rank %d exceeds %d", len(e.Shape), maxRank)
	}
	if len(e.DataOffsets) != 2 {
		return stTensor{}, bad("data_offsets has %d values, want 2", len(e.DataOffsets))
	}
	numel := int64(1)
	shape := make([]int, len(e.Shape))
	for i, d := range e.Shape {
		if d < 0 || d > math.MaxInt32 {
			return stTensor{}, bad("shape %v has an invalid dimension", e.Shape)
		}
		shape[i] = int(d)
		var ok bool
		if numel, ok = mulChecked(numel, d); !ok {
			return stTensor{}, bad("shape %v overflows", e.Shape)
		}
	}
	nbytes, ok := mulChecked(numel, es)
	if !ok {
		return stTensor{}, bad("shape %v overflows", e.Shape)
	}
	b, en := e.DataOffsets[0], e.DataOffsets[1]
	if b < 0 || en < b || en > dataLen {
		return stTensor{}, bad("data_offsets [%d, %d) outside the %d-byte data region", b, en, dataLen)
	}
	if en-b != nbytes {
		return stTensor{}, bad("shape %v of %s needs %d bytes, data_offsets [%d, %d) hold %d", e.Shape, e.DType, nbytes, b, en, en-b)
	}
	return stTensor{name: name, dtype: e.DType, shape: shape, begin: dataStart + b, end: dataStart + en}, nil
}

// strictUnmarshal decodes one JSON value, rejecting unknown fields and
// trailing data.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// OpenSafetensors opens a Hugging Face checkpoint: a directory holding
// config.json and either model.safetensors or model.safetensors.index.json
// with its shards, or a single .safetensors file with config.json beside it.
// Llama (LlamaForCausalLM) and Gemma 3 (Gemma3ForCausalLM,
// Gemma3ForConditionalGeneration text weights) are supported; F32, F16 and
// BF16 tensors are decoded to float32 when read.
//
// On Linux each file is memory-mapped (read-only, MAP_SHARED): only the
// pages holding the tensors and slices asked for are read from disk, and
// every header value is checked against the mapped length before any tensor
// byte is touched. Elsewhere the files are read with ReadAt. The source
// implements ReadCounter; Close unmaps the files, and reads after Close
// return an error.
func OpenSafetensors(path string) (Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("weights: open safetensors checkpoint: %w", err)
	}
	dir, files := path, []string(nil)
	var index map[string]string // tensor name -> shard file, when sharded
	if st.IsDir() {
		switch {
		case fileExists(filepath.Join(dir, indexFileName)):
			index, files, err = readIndex(filepath.Join(dir, indexFileName))
			if err != nil {
				return nil, err
			}
		case fileExists(filepath.Join(dir, singleFileName)):
			files = []string{singleFileName}
		default:
			return nil, fmt.Errorf("weights: %s holds neither %s nor %s", dir, singleFileName, indexFileName)
		}
	} else {
		dir, files = filepath.Dir(path), []string{filepath.Base(path)}
	}
	cfgPath := filepath.Join(dir, configFileName)
	cfgData, err := readBounded(cfgPath, maxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("weights: model config: %w", err)
	}
	cfg, err := parseHFConfig(cfgData)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}

	s := &readerSource{cfg: cfg, entries: make(map[string]*entry)}
	fail := func(err error) (Source, error) {
		s.Close()
		return nil, err
	}
	shapes := make(map[string][]int)
	inFile := make(map[string]string) // HF name -> file it was found in
	for _, file := range files {
		fp := filepath.Join(dir, file)
		r, m, size, err := openShard(fp)
		if err != nil {
			return fail(err)
		}
		s.closers = append(s.closers, r.(io.Closer))
		tensors, _, err := parseSafetensors(r, size)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", fp, err))
		}
		for _, t := range tensors {
			if prev, dup := inFile[t.name]; dup {
				return fail(fmt.Errorf("%w: tensor %q is stored in both %s and %s", ErrCorrupt, t.name, prev, file))
			}
			inFile[t.name] = file
			if index != nil && index[t.name] != file {
				return fail(fmt.Errorf("%w: %s holds tensor %q, which %s maps to %q", ErrCorrupt, file, t.name, indexFileName, index[t.name]))
			}
			canon, ok, err := hfCanonical(cfg.Arch, t.name)
			if err != nil {
				return fail(fmt.Errorf("%s: %w", fp, err))
			}
			if !ok {
				continue
			}
			dt, ok := stDecodable(t.dtype)
			if !ok {
				return fail(fmt.Errorf("%w: %s: tensor %q (%s): dtype %s (want F32, F16 or BF16)", ErrUnsupported, fp, t.name, canon, t.dtype))
			}
			if _, dup := s.entries[canon]; dup {
				return fail(fmt.Errorf("%w: %s: tensor %q is a second copy of %s", ErrCorrupt, fp, t.name, canon))
			}
			s.entries[canon] = &entry{shape: t.shape, dt: dt, r: r, m: m, off: t.begin, origin: fp + ": " + t.name}
			shapes[canon] = t.shape
		}
	}
	for name, file := range index {
		if inFile[name] != file {
			return fail(fmt.Errorf("%w: %s maps tensor %q to %s, which does not hold it", ErrCorrupt, indexFileName, name, file))
		}
	}
	names, err := checkTensors(&cfg, shapes)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", path, err))
	}
	s.names = names
	return s, nil
}

// openShard opens one safetensors file: mapped into memory where the
// platform supports it (the descriptor is closed at once, the mapping stays),
// otherwise the open file itself, read with ReadAt. size is the length that
// every header value is checked against: for a mapping, the mapped length,
// so no access can reach past it.
func openShard(path string) (r io.ReaderAt, m *mapping, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("weights: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, 0, fmt.Errorf("weights: stat %s: %w", path, err)
	}
	if m, err = mapFile(f, st.Size(), path); err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	if m == nil {
		return f, nil, st.Size(), nil
	}
	if err := f.Close(); err != nil {
		m.Close()
		return nil, nil, 0, fmt.Errorf("weights: %s: %w", path, err)
	}
	return m, m, m.size(), nil
}

// readIndex reads a sharded checkpoint index, returning the weight map and
// the shard files in sorted order.
func readIndex(path string) (map[string]string, []string, error) {
	data, err := readBounded(path, maxIndexBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("weights: %w", err)
	}
	var idx struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := strictUnmarshal(data, &idx); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, nil, fmt.Errorf("%w: %s: weight_map is missing or empty", ErrCorrupt, path)
	}
	set := make(map[string]bool)
	for name, file := range idx.WeightMap {
		if file != filepath.Base(file) || file == "." || file == ".." || !strings.HasSuffix(file, safetensorsExt) || strings.ContainsRune(file, '\\') {
			return nil, nil, fmt.Errorf("%w: %s: tensor %q maps to %q, not a .safetensors file name in the same directory", ErrCorrupt, path, name, file)
		}
		set[file] = true
	}
	if len(set) > maxShards {
		return nil, nil, fmt.Errorf("%w: %s: %d shard files exceed the limit of %d", ErrCorrupt, path, len(set), maxShards)
	}
	files := make([]string, 0, len(set))
	for f := range set {
		files = append(files, f)
	}
	slices.Sort(files)
	return idx.WeightMap, files, nil
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// readBounded reads a whole file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s exceeds %d bytes", ErrCorrupt, path, limit)
	}
	return data, nil
}

// WriteSafetensors writes tensors in the safetensors format, converting
// them to dtype ("F32", "F16" or "BF16", rounding to nearest even). Tensor
// names are written as given (for example Hugging Face names); metadata,
// when not empty, is stored under "__metadata__".
func WriteSafetensors(w io.Writer, tensors []*Tensor, dtype string, metadata map[string]string) error {
	dt, ok := stDecodable(dtype)
	if !ok {
		return fmt.Errorf("%w: write safetensors: dtype %q (want F32, F16 or BF16)", ErrUnsupported, dtype)
	}
	header := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		header[metadataKey] = metadata
	}
	off := int64(0)
	for _, t := range tensors {
		if t == nil || t.Name == "" || t.Name == metadataKey {
			return fmt.Errorf("weights: write safetensors: invalid tensor name")
		}
		if _, dup := header[t.Name]; dup {
			return fmt.Errorf("weights: write safetensors: duplicate tensor %q", t.Name)
		}
		n := 1
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("weights: write safetensors: tensor %q: negative dimension in %v", t.Name, t.Shape)
			}
			n *= d
		}
		if n != len(t.Data) {
			return fmt.Errorf("weights: write safetensors: tensor %q: shape %v holds %d values, data has %d", t.Name, t.Shape, n, len(t.Data))
		}
		size := int64(n) * dt.size()
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = stHeaderEntry{DType: dtype, Shape: toInt64s(shape), DataOffsets: []int64{off, off + size}}
		off += size
	}
	hdr, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("weights: write safetensors header: %w", err)
	}
	// Pad with spaces so that the data starts 8-byte aligned.
	if pad := (8 - len(hdr)%8) % 8; pad > 0 {
		hdr = append(hdr, bytes.Repeat([]byte{' '}, pad)...)
	}
	var pre [headerLenPrefix]byte
	binary.LittleEndian.PutUint64(pre[:], uint64(len(hdr)))
	if _, err := w.Write(pre[:]); err != nil {
		return fmt.Errorf("weights: write safetensors: %w", err)
	}
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("weights: write safetensors: %w", err)
	}
	// Encode in chunks of at most writeChunk elements.
	const writeChunk = 1 << 14
	buf := make([]byte, writeChunk*dt.size())
	for _, t := range tensors {
		for start := 0; start < len(t.Data); start += writeChunk {
			part := t.Data[start:min(start+writeChunk, len(t.Data))]
			b := buf[:int64(len(part))*dt.size()]
			encode(dt, part, b)
			if _, err := w.Write(b); err != nil {
				return fmt.Errorf("weights: write safetensors: tensor %q: %w", t.Name, err)
			}
		}
	}
	return nil
}

// encode converts float32 values to little-endian elements of type dt,
// rounding to nearest even.
func encode(dt dtype, src []float32, b []byte) {
	switch dt {
	case dtF32:
		for i, x := range src {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
	case dtF16:
		for i, x := range src {
			binary.LittleEndian.PutUint16(b[2*i:], f32ToF16(x))
		}
	case dtBF16:
		for i, x := range src {
			binary.LittleEndian.PutUint16(b[2*i:], f32ToBF16(x))
		}
	default:
		panic(fmt.Sprintf("weights: encode to %v", dt))
	}
}

func toInt64s(xs []int) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = int64(x)
	}
	return out
}
