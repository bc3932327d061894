package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/tokenizer"
	"github.com/equarx/equarx/tp"
)

// Engine is what the server needs from a prefill engine (*tp.Engine
// satisfies it). Prefill must be safe to call from one goroutine at a time;
// the server never calls it concurrently.
type Engine interface {
	Prefill(ctx context.Context, seqs [][]int, opts tp.PrefillOptions) (*tp.PrefillResult, error)
	Config() model.Config
}

// Tokenizer is what the server needs from a tokenizer.
type Tokenizer interface {
	Encode(text string, addBOS bool) ([]int, error)
	Decode(ids []int) string
	Token(id int) string
	VocabSize() int
	BOS() int
	EOS() int
}

// Backend is a loaded model: its engine, its tokenizer and the name served
// in responses and by /v1/models.
type Backend struct {
	Name      string
	Engine    Engine
	Tokenizer Tokenizer
	// Classify maps engine errors caused by the request to 400/413; nil means
	// every engine error is the engine's own (500).
	Classify InputErrorClassifier
	// TP, Topology and TPU describe the mesh the engine runs on; /v1/models
	// and /version report them (zero values are left out). A zero TP is
	// taken from the engine when it has a TP() method (*tp.Engine does).
	TP       int
	Topology string
	TPU      string
}

// Options are the serving limits. Every field must be set: Validate reports
// what is missing instead of filling in a default (DefaultOptions gives the
// documented defaults).
type Options struct {
	DefaultCodec     collective.CodecKind // codec of requests that name none
	DefaultBlockSize int                  // quantization block size of requests that name none; 0 = codec default
	BatchTokenBudget int                  // most prompt tokens packed into one engine call
	MaxBatchSize     int                  // most sequences in one engine call; 1 disables batching
	BatchWait        time.Duration        // how long the batcher waits for company after the first request
	QueueLimit       int                  // sequences waiting for the engine; beyond it requests get 429
	RequestTimeout   time.Duration        // queueing + engine time of one request
	MaxBodyBytes     int64                // request body limit; larger bodies get 413
	MaxPrompts       int                  // most prompts in one /v1/completions request
	// IDPromptsAddBOS makes /v1/completions prepend BOS to token-id prompts
	// that do not start with it (lm-eval sends ids without BOS; models
	// trained with BOS score better with it). A request's "add_bos" wins.
	IDPromptsAddBOS bool
	// AccessLog writes one info line per request to Logger (method, route,
	// status, prompt tokens, codec used, wall and simulated TPU seconds).
	AccessLog bool
	Logger    *slog.Logger
	// Policies are the named reduction policies requests may pick with
	// "allreduce_policy"; each must be valid for the served model.
	Policies map[string]*tp.Policy
}

// DefaultOptions returns the documented serving defaults.
func DefaultOptions() Options {
	return Options{
		DefaultCodec:     collective.CodecInt8,
		DefaultBlockSize: 0,
		BatchTokenBudget: 2048,
		MaxBatchSize:     32,
		BatchWait:        2 * time.Millisecond,
		QueueLimit:       256,
		RequestTimeout:   30 * time.Second,
		MaxBodyBytes:     1 << 20,
		MaxPrompts:       64,
		AccessLog:        true,
		Logger:           slog.Default(),
	}
}

// ErrInvalidOptions is wrapped by every error Options.Validate returns.
var ErrInvalidOptions = errors.New("invalid server options")

// Validate checks that every limit is set and sensible.
func (o *Options) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidOptions, fmt.Sprintf(format, a...))
	}
	if _, err := parseCodec(string(o.DefaultCodec)); err != nil {
		return bad("default codec: %v", err)
	}
	if o.DefaultBlockSize < 0 {
		return bad("default block size must be >= 0, got %d", o.DefaultBlockSize)
	}
	ints := []struct {
		name string
		v    int64
	}{
		{"batch token budget", int64(o.BatchTokenBudget)},
		{"max batch size", int64(o.MaxBatchSize)},
		{"queue limit", int64(o.QueueLimit)},
		{"max body bytes", o.MaxBodyBytes},
		{"max prompts", int64(o.MaxPrompts)},
	}
	for _, p := range ints {
		if p.v <= 0 {
			return bad("%s must be positive, got %d", p.name, p.v)
		}
	}
	if o.BatchWait < 0 {
		return bad("batch wait must be >= 0, got %s", o.BatchWait)
	}
	if o.RequestTimeout <= 0 {
		return bad("request timeout must be positive, got %s", o.RequestTimeout)
	}
	if o.Logger == nil {
		return bad("logger is nil")
	}
	for name, p := range o.Policies {
		if p == nil || p.Name != name {
			return bad("policy %q is nil or named otherwise", name)
		}
	}
	return nil
}

// policyNames lists the server's policies for error messages.
func (s *Server) policyNames() string {
	if len(s.opts.Policies) == 0 {
		return "none"
	}
	names := make([]string, 0, len(s.opts.Policies))
	for n := range s.opts.Policies {
		names = append(names, strconv.Quote(n))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// parseCodec accepts the wire names of the AllReduce codecs.
func parseCodec(s string) (collective.CodecKind, error) {
	return collective.ParseCodec(s)
}

// tokenName is how every route names one token: tokenizer.Name's rule.
func tokenName(t Tokenizer, id int) string { return tokenizer.Name(t, id) }
