package collective

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/equarx/equarx/tpu"
)

// rowsOf builds size ranks' partials for rows rows of w values: row k of
// every rank is target[r] when k == at, otherwise normal values of scale
// 100 (neighbours much larger than the target row, so any block or chunk
// shared with them would change the target's result).
func rowsOf(rng *rand.Rand, target [][]float32, rows, at, w int) [][]float32 {
	in := make([][]float32, len(target))
	for r := range in {
		in[r] = make([]float32, rows*w)
		for k := 0; k < rows; k++ {
			row := in[r][k*w : (k+1)*w]
			if k == at {
				copy(row, target[r])
				continue
			}
			for i := range row {
				row[i] = float32(100 * rng.NormFloat64())
			}
		}
	}
	return in
}

// A token row's AllReduce result is bitwise the same alone and at any
// offset of a larger buffer, for every codec and algorithm, when the call
// is batch invariant (Options.RowElems); the results stay within the
// error bound of the schedule, every rank ends identical, and the layout
// that ran (Stats.Stripes) is the algorithm's.
func TestBatchInvariantAllReduce(t *testing.T) {
	const w = 64
	for _, topoName := range []string{"ring:4", "torus:2x2", "ring:8"} {
		m := newMesh(t, topoName, "v5e")
		topo := m.Topology()
		comms, err := NewGroup(m)
		if err != nil {
			t.Fatal(err)
		}
		size := topo.Size()
		for _, kind := range Codecs() {
			for _, algo := range append(topoAlgos(topo), AlgoAuto) {
				for _, block := range []int{0, 8, 48} {
					if block != 0 && !kind.Quantized() {
						continue
					}
					name := fmt.Sprintf("%s/%s/%s/b%d", topoName, kind, algo, block)
					rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(block)))
					target := make([][]float32, size)
					for r := range target {
						target[r] = make([]float32, w)
						for i := range target[r] {
							target[r][i] = float32(rng.NormFloat64() * math.Exp(rng.NormFloat64()))
						}
					}
					o := Options{Codec: kind, BlockSize: block, Algorithm: algo, RowElems: w}
					alone, st0, errs := runGroup(t, comms, target, sameOpts(size, o), nil)
					for _, err := range errs {
						if err != nil {
							t.Fatalf("%s alone: %v", name, err)
						}
					}
					if want := stripesFor(st0[0].Algorithm, size); st0[0].Stripes != want {
						t.Fatalf("%s: %d stripes ran, want %d for %s", name, st0[0].Stripes, want, st0[0].Algorithm)
					}
					if algo != AlgoAuto && st0[0].Algorithm != algo {
						t.Fatalf("%s: ran %s", name, st0[0].Algorithm)
					}
					for trial := 0; trial < 3; trial++ {
						rows := 2 + rng.IntN(40)
						at := rng.IntN(rows)
						in := rowsOf(rng, target, rows, at, w)
						out, st, errs := runGroup(t, comms, in, sameOpts(size, o), nil)
						for _, err := range errs {
							if err != nil {
								t.Fatalf("%s batch: %v", name, err)
							}
						}
						if st[0].Codec != st0[0].Codec || st[0].Algorithm != st0[0].Algorithm {
							t.Fatalf("%s: %d rows ran %s/%s, one row %s/%s", name, rows,
								st[0].Codec, st[0].Algorithm, st0[0].Codec, st0[0].Algorithm)
						}
						b := invariantBound(st[0], w, block, size, topo)
						checkResult(t, in, out, b)
						got := out[0][at*w : (at+1)*w]
						for i := range got {
							if math.Float32bits(got[i]) != math.Float32bits(alone[0][i]) {
								t.Fatalf("%s: row at %d of %d, value %d: %v, alone %v", name, at, rows, i, got[i], alone[0][i])
							}
						}
					}
				}
			}
		}
	}
}

// invariantBound is checkResult's bound for a batch-invariant call: blocks
// restart at every row stripe, so a bound block of the stripe width (or
// of the codec's block when it divides the stripe) covers every real one.
func invariantBound(st Stats, w, block, size int, topo tpu.Topology) bound {
	if block == 0 {
		block = DefaultBlockSize
	}
	sw := w / st.Stripes
	if sw%block != 0 {
		block = sw
	}
	return bound{kind: st.Codec, block: block, size: size, hops: hops(st.Algorithm, topo)}
}

// Without the batch-invariant layout the same row does change with its
// neighbours (blocks of 256 values span four rows of 64): the property
// the test above checks is not vacuous.
func TestWithoutRowLayoutRowsMix(t *testing.T) {
	const w = 64
	m := newMesh(t, "ring:4", "v5e")
	comms, err := NewGroup(m)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	target := make([][]float32, 4)
	for r := range target {
		target[r] = make([]float32, w)
		for i := range target[r] {
			target[r][i] = float32(rng.NormFloat64())
		}
	}
	o := Options{Codec: CodecInt8, Algorithm: AlgoRing, FallbackElems: -1}
	alone, _, _ := runGroup(t, comms, target, sameOpts(4, o), nil)
	in := rowsOf(rng, target, 8, 1, w)
	out, st, errs := runGroup(t, comms, in, sameOpts(4, o), nil)
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	if st[0].Stripes != 0 {
		t.Fatalf("stripes %d without RowElems", st[0].Stripes)
	}
	diff := 0
	for i := 0; i < w; i++ {
		if out[0][w+i] != alone[0][i] {
			diff++
		}
	}
	if diff == 0 {
		t.Fatal("the row came out the same among larger neighbours without the invariant layout")
	}
}

// Misuse of the layout is an error, not a silent fallback: a length that
// is not whole rows, and an algorithm whose stripes do not divide the row.
func TestBatchInvariantErrors(t *testing.T) {
	m := newMesh(t, "ring:4", "v5e")
	comms, err := NewGroup(m)
	if err != nil {
		t.Fatal(err)
	}
	in := makeInputs(inNormal, 4, 100, 1)
	_, _, errs := runGroup(t, comms, in, sameOpts(4, Options{RowElems: 64}), nil)
	if errs[0] == nil {
		t.Fatal("100 values accepted as rows of 64")
	}
	comms, _ = NewGroup(m)
	in = makeInputs(inNormal, 4, 60, 1)
	_, _, errs = runGroup(t, comms, in, sameOpts(4, Options{RowElems: 6, Algorithm: AlgoRing}), nil)
	if errs[0] == nil {
		t.Fatal("rows of 6 cut into 4 ring stripes accepted")
	}
	// auto picks an algorithm that fits (oneshot as the last resort).
	comms, _ = NewGroup(m)
	out, st, errs := runGroup(t, comms, in, sameOpts(4, Options{RowElems: 6}), nil)
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	if st[0].Algorithm != AlgoOneShot && 6%stripesFor(st[0].Algorithm, 4) != 0 {
		t.Fatalf("auto chose %s", st[0].Algorithm)
	}
	checkResult(t, in, out, invariantBound(st[0], 6, 0, 4, m.Topology()))
}

func TestStripeBlock(t *testing.T) {
	for _, c := range [][3]int{{672, 256, 224}, {640, 256, 160}, {288, 256, 144}, {144, 256, 144}, {16, 256, 16}, {4, 256, 0}, {12, 256, 0}, {1024, 256, 256}, {24, 16, 8}} {
		if got := stripeBlock(c[0], c[1]); got != c[2] {
			t.Errorf("stripeBlock(%d, %d) = %d, want %d", c[0], c[1], got, c[2])
		}
	}
}
