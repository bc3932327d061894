package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxTopLogprobs is the largest accepted "logprobs" value.
const MaxTopLogprobs = 20

// PrefillRequest is the body of POST /v1/prefill. Exactly one of Prompt and
// Tokens is set.
type PrefillRequest struct {
	Prompt *string `json:"prompt,omitempty"`
	Tokens []int   `json:"tokens,omitempty"`
	// AddBOS prepends the BOS token; default true for a prompt, false for tokens.
	AddBOS    *bool  `json:"add_bos,omitempty"`
	AllReduce string `json:"allreduce,omitempty"`  // a registered codec: "int8" | "fp8" | "int6" | "int4" | "bf16" | "f32"; default: the server's
	BlockSize *int   `json:"block_size,omitempty"` // quantization block size; default: the server's
	Logprobs  *int   `json:"logprobs,omitempty"`   // top-K alternatives per position, 0..20; default 0
	// AllReducePolicy names a reduction policy the server was started with
	// (per layer and site codecs); it excludes allreduce and block_size.
	AllReducePolicy string `json:"allreduce_policy,omitempty"`
}

// TokenInfo is one token with its log-probability.
type TokenInfo struct {
	ID      int     `json:"id"`
	Token   string  `json:"token"`
	Logprob float32 `json:"logprob"`
}

// Usage counts tokens. PromptTokens is every token the model read: the
// tokens the client sent (its ids, or its text tokenized without special
// tokens) plus PromptTokensAdded, the BOS tokens the server prepended on
// its own (add_bos, the default for text prompts, or --id-prompts-add-bos
// for id prompts of /v1/completions).
type Usage struct {
	PromptTokens      int `json:"prompt_tokens"`
	CompletionTokens  int `json:"completion_tokens"`
	TotalTokens       int `json:"total_tokens"`
	PromptTokensAdded int `json:"prompt_tokens_added"`
}

// Timing describes the engine call the request rode in. With batching, one
// call serves several requests: the figures are the whole call's, and
// BatchSequences / BatchTokens say how much it carried.
type Timing struct {
	WallSeconds        float64 `json:"wall_seconds"`    // CPU wall clock of the engine call
	SimTPUSeconds      float64 `json:"sim_tpu_seconds"` // simulated TPU clock of the engine call
	SimAllReduceSecond float64 `json:"sim_tpu_allreduce_seconds"`
	AllReduceCalls     int     `json:"allreduce_calls"`
	// AllReduceCodec is the codec that actually travelled: a quantized codec
	// falls back to bf16 for reductions too short to gain from it, and
	// "bf16+int8" says both were used.
	AllReduceCodec     string `json:"allreduce_codec_used"`
	AllReduceWireBytes int64  `json:"allreduce_wire_bytes"`
	// AllReduceQuantRelErr is the relative RMS error of the final
	// quantization of the call's AllReduces (0 for f32 or one device).
	AllReduceQuantRelErr float64 `json:"allreduce_quant_rel_rms_error"`
	// AllReduceSites summarizes the codec every reduction site ran:
	// "int8" when all ran the same, else counts ("int8 x 10, int4 x 6").
	AllReduceSites string `json:"allreduce_sites,omitempty"`
	BatchSequences int    `json:"batch_sequences"`
	BatchTokens    int    `json:"batch_tokens"`
}

// PrefillResponse is the answer of POST /v1/prefill.
type PrefillResponse struct {
	Model           string `json:"model"`
	AllReduce       string `json:"allreduce"`
	AllReducePolicy string `json:"allreduce_policy,omitempty"`
	Tokens          []int  `json:"tokens"`
	// TokenLogprobs[i] = log p(tokens[i] | tokens[<i]); the first is null.
	TokenLogprobs []*float32 `json:"token_logprobs"`
	// TopLogprobs[i] is the top-K of the distribution predicting tokens[i];
	// the first is null. Omitted when logprobs is 0.
	TopLogprobs [][]TokenInfo `json:"top_logprobs,omitempty"`
	NextToken   TokenInfo     `json:"next_token"`
	Usage       Usage         `json:"usage"`
	Timing      Timing        `json:"timing"`
}

// CompletionRequest is the body of POST /v1/completions (the OpenAI fields
// that lm-evaluation-harness sends, plus the "allreduce" extension).
type CompletionRequest struct {
	Model       string          `json:"model,omitempty"`
	Prompt      json.RawMessage `json:"prompt"`
	MaxTokens   *int            `json:"max_tokens,omitempty"`  // 0 or 1; default 1
	Temperature *float64        `json:"temperature,omitempty"` // 0 only
	Logprobs    *int            `json:"logprobs,omitempty"`    // 0..20; null = no logprobs object
	Echo        bool            `json:"echo,omitempty"`
	N           *int            `json:"n,omitempty"` // 1 only
	Stream      bool            `json:"stream,omitempty"`
	Seed        *int64          `json:"seed,omitempty"` // accepted, irrelevant to greedy decoding
	Stop        json.RawMessage `json:"stop,omitempty"` // accepted; generation never exceeds one token
	TopP        *float64        `json:"top_p,omitempty"`
	User        string          `json:"user,omitempty"`
	AddBOS      *bool           `json:"add_bos,omitempty"` // default true for string prompts, false for ids
	AllReduce   string          `json:"allreduce,omitempty"`
	BlockSize   *int            `json:"block_size,omitempty"`
	// AllReducePolicy: as in PrefillRequest.
	AllReducePolicy string `json:"allreduce_policy,omitempty"`
}

// CompletionLogprobs follows the OpenAI completions logprobs object.
type CompletionLogprobs struct {
	Tokens        []string      `json:"tokens"`
	TokenLogprobs []*float32    `json:"token_logprobs"`
	TopLogprobs   []TopLogprobs `json:"top_logprobs"`
	TextOffset    []int         `json:"text_offset"`
}

// TopLogprob is one alternative of a top_logprobs object.
type TopLogprob struct {
	Token   string
	Logprob float32
}

// TopLogprobs is one position's top_logprobs object, best first. It is
// written as a JSON object whose keys keep that order (as OpenAI's and
// vLLM's servers write it), not in Go's sorted map-key order; nil is null.
type TopLogprobs []TopLogprob

// MarshalJSON writes the object in slice order.
func (t TopLogprobs) MarshalJSON() ([]byte, error) {
	if t == nil {
		return []byte("null"), nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	b.WriteByte('{')
	for i, e := range t {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := enc.Encode(e.Token); err != nil {
			return nil, err
		}
		b.Truncate(b.Len() - 1) // Encode's newline
		b.WriteByte(':')
		if err := enc.Encode(e.Logprob); err != nil {
			return nil, err
		}
		b.Truncate(b.Len() - 1)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads an object keeping its key order (and any repeated
// key).
func (t *TopLogprobs) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
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
	out := TopLogprobs{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		var v float32
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("top_logprobs[%v]: %w", kt, err)
		}
		out = append(out, TopLogprob{Token: kt.(string), Logprob: v})
	}
	*t = out
	return nil
}

// CompletionChoice is one prompt's answer.
type CompletionChoice struct {
	Index        int                 `json:"index"`
	Text         string              `json:"text"`
	Logprobs     *CompletionLogprobs `json:"logprobs"`
	FinishReason string              `json:"finish_reason"`
}

// CompletionResponse is the answer of POST /v1/completions.
type CompletionResponse struct {
	ID              string             `json:"id"`
	Object          string             `json:"object"`
	Created         int64              `json:"created"`
	Model           string             `json:"model"`
	AllReduce       string             `json:"allreduce"`
	AllReducePolicy string             `json:"allreduce_policy,omitempty"`
	Choices         []CompletionChoice `json:"choices"`
	Usage           Usage              `json:"usage"`
}

// TokenizeRequest is the body of POST /tokenize.
type TokenizeRequest struct {
	Model            string `json:"model,omitempty"`
	Prompt           string `json:"prompt"`
	AddSpecialTokens *bool  `json:"add_special_tokens,omitempty"` // prepend BOS; default true
}

// TokenizeResponse is the answer of POST /tokenize.
type TokenizeResponse struct {
	Tokens      []int    `json:"tokens"`
	TokenStrs   []string `json:"token_strs"`
	Count       int      `json:"count"`
	MaxModelLen int      `json:"max_model_len"`
}

// DetokenizeRequest is the body of POST /detokenize.
type DetokenizeRequest struct {
	Model  string `json:"model,omitempty"`
	Tokens []int  `json:"tokens"`
}

// DetokenizeResponse is the answer of POST /detokenize.
type DetokenizeResponse struct {
	Prompt string `json:"prompt"`
}

// TokenizerInfo is the answer of GET /tokenizer_info.
type TokenizerInfo struct {
	TokenizerClass string  `json:"tokenizer_class"`
	BOSToken       string  `json:"bos_token"`
	EOSToken       string  `json:"eos_token"`
	BOSTokenID     int     `json:"bos_token_id"`
	EOSTokenID     int     `json:"eos_token_id"`
	PadToken       *string `json:"pad_token"`
	AddBOSToken    bool    `json:"add_bos_token"`
	VocabSize      int     `json:"vocab_size"`
	ModelMaxLength int     `json:"model_max_length"`
	ChatTemplate   *string `json:"chat_template"`
}

// ModelList is the answer of GET /v1/models.
type ModelList struct {
	Object string      `json:"object"`
	Data   []ModelCard `json:"data"`
}

// ModelCard describes the served model.
type ModelCard struct {
	ID           string `json:"id"`
	Object       string `json:"object"`
	OwnedBy      string `json:"owned_by"`
	MaxModelLen  int    `json:"max_model_len"`
	VocabSize    int    `json:"vocab_size"`
	Arch         string `json:"arch"`
	DefaultCodec string `json:"allreduce"`
	TP           int    `json:"tp,omitempty"`
	Topology     string `json:"topology,omitempty"`
	TPU          string `json:"tpu,omitempty"`
}

// HealthResponse is the answer of GET /health.
type HealthResponse struct {
	Status string `json:"status"`
	Model  string `json:"model,omitempty"`
	Error  string `json:"error,omitempty"` // why the engine cannot serve now
}

// decodeJSON reads one JSON object from r into v, strictly: unknown fields,
// wrong types, trailing data and oversized bodies are errors with a message
// fit for the client.
func decodeJSON(r io.Reader, v any) error {
	body, err := io.ReadAll(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge("request body exceeds %d bytes", mbe.Limit)
		}
		return badRequest("reading request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("request body is empty; want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("%s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("malformed JSON: data after the top-level object")
	}
	return nil
}

func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return fmt.Sprintf("wrong JSON type: got %s, want %s", te.Value, te.Type)
		}
		return fmt.Sprintf("field %q: got JSON %s, want %s", field, te.Value, te.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of input"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON: " + err.Error()
}

// promptKind says which of the four OpenAI prompt shapes a request used.
type promptKind int

const (
	promptText promptKind = iota
	promptTexts
	promptIDs
	promptIDLists
)

// parsedPrompts is the prompt field of a completions request, normalised.
type parsedPrompts struct {
	kind  promptKind
	texts []string
	ids   [][]int
}

func (p parsedPrompts) len() int {
	if p.kind == promptText || p.kind == promptTexts {
		return len(p.texts)
	}
	return len(p.ids)
}

// parsePrompt accepts a string, [string], [ids] or [[ids]].
func parsePrompt(raw json.RawMessage) (parsedPrompts, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return parsedPrompts{}, badRequest("prompt is required")
	}
	strict := func(v any) error {
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(v); err != nil {
			return badRequest("prompt: %s", describeJSONError(err))
		}
		return nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := strict(&s); err != nil {
			return parsedPrompts{}, err
		}
		return parsedPrompts{kind: promptText, texts: []string{s}}, nil
	case '[':
		var elems []json.RawMessage
		if err := strict(&elems); err != nil {
			return parsedPrompts{}, err
		}
		if len(elems) == 0 {
			return parsedPrompts{}, badRequest("prompt is an empty list")
		}
		first := bytes.TrimSpace(elems[0])
		if len(first) == 0 {
			return parsedPrompts{}, badRequest("prompt: empty element")
		}
		switch first[0] {
		case '"':
			var ss []string
			if err := strict(&ss); err != nil {
				return parsedPrompts{}, badRequest("prompt: a list of strings must hold only strings")
			}
			return parsedPrompts{kind: promptTexts, texts: ss}, nil
		case '[':
			var ids [][]int
			if err := strict(&ids); err != nil {
				return parsedPrompts{}, badRequest("prompt: a list of token lists must hold only lists of integer ids")
			}
			return parsedPrompts{kind: promptIDLists, ids: ids}, nil
		default:
			var ids []int
			if err := strict(&ids); err != nil {
				return parsedPrompts{}, badRequest("prompt: a token list must hold only integer ids")
			}
			return parsedPrompts{kind: promptIDs, ids: [][]int{ids}}, nil
		}
	}
	return parsedPrompts{}, badRequest("prompt must be a string, a list of strings, a list of token ids or a list of token id lists")
}
