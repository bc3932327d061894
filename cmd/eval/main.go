// Command eval measures how the AllReduce codec affects model quality.
//
// Multiple choice (HellaSwag schema), every codec on the same items:
//
//	go run ./cmd/eval --tasks configs/eval/tinystories_mc.jsonl --allreduce f32,bf16,int8 --tp 4 --json out.json
//
// Perplexity on a corpus of stories separated by <|endoftext|> lines:
//
//	go run ./cmd/eval perplexity --corpus FILE --allreduce f32,bf16,int8 --tp 4 --json out.json
//
// Per-site sensitivity, an automatic per-site policy within an error
// budget, and the simulated price of policies on a larger model:
//
//	go run ./cmd/eval sensitivity --tasks FILE --codecs int8,int4 --tp 4 --limit 150 --json sens.json --plot sens.png
//	go run ./cmd/eval autopolicy --sensitivity sens.json --budget-kl 1e-3 --out policies.json
//	go run ./cmd/eval policy-table --policies policies.json --names bf16,int8,auto-0.001
//
// Building a multiple-choice set from such a corpus:
//
//	go run ./cmd/eval build-mc --corpus FILE --out FILE --seed N [--n N]
//
// With --server URL the items are scored by a running server over HTTP
// (/v1/completions with echo) instead of in process.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/equarx/equarx/evalharness"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/tp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "eval:", err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "build-mc":
			return buildMC(args[1:], stdout, stderr)
		case "perplexity":
			return perplexity(ctx, args[1:], stdout, stderr)
		case "sensitivity":
			return sensitivity(ctx, args[1:], stdout, stderr)
		case "autopolicy":
			return autopolicy(args[1:], stdout, stderr)
		case "policy-table":
			return policyTable(args[1:], stdout, stderr)
		case "mc":
			args = args[1:]
		}
	}
	return multipleChoice(ctx, args, stdout, stderr)
}

// common are the flags shared by the scoring commands.
type common struct {
	allreduce    string
	blockSizes   string
	pairs        string
	tp           int
	topology     string
	tpu          string
	server       string
	modelPath    string
	tokPath      string
	tokenBudget  int
	maxSeqs      int
	topK         int
	fallback     int
	jsonOut      string
	quiet        bool
	invariant    bool
	weightsDType string
	concurrency  int
	policyFile   string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.allreduce, "allreduce", "f32,bf16,int8", "comma-separated AllReduce codecs to compare: f32, bf16, int8, fp8, int6, int4")
	fs.StringVar(&c.blockSizes, "block-size", "", "quantization block size(s) for the quantized codecs (int8, fp8, int6, int4), comma-separated (e.g. 32,64,256); empty = codec default")
	fs.StringVar(&c.pairs, "pairs", "", "comparisons A_vs_B, comma-separated; empty = int8_vs_bf16, int8_vs_f32, bf16_vs_f32, int4_vs_bf16 where present")
	fs.IntVar(&c.tp, "tp", 4, "tensor-parallel degree (in-process scorer)")
	fs.StringVar(&c.topology, "topology", "", `TPU topology, e.g. "ring:4" or "torus:2x2"; empty = ring of --tp devices`)
	fs.StringVar(&c.tpu, "tpu", "v5e", "TPU generation profile for the simulated clock")
	fs.StringVar(&c.server, "server", "", "score through a running server at this base URL instead of in process")
	fs.StringVar(&c.modelPath, "model", "", "llama2.c checkpoint; empty = the embedded stories260K")
	fs.StringVar(&c.weightsDType, "weights-dtype", "f32", "in-process scorer: hold the weight matrices as f32 or bf16 (bf16 rounds each weight to nearest even)")
	fs.StringVar(&c.tokPath, "tokenizer", "", "llama2.c tokenizer file; empty = the embedded tok512")
	fs.IntVar(&c.tokenBudget, "token-budget", 2048, "tokens per prefill call (per HTTP request with --server)")
	fs.IntVar(&c.maxSeqs, "max-batch", 32, "sequences per prefill call (per HTTP request with --server; keep within the server's batch and prompt limits)")
	fs.IntVar(&c.topK, "topk", 20, "top-K alternatives per position for the top-K KL (1..20)")
	fs.IntVar(&c.fallback, "fallback-elems", -1, "AllReduce buffers smaller than this use bf16 instead of a quantized codec; -1 = never (every reduction uses the codec under test), 0 = the collective's default")
	fs.StringVar(&c.jsonOut, "json", "", "write the JSON report to this file")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress bar")
	fs.BoolVar(&c.invariant, "batch-invariant", model.RowInvariant, "in-process scorer: batch-invariant reductions (scores independent of --max-batch and --concurrency)")
	fs.IntVar(&c.concurrency, "concurrency", 1, "prefill calls (HTTP requests with --server) in flight at once")
	fs.StringVar(&c.policyFile, "allreduce-policies", "", "policy file whose policies --allreduce may name as policy:NAME (with --server, the server must have the same policies)")
}

func (c *common) setup(ctx context.Context, stderr io.Writer) (evalharness.Backend, evalharness.Encoder, []evalharness.Codec, []evalharness.Pair, evalharness.RunInfo, func(), error) {
	fail := func(err error) (evalharness.Backend, evalharness.Encoder, []evalharness.Codec, []evalharness.Pair, evalharness.RunInfo, func(), error) {
		return nil, nil, nil, nil, evalharness.RunInfo{}, nil, err
	}
	bs, err := evalharness.ParseInts(c.blockSizes)
	if err != nil {
		return fail(fmt.Errorf("--block-size: %w", err))
	}
	var policies map[string]*tp.Policy
	if c.policyFile != "" {
		ps, err := tp.LoadPolicies(c.policyFile)
		if err != nil {
			return fail(fmt.Errorf("--allreduce-policies: %w", err))
		}
		policies = map[string]*tp.Policy{}
		for _, p := range ps {
			policies[p.Name] = p
		}
	}
	codecs, err := evalharness.ParseCodecsWith(c.allreduce, bs, policies)
	if err != nil {
		return fail(fmt.Errorf("--allreduce: %w", err))
	}
	pairs := evalharness.DefaultPairs(codecs)
	if c.pairs != "" {
		if pairs, err = evalharness.ParsePairs(c.pairs, codecs); err != nil {
			return fail(fmt.Errorf("--pairs: %w", err))
		}
	}
	if c.topK < 1 || c.topK > 20 {
		return fail(fmt.Errorf("--topk %d out of 1..20", c.topK))
	}
	if c.tokenBudget < 1 {
		return fail(fmt.Errorf("--token-budget %d must be positive", c.tokenBudget))
	}
	if c.maxSeqs < 1 {
		return fail(fmt.Errorf("--max-batch %d must be positive", c.maxSeqs))
	}
	if c.concurrency < 1 || c.concurrency > 256 {
		return fail(fmt.Errorf("--concurrency %d out of 1..256", c.concurrency))
	}
	tok, tokName, err := loadTokenizer(c.tokPath)
	if err != nil {
		return fail(err)
	}
	info := evalharness.RunInfo{Tokenizer: tokName, BlockSizes: bs, TokenBudget: c.tokenBudget, MaxSeqs: c.maxSeqs, TopK: c.topK}
	if info.BlockSizes == nil {
		info.BlockSizes = []int{}
	}
	if c.server != "" {
		be, mesh, err := newHTTPBackend(ctx, c.server, tok)
		if err != nil {
			return fail(err)
		}
		info.Model, info.Scorer, info.Server = be.Model, "http", c.server
		info.TP, info.Topology, info.TPU = mesh.TP, mesh.Topology, mesh.TPU
		return be, tok, codecs, pairs, info, func() {}, nil
	}
	be, closeFn, err := newEngineBackend(c, tok)
	if err != nil {
		return fail(err)
	}
	info.Model, info.Scorer, info.TP, info.Topology, info.TPU = be.Model, "engine", c.tp, c.topology, c.tpu
	return be, tok, codecs, pairs, info, closeFn, nil
}

func (c *common) progress(stderr io.Writer) (func(done, total int64), func()) {
	if c.quiet || !isTerminal(stderr) {
		return nil, func() {}
	}
	p := newProgressBar(stderr, "tokens")
	return p.update, p.finish
}

func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create report directory: %w", err)
		}
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func multipleChoice(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	tasks := fs.String("tasks", "configs/eval/tinystories_mc.jsonl", "task file (HellaSwag-schema JSONL)")
	limit := fs.Int("limit", 0, "score only the first N items (after --skip); 0 = all")
	skip := fs.Int("skip", 0, "skip the first N items (e.g. those a policy was calibrated on)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *limit < 0 {
		return fmt.Errorf("--limit %d must not be negative", *limit)
	}
	start := time.Now()
	task, err := evalharness.LoadTask(*tasks)
	if err != nil {
		return err
	}
	if *skip < 0 {
		return fmt.Errorf("--skip %d must not be negative", *skip)
	}
	if task.Docs, err = window(task.Docs, *skip, *limit); err != nil {
		return err
	}
	be, enc, codecs, pairs, info, closeFn, err := c.setup(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeFn()
	upd, fin := c.progress(stderr)
	ev, err := evalharness.EvaluateMC(ctx, be, enc, task.Docs, evalharness.RunOptions{
		Codecs: codecs, Pairs: pairs, TokenBudget: c.tokenBudget, MaxSeqs: c.maxSeqs, TopK: c.topK, Progress: upd, Concurrency: c.concurrency,
	})
	fin()
	if err != nil {
		return err
	}
	info.WallSeconds = time.Since(start).Seconds()
	rep := evalharness.NewMCReport(info, task, ev)
	if err := rep.WriteMarkdown(stdout); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return writeJSON(c.jsonOut, rep)
}

func perplexity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval perplexity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	corpus := fs.String("corpus", "", "text corpus, stories separated by <|endoftext|> lines (required)")
	limit := fs.Int("limit", 0, "score only the first N stories (after --skip); 0 = all")
	skip := fs.Int("skip", 0, "skip the first N stories")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *corpus == "" {
		return errors.New("perplexity: --corpus is required")
	}
	if *limit < 0 {
		return fmt.Errorf("--limit %d must not be negative", *limit)
	}
	start := time.Now()
	stories, err := evalharness.LoadStories(*corpus)
	if err != nil {
		return err
	}
	if *skip < 0 {
		return fmt.Errorf("--skip %d must not be negative", *skip)
	}
	if stories, err = window(stories, *skip, *limit); err != nil {
		return err
	}
	be, enc, codecs, pairs, info, closeFn, err := c.setup(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeFn()
	upd, fin := c.progress(stderr)
	ev, err := evalharness.EvaluatePerplexity(ctx, be, enc, stories, evalharness.RunOptions{
		Codecs: codecs, Pairs: pairs, TokenBudget: c.tokenBudget, MaxSeqs: c.maxSeqs, TopK: c.topK, Progress: upd, Concurrency: c.concurrency,
	})
	fin()
	if err != nil {
		return err
	}
	info.WallSeconds = time.Since(start).Seconds()
	rep := evalharness.NewPPLReport(info, *corpus, ev)
	if err := rep.WriteMarkdown(stdout); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return writeJSON(c.jsonOut, rep)
}

func buildMC(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval build-mc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	corpus := fs.String("corpus", "", "stories separated by <|endoftext|> lines (required)")
	out := fs.String("out", "", "output JSONL file (required)")
	seed := fs.Uint64("seed", 0, "random seed (required to be given explicitly)")
	n := fs.Int("n", 0, "maximum number of items; 0 = one per usable story")
	split := fs.String("split", "val", `value of every item's "split" field`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	seeded := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "seed" {
			seeded = true
		}
	})
	if *corpus == "" || *out == "" || !seeded {
		return errors.New("build-mc: --corpus, --out and --seed are required")
	}
	stories, err := evalharness.LoadStories(*corpus)
	if err != nil {
		return err
	}
	items, err := evalharness.BuildMC(stories, evalharness.BuildOptions{
		Seed: *seed, N: *n, Source: filepath.Base(*corpus), Split: *split,
	})
	if err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return fmt.Errorf("create output: %w", err)
	}
	if err := evalharness.WriteItems(f, items); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close output: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %d items from %d stories to %s\n", len(items), len(stories), *out)
	return nil
}

// serverMesh is what the server reports of the mesh it runs on.
type serverMesh struct {
	TP       int    `json:"tp"`
	Topology string `json:"topology"`
	TPU      string `json:"tpu"`
}

// newHTTPBackend probes the server (GET /tokenizer_info) for the context
// window, checks that its tokenizer matches the local one, and reads the
// model and its mesh from GET /v1/models.
func newHTTPBackend(ctx context.Context, base string, tok localTokenizer) (*evalharness.HTTPBackend, serverMesh, error) {
	base = strings.TrimRight(base, "/")
	client := &http.Client{Timeout: 10 * time.Minute}
	var ti struct {
		BOSTokenID     int `json:"bos_token_id"`
		VocabSize      int `json:"vocab_size"`
		ModelMaxLength int `json:"model_max_length"`
	}
	if err := getJSON(ctx, client, base+"/tokenizer_info", &ti); err != nil {
		return nil, serverMesh{}, err
	}
	if ti.VocabSize != tok.VocabSize() || ti.BOSTokenID != tok.BOS() {
		return nil, serverMesh{}, fmt.Errorf("server tokenizer (vocab %d, BOS %d) differs from the local one (vocab %d, BOS %d)", ti.VocabSize, ti.BOSTokenID, tok.VocabSize(), tok.BOS())
	}
	if ti.ModelMaxLength < 2 {
		return nil, serverMesh{}, fmt.Errorf("server reports model_max_length %d", ti.ModelMaxLength)
	}
	var models struct {
		Data []struct {
			ID string `json:"id"`
			serverMesh
		} `json:"data"`
	}
	if err := getJSON(ctx, client, base+"/v1/models", &models); err != nil {
		return nil, serverMesh{}, err
	}
	if len(models.Data) != 1 {
		return nil, serverMesh{}, fmt.Errorf("server lists %d models, want 1", len(models.Data))
	}
	if models.Data[0].TP < 1 {
		return nil, serverMesh{}, fmt.Errorf("server's /v1/models reports no tp for %s", models.Data[0].ID)
	}
	return &evalharness.HTTPBackend{URL: base, Model: models.Data[0].ID, Window: ti.ModelMaxLength, Client: client}, models.Data[0].serverMesh, nil
}

func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: decode: %w", url, err)
	}
	return nil
}
