package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/server"
	"github.com/equarx/equarx/tp"
)

// Duration is a time.Duration written as a Go duration string ("30s") in
// the config file.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string such as "250ms" or "30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Config is everything cmd/serve can be told, from the config file
// (--config, JSON, configs/serve/default.json documents every field) and
// from flags, which override the file.
type Config struct {
	Addr      string `json:"addr"`      // listen address; port 0 picks a free port (logged)
	Model     string `json:"model"`     // llama2.c .bin file or Hugging Face directory; "" = built-in stories260K
	Tokenizer string `json:"tokenizer"` // tokenizer file or directory; "" = the model's own
	ModelName string `json:"model_name"`
	// WeightsDType holds the weight matrices as "f32" or "bf16"; "" = as
	// stored (bf16 checkpoints bf16, the rest f32).
	WeightsDType string `json:"weights_dtype"`
	// MaxMemory is the most this process may need (weights, a batch in
	// flight, runtime), e.g. "8GiB" or "500MB"; "" = the available memory
	// less a margin. A model that needs more is refused before loading.
	MaxMemory string `json:"max_memory"`

	TP        int    `json:"tp"`
	Topology  string `json:"topology"` // "" = ring:<tp>
	TPU       string `json:"tpu"`
	AllReduce string `json:"allreduce"`  // default codec of requests that name none
	BlockSize int    `json:"block_size"` // default quantization block size; 0 = codec default
	// FallbackElems: quantized (int8, fp8, int6, int4) reductions shorter
	// than this travel as bf16;
	// 0 = the cost model's crossover, negative = never fall back.
	FallbackElems int `json:"fallback_elems"`
	// Algorithm is the AllReduce schedule: auto, ring, biring, torus2d,
	// twoshot or oneshot ("" = auto).
	Algorithm string `json:"algorithm"`
	// AllReduceTimeout bounds one AllReduce: a device that stops answering
	// fails its batch after this long. 0 = the collective's default (30s).
	AllReduceTimeout Duration `json:"allreduce_timeout"`
	// BatchInvariant makes every answer bitwise independent of the other
	// sequences of its batch (batch-invariant AllReduce layout, algorithm
	// and fallback decided at the batch token budget).
	BatchInvariant bool `json:"batch_invariant"`
	// AllReducePolicies is a JSON file of named reduction policies
	// (per layer and site codecs) that requests pick by name.
	AllReducePolicies string                `json:"allreduce_policies"`
	Policies          map[string]*tp.Policy `json:"-"` // read from AllReducePolicies by validate

	BatchTokenBudget int      `json:"batch_token_budget"`
	MaxBatchSize     int      `json:"max_batch_size"` // 1 = no batching
	BatchWait        Duration `json:"batch_wait"`
	QueueLimit       int      `json:"queue_limit"`
	RequestTimeout   Duration `json:"request_timeout"`
	MaxBodyBytes     int64    `json:"max_body_bytes"`
	MaxPrompts       int      `json:"max_prompts"`
	IDPromptsAddBOS  bool     `json:"id_prompts_add_bos"` // /v1/completions: prepend BOS to token-id prompts

	ReadTimeout       Duration `json:"read_timeout"`
	ReadHeaderTimeout Duration `json:"read_header_timeout"`
	WriteTimeout      Duration `json:"write_timeout"`
	IdleTimeout       Duration `json:"idle_timeout"`
	ShutdownTimeout   Duration `json:"shutdown_timeout"`

	LogLevel  string `json:"log_level"`  // debug | info | warn | error
	LogFormat string `json:"log_format"` // text | json
	AccessLog bool   `json:"access_log"` // one info line per request

	// Dist places the process in a multi-process group (cmd/serve/dist.go).
	Dist DistConfig `json:"distributed"`
}

// defaultConfig is the one place the serving defaults are written down.
func defaultConfig() Config {
	o := server.DefaultOptions()
	return Config{
		Addr:              "127.0.0.1:8080",
		TP:                4,
		Topology:          "", // ring:<tp>
		TPU:               "v5e",
		AllReduce:         string(o.DefaultCodec),
		BlockSize:         o.DefaultBlockSize,
		BatchTokenBudget:  o.BatchTokenBudget,
		MaxBatchSize:      o.MaxBatchSize,
		BatchWait:         Duration(o.BatchWait),
		QueueLimit:        o.QueueLimit,
		RequestTimeout:    Duration(o.RequestTimeout),
		MaxBodyBytes:      o.MaxBodyBytes,
		MaxPrompts:        o.MaxPrompts,
		ReadTimeout:       Duration(30 * time.Second),
		ReadHeaderTimeout: Duration(10 * time.Second),
		WriteTimeout:      Duration(60 * time.Second),
		IdleTimeout:       Duration(120 * time.Second),
		ShutdownTimeout:   Duration(30 * time.Second),
		LogLevel:          "info",
		LogFormat:         "text",
		Dist:              defaultDist(),
		AccessLog:         o.AccessLog,
		// On wherever the matmuls are row-count invariant (the default
		// build; not with the openblas tag).
		BatchInvariant: model.RowInvariant,
	}
}

// durationFlag binds a Duration to a flag.
type durationFlag struct{ d *Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return time.Duration(*f.d).String()
}

func (f durationFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*f.d = Duration(v)
	return nil
}

// bindFlags defines every flag on fs, writing into c; c's current values are
// the flags' defaults.
func bindFlags(fs *flag.FlagSet, c *Config, configPath *string, noBatching, version *bool) {
	fs.BoolVar(version, "version", false, "print the version, commit, Go version, BLAS and CPU features, then exit")
	fs.StringVar(configPath, "config", "", "JSON config file (see configs/serve/default.json); flags override it")
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (port 0 picks a free port; the bound address is logged)")
	fs.StringVar(&c.Model, "model", c.Model, "llama2.c .bin checkpoint or Hugging Face safetensors directory (empty = built-in stories260K)")
	fs.StringVar(&c.Tokenizer, "tokenizer", c.Tokenizer, "tokenizer file or directory (empty = the model's own)")
	fs.StringVar(&c.ModelName, "model-name", c.ModelName, "model name in responses (empty = derived from --model)")
	fs.StringVar(&c.WeightsDType, "weights-dtype", c.WeightsDType, "hold the weight matrices as f32 or bf16 (empty = as stored: bf16 checkpoints bf16, llama2.c files and synthetic weights f32)")
	fs.StringVar(&c.MaxMemory, "max-memory", c.MaxMemory, "refuse to start when the model needs more than this (e.g. 8GiB, 500MB; empty = available memory less a margin)")
	fs.IntVar(&c.TP, "tp", c.TP, "tensor-parallel degree (number of emulated devices)")
	fs.StringVar(&c.Topology, "topology", c.Topology, "device topology, e.g. ring:4 or torus:2x2 (empty = ring:<tp>)")
	fs.StringVar(&c.TPU, "tpu", c.TPU, "TPU generation profile of the simulated clock")
	fs.StringVar(&c.AllReduce, "allreduce", c.AllReduce, "default AllReduce codec: int8, fp8, int6, int4, bf16 or f32 (requests may override)")
	fs.IntVar(&c.BlockSize, "block-size", c.BlockSize, "default quantization block size (0 = codec default)")
	fs.StringVar(&c.Algorithm, "algorithm", c.Algorithm, "AllReduce algorithm: auto, ring, biring, torus2d, twoshot or oneshot (empty = auto)")
	fs.IntVar(&c.FallbackElems, "fallback-elems", c.FallbackElems, "quantized (int8, fp8, int6, int4) reductions shorter than this travel as bf16 (0 = cost-model crossover, -1 = never)")
	fs.BoolVar(&c.BatchInvariant, "batch-invariant", c.BatchInvariant, "answers bitwise independent of batch neighbours (row-aligned quantization blocks, fixed summation order, plans fixed at --batch-tokens)")
	fs.StringVar(&c.AllReducePolicies, "allreduce-policies", c.AllReducePolicies, "JSON file of named reduction policies (per layer and site codecs) requests may pick with \"allreduce_policy\"")
	fs.IntVar(&c.BatchTokenBudget, "batch-tokens", c.BatchTokenBudget, "most prompt tokens packed into one engine call")
	fs.IntVar(&c.MaxBatchSize, "max-batch", c.MaxBatchSize, "most sequences in one engine call (1 = no batching)")
	fs.BoolVar(noBatching, "no-batching", false, "run every sequence in its own engine call (same as --max-batch 1)")
	fs.Var(durationFlag{&c.BatchWait}, "batch-wait", "how long a batch waits for more requests")
	fs.IntVar(&c.QueueLimit, "queue-limit", c.QueueLimit, "sequences waiting for the engine before requests get 429")
	fs.Var(durationFlag{&c.RequestTimeout}, "request-timeout", "queueing + engine time allowed per request")
	fs.Var(durationFlag{&c.AllReduceTimeout}, "allreduce-timeout", "time one AllReduce may take before its batch fails (0 = the collective's default, 30s)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", c.MaxBodyBytes, "largest request body")
	fs.IntVar(&c.MaxPrompts, "max-prompts", c.MaxPrompts, "most prompts in one /v1/completions request")
	fs.BoolVar(&c.IDPromptsAddBOS, "id-prompts-add-bos", c.IDPromptsAddBOS, "/v1/completions: prepend BOS to token-id prompts that lack it (lm-eval sends ids without BOS)")
	fs.Var(durationFlag{&c.ReadTimeout}, "read-timeout", "http.Server ReadTimeout")
	fs.Var(durationFlag{&c.ReadHeaderTimeout}, "read-header-timeout", "http.Server ReadHeaderTimeout")
	fs.Var(durationFlag{&c.WriteTimeout}, "write-timeout", "http.Server WriteTimeout (must exceed --request-timeout)")
	fs.Var(durationFlag{&c.IdleTimeout}, "idle-timeout", "http.Server IdleTimeout")
	fs.Var(durationFlag{&c.ShutdownTimeout}, "shutdown-timeout", "how long a graceful shutdown waits for requests in flight")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	fs.BoolVar(&c.AccessLog, "access-log", c.AccessLog, "log one info line per request (method, route, status, prompt tokens, codec, wall and simulated TPU seconds)")
	bindDistFlags(fs, &c.Dist)
}

// loadConfig resolves defaults, then the --config file, then the flags.
// A bad flag or value is a *usageError; --help and --version return
// flag.ErrHelp and errVersion after printing.
func loadConfig(args []string, stderr io.Writer) (Config, error) {
	// First pass: only to find --config (and --help, --version).
	probe := defaultConfig()
	var path string
	var nb, ver bool
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	bindFlags(fs, &probe, &path, &nb, &ver)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs, stderr)
			return Config{}, err
		}
		return Config{}, usagef("%v", err)
	}
	if ver {
		return Config{}, errVersion
	}
	cfg := defaultConfig()
	if path != "" {
		if err := readConfigFile(path, &cfg); err != nil {
			return Config{}, usagef("%v", err)
		}
	}
	// Second pass: flags override the file.
	fs = flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	bindFlags(fs, &cfg, &path, &nb, &ver)
	if err := fs.Parse(args); err != nil {
		return Config{}, usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return Config{}, usagef("unexpected arguments %q", fs.Args())
	}
	if nb {
		cfg.MaxBatchSize = 1
	}
	if err := cfg.validate(); err != nil {
		return Config{}, usagef("%v", err)
	}
	if err := cfg.Dist.resolve(os.Getenv, cfg.TP); err != nil {
		return Config{}, usagef("%v", err)
	}
	return cfg, nil
}

func readConfigFile(path string, c *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if dec.More() {
		return fmt.Errorf("config file %s: data after the JSON object", path)
	}
	return nil
}

func (c *Config) validate() error {
	if c.Addr == "" {
		return errors.New("addr is empty")
	}
	if c.TP < 1 {
		return fmt.Errorf("tp must be >= 1, got %d", c.TP)
	}
	if c.TPU == "" {
		return errors.New("tpu profile is empty")
	}
	if c.ReadTimeout <= 0 || c.ReadHeaderTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0 || c.ShutdownTimeout <= 0 {
		return errors.New("read, read-header, write, idle and shutdown timeouts must be positive")
	}
	if c.AllReduceTimeout < 0 {
		return fmt.Errorf("allreduce_timeout must not be negative, got %s", time.Duration(c.AllReduceTimeout))
	}
	if c.WriteTimeout <= c.RequestTimeout {
		return fmt.Errorf("write_timeout %s must exceed request_timeout %s, or answers are cut off",
			time.Duration(c.WriteTimeout), time.Duration(c.RequestTimeout))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log_format must be text or json, got %q", c.LogFormat)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if err := c.checkDType(); err != nil {
		return err
	}
	if c.MaxMemory != "" {
		if _, err := parseSize(c.MaxMemory); err != nil {
			return fmt.Errorf("--max-memory: %v", err)
		}
	}
	if c.AllReducePolicies != "" {
		ps, err := tp.LoadPolicies(c.AllReducePolicies)
		if err != nil {
			return fmt.Errorf("allreduce_policies %s: %w", c.AllReducePolicies, err)
		}
		c.Policies = map[string]*tp.Policy{}
		for _, p := range ps {
			c.Policies[p.Name] = p
		}
	}
	o := c.serverOptions(slog.Default())
	if err := o.Validate(); err != nil {
		return err
	}
	return c.checkMesh()
}

// serverOptions maps the config onto the server's options.
func (c *Config) serverOptions(logger *slog.Logger) server.Options {
	o := server.Options{
		DefaultCodec:     collective.CodecKind(c.AllReduce),
		DefaultBlockSize: c.BlockSize,
		BatchTokenBudget: c.BatchTokenBudget,
		MaxBatchSize:     c.MaxBatchSize,
		BatchWait:        time.Duration(c.BatchWait),
		QueueLimit:       c.QueueLimit,
		RequestTimeout:   time.Duration(c.RequestTimeout),
		MaxBodyBytes:     c.MaxBodyBytes,
		MaxPrompts:       c.MaxPrompts,
		IDPromptsAddBOS:  c.IDPromptsAddBOS,
		AccessLog:        c.AccessLog,
		Logger:           logger,
		Policies:         c.Policies,
	}
	return o
}
