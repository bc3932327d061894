package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/equarx/equarx/server"
)

func init() {
	register("served", "time prefills on a running server (/v1/prefill) per codec and prompt length", runServedCmd)
}

// servedRow is one (tokens, codec) cell of a served-prefill run. Times are
// CPU wall seconds of this machine (wall_seconds: client round trip;
// engine_wall_seconds: the engine call as the server reports it) and
// simulated TPU seconds of the server's cost model (sim_seconds).
type servedRow struct {
	Label             string  `json:"label"`
	Model             string  `json:"model"`
	Tokens            int     `json:"tokens"`
	Seqs              int     `json:"seqs"`
	Codec             string  `json:"codec"`
	CodecUsed         string  `json:"codec_used"`
	Reps              int     `json:"reps"`
	WallSeconds       float64 `json:"wall_seconds"`        // median client round trip
	EngineWallSeconds float64 `json:"engine_wall_seconds"` // median engine call
	SimSeconds        float64 `json:"sim_seconds"`
	WireBytes         int64   `json:"wire_bytes"`
	SpeedupVsBF16     float64 `json:"speedup_vs_bf16"` // engine wall, bf16 / this codec
	TokensPerSecond   float64 `json:"tokens_per_second"`
}

func runServedCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("served", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080", "server base URL")
	tokens := fs.String("tokens", "512,2048", "prompt lengths in tokens, comma-separated; longer than the model's context: split into equal sequences sent together")
	codecs := fs.String("codecs", "f32,bf16,int8,int4", "AllReduce codecs, comma-separated")
	reps := fs.Int("reps", 3, "timed prefills per cell (after one warm-up); cells take turns rep by rep")
	label := fs.String("label", "", "label written into every row (e.g. the link)")
	jsonOut := fs.String("json", "", "write rows as a JSON array to this file")
	timeout := fs.Duration("timeout", 30*time.Minute, "bound on the whole run")
	seed := fs.Uint64("seed", 1, "seed of the token ids")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *reps < 1 {
		return fmt.Errorf("--reps %d", *reps)
	}
	var lens []int
	for _, f := range strings.Split(*tokens, ",") {
		n, err := parseCount(f)
		if err != nil || n < 1 {
			return fmt.Errorf("--tokens %q: %v", f, err)
		}
		lens = append(lens, n)
	}
	cs := strings.Split(*codecs, ",")
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	client := &http.Client{}
	var models server.ModelList
	if err := getJSON(ctx, client, *url+"/v1/models", &models); err != nil {
		return err
	}
	if len(models.Data) == 0 {
		return errors.New("server lists no model")
	}
	card := models.Data[0]
	rng := rand.New(rand.NewPCG(*seed, 7))
	type cell struct {
		row       servedRow
		seqs      [][]int
		wall, eng []float64
	}
	var cells []*cell
	for _, n := range lens {
		k := (n + card.MaxModelLen - 1) / card.MaxModelLen
		seqs := make([][]int, k)
		for i := range seqs {
			l := n / k
			if i < n%k {
				l++
			}
			seqs[i] = make([]int, l)
			for j := range seqs[i] {
				seqs[i][j] = 3 + rng.IntN(min(256, card.VocabSize-3))
			}
			seqs[i][0] = 1
		}
		for _, c := range cs {
			cells = append(cells, &cell{row: servedRow{Label: *label, Model: card.ID, Tokens: n, Seqs: k, Codec: c, Reps: *reps}, seqs: seqs})
		}
	}
	for rep := -1; rep < *reps; rep++ { // rep -1 warms up
		for i := range cells {
			c := cells[(i+max(rep, 0))%len(cells)] // rotate the order rep by rep
			wall, resp, err := servedCall(ctx, client, *url, c.seqs, c.row.Codec)
			if err != nil {
				return fmt.Errorf("%d tokens, %s: %w", c.row.Tokens, c.row.Codec, err)
			}
			if rep < 0 {
				continue
			}
			if resp.Timing.BatchTokens != c.row.Tokens {
				return fmt.Errorf("%d tokens, %s: the server split the prompts over engine calls (batch of %d tokens); raise its --batch-tokens", c.row.Tokens, c.row.Codec, resp.Timing.BatchTokens)
			}
			c.wall = append(c.wall, wall)
			c.eng = append(c.eng, resp.Timing.WallSeconds)
			c.row.SimSeconds = resp.Timing.SimTPUSeconds
			c.row.WireBytes = resp.Timing.AllReduceWireBytes
			c.row.CodecUsed = resp.Timing.AllReduceCodec
		}
	}
	bf16 := map[int]float64{}
	rows := make([]servedRow, len(cells))
	for i, c := range cells {
		c.row.WallSeconds = median(c.wall)
		c.row.EngineWallSeconds = median(c.eng)
		c.row.TokensPerSecond = float64(c.row.Tokens) / c.row.EngineWallSeconds
		if c.row.Codec == "bf16" {
			bf16[c.row.Tokens] = c.row.EngineWallSeconds
		}
		rows[i] = c.row
	}
	for i := range rows {
		if b, ok := bf16[rows[i].Tokens]; ok {
			rows[i].SpeedupVsBF16 = b / rows[i].EngineWallSeconds
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "label\tmodel\ttokens\tseqs\tcodec\tengine wall s (CPU)\tround trip s (CPU)\ttok/s\tvs bf16\tsim TPU s\twire bytes\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%.4f\t%.4f\t%.0f\t%.2fx\t%.3g\t%d\t\n", r.Label, r.Model, r.Tokens, r.Seqs, r.CodecUsed,
			r.EngineWallSeconds, r.WallSeconds, r.TokensPerSecond, r.SpeedupVsBF16, r.SimSeconds, r.WireBytes)
	}
	tw.Flush()
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rows, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// servedCall sends every sequence as its own /v1/prefill request at once
// (so the server's batcher packs them into one engine call) and returns
// the round trip of the slowest and the first answer.
func servedCall(ctx context.Context, client *http.Client, url string, seqs [][]int, codec string) (float64, *server.PrefillResponse, error) {
	start := time.Now()
	out := make([]*server.PrefillResponse, len(seqs))
	errs := make([]error, len(seqs))
	var wg sync.WaitGroup
	for i, s := range seqs {
		wg.Go(func() {
			body, _ := json.Marshal(map[string]any{"tokens": s, "allreduce": codec})
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/prefill", bytes.NewReader(body))
			if err != nil {
				errs[i] = err
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			if err != nil {
				errs[i] = err
				return
			}
			if resp.StatusCode != http.StatusOK {
				errs[i] = fmt.Errorf("status %d: %s", resp.StatusCode, raw)
				return
			}
			var pr server.PrefillResponse
			if err := json.Unmarshal(raw, &pr); err != nil {
				errs[i] = err
				return
			}
			out[i] = &pr
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, nil, err
	}
	return time.Since(start).Seconds(), out[0], nil
}

func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
