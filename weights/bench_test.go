package weights

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/equarx/equarx/model"
)

// benchCfg is a Llama shape large enough for throughput figures
// (two layers, 1024 x 2816 feed-forward matrices).
var benchCfg = model.Config{
	Arch: "llama", Dim: 1024, HiddenDim: 2816, Layers: 2, Heads: 16, KVHeads: 4, HeadDim: 64,
	Vocab: 4096, MaxSeqLen: 512, NormEps: 1e-5, RopeTheta: 10000,
	RopeStyle: model.RopeHalf, Activation: model.ActSiLU,
}

func BenchmarkDecode(b *testing.B) {
	const n = 1 << 16
	for _, dt := range []dtype{dtF32, dtF16, dtBF16} {
		b.Run(dt.String(), func(b *testing.B) {
			src := make([]byte, n*dt.size())
			for i := range src {
				src[i] = byte(i * 7)
			}
			dst := make([]float32, n)
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				decode(dt, src, dst)
			}
		})
	}
}

func BenchmarkLlama2CStories260K(b *testing.B) {
	s := stories260K(b)
	var total int64
	for _, n := range s.Names() {
		x, _ := s.Tensor(n)
		total += 4 * int64(len(x.Data))
	}
	b.SetBytes(total)
	for b.Loop() {
		for _, n := range s.Names() {
			if _, err := s.Tensor(n); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// benchCheckpoint writes benchCfg as a safetensors checkpoint of dtype.
func benchCheckpoint(b *testing.B, dtype string) Source {
	b.Helper()
	dir := b.TempDir()
	ck := makeCheckpoint(b, benchCfg, dtype, "model.", 1)
	writeJSON(b, filepath.Join(dir, configFileName), hfConfigJSON(benchCfg))
	writeST(b, filepath.Join(dir, singleFileName), ck.hf, dtype)
	s, err := OpenSafetensors(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkShardRead reads one tp-4 rank's shard of a feed-forward layer:
// w_gate and w_up rows and w_down columns. Bytes are float32 bytes returned.
func BenchmarkShardRead(b *testing.B) {
	const tp = 4
	h, d := benchCfg.HiddenDim, benchCfg.Dim
	shard := int64(3 * (h / tp) * d * 4)
	for _, dtype := range []string{"F32", "BF16"} {
		b.Run("safetensors-"+dtype, func(b *testing.B) {
			s := benchCheckpoint(b, dtype)
			b.SetBytes(shard)
			for b.Loop() {
				readShard(b, s, h/tp)
			}
		})
	}
	b.Run("synthetic", func(b *testing.B) {
		s, _ := Synthetic(benchCfg, 1)
		b.SetBytes(shard)
		for b.Loop() {
			readShard(b, s, h/tp)
		}
	})
	b.Run("llama2c-file", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "m.bin")
		hdr := [7]int32{int32(d), int32(h), 1, 16, 4, 512, 16}
		if err := os.WriteFile(path, llama2cBytes(hdr, 0), 0o644); err != nil {
			b.Fatal(err)
		}
		s, err := OpenLlama2C(path)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		b.SetBytes(shard)
		for b.Loop() {
			readShard(b, s, h/tp)
		}
	})
}

func readShard(b *testing.B, s Source, w int) {
	for _, n := range []string{"layers.0.w_gate", "layers.0.w_up"} {
		if _, err := s.Rows(n, w, 2*w); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.Cols("layers.0.w_down", w, 2*w); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkWriteSafetensors(b *testing.B) {
	src, _ := Synthetic(benchCfg, 1)
	x, _ := src.Tensor("layers.0.w_gate")
	for _, dtype := range []string{"F32", "BF16", "F16"} {
		b.Run(dtype, func(b *testing.B) {
			var buf bytes.Buffer
			b.SetBytes(int64(4 * len(x.Data)))
			for b.Loop() {
				buf.Reset()
				if err := WriteSafetensors(&buf, []*Tensor{x}, dtype, nil); err != nil {
					b.Fatal(fmt.Errorf("write: %w", err))
				}
			}
		})
	}
}

// BenchmarkSyntheticTensor generates a whole 4096 x 1024 matrix on all
// cores; bytes are float32 bytes produced, values/s the generation rate.
func BenchmarkSyntheticTensor(b *testing.B) {
	s, _ := Synthetic(benchCfg, 1)
	n := benchCfg.Vocab * benchCfg.Dim
	b.SetBytes(int64(4 * n))
	for b.Loop() {
		if _, err := s.Tensor("embed"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkSyntheticRows generates one tp-4 rank's rows of the embedding
// into a reused buffer (no allocation): the generator's own rate.
func BenchmarkSyntheticRows(b *testing.B) {
	src, _ := Synthetic(benchCfg, 1)
	s := src.(*synthetic)
	shape := s.shapes["embed"]
	rows := shape[0] / 4
	dst := make([]float32, rows*shape[1])
	b.SetBytes(int64(4 * len(dst)))
	for b.Loop() {
		s.fillRows("embed", shape, rows, 2*rows, 0, shape[1], dst)
	}
	b.ReportMetric(float64(len(dst))*float64(b.N)/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkLoad opens benchCfg's checkpoint and reads what the four ranks
// of a tp-4 engine read (each its quarter of every matrix and of the LM
// head, plus the norms), ranks in parallel as the engine binds them, with
// the file memory-mapped and through ReadAt. The file stays in the page
// cache between iterations, so this measures the decode and copy path, not
// the disk. Bytes are file bytes read.
func BenchmarkLoad(b *testing.B) {
	cfg := benchCfg
	cfg.TiedEmbeddings = false
	for _, dtype := range []string{"BF16", "F32"} {
		dir, _ := writeCheckpointDir(b, cfg, dtype)
		for _, mmap := range []bool{true, false} {
			name := dtype + "/readat"
			if mmap {
				name = dtype + "/mmap"
			}
			b.Run(name, func(b *testing.B) {
				var read int64
				for b.Loop() {
					s := openWith(b, dir, mmap)
					var wg sync.WaitGroup
					for r := range 4 {
						wg.Go(func() {
							v, _ := CountReads(s)
							rankReads(b, v, cfg, 4, r)
						})
					}
					wg.Wait()
					read = s.(ReadCounter).BytesRead()
					if err := s.Close(); err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(read)
			})
		}
	}
}
