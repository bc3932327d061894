package server

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/gin-gonic/gin"

	"github.com/equarx/equarx/tp"
)

var completionSeq atomic.Int64

// completionPlan is a validated completions request.
type completionPlan struct {
	specs     []seqSpec
	maxTokens int
	logprobs  *int
	echo      bool
	// skip[i] is how many leading tokens of prompt i the server added (BOS
	// before client token ids): they condition the answer but are not
	// echoed, so the answer stays aligned with the ids the client sent.
	skip []int
	// added[i] is how many BOS tokens the server prepended to prompt i on
	// its own (add_bos for text, --id-prompts-add-bos for ids).
	added []int
}

func (s *Server) handleCompletions(c *gin.Context) {
	be, err := s.current()
	if err != nil {
		s.renderError(c, err)
		return
	}
	var req CompletionRequest
	if err := decodeJSON(c.Request.Body, &req); err != nil {
		s.renderError(c, err)
		return
	}
	plan, err := s.validateCompletion(be, &req)
	if err != nil {
		s.renderError(c, err)
		return
	}
	rs, err := s.runSeqs(c, be, plan.specs)
	if err != nil {
		s.renderError(c, err)
		return
	}
	noteRun(c, plan.specs, rs)
	resp := &CompletionResponse{
		ID:              fmt.Sprintf("cmpl-%d-%d", now().UnixNano(), completionSeq.Add(1)),
		Object:          "text_completion",
		Created:         now().Unix(),
		Model:           be.Name,
		AllReduce:       string(plan.specs[0].key.codec),
		AllReducePolicy: plan.specs[0].key.policy,
		Choices:         make([]CompletionChoice, len(rs)),
	}
	for i, r := range rs {
		ch, err := buildChoice(be, plan, i, r)
		if err != nil {
			s.renderError(c, err)
			return
		}
		resp.Choices[i] = ch
		resp.Usage.PromptTokens += len(plan.specs[i].ids)
		resp.Usage.PromptTokensAdded += plan.added[i]
		resp.Usage.CompletionTokens += plan.maxTokens
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens + resp.Usage.CompletionTokens
	c.PureJSON(http.StatusOK, resp)
}

func (s *Server) validateCompletion(be *loaded, req *CompletionRequest) (*completionPlan, error) {
	key, err := s.engineOptions(req.AllReduce, req.BlockSize, req.AllReducePolicy)
	if err != nil {
		return nil, err
	}
	if req.Temperature != nil && *req.Temperature != 0 {
		return nil, badRequest("temperature must be 0: this server scores prompts and decodes greedily, got %g", *req.Temperature)
	}
	if req.Stream {
		return nil, badRequest("stream is not supported")
	}
	if req.N != nil && *req.N != 1 {
		return nil, badRequest("n must be 1, got %d", *req.N)
	}
	if req.Model != "" && req.Model != be.Name {
		return nil, &apiError{status: http.StatusNotFound, typ: TypeNotFound,
			msg: fmt.Sprintf("model %q is not served here; this server serves %q", req.Model, be.Name)}
	}
	plan := &completionPlan{maxTokens: 1, echo: req.Echo, logprobs: req.Logprobs}
	if req.MaxTokens != nil {
		if *req.MaxTokens != 0 && *req.MaxTokens != 1 {
			return nil, badRequest("max_tokens must be 0 or 1 (prefill serving), got %d", *req.MaxTokens)
		}
		plan.maxTokens = *req.MaxTokens
	}
	k, err := checkLogprobs(req.Logprobs)
	if err != nil {
		return nil, err
	}
	prompts, err := parsePrompt(req.Prompt)
	if err != nil {
		return nil, err
	}
	if n := prompts.len(); n > s.opts.MaxPrompts {
		return nil, tooLarge("%d prompts in one request; the limit is %d", n, s.opts.MaxPrompts)
	}
	texts := prompts.kind == promptText || prompts.kind == promptTexts
	addBOS, explicit := texts, req.AddBOS != nil
	if !texts {
		addBOS = s.opts.IDPromptsAddBOS
	}
	if explicit {
		addBOS = *req.AddBOS
	}
	for i := range prompts.len() {
		what := "prompt"
		if prompts.len() > 1 {
			what = fmt.Sprintf("prompt[%d]", i)
		}
		var ids []int
		skip, added := 0, 0
		if texts {
			if ids, err = be.encode(what, prompts.texts[i], addBOS); err != nil {
				return nil, err
			}
			if addBOS {
				added = 1
			}
		} else {
			ids = prompts.ids[i]
			bos := be.Tokenizer.BOS()
			if addBOS && len(ids) > 0 && (explicit || ids[0] != bos) {
				ids = append([]int{bos}, ids...)
				skip, added = 1, 1
			}
		}
		if err := be.checkIDs(what, ids); err != nil {
			return nil, err
		}
		plan.specs = append(plan.specs, seqSpec{ids: ids, key: key, topK: k})
		plan.skip = append(plan.skip, skip)
		plan.added = append(plan.added, added)
	}
	return plan, nil
}

func buildChoice(be *loaded, plan *completionPlan, i int, r jobResult) (CompletionChoice, error) {
	sp := plan.specs[i]
	n := len(sp.ids)
	if err := checkSeq(r.seq, n, sp.topK); err != nil {
		return CompletionChoice{}, err
	}
	ids := sp.ids
	if plan.maxTokens == 1 {
		ids = append(ids[:n:n], r.seq.Next[0].ID)
	}
	skip := plan.skip[i]
	pieces := tokenPieces(be.Tokenizer, ids)[skip:]
	offsets := make([]int, len(pieces))
	pos := 0
	for j, p := range pieces {
		offsets[j] = pos
		pos += len(p)
	}
	ch := CompletionChoice{Index: i, FinishReason: "length"}
	if plan.echo {
		ch.Text = strings.Join(pieces, "")
	} else {
		ch.Text = strings.Join(pieces[n-skip:], "")
	}
	if plan.logprobs == nil {
		return ch, nil
	}
	k := sp.topK
	lp := &CompletionLogprobs{Tokens: []string{}, TokenLogprobs: []*float32{}, TopLogprobs: []TopLogprobs{}, TextOffset: []int{}}
	// add appends position j of the sequence the engine saw. Tokens are
	// named by tokenName, like the keys of top_logprobs; text_offset is
	// where the token's text starts in the echoed text.
	add := func(j int, logprob *float32, top TopLogprobs) {
		lp.Tokens = append(lp.Tokens, tokenName(be.Tokenizer, ids[j]))
		lp.TokenLogprobs = append(lp.TokenLogprobs, logprob)
		lp.TopLogprobs = append(lp.TopLogprobs, top)
		lp.TextOffset = append(lp.TextOffset, offsets[j-skip])
	}
	if plan.echo {
		if skip == 0 {
			add(0, nil, nil)
		}
		for j := max(1, skip); j < n; j++ {
			add(j, fptr(r.seq.TokenLogprobs[j]), topList(be.Tokenizer, r.seq.TopK[j], k))
		}
	}
	if plan.maxTokens == 1 {
		add(n, fptr(r.seq.Next[0].Logprob), topList(be.Tokenizer, r.seq.Next, k))
	}
	ch.Logprobs = lp
	return ch, nil
}

// topList is a top_logprobs object of the k best candidates, best first
// (the engine's order). Two ids with the same name keep one key, the
// better one, so the object has no repeated key.
func topList(t Tokenizer, cands []tp.TokenLogprob, k int) TopLogprobs {
	out := make(TopLogprobs, 0, k)
next:
	for _, c := range cands[:k] {
		name := tokenName(t, c.ID)
		for _, e := range out {
			if e.Token == name {
				continue next
			}
		}
		out = append(out, TopLogprob{Token: name, Logprob: c.Logprob})
	}
	return out
}

// tokenPieces returns the text each token contributes to the decoded
// sequence: the difference between decoding a token together with its
// predecessor and decoding the predecessor alone, so that pieces join into
// the decoded text (leading-space and byte-fallback rules included). When
// that difference is not a suffix, the token's vocabulary string is used.
func tokenPieces(t Tokenizer, ids []int) []string {
	out := make([]string, len(ids))
	for i := range ids {
		if i == 0 {
			out[i] = t.Decode(ids[:1])
			continue
		}
		prev := t.Decode(ids[i-1 : i])
		both := t.Decode(ids[i-1 : i+1])
		if strings.HasPrefix(both, prev) {
			out[i] = both[len(prev):]
		} else {
			out[i] = t.Token(ids[i])
		}
	}
	return out
}
