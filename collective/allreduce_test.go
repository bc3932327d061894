package collective

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/equarx/equarx/tpu"
	"github.com/google/go-cmp/cmp"
)

// inputKind names a family of test inputs.
type inputKind string

const (
	inNormal   inputKind = "normal"
	inHeavy    inputKind = "heavy"    // normal with a few 1000x outliers
	inZero     inputKind = "zero"     // all zero
	inConstant inputKind = "constant" // every value 0.7
)

func makeInputs(kind inputKind, size, n int, seed uint64) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, uint64(size)*1000003+uint64(n)))
	in := make([][]float32, size)
	for r := range in {
		in[r] = make([]float32, n)
		for i := range in[r] {
			switch kind {
			case inNormal, inHeavy:
				in[r][i] = float32(rng.NormFloat64())
			case inConstant:
				in[r][i] = 0.7
			}
		}
		if kind == inHeavy && n > 0 {
			for k := 0; k < 3; k++ {
				i := rng.IntN(n)
				in[r][i] = float32(1000 * rng.NormFloat64())
			}
		}
	}
	return in
}

func newMesh(t testing.TB, topo, prof string) *tpu.Mesh {
	t.Helper()
	tp, err := tpu.ParseTopology(topo)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tpu.LoadProfile(prof)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tpu.NewMesh(tp, p)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// runGroup runs one AllReduce per rank concurrently on copies of inputs.
// opts[r] are rank r's options; skip[r] leaves rank r out.
func runGroup(t testing.TB, comms []*Communicator, inputs [][]float32, opts []Options, skip map[int]bool) ([][]float32, []Stats, []error) {
	t.Helper()
	size := len(comms)
	out := make([][]float32, size)
	stats := make([]Stats, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r := 0; r < size; r++ {
		if skip[r] {
			continue
		}
		out[r] = append([]float32(nil), inputs[r]...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[r], errs[r] = comms[r].AllReduce(context.Background(), out[r], opts[r])
		}()
	}
	wg.Wait()
	return out, stats, errs
}

func sameOpts(size int, o Options) []Options {
	os := make([]Options, size)
	for i := range os {
		os[i] = o
	}
	return os
}

// quantHalfStep is the largest error one quantization of a value can make,
// as a fraction of its block's absmax: half a step, step = absmax / levels.
func quantHalfStep(k CodecKind) float64 {
	switch k {
	case CodecInt8:
		return 0.5 / 127
	case CodecInt4:
		return 0.5 / 7
	case CodecInt6:
		return 0.5 / 31
	case CodecFP8:
		return 0.5 * 32 / 448 // half the E4M3 spacing of the top binade [256, 448]
	case CodecBF16:
		return 0 // relative, see below
	}
	return 0
}

// errorBound returns the largest error allowed at element e of the sum of
// inputs, for a group of `size` ranks and a schedule with `hops`
// quantizations on any element's path (see docs/ALLREDUCE.md).
//
//   - f32: the result is the float32 sum of `size` terms in some order; each
//     add rounds once with relative error <= u = 2^-24, so
//     |err| <= (size-1) * u * sum_i |x_i| (to first order; a 1.01 factor
//     covers the second-order terms).
//   - bf16: every rounding to bf16 (relative error <= 2^-8) hits a partial
//     sum whose magnitude is <= sum_i |x_i|; a path has at most `hops`
//     roundings, plus the float32 adds.
//   - int8/int4: every quantization of a block adds at most half a step of
//     that block's absmax. The absmax of any partial sum of the block is at
//     most M = max over the block of sum_i |x_i| plus the errors already
//     made, which grow by at most a factor (1 + 1/(2 levels)) per hop. With
//     `hops` quantizations: |err| <= hops * M/(2 levels) * (1+1/(2 levels))^hops,
//     plus the float32 adds.
type bound struct {
	kind  CodecKind
	block int
	size  int
	hops  int
}

func (b bound) perElement(in [][]float32) []float64 {
	n := len(in[0])
	abs := make([]float64, n)
	for _, x := range in {
		for i, v := range x {
			abs[i] += math.Abs(float64(v))
		}
	}
	u := math.Ldexp(1, -24)
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(b.size-1) * u * abs[i] * 1.01
	}
	switch b.kind {
	case CodecBF16:
		for i := range out {
			out[i] += float64(b.hops) * math.Ldexp(1, -8) * abs[i] * 1.01
		}
	case CodecInt8, CodecInt4, CodecInt6, CodecFP8:
		h := quantHalfStep(b.kind)
		grow := math.Pow(1+h, float64(b.hops))
		for lo := 0; lo < n; lo += b.block {
			hi := min(lo+b.block, n)
			m := 0.0
			for i := lo; i < hi; i++ {
				m = max(m, abs[i])
			}
			for i := lo; i < hi; i++ {
				out[i] += float64(b.hops)*h*m*grow + float64(b.hops)*u*m
			}
		}
	}
	return out
}

// hops is the number of quantizations on an element's path.
func hops(algo Algorithm, topo tpu.Topology) int {
	size := topo.Size()
	switch algo {
	case AlgoTorus2D:
		return (topo.X - 1) + (topo.Y - 1) + 1
	case AlgoTwoShot:
		// Each contribution is quantized once, then the reduced chunk once;
		// their errors add: (size-1) + 1 terms, each bounded by the block's M.
		return size
	case AlgoOneShot:
		// Each rank's partial is quantized once and the decoded partials
		// are added in float32: size terms, each bounded by the block's M.
		return size
	}
	return size // ring: size-1 reduce-scatter hops + 1 all-gather encode
}

func exactSum(in [][]float32) []float64 {
	n := len(in[0])
	s := make([]float64, n)
	for _, x := range in {
		for i, v := range x {
			s[i] += float64(v)
		}
	}
	return s
}

// checkResult checks every rank's output against the float64 sum within the
// bound and that all ranks are bitwise identical.
func checkResult(t *testing.T, in, out [][]float32, b bound) {
	t.Helper()
	for r := 1; r < len(out); r++ {
		for i := range out[r] {
			if math.Float32bits(out[r][i]) != math.Float32bits(out[0][i]) {
				t.Fatalf("rank %d differs from rank 0 at %d: %v vs %v", r, i, out[r][i], out[0][i])
			}
		}
	}
	if len(in) == 0 || len(in[0]) == 0 {
		return
	}
	ref := exactSum(in)
	lim := b.perElement(in)
	for i, v := range out[0] {
		if d := math.Abs(float64(v) - ref[i]); !(d <= lim[i]) {
			t.Fatalf("element %d: got %v, exact %v, error %g > bound %g", i, v, ref[i], d, lim[i])
		}
	}
}

func topoAlgos(topo tpu.Topology) []Algorithm {
	if topo.Size() == 1 {
		return []Algorithm{AlgoRing}
	}
	// oneshot is never chosen by auto but must pass the same sweeps.
	return append(candidates(topo), AlgoOneShot)
}

func TestAllReduceSweep(t *testing.T) {
	topos := []string{"ring:1", "ring:2", "ring:3", "ring:4", "ring:7", "ring:8", "torus:2x4", "torus:3x3", "torus:1x3"}
	lengths := []int{0, 1, 5, 1000, 4099}
	codecs := allCodecKinds
	kinds := []inputKind{inNormal, inHeavy, inZero, inConstant}
	segs := []int{64, -1} // one block per segment; no segmenting
	if raceEnabled {
		topos = []string{"ring:1", "ring:3", "ring:8", "torus:2x4"}
		lengths = []int{0, 5, 1000}
		codecs = []CodecKind{CodecF32, CodecInt8}
		kinds = []inputKind{inHeavy}
		segs = segs[:1]
	}
	const block = 64
	for _, ts := range topos {
		m := newMesh(t, ts, "v5e")
		comms, err := NewGroup(m)
		if err != nil {
			t.Fatal(err)
		}
		topo := m.Topology()
		for _, algo := range topoAlgos(topo) {
			for _, n := range lengths {
				for _, ck := range codecs {
					for _, seg := range segs {
						for _, kind := range kinds {
							name := fmt.Sprintf("%s/%s/n=%d/%s/seg=%d/%s", ts, algo, n, ck, seg, kind)
							t.Run(name, func(t *testing.T) {
								in := makeInputs(kind, topo.Size(), n, 1)
								opts := Options{Codec: ck, BlockSize: block, Algorithm: algo, SegmentElems: seg, FallbackElems: -1}
								out, st, errs := runGroup(t, comms, in, sameOpts(topo.Size(), opts), nil)
								for r, err := range errs {
									if err != nil {
										t.Fatalf("rank %d: %v", r, err)
									}
								}
								b := bound{kind: ck, block: block, size: topo.Size(), hops: hops(st[0].Algorithm, topo)}
								checkResult(t, in, out, b)
							})
						}
					}
				}
			}
		}
	}
}

// TestAllReduceLarge covers a length that is a multiple of neither the block
// size nor the world size, with the default block and segment sizes.
func TestAllReduceLarge(t *testing.T) {
	topos := []string{"ring:8", "ring:7", "torus:2x4"}
	codecs := []CodecKind{CodecF32, CodecInt8}
	segs := []int{0, 256}
	if raceEnabled {
		topos, codecs, segs = topos[2:], codecs[1:], segs[:1]
	}
	for _, ts := range topos {
		m := newMesh(t, ts, "v5e")
		comms, err := NewGroup(m)
		if err != nil {
			t.Fatal(err)
		}
		topo := m.Topology()
		for _, algo := range topoAlgos(topo) {
			for _, ck := range codecs {
				for _, seg := range segs {
					t.Run(fmt.Sprintf("%s/%s/%s/seg=%d", ts, algo, ck, seg), func(t *testing.T) {
						const n = 65537
						in := makeInputs(inHeavy, topo.Size(), n, 2)
						opts := Options{Codec: ck, Algorithm: algo, SegmentElems: seg}
						out, st, errs := runGroup(t, comms, in, sameOpts(topo.Size(), opts), nil)
						for r, err := range errs {
							if err != nil {
								t.Fatalf("rank %d: %v", r, err)
							}
						}
						b := bound{kind: ck, block: DefaultBlockSize, size: topo.Size(), hops: hops(st[0].Algorithm, topo)}
						checkResult(t, in, out, b)
					})
				}
			}
		}
	}
}

func TestAllReduceNonFinite(t *testing.T) {
	for _, ts := range []string{"ring:4", "torus:2x2"} {
		m := newMesh(t, ts, "v5e")
		comms, err := NewGroup(m)
		if err != nil {
			t.Fatal(err)
		}
		topo := m.Topology()
		for _, algo := range topoAlgos(topo) {
			for _, ck := range allCodecKinds {
				t.Run(fmt.Sprintf("%s/%s/%s", ts, algo, ck), func(t *testing.T) {
					const n = 1000
					in := makeInputs(inNormal, topo.Size(), n, 3)
					in[1][10] = float32(math.NaN())
					in[2][500] = float32(math.Inf(1))
					in[0][900] = float32(math.Inf(-1))
					opts := Options{Codec: ck, BlockSize: 64, Algorithm: algo, SegmentElems: 64, FallbackElems: -1}
					out, _, errs := runGroup(t, comms, in, sameOpts(topo.Size(), opts), nil)
					for r, err := range errs {
						if err != nil {
							t.Fatalf("rank %d: %v", r, err)
						}
					}
					for r := range out {
						if v := out[r][10]; !math.IsNaN(float64(v)) {
							t.Errorf("rank %d: NaN input summed to %v", r, v)
						}
						if v := float64(out[r][500]); !math.IsInf(v, 1) && !math.IsNaN(v) {
							t.Errorf("rank %d: +Inf input summed to %v", r, v)
						}
						if v := float64(out[r][900]); !math.IsInf(v, -1) && !math.IsNaN(v) {
							t.Errorf("rank %d: -Inf input summed to %v", r, v)
						}
						if ck == CodecF32 && !math.IsInf(float64(out[r][500]), 1) {
							t.Errorf("rank %d: f32: +Inf input summed to %v, want +Inf", r, out[r][500])
						}
					}
				})
			}
		}
	}
}

// TestEstimateMatchesExecution: the estimator prices exactly the schedule
// the executor runs, so from idle clocks the executed simulated time equals
// the estimate, and it does not depend on goroutine scheduling.
func TestEstimateMatchesExecution(t *testing.T) {
	cases := []struct {
		topo string
		prof string
		n    int
		opts Options
	}{
		{"ring:8", "v5e", 100003, Options{Codec: CodecInt8}},
		{"ring:8", "v5e", 100003, Options{Codec: CodecBF16, Algorithm: AlgoBiRing}},
		{"torus:2x4", "v5e", 50000, Options{Codec: CodecInt8, Algorithm: AlgoTorus2D, SegmentElems: 1024}},
		{"torus:4x4", "v6e", 50000, Options{Codec: CodecInt4, Algorithm: AlgoTwoShot}},
		{"ring:3", "v4", 777, Options{Codec: CodecF32}},
		{"ring:4", "v5e", 70001, Options{Codec: CodecInt8, Algorithm: AlgoOneShot}},
		{"ring:5", "v5p", 3000, Options{Codec: CodecInt8, FallbackElems: -1, Algorithm: AlgoRing}},
	}
	if raceEnabled {
		cases = cases[2:4]
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%s/%d/%+v", tc.topo, tc.prof, tc.n, tc.opts), func(t *testing.T) {
			m := newMesh(t, tc.topo, tc.prof)
			est, err := Estimate(m.Topology(), m.Profile(), tc.n, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var first []Stats
			for rep := 0; rep < 2; rep++ {
				m.ResetClocks()
				comms, err := NewGroup(m)
				if err != nil {
					t.Fatal(err)
				}
				in := makeInputs(inNormal, m.Size(), tc.n, uint64(rep))
				_, st, errs := runGroup(t, comms, in, sameOpts(m.Size(), tc.opts), nil)
				for r, err := range errs {
					if err != nil {
						t.Fatalf("rank %d: %v", r, err)
					}
				}
				got := 0.0
				for r, s := range st {
					got = max(got, s.SimSeconds)
					if s.SimSeconds != est.RankSeconds[r] {
						t.Errorf("rank %d: executed %g s, estimated %g s", r, s.SimSeconds, est.RankSeconds[r])
					}
					if s.WireBytes != est.RankWireBytes[r] {
						t.Errorf("rank %d: sent %d bytes, estimated %d", r, s.WireBytes, est.RankWireBytes[r])
					}
					if now := m.Device(r).Now(); now != s.SimSeconds {
						t.Errorf("rank %d: clock %g after a call of %g s from 0", r, now, s.SimSeconds)
					}
				}
				if got != est.SimSeconds {
					t.Errorf("executed %g simulated s, estimate %g", got, est.SimSeconds)
				}
				// The quantization error depends on the data, which each
				// repetition draws anew; everything else depends only on the
				// schedule.
				for r := range st {
					st[r].QuantErrSq, st[r].QuantRefSq = 0, 0
				}
				if rep == 0 {
					first = st
				} else if d := cmp.Diff(first, st); d != "" {
					t.Errorf("simulated stats differ between runs (-first +second):\n%s", d)
				}
			}
		})
	}
}

func TestMismatchAndMissingRank(t *testing.T) {
	const timeout = 300 * time.Millisecond
	t.Run("length", func(t *testing.T) {
		m := newMesh(t, "ring:4", "v5e")
		comms, _ := NewGroup(m)
		in := makeInputs(inNormal, 4, 100, 1)
		in[2] = in[2][:99]
		start := time.Now()
		_, _, errs := runGroup(t, comms, in, sameOpts(4, Options{Timeout: timeout}), nil)
		for r, err := range errs {
			if err == nil {
				t.Errorf("rank %d: no error", r)
			}
		}
		if !errors.Is(errs[0], ErrMismatch) {
			t.Errorf("rank 0: %v, want ErrMismatch", errs[0])
		}
		if el := time.Since(start); el > timeout+time.Second {
			t.Errorf("took %v with timeout %v", el, timeout)
		}
	})
	t.Run("options", func(t *testing.T) {
		m := newMesh(t, "ring:3", "v5e")
		comms, _ := NewGroup(m)
		in := makeInputs(inNormal, 3, 100, 1)
		opts := sameOpts(3, Options{Timeout: timeout})
		opts[1].Codec = CodecBF16
		_, _, errs := runGroup(t, comms, in, opts, nil)
		for r, err := range errs {
			if !errors.Is(err, ErrMismatch) {
				t.Errorf("rank %d: %v, want ErrMismatch", r, err)
			}
		}
	})
	t.Run("missing", func(t *testing.T) {
		m := newMesh(t, "torus:2x2", "v5e")
		comms, _ := NewGroup(m)
		in := makeInputs(inNormal, 4, 1000, 1)
		start := time.Now()
		_, _, errs := runGroup(t, comms, in, sameOpts(4, Options{Timeout: timeout}), map[int]bool{3: true})
		for r := 0; r < 3; r++ {
			if errs[r] == nil || !(errors.Is(errs[r], context.DeadlineExceeded) || errors.Is(errs[r], tpu.ErrAborted)) {
				t.Errorf("rank %d: %v, want a timeout or an abort", r, errs[r])
			}
		}
		if el := time.Since(start); el > timeout+time.Second {
			t.Errorf("took %v with timeout %v", el, timeout)
		}
		// A fresh group (new epoch) works on the same mesh.
		comms, _ = NewGroup(m)
		out, _, errs := runGroup(t, comms, in, sameOpts(4, Options{Codec: CodecF32, Timeout: 5 * time.Second}), nil)
		for r, err := range errs {
			if err != nil {
				t.Fatalf("fresh group rank %d: %v", r, err)
			}
		}
		checkResult(t, in, out, bound{kind: CodecF32, size: 4})
	})
	t.Run("cancel", func(t *testing.T) {
		m := newMesh(t, "ring:4", "v5e")
		comms, _ := NewGroup(m)
		in := makeInputs(inNormal, 4, 1000, 1)
		errs := make([]error, 4)
		var wg sync.WaitGroup
		start := time.Now()
		for r := 0; r < 4; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				if r == 1 {
					c, cancel := context.WithCancel(ctx)
					cancel()
					ctx = c
				}
				buf := append([]float32(nil), in[r]...)
				_, errs[r] = comms[r].AllReduce(ctx, buf, Options{Timeout: 10 * time.Second})
			}()
		}
		wg.Wait()
		for r, err := range errs {
			if err == nil {
				t.Errorf("rank %d: no error", r)
			}
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("cancelled call took %v: peers waited for the timeout instead of the abort", el)
		}
	})
}

// TestAllReduceWraparound runs every algorithm on tori whose dimensions have
// wraparound links (v4: always; v6e: a full pod dimension of 16).
func TestAllReduceWraparound(t *testing.T) {
	cases := []struct{ topo, prof string }{{"torus:4x4", "v4"}, {"torus:16x2", "v6e"}, {"torus:3x3", "v5p"}}
	if raceEnabled {
		cases = cases[2:]
	}
	for _, c := range cases {
		m := newMesh(t, c.topo, c.prof)
		comms, err := NewGroup(m)
		if err != nil {
			t.Fatal(err)
		}
		topo := m.Topology()
		for _, algo := range topoAlgos(topo) {
			t.Run(fmt.Sprintf("%s/%s/%s", c.topo, c.prof, algo), func(t *testing.T) {
				in := makeInputs(inHeavy, topo.Size(), 4099, 4)
				opts := Options{Codec: CodecInt8, BlockSize: 64, Algorithm: algo, SegmentElems: 128, FallbackElems: -1}
				out, st, errs := runGroup(t, comms, in, sameOpts(topo.Size(), opts), nil)
				for r, err := range errs {
					if err != nil {
						t.Fatalf("rank %d: %v", r, err)
					}
				}
				checkResult(t, in, out, bound{kind: CodecInt8, block: 64, size: topo.Size(), hops: hops(st[0].Algorithm, topo)})
			})
		}
	}
}
