package server

import (
	"context"
	"fmt"
	"github.com/equarx/equarx/collective"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/equarx/equarx/tp"
)

// seqSpec is one validated sequence ready for the batcher.
type seqSpec struct {
	ids  []int
	key  batchKey
	topK int
}

// engineOptions resolves the per-request codec and block size, or the
// named reduction policy.
func (s *Server) engineOptions(allreduce string, blockSize *int, policy string) (batchKey, error) {
	if policy != "" {
		if allreduce != "" || blockSize != nil {
			return batchKey{}, badRequest("allreduce_policy excludes allreduce and block_size")
		}
		p, ok := s.opts.Policies[policy]
		if !ok {
			return batchKey{}, badRequest("allreduce_policy: unknown policy %q (this server has %s)", policy, s.policyNames())
		}
		return batchKey{codec: p.Default.Codec, policy: policy}, nil
	}
	key := batchKey{codec: s.opts.DefaultCodec, blockSize: s.opts.DefaultBlockSize}
	if allreduce != "" {
		c, err := parseCodec(allreduce)
		if err != nil {
			return batchKey{}, badRequest("allreduce: %v", err)
		}
		key.codec = c
	}
	if blockSize != nil {
		key.blockSize = *blockSize
	}
	// The codec checks its block size here, where the request is parsed,
	// so a block size it cannot use is the client's 400, not an engine 500.
	if key.blockSize != 0 {
		if _, err := collective.NewCodec(key.codec, key.blockSize); err != nil {
			return batchKey{}, badRequest("block_size %d: must be 0 (the codec default) or a multiple of %d in [%d, %d]",
				key.blockSize, collective.BlockSizeMultiple, collective.MinBlockSize, collective.MaxBlockSize)
		}
	}
	return key, nil
}

func checkLogprobs(p *int) (int, error) {
	if p == nil {
		return 0, nil
	}
	if *p < 0 || *p > MaxTopLogprobs {
		return 0, badRequest("logprobs must be in 0..%d, got %d", MaxTopLogprobs, *p)
	}
	return *p, nil
}

// checkIDs validates a token sequence against the model.
func (be *loaded) checkIDs(what string, ids []int) error {
	if len(ids) == 0 {
		return badRequest("%s is empty", what)
	}
	if len(ids) > be.cfg.MaxSeqLen {
		return tooLarge("%s has %d tokens; the model's context is %d", what, len(ids), be.cfg.MaxSeqLen)
	}
	for i, id := range ids {
		if id < 0 || id >= be.cfg.Vocab {
			return badRequest("%s: token %d at position %d is outside the vocabulary 0..%d", what, id, i, be.cfg.Vocab-1)
		}
	}
	return nil
}

// encode tokenizes a text prompt.
func (be *loaded) encode(what, text string, addBOS bool) ([]int, error) {
	if text == "" {
		return nil, badRequest("%s is empty", what)
	}
	ids, err := be.Tokenizer.Encode(text, addBOS)
	if err != nil {
		return nil, badRequest("%s: %v", what, err)
	}
	return ids, nil
}

// runSeqs queues every sequence and waits for all of them, within the
// request timeout; a client that goes away cancels its sequences.
func (s *Server) runSeqs(c *gin.Context, be *loaded, specs []seqSpec) ([]jobResult, error) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	jobs := make([]*job, len(specs))
	for i, sp := range specs {
		jobs[i] = &job{ctx: ctx, seq: sp.ids, key: sp.key, topK: sp.topK, done: make(chan jobResult, 1)}
		if err := be.b.submit(jobs[i]); err != nil {
			if err == ErrQueueFull {
				s.m.rejected.Inc()
			}
			return nil, err
		}
		s.m.requestTokens.Observe(float64(len(sp.ids)))
	}
	out := make([]jobResult, len(jobs))
	for i, j := range jobs {
		select {
		case r := <-j.done:
			if r.err != nil {
				return nil, r.err
			}
			out[i] = r
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, nil
}

func (s *Server) handlePrefill(c *gin.Context) {
	be, err := s.current()
	if err != nil {
		s.renderError(c, err)
		return
	}
	var req PrefillRequest
	if err := decodeJSON(c.Request.Body, &req); err != nil {
		s.renderError(c, err)
		return
	}
	spec, added, err := s.validatePrefill(be, &req)
	if err != nil {
		s.renderError(c, err)
		return
	}
	rs, err := s.runSeqs(c, be, []seqSpec{spec})
	if err != nil {
		s.renderError(c, err)
		return
	}
	noteRun(c, []seqSpec{spec}, rs)
	resp, err := buildPrefillResponse(be, spec, rs[0])
	if err != nil {
		s.renderError(c, err)
		return
	}
	resp.Usage.PromptTokensAdded = added
	c.PureJSON(http.StatusOK, resp)
}

// validatePrefill also returns how many BOS tokens the server prepended.
func (s *Server) validatePrefill(be *loaded, req *PrefillRequest) (seqSpec, int, error) {
	var sp seqSpec
	key, err := s.engineOptions(req.AllReduce, req.BlockSize, req.AllReducePolicy)
	if err != nil {
		return sp, 0, err
	}
	k, err := checkLogprobs(req.Logprobs)
	if err != nil {
		return sp, 0, err
	}
	var ids []int
	added := 0
	switch {
	case req.Prompt != nil && req.Tokens != nil:
		return sp, 0, badRequest("give either prompt or tokens, not both")
	case req.Prompt != nil:
		addBOS := req.AddBOS == nil || *req.AddBOS
		if ids, err = be.encode("prompt", *req.Prompt, addBOS); err != nil {
			return sp, 0, err
		}
		if addBOS {
			added = 1
		}
	case req.Tokens != nil:
		ids = req.Tokens
		if req.AddBOS != nil && *req.AddBOS {
			ids = append([]int{be.Tokenizer.BOS()}, ids...)
			added = 1
		}
	default:
		return sp, 0, badRequest("prompt or tokens is required")
	}
	if err := be.checkIDs("prompt", ids); err != nil {
		return sp, 0, err
	}
	return seqSpec{ids: ids, key: key, topK: k}, added, nil
}

func fptr(v float32) *float32 { return &v }

// checkSeq verifies the engine's answer has the shape the response needs.
func checkSeq(r tp.SeqResult, n, k int) error {
	if len(r.TokenLogprobs) != n {
		return &engineError{fmt.Errorf("engine returned %d token logprobs for %d tokens", len(r.TokenLogprobs), n)}
	}
	if len(r.Next) == 0 {
		return &engineError{fmt.Errorf("engine returned no next-token distribution")}
	}
	if k > 0 {
		if len(r.TopK) != n {
			return &engineError{fmt.Errorf("engine returned %d top-k rows for %d tokens", len(r.TopK), n)}
		}
		for i := 1; i < n; i++ {
			if len(r.TopK[i]) < k {
				return &engineError{fmt.Errorf("engine returned %d top-k entries at position %d, want %d", len(r.TopK[i]), i, k)}
			}
		}
		if len(r.Next) < k {
			return &engineError{fmt.Errorf("engine returned %d next-token candidates, want %d", len(r.Next), k)}
		}
	}
	return nil
}

func buildPrefillResponse(be *loaded, sp seqSpec, r jobResult) (*PrefillResponse, error) {
	n := len(sp.ids)
	if err := checkSeq(r.seq, n, sp.topK); err != nil {
		return nil, err
	}
	tok := be.Tokenizer
	info := func(t tp.TokenLogprob) TokenInfo {
		return TokenInfo{ID: t.ID, Token: tokenName(tok, t.ID), Logprob: t.Logprob}
	}
	resp := &PrefillResponse{
		Model:           be.Name,
		AllReduce:       string(sp.key.codec),
		AllReducePolicy: sp.key.policy,
		Tokens:          sp.ids,
		TokenLogprobs:   make([]*float32, n),
		NextToken:       info(r.seq.Next[0]),
		Usage:           Usage{PromptTokens: n, TotalTokens: n},
		Timing:          timingOf(r.batch),
	}
	for i := 1; i < n; i++ {
		resp.TokenLogprobs[i] = fptr(r.seq.TokenLogprobs[i])
	}
	if sp.topK > 0 {
		resp.TopLogprobs = make([][]TokenInfo, n)
		for i := 1; i < n; i++ {
			row := make([]TokenInfo, sp.topK)
			for j := range row {
				row[j] = info(r.seq.TopK[i][j])
			}
			resp.TopLogprobs[i] = row
		}
	}
	return resp, nil
}

func timingOf(b batchInfo) Timing {
	return Timing{
		WallSeconds:          b.WallSeconds,
		SimTPUSeconds:        b.SimSeconds,
		SimAllReduceSecond:   b.SimAllReduceSeconds,
		AllReduceCalls:       b.AllReduceCalls,
		AllReduceCodec:       string(b.Codec),
		AllReduceWireBytes:   b.WireBytes,
		AllReduceQuantRelErr: b.QuantRelErrRMS,
		AllReduceSites:       b.Reductions,
		BatchSequences:       b.Sequences,
		BatchTokens:          b.Tokens,
	}
}

// now is the clock of response timestamps.
var now = time.Now
