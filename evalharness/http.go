package evalharness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// HTTPBackend scores through a running server's OpenAI-style
// /v1/completions route (echo, max_tokens 0, logprobs K), the request shape
// lm-evaluation-harness's local-completions model sends, with the "allreduce"
// and "block_size" extension fields selecting the codec per request. Servers
// return top-K alternatives, not full rows, so only the top-K KL is
// available over HTTP.
type HTTPBackend struct {
	URL    string // server base URL, e.g. http://127.0.0.1:8080
	Model  string
	Window int
	Client *http.Client // nil = http.DefaultClient
}

var _ Backend = (*HTTPBackend)(nil)

// Name implements Backend.
func (h *HTTPBackend) Name() string { return h.Model }

// MaxSeqLen implements Backend.
func (h *HTTPBackend) MaxSeqLen() int { return h.Window }

// FullRows implements Backend: the wire format carries top-K lists only.
func (h *HTTPBackend) FullRows() bool { return false }

type completionRequest struct {
	Model       string  `json:"model,omitempty"`
	Prompt      [][]int `json:"prompt"`
	MaxTokens   int     `json:"max_tokens"`
	Logprobs    int     `json:"logprobs"`
	Echo        bool    `json:"echo"`
	Temperature float64 `json:"temperature"`
	AllReduce   string  `json:"allreduce,omitempty"`
	BlockSize   int     `json:"block_size,omitempty"`
	Policy      string  `json:"allreduce_policy,omitempty"`
}

type completionLogprobs struct {
	Tokens        []string    `json:"tokens"`
	TokenLogprobs []*float64  `json:"token_logprobs"`
	TopLogprobs   []topObject `json:"top_logprobs"`
}

// topObject is one top_logprobs object read with its duplicate keys kept:
// a server that renders several ids as the same text may write that key
// more than once, and a map would keep whichever came last.
type topObject []TopEntry

func (t *topObject) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		*t = nil
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("top_logprobs entry is %v, want an object", tok)
	}
	out := topObject{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := kt.(string)
		if !ok {
			return fmt.Errorf("top_logprobs key %v is not a string", kt)
		}
		var v float64
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("top_logprobs[%q]: %w", key, err)
		}
		out = append(out, TopEntry{Token: key, Logprob: float32(v)})
	}
	*t = out
	return nil
}

type completionChoice struct {
	Index    int                 `json:"index"`
	Logprobs *completionLogprobs `json:"logprobs"`
}

type completionResponse struct {
	Choices []completionChoice `json:"choices"`
}

// Prefill implements Backend with one POST per batch.
func (h *HTTPBackend) Prefill(ctx context.Context, spec PrefillSpec, seqs [][]int) ([]SeqOutput, error) {
	creq := completionRequest{
		Model: h.Model, Prompt: seqs, MaxTokens: 0, Logprobs: spec.TopK, Echo: true,
		AllReduce: string(spec.Codec.Kind), BlockSize: spec.Codec.BlockSize,
	}
	if p := spec.Codec.Policy; p != nil {
		creq.AllReduce, creq.BlockSize, creq.Policy = "", 0, p.Name
	}
	body, err := json.Marshal(creq)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	url := strings.TrimRight(h.URL, "/") + "/v1/completions"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST %s: status %d: %s", url, resp.StatusCode, truncate(string(raw), 300))
	}
	var cr completionResponse
	if err := json.Unmarshal(raw, &cr); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if len(cr.Choices) != len(seqs) {
		return nil, fmt.Errorf("server returned %d choices for %d prompts", len(cr.Choices), len(seqs))
	}
	out := make([]SeqOutput, len(seqs))
	filled := make([]bool, len(seqs))
	for _, ch := range cr.Choices {
		j := ch.Index
		if j < 0 || j >= len(seqs) || filled[j] {
			return nil, fmt.Errorf("server returned bad or repeated choice index %d", j)
		}
		filled[j] = true
		from := 1
		if spec.TopFrom != nil {
			from = max(1, spec.TopFrom[j])
		}
		o, err := h.convert(ch.Logprobs, len(seqs[j]), from)
		if err != nil {
			return nil, fmt.Errorf("choice %d: %w", j, err)
		}
		out[j] = o
	}
	return out, nil
}

func (h *HTTPBackend) convert(lp *completionLogprobs, n, topFrom int) (SeqOutput, error) {
	if lp == nil {
		return SeqOutput{}, fmt.Errorf("no logprobs in response")
	}
	if len(lp.TokenLogprobs) != n || len(lp.TopLogprobs) != n {
		return SeqOutput{}, fmt.Errorf("%d token logprobs and %d top lists for %d tokens", len(lp.TokenLogprobs), len(lp.TopLogprobs), n)
	}
	o := SeqOutput{TokenLogprobs: make([]float32, n), Top: make([][]TopEntry, n)}
	for i := 1; i < n; i++ {
		if lp.TokenLogprobs[i] == nil {
			return SeqOutput{}, fmt.Errorf("token_logprobs[%d] is null", i)
		}
		o.TokenLogprobs[i] = float32(*lp.TokenLogprobs[i])
		if i < topFrom {
			continue
		}
		best := map[string]float32{}
		for _, e := range lp.TopLogprobs[i] {
			if old, ok := best[e.Token]; !ok || e.Logprob > old {
				best[e.Token] = e.Logprob
			}
		}
		tk := make([]TopEntry, 0, len(best))
		for s, v := range best {
			tk = append(tk, TopEntry{Token: s, Logprob: v})
		}
		sortTop(tk)
		o.Top[i] = tk
	}
	return o, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
