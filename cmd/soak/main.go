// Command soak drives a running equarx server on loopback with a mix of
// valid, invalid and client-cancelled requests, bounded in time and count,
// and reports how every request was answered. It exits non-zero when any
// answer is unexpected: a 5xx, a transport error on a request the client
// did not cancel, a 200 to an invalid request, or a 4xx other than 429 to
// a valid one.
//
//	go run ./cmd/soak --url http://127.0.0.1:8080 --clients 12 --duration 3m --server-pid 1234
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/equarx/equarx/collective"
)

type config struct {
	url         string
	clients     int
	duration    time.Duration
	requests    int
	seed        uint64
	timeout     time.Duration
	cancelAfter time.Duration
	settle      time.Duration
	serverPID   int
	jsonOut     string
}

// kind is what a request is meant to be.
type kind int

const (
	kindPrefill     kind = iota // valid /v1/prefill
	kindCompletions             // valid /v1/completions (lm-eval payload)
	kindInvalid                 // must get a 4xx
	kindCancelled               // valid, but the client gives up early
)

var kindNames = [...]string{"prefill", "completions", "invalid", "cancelled"}

// mix is the share of each kind, in kind order.
var mix = [...]float64{0.35, 0.20, 0.25, 0.20}

// codecNames are the AllReduce codecs valid requests pick from: every
// codec of the registry.
var codecNames = func() []string {
	var names []string
	for _, k := range collective.Codecs() {
		names = append(names, string(k))
	}
	return names
}()

var prompts = []string{
	"Once upon a time",
	"Once upon a time, there was a little girl named Lily. She loved to play outside.",
	"The dog ran to the park and saw a big red ball.",
	"Tom was sad. His toy was broken and he did not know what to do, so he went to his mom and",
	"One day, a bird sat on the tree.",
	"Sue and Ben went to the shop to buy a cake for their friend. They saw many cakes, but",
}

// invalidBody returns a request the server must refuse, and its route.
func invalidBody(rng *rand.Rand) (route, body, what string) {
	switch rng.IntN(7) {
	case 0:
		return "/v1/prefill", `{"prompt": "Once upon`, "malformed json"
	case 1:
		return "/v1/prefill", `{"tokens":[1,403,99999]}`, "token id out of range"
	case 2:
		ids := make([]string, 600)
		for i := range ids {
			ids[i] = strconv.Itoa(3 + i%500)
		}
		return "/v1/prefill", `{"tokens":[` + strings.Join(ids, ",") + `]}`, "too long"
	case 3:
		return "/v1/prefill", `{"prompt":"Once upon a time","allreduce":"int3"}`, "bad codec"
	case 4:
		return "/v1/completions", `{"prompt":[[1,403,-5]],"max_tokens":1,"logprobs":1,"echo":true,"temperature":0}`, "negative id"
	case 5:
		return "/v1/completions", `{"prompt":5,"max_tokens":1}`, "wrong prompt type"
	default:
		return "/v1/completions", `{"prompt":"Once","temperature":0.7,"max_tokens":1}`, "unsupported temperature"
	}
}

func validBody(rng *rand.Rand, completions bool) (route, body string) {
	codec := codecNames[rng.IntN(len(codecNames))]
	p := prompts[rng.IntN(len(prompts))]
	if completions {
		// lm-eval's loglikelihood request: token ids, echo, one logprob.
		ids := []int{1}
		for i := 0; i < 4+rng.IntN(40); i++ {
			ids = append(ids, 3+rng.IntN(509))
		}
		b, _ := json.Marshal(map[string]any{
			"prompt": [][]int{ids}, "max_tokens": 1, "logprobs": 1, "echo": true, "temperature": 0, "allreduce": codec,
		})
		return "/v1/completions", string(b)
	}
	b, _ := json.Marshal(map[string]any{"prompt": p, "logprobs": rng.IntN(6), "allreduce": codec})
	return "/v1/prefill", string(b)
}

type result struct {
	kind      kind
	status    int // 0 = no answer
	cancelled bool
	err       error
	latency   time.Duration
	what      string
}

func (r result) unexpected() bool {
	switch {
	case r.cancelled:
		return false
	case r.status == 0:
		return true // a transport error the client did not cause
	case r.status >= 500:
		return true
	case r.kind == kindInvalid:
		return r.status < 400
	case r.status == http.StatusTooManyRequests:
		return false
	default:
		return r.status != 200
	}
}

type report struct {
	URL                string         `json:"url"`
	Clients            int            `json:"clients"`
	Seconds            float64        `json:"seconds"`
	Sent               int            `json:"requests_sent"`
	SentByKind         map[string]int `json:"sent_by_kind"`
	ByStatus           map[string]int `json:"answered_by_status"`
	CancelledByClient  int            `json:"cancelled_by_client"`
	Unexpected         int            `json:"unexpected"`
	UnexpectedExamples []string       `json:"unexpected_examples,omitempty"`
	P50Seconds         float64        `json:"p50_seconds"`
	P99Seconds         float64        `json:"p99_seconds"`
	P50OKSeconds       float64        `json:"p50_200_seconds"`
	P99OKSeconds       float64        `json:"p99_200_seconds"`
	GoroutinesBefore   int            `json:"server_goroutines_before"`
	GoroutinesAfter    int            `json:"server_goroutines_after"`
	PeakRSSKiB         int            `json:"server_peak_rss_kib,omitempty"`
	RSSKiB             int            `json:"server_rss_kib,omitempty"`
}

func main() {
	c, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	rep, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	rep.print(os.Stdout)
	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(c.jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "soak:", err)
			os.Exit(1)
		}
	}
	if rep.Unexpected > 0 {
		fmt.Fprintf(os.Stderr, "soak: %d unexpected answers\n", rep.Unexpected)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.StringVar(&c.url, "url", "", "server base URL on loopback, e.g. http://127.0.0.1:8080 (required)")
	fs.IntVar(&c.clients, "clients", 12, "concurrent clients (set it a little above the server's queue limit)")
	fs.DurationVar(&c.duration, "duration", 3*time.Minute, "how long to drive the server")
	fs.IntVar(&c.requests, "requests", 1_000_000, "most requests to send")
	fs.Uint64Var(&c.seed, "seed", 1, "random seed of the request mix")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "client timeout of requests that are not cancelled on purpose")
	fs.DurationVar(&c.cancelAfter, "cancel-after", 30*time.Millisecond, "cancelled requests give up after a random delay below this")
	fs.DurationVar(&c.settle, "settle", 15*time.Second, "how long to wait for the server's goroutines to return to their starting count")
	fs.IntVar(&c.serverPID, "server-pid", 0, "server process id, to read its peak RSS from /proc (0 = skip)")
	fs.StringVar(&c.jsonOut, "json", "", "also write the report as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.url == "" {
		return c, errors.New("--url is required")
	}
	if err := checkLoopback(c.url); err != nil {
		return c, err
	}
	if c.clients < 1 || c.requests < 1 || c.duration <= 0 || c.timeout <= 0 || c.cancelAfter <= 0 || c.settle < 0 {
		return c, errors.New("--clients, --requests, --duration, --timeout and --cancel-after must be positive, --settle >= 0")
	}
	return c, nil
}

// checkLoopback refuses any target that is not a loopback address.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	host := u.Hostname()
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("--url: resolve %q: %w", host, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("--url: %s resolves to %s, which is not loopback: soak runs only on loopback", host, ip)
		}
	}
	return nil
}

func run(c config) (*report, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: c.clients, MaxConnsPerHost: 0}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	before, err := goroutines(client, c.url)
	if err != nil {
		return nil, fmt.Errorf("server goroutines before: %w", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	defer cancel()
	var sent atomic.Int64
	results := make([][]result, c.clients)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range c.clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(c.seed, uint64(w)))
			for ctx.Err() == nil && sent.Add(1) <= int64(c.requests) {
				results[w] = append(results[w], one(client, c, rng))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	tr.CloseIdleConnections()

	rep := &report{URL: c.url, Clients: c.clients, Seconds: elapsed.Seconds(),
		SentByKind: map[string]int{}, ByStatus: map[string]int{}, GoroutinesBefore: before}
	var lat, latOK []time.Duration
	for _, rs := range results {
		for _, r := range rs {
			rep.Sent++
			rep.SentByKind[kindNames[r.kind]]++
			switch {
			case r.cancelled:
				rep.CancelledByClient++
			case r.status != 0:
				rep.ByStatus[strconv.Itoa(r.status)]++
				lat = append(lat, r.latency)
				if r.status == 200 {
					latOK = append(latOK, r.latency)
				}
			}
			if r.unexpected() {
				rep.Unexpected++
				if len(rep.UnexpectedExamples) < 10 {
					rep.UnexpectedExamples = append(rep.UnexpectedExamples,
						fmt.Sprintf("%s (%s): status %d, error %v", kindNames[r.kind], r.what, r.status, r.err))
				}
			}
		}
	}
	rep.P50Seconds, rep.P99Seconds = quantile(lat, 0.50), quantile(lat, 0.99)
	rep.P50OKSeconds, rep.P99OKSeconds = quantile(latOK, 0.50), quantile(latOK, 0.99)

	// Wait for the server's per-connection and per-request goroutines to end.
	deadline := time.Now().Add(c.settle)
	for {
		after, err := goroutines(client, c.url)
		tr.CloseIdleConnections()
		if err != nil {
			return nil, fmt.Errorf("server goroutines after: %w", err)
		}
		rep.GoroutinesAfter = after
		if after <= before || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if c.serverPID > 0 {
		rep.PeakRSSKiB, rep.RSSKiB, err = procMemory(c.serverPID)
		if err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// one sends one request of a randomly drawn kind.
func one(client *http.Client, c config, rng *rand.Rand) result {
	u := rng.Float64()
	k := kindPrefill
	for acc := 0.0; int(k) < len(mix); k++ {
		if acc += mix[k]; u < acc {
			break
		}
	}
	k = min(k, kindCancelled)
	var route, body, what string
	timeout := c.timeout
	switch k {
	case kindPrefill, kindCompletions:
		route, body = validBody(rng, k == kindCompletions)
	case kindInvalid:
		route, body, what = invalidBody(rng)
	case kindCancelled:
		route, body = validBody(rng, rng.IntN(2) == 0)
		timeout = time.Duration(rng.Int64N(int64(c.cancelAfter))) + time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r := result{kind: k, what: what}
	req, err := http.NewRequestWithContext(ctx, "POST", c.url+route, strings.NewReader(body))
	if err != nil {
		r.err = err
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		r.status = resp.StatusCode
	}
	r.latency = time.Since(t0)
	if err != nil {
		r.err = err
		r.cancelled = k == kindCancelled && errors.Is(err, context.DeadlineExceeded)
		if r.cancelled {
			r.status = 0
		}
	}
	return r
}

// goroutines reads go_goroutines from the server's /metrics.
func goroutines(client *http.Client, base string) (int, error) {
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("/metrics: status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("/metrics: go_goroutines %q: %w", v, err)
			}
			return int(f), nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("/metrics: %w", err)
	}
	return 0, errors.New("/metrics has no go_goroutines")
}

// procMemory reads the peak (VmHWM) and current (VmRSS) resident set of a
// process, in KiB.
func procMemory(pid int) (peak, rss int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("server memory: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, perr := strconv.Atoi(f[1])
		switch f[0] {
		case "VmHWM:":
			peak, err = v, perr
		case "VmRSS:":
			rss, err = v, perr
		}
		if err != nil {
			return 0, 0, fmt.Errorf("server memory: %q: %w", line, err)
		}
	}
	if peak == 0 {
		return 0, 0, fmt.Errorf("server memory: no VmHWM in /proc/%d/status", pid)
	}
	return peak, rss, nil
}

// quantile is the nearest-rank q-quantile in seconds (0 for no samples).
func quantile(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	i = max(0, min(len(s)-1, i))
	return s[i].Seconds()
}

func (r *report) print(w io.Writer) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "target            %s, %d clients, %.1f s\n", r.URL, r.Clients, r.Seconds)
	fmt.Fprintf(&b, "requests sent     %d (", r.Sent)
	for i, n := range kindNames {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", n, r.SentByKind[n])
	}
	b.WriteString(")\n")
	codes := make([]string, 0, len(r.ByStatus))
	for code := range r.ByStatus {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	b.WriteString("answered          ")
	for i, code := range codes {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %d", code, r.ByStatus[code])
	}
	fmt.Fprintf(&b, "; cancelled by the client before an answer: %d\n", r.CancelledByClient)
	fmt.Fprintf(&b, "unexpected        %d (5xx, transport errors, 200 to invalid, non-429 4xx to valid)\n", r.Unexpected)
	for _, e := range r.UnexpectedExamples {
		fmt.Fprintf(&b, "                  %s\n", e)
	}
	fmt.Fprintf(&b, "latency, answered p50 %.1f ms, p99 %.1f ms\n", 1e3*r.P50Seconds, 1e3*r.P99Seconds)
	fmt.Fprintf(&b, "latency, 200s     p50 %.1f ms, p99 %.1f ms\n", 1e3*r.P50OKSeconds, 1e3*r.P99OKSeconds)
	fmt.Fprintf(&b, "server goroutines %d before, %d after (go_goroutines from /metrics)\n", r.GoroutinesBefore, r.GoroutinesAfter)
	if r.PeakRSSKiB > 0 {
		fmt.Fprintf(&b, "server memory     peak RSS %.1f MiB (VmHWM), RSS at the end %.1f MiB\n", float64(r.PeakRSSKiB)/1024, float64(r.RSSKiB)/1024)
	}
	w.Write(b.Bytes())
}
