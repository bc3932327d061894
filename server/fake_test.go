package server

import (
	"context"
	"errors"
	"fmt"
	"github.com/equarx/equarx/collective"
	"sync"
	"time"

	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/tp"
)

// byteTok is a test tokenizer: BOS 1, EOS 2, byte b is token b+3.
type byteTok struct{ panicOn string }

func (byteTok) VocabSize() int { return 259 }
func (byteTok) BOS() int       { return 1 }
func (byteTok) EOS() int       { return 2 }

func (t byteTok) Encode(text string, addBOS bool) ([]int, error) {
	if t.panicOn != "" && text == t.panicOn {
		panic("tokenizer exploded")
	}
	var ids []int
	if addBOS {
		ids = append(ids, 1)
	}
	for i := 0; i < len(text); i++ {
		ids = append(ids, int(text[i])+3)
	}
	return ids, nil
}

func (byteTok) Decode(ids []int) string {
	var b []byte
	for _, id := range ids {
		if id >= 3 && id < 259 {
			b = append(b, byte(id-3))
		}
	}
	return string(b)
}

func (byteTok) Token(id int) string {
	switch {
	case id == 0:
		return "<unk>"
	case id == 1:
		return "<s>"
	case id == 2:
		return "</s>"
	case id < 259:
		return string([]byte{byte(id - 3)})
	}
	return fmt.Sprintf("<extra_%d>", id)
}

const fakeVocab = 300

// fakeLogprob is log p(y | previous token x) of the fake model: the best next
// token is x+1, then x+2, and so on.
func fakeLogprob(x, y int) float32 {
	d := ((y-x-1)%fakeVocab + fakeVocab) % fakeVocab
	return -0.5 - 0.25*float32(d)
}

func fakeTop(x, k int) []tp.TokenLogprob {
	out := make([]tp.TokenLogprob, k)
	for j := range out {
		id := (x + 1 + j) % fakeVocab
		out[j] = tp.TokenLogprob{ID: id, Logprob: fakeLogprob(x, id)}
	}
	return out
}

// fakeEngine records every call; gate (if set) holds each call until it is
// closed or receives a value, or the call's context ends.
type fakeEngine struct {
	mu      sync.Mutex
	batches [][]int // sequence lengths per call
	opts    []tp.PrefillOptions
	gate    chan struct{}
	started chan struct{} // receives one value per call start (if set)
	fail    func(call int) error
	panicAt int // 1-based call number that panics; 0 = never
	calls   int
	ctxErrs []error // ctx.Err() seen by calls that returned early
}

func (f *fakeEngine) Config() model.Config {
	return model.Config{Arch: "llama", Name: "fake", Vocab: fakeVocab, MaxSeqLen: 64}
}

func (f *fakeEngine) Prefill(ctx context.Context, seqs [][]int, opts tp.PrefillOptions) (*tp.PrefillResult, error) {
	f.mu.Lock()
	f.calls++
	call := f.calls
	lens := make([]int, len(seqs))
	for i, s := range seqs {
		lens[i] = len(s)
	}
	f.batches = append(f.batches, lens)
	f.opts = append(f.opts, opts)
	gate, started := f.gate, f.started
	f.mu.Unlock()
	if started != nil {
		started <- struct{}{}
	}
	if f.panicAt == call {
		panic("device 2 fell over")
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			f.mu.Lock()
			f.ctxErrs = append(f.ctxErrs, ctx.Err())
			f.mu.Unlock()
			return nil, fmt.Errorf("prefill aborted: %w", ctx.Err())
		}
	}
	if f.fail != nil {
		if err := f.fail(call); err != nil {
			return nil, err
		}
	}
	res := &tp.PrefillResult{Codec: opts.Codec, SimSeconds: 1e-3, SimAllReduceSeconds: 4e-4,
		WallSeconds: 2e-3, AllReduceCalls: 10, WireBytes: 1000}
	if opts.Codec != collective.CodecF32 {
		res.QuantRelErrRMS = 0.007
	}
	for _, s := range seqs {
		n := len(s)
		r := tp.SeqResult{TokenLogprobs: make([]float32, n), TopK: make([][]tp.TokenLogprob, n)}
		for i := 1; i < n; i++ {
			r.TokenLogprobs[i] = fakeLogprob(s[i-1], s[i])
			if opts.TopK > 0 {
				r.TopK[i] = fakeTop(s[i-1], opts.TopK)
			}
		}
		r.Next = fakeTop(s[n-1], max(1, opts.TopK))
		res.Seqs = append(res.Seqs, r)
	}
	return res, nil
}

func (f *fakeEngine) batchLens() [][]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]int(nil), f.batches...)
}

func (f *fakeEngine) seenCtxErrs() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.ctxErrs...)
}

// errFakeInput is an engine sentinel for input the engine refuses.
var errFakeInput = errors.New("fake: invalid input")

func fakeClassify(err error) int {
	if errors.Is(err, errFakeInput) {
		return 400
	}
	return 0
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return cond()
}
