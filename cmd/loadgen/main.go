// Command loadgen drives a running equarx server with concurrent clients on
// loopback and reports throughput and latency. It is bounded both in time
// (--duration) and in request count (--requests).
//
//	go run ./cmd/loadgen --url http://127.0.0.1:8080 --clients 64 --duration 20s --requests 20000
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// builtinPrompts are story openings in the style the default model was
// trained on, of varied length.
var builtinPrompts = []string{
	"Once upon a time",
	"Once upon a time, there was a little girl named Lily.",
	"One day, a big dog went to the park.",
	"Tom and his mom went to the store to buy some food. Tom saw a red ball and",
	"The sun was shining and the birds were singing.",
	"Sara had a small cat. The cat liked to play with yarn. One day, the cat",
	"Once upon a time, there was a boy named Tim. Tim loved to play with his toy car. Every day he",
	"The little bird could not fly.",
	"Mia wanted to bake a cake for her friend. She took out the flour, the eggs and the sugar, and",
	"There was a big tree in the garden.",
	"Ben was sad because it was raining and he could not go outside to play with his friends.",
	"Lily and Max found a shiny key under the bed.",
	"Once upon a time, in a small house near the woods, lived an old man and his dog. The dog was very",
	"The frog jumped into the pond.",
	"Anna liked to draw pictures of the sea. One day she drew a big fish with a happy face, and then",
	"It was a cold winter day.",
}

type config struct {
	url       string
	route     string
	clients   int
	duration  time.Duration
	requests  int
	allreduce string
	logprobs  int
	timeout   time.Duration
	prompts   string
	jsonOut   bool
	// Soak mix: fractions of requests that are invalid, or that the client
	// abandons after a random delay of up to cancelAfter.
	invalidFrac float64
	cancelFrac  float64
	cancelAfter time.Duration
	seed        uint64
}

// invalidBodies are requests the server must refuse with a 4xx.
var invalidBodies = []string{
	`{"prompt":`,
	`{"prompt":"Once","allreduce":"fp16"}`,
	`{"tokens":[1,2,99999]}`,
	`{"prompt":"Once","logprobs":99}`,
	`{"prompt":""}`,
	`{"prompt":"Once","unknown_field":1}`,
	`{"tokens":"not a list"}`,
	`[1,2,3]`,
}

type result struct {
	status    int    // 0 for a transport error
	errKind   string // transport error class
	invalid   bool   // the request was meant to be refused
	cancelled bool   // the client abandoned the request on purpose
	latency   time.Duration
	tokens    int
}

// Report is the summary printed at the end (also as JSON with --json).
type Report struct {
	URL            string         `json:"url"`
	Route          string         `json:"route"`
	Clients        int            `json:"clients"`
	Sent           int            `json:"sent"`
	ElapsedSeconds float64        `json:"elapsed_seconds"`
	OK             int            `json:"ok"`
	ByStatus       map[string]int `json:"by_status"`
	Errors         int            `json:"errors"`
	// Unexpected counts answers that are neither 200, nor a 4xx/429 to an
	// invalid or excess request, nor a deliberate client cancellation.
	Unexpected       int     `json:"unexpected"`
	Invalid          int     `json:"invalid_sent"`
	Cancelled        int     `json:"cancelled_by_client"`
	RequestsPerSec   float64 `json:"requests_per_second"`
	PromptTokens     int     `json:"prompt_tokens"`
	PromptTokensPerS float64 `json:"prompt_tokens_per_second"`
	P50Seconds       float64 `json:"p50_seconds"`
	P90Seconds       float64 `json:"p90_seconds"`
	P99Seconds       float64 `json:"p99_seconds"`
	MaxSeconds       float64 `json:"max_seconds"`
}

func main() {
	var c config
	flag.StringVar(&c.url, "url", "http://127.0.0.1:8080", "server base URL (loopback only)")
	flag.StringVar(&c.route, "route", "prefill", "prefill (/v1/prefill) or completions (/v1/completions, lm-eval payload)")
	flag.IntVar(&c.clients, "clients", 64, "concurrent clients")
	flag.DurationVar(&c.duration, "duration", 20*time.Second, "stop sending after this long")
	flag.IntVar(&c.requests, "requests", 20000, "stop after this many requests")
	flag.StringVar(&c.allreduce, "allreduce", "", "codec to ask for (empty = the server's default)")
	flag.IntVar(&c.logprobs, "logprobs", 1, "top-K per position to ask for")
	flag.DurationVar(&c.timeout, "timeout", 60*time.Second, "client-side timeout per request")
	flag.StringVar(&c.prompts, "prompts", "", "file with one prompt per line (empty = built-in story openings)")
	flag.BoolVar(&c.jsonOut, "json", false, "print the report as JSON")
	flag.Float64Var(&c.invalidFrac, "invalid-frac", 0, "fraction of requests sent invalid on purpose (expect 4xx)")
	flag.Float64Var(&c.cancelFrac, "cancel-frac", 0, "fraction of requests the client abandons early")
	flag.DurationVar(&c.cancelAfter, "cancel-after", 20*time.Millisecond, "abandoned requests give up after a random delay below this")
	flag.Uint64Var(&c.seed, "seed", 1, "seed of the request mix")
	flag.Parse()
	rep, err := run(c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
	if c.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
		return
	}
	printReport(os.Stdout, rep)
}

func loadPrompts(path string) ([]string, error) {
	if path == "" {
		return builtinPrompts, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			out = append(out, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no prompts", path)
	}
	return out, nil
}

// checkLoopback refuses targets that are not on this machine.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("url %s is not a loopback address", raw)
	}
	return nil
}

func run(c config) (*Report, error) {
	if err := checkLoopback(c.url); err != nil {
		return nil, err
	}
	if c.clients < 1 || c.requests < 1 || c.duration <= 0 {
		return nil, errors.New("clients, requests and duration must be positive")
	}
	if c.invalidFrac < 0 || c.cancelFrac < 0 || c.invalidFrac+c.cancelFrac > 1 {
		return nil, errors.New("invalid-frac and cancel-frac must be >= 0 and sum to at most 1")
	}
	if c.cancelFrac > 0 && c.cancelAfter <= 0 {
		return nil, errors.New("cancel-after must be positive")
	}
	prompts, err := loadPrompts(c.prompts)
	if err != nil {
		return nil, err
	}
	var path string
	switch c.route {
	case "prefill":
		path = "/v1/prefill"
	case "completions":
		path = "/v1/completions"
	default:
		return nil, fmt.Errorf("unknown route %q", c.route)
	}
	bodies := make([][]byte, len(prompts))
	for i, p := range prompts {
		req := map[string]any{"prompt": p, "logprobs": c.logprobs}
		if c.route == "completions" {
			req["echo"], req["max_tokens"], req["temperature"] = true, 1, 0
		}
		if c.allreduce != "" {
			req["allreduce"] = c.allreduce
		}
		bodies[i], _ = json.Marshal(req)
	}
	client := &http.Client{
		Timeout:   c.timeout,
		Transport: &http.Transport{MaxIdleConns: c.clients, MaxIdleConnsPerHost: c.clients},
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	defer cancel()
	var next atomic.Int64
	results := make([][]result, c.clients)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range c.clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(c.seed, uint64(w)))
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(c.requests) {
					return
				}
				body := bodies[int(i)%len(bodies)]
				u := rng.Float64()
				switch {
				case u < c.invalidFrac:
					r := send(context.Background(), client, c.url+path, []byte(invalidBodies[rng.IntN(len(invalidBodies))]))
					r.invalid = true
					results[w] = append(results[w], r)
				case u < c.invalidFrac+c.cancelFrac:
					rctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.Int64N(int64(c.cancelAfter))+1))
					r := send(rctx, client, c.url+path, body)
					cancel()
					r.cancelled = r.status == 0
					results[w] = append(results[w], r)
				default:
					results[w] = append(results[w], send(context.Background(), client, c.url+path, body))
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	client.CloseIdleConnections()
	return summarize(c, slices.Concat(results...), elapsed), nil
}

func send(ctx context.Context, client *http.Client, url string, body []byte) result {
	t0 := time.Now()
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return result{errKind: "bad request URL", latency: time.Since(t0)}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return result{errKind: classify(err), latency: time.Since(t0)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	lat := time.Since(t0)
	if err != nil {
		return result{errKind: "read body", latency: lat}
	}
	r := result{status: resp.StatusCode, latency: lat}
	if resp.StatusCode == 200 {
		var u struct {
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		if json.Unmarshal(raw, &u) == nil {
			r.tokens = u.Usage.PromptTokens
		}
	}
	return r
}

func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return "client gave up"
	case errors.As(err, &ne) && ne.Timeout():
		return "client timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	case strings.Contains(err.Error(), "connection reset"):
		return "connection reset"
	}
	return "transport error"
}

func quantile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i].Seconds()
}

func summarize(c config, rs []result, elapsed time.Duration) *Report {
	rep := &Report{URL: c.url, Route: c.route, Clients: c.clients, Sent: len(rs),
		ElapsedSeconds: elapsed.Seconds(), ByStatus: map[string]int{}}
	var lats []time.Duration
	for _, r := range rs {
		key := fmt.Sprint(r.status)
		if r.status == 0 {
			key = r.errKind
		}
		rep.ByStatus[key]++
		if r.invalid {
			rep.Invalid++
		}
		if r.cancelled {
			rep.Cancelled++
		}
		switch {
		case r.status == 200 && !r.invalid:
			rep.OK++
			rep.PromptTokens += r.tokens
			lats = append(lats, r.latency)
		case r.status == 200:
			rep.Errors++
			rep.Unexpected++ // an invalid request was accepted
		default:
			rep.Errors++
			expected := r.cancelled || r.status == http.StatusTooManyRequests ||
				(r.invalid && r.status >= 400 && r.status < 500)
			if !expected {
				rep.Unexpected++
			}
		}
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	s := elapsed.Seconds()
	rep.RequestsPerSec = float64(rep.OK) / s
	rep.PromptTokensPerS = float64(rep.PromptTokens) / s
	rep.P50Seconds = quantile(lats, 0.50)
	rep.P90Seconds = quantile(lats, 0.90)
	rep.P99Seconds = quantile(lats, 0.99)
	if len(lats) > 0 {
		rep.MaxSeconds = lats[len(lats)-1].Seconds()
	}
	return rep
}

func printReport(w io.Writer, r *Report) {
	fmt.Fprintf(w, "target            %s (%s), %d clients\n", r.URL, r.Route, r.Clients)
	fmt.Fprintf(w, "sent              %d requests in %.2f s (CPU wall clock)\n", r.Sent, r.ElapsedSeconds)
	keys := make([]string, 0, len(r.ByStatus))
	for k := range r.ByStatus {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, r.ByStatus[k]))
	}
	fmt.Fprintf(w, "by status         %s\n", strings.Join(parts, ", "))
	fmt.Fprintf(w, "errors            %d (anything but 200)\n", r.Errors)
	if r.Invalid > 0 || r.Cancelled > 0 {
		fmt.Fprintf(w, "mix               %d invalid on purpose, %d abandoned by the client\n", r.Invalid, r.Cancelled)
	}
	fmt.Fprintf(w, "unexpected        %d (not 200, not 4xx to invalid input, not 429, not a deliberate cancel)\n", r.Unexpected)
	fmt.Fprintf(w, "requests/s        %.1f\n", r.RequestsPerSec)
	fmt.Fprintf(w, "prompt tokens/s   %.0f (%d tokens)\n", r.PromptTokensPerS, r.PromptTokens)
	fmt.Fprintf(w, "latency (200s)    p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		r.P50Seconds*1e3, r.P90Seconds*1e3, r.P99Seconds*1e3, r.MaxSeconds*1e3)
}
