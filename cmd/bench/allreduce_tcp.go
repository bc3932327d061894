package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
	"unsafe"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/tpu"
	"github.com/equarx/equarx/transport"
)

// The tcp transport of `bench allreduce`: the ranks are separate OS
// processes (this binary re-executed with the hidden worker subcommand, one
// rank each) that form a group over TCP with transport.Join, either on
// unshaped loopback or, with --link-gbps, each in its own network namespace
// behind a tbf-shaped veth (netns.go). Rank 0 reports one JSON line per
// (elements, algorithm, codec) on its stdout; the orchestrator turns them
// into rows.

// workerCmd is the hidden subcommand a worker process runs.
const workerCmd = "__allreduce-tcp-worker"

// tokenEnv carries the cluster token to the workers (never argv, which
// other users of the machine can read).
const tokenEnv = "EQUARX_BENCH_CLUSTER_TOKEN"

// Bounds on every loop of a run.
const (
	maxIters     = 100
	maxRanks     = 64
	maxTCPConfig = 10000
)

// tcpConfig is one tcp sweep, shared by orchestrator and workers.
type tcpConfig struct {
	Ranks       int                    `json:"ranks"`
	TPU         string                 `json:"tpu"`
	Elements    []int                  `json:"elements"`
	Codecs      []collective.CodecKind `json:"codecs"`
	Algorithms  []collective.Algorithm `json:"algorithms"`
	BlockSize   int                    `json:"block_size"`
	Segment     int                    `json:"segment"`
	Fallback    int                    `json:"fallback"`
	RowElems    int                    `json:"row_elems"`
	Input       string                 `json:"input"`
	Seed        uint64                 `json:"seed"`
	Warmup      int                    `json:"warmup"`
	Iters       int                    `json:"iters"`
	CallTimeout time.Duration          `json:"call_timeout"`
}

func (c tcpConfig) validate() error {
	switch {
	case c.Ranks < 2 || c.Ranks > maxRanks:
		return fmt.Errorf("--ranks %d: want 2..%d", c.Ranks, maxRanks)
	case len(c.Elements) == 0 || len(c.Codecs) == 0 || len(c.Algorithms) == 0:
		return errors.New("empty --elements, --codecs or --algorithms list")
	case len(c.Elements)*len(c.Codecs)*len(c.Algorithms) > maxTCPConfig:
		return errors.New("too many (elements, codec, algorithm) combinations")
	case c.Iters < 1 || c.Iters > maxIters || c.Warmup < 0 || c.Warmup > maxIters:
		return fmt.Errorf("--iters %d, --warmup %d: want 1..%d and 0..%d", c.Iters, c.Warmup, maxIters, maxIters)
	case c.CallTimeout <= 0:
		return fmt.Errorf("--call-timeout %v: want > 0", c.CallTimeout)
	case c.Input != "normal" && c.Input != "heavy":
		return fmt.Errorf("--input %q: want normal or heavy", c.Input)
	}
	for _, a := range c.Algorithms {
		if a == collective.AlgoTorus2D {
			return errors.New("--transport tcp runs on ring:N; torus2d does not apply")
		}
	}
	return nil
}

// bound is the longest a sweep may take: every call of every row at its
// timeout (warm-up, timed calls, barriers and the report).
func (c tcpConfig) bound() time.Duration {
	calls := len(c.Elements) * len(c.Codecs) * len(c.Algorithms) * (2*(c.Iters+c.Warmup) + c.Ranks + 2)
	return time.Duration(calls) * c.CallTimeout
}

// tcpLink describes where the workers run.
type tcpLink struct {
	Gbps    float64
	DelayUS float64
}

// TCPFields are the fields only tcp rows have (nil on emulated rows). Times
// are CPU wall seconds on this machine unless named sim_*.
type TCPFields struct {
	// LinkGbps is the tbf rate of every host's link, each direction; 0 =
	// unshaped loopback in one network namespace.
	LinkGbps    float64 `json:"link_gbps"`
	LinkDelayUS float64 `json:"link_delay_us"`
	Processes   int     `json:"processes"`
	Calls       int     `json:"calls"` // timed calls (after warm-up)
	// WallCalls: per timed call, the longest rank's wall time from the
	// end of the barrier before it to its return; WallSeconds is their
	// median, WallMinSeconds the fastest.
	WallCalls      []float64 `json:"wall_seconds_calls"`
	WallMinSeconds float64   `json:"wall_min_seconds"`
	// SimSpeedupVsBF16: simulated TPU time of the bf16 row / this row's
	// (speedup_vs_bf16 is from wall time on tcp rows).
	SimSpeedupVsBF16 float64 `json:"sim_speedup_vs_bf16"`
	// CodecSeconds: CPU time of the rank's encode + decode/decode-add
	// kernels for one call, replayed without the network on the same data
	// (collective.ReplayLocalWork), largest rank. EncodeSeconds and
	// DecodeSeconds split it; CRCSeconds is the payload checksums.
	CodecSeconds  float64 `json:"codec_seconds"`
	EncodeSeconds float64 `json:"encode_seconds"`
	DecodeSeconds float64 `json:"decode_seconds"`
	CRCSeconds    float64 `json:"crc_seconds"`
	// SendSeconds: time inside the transport's send (framing, copy into
	// the socket, waiting for socket buffer space), RecvWaitSeconds: time
	// blocked waiting for a message; medians over calls of the largest
	// rank.
	SendSeconds     float64 `json:"send_seconds"`
	RecvWaitSeconds float64 `json:"recv_wait_seconds"`
	// CPUSeconds: user + system CPU time all rank processes used during a
	// call (getrusage around it, summed over ranks; median over calls).
	// CPUFloorSeconds = CPUSeconds / min(CPUs, ranks): the least wall time
	// that much work needs on this machine's CPUs. CPUs is runtime.NumCPU.
	CPUSeconds float64 `json:"cpu_seconds"`
	// CodecSecondsAllRanks: codec kernel seconds of one call summed over
	// the ranks (each measured alone): the part of CPUSeconds the kernels
	// account for (an upper bound when other load slows them down).
	CodecSecondsAllRanks float64 `json:"codec_seconds_all_ranks"`
	CPUFloorSeconds      float64 `json:"cpu_floor_seconds"`
	CPUs                 int     `json:"cpus"`
	// WireFloorSeconds = wire_bytes * 8 / link rate: the least time the
	// busiest rank's bytes need on its shaped link (0 when unshaped).
	WireFloorSeconds float64 `json:"wire_floor_seconds"`
	// SocketBytes: bytes the busiest rank wrote to its sockets per call,
	// frame headers included (from the node's traffic counters, barrier
	// and call headers included).
	SocketBytes int64 `json:"socket_bytes"`
	// GoodputGbps = wire_bytes * 8 / wall_seconds, busiest rank.
	GoodputGbps float64 `json:"goodput_gbps"`
	LoadAvg     string  `json:"loadavg"`
}

// workerReport is what each rank sends rank 0 after a configuration.
type workerReport struct {
	Wall, Send, Recv []float64
	CPU              []float64 // user + system seconds of this process per call
	CPUs             int
	SimSeconds       float64
	WireBytes        int64
	SocketBytes      int64
	Codec            string
	Algorithm        string
	Local            collective.LocalWork
	OutCRC           uint32
}

// tcpResult is one line rank 0 prints.
type tcpResult struct {
	Elements  int                  `json:"elements"`
	Codec     collective.CodecKind `json:"codec"`
	Algorithm collective.Algorithm `json:"algorithm"`
	Ranks     []workerReport       `json:"ranks"`
	RelErrRMS float64              `json:"rel_err_rms"`
	MaxErr    float64              `json:"max_err_over_block_absmax"`
	BlockSize int                  `json:"block_size"`
	SegElems  int                  `json:"segment_elems"`
}

// workerLine is a line of a worker's stdout.
type workerLine struct {
	Listening string     `json:"listening,omitempty"`
	Done      bool       `json:"done,omitempty"` // past the final barrier
	Result    *tcpResult `json:"result,omitempty"`
}

// runAllReduceTCP runs the sweep with one process per rank and returns its
// rows.
func runAllReduceTCP(parent context.Context, cfg tcpConfig, link tcpLink, stderr io.Writer) ([]arRow, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	prof, err := tpu.LoadProfile(cfg.TPU)
	if err != nil {
		return nil, err
	}
	topo, err := tpu.ParseTopology(fmt.Sprintf("ring:%d", cfg.Ranks))
	if err != nil {
		return nil, err
	}
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.bound()+2*time.Minute)
	defer cancel()
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var hosts *emuHosts
	if link.Gbps > 0 {
		if err := checkNetnsTools(); err != nil {
			return nil, err
		}
		hosts = &emuHosts{prefix: netnsPrefix(), n: cfg.Ranks, subnet: "10.213.0", gbps: link.Gbps,
			delay: time.Duration(link.DelayUS * float64(time.Microsecond))}
		if err := hosts.setup(ctx); err != nil {
			return nil, fmt.Errorf("emulated hosts: %w", err)
		}
		defer func() {
			if err := hosts.teardown(); err != nil {
				fmt.Fprintf(stderr, "bench allreduce: removing namespaces %s-*: %v\n", hosts.prefix, err)
			}
		}()
	} else if link.DelayUS > 0 {
		return nil, errors.New("--link-delay-us needs --link-gbps (shaped namespaces)")
	}
	load := loadAvg()
	results, err := runWorkers(ctx, exe, cfg, hosts, stderr)
	if err != nil {
		return nil, err
	}
	var rows []arRow
	for _, res := range results {
		row, err := tcpRow(cfg, topo, prof, link, res)
		if err != nil {
			return nil, err
		}
		row.LoadAvg = load + " / " + loadAvg()
		rows = append(rows, row)
	}
	fillTCPSpeedups(rows)
	return rows, nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// runWorkers starts rank 0, reads the address it listens on, starts the
// other ranks joining it, and collects rank 0's results. Every child is
// killed when ctx ends, when any of them fails, and on return.
func runWorkers(ctx context.Context, exe string, cfg tcpConfig, hosts *emuHosts, stderr io.Writer) ([]tcpResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return nil, err
	}
	cj, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fail := func(r int, err error) {
		mu.Lock()
		errs = append(errs, fmt.Errorf("rank %d: %w", r, err))
		mu.Unlock()
		cancel(err)
	}
	defer wg.Wait() // after cancel: every child is killed and reaped
	listening := make(chan string, 1)
	finished := make(chan int, cfg.Ranks) // ranks past their final barrier
	var stdins []io.Closer                // closing one releases (or stops) its worker
	closeStdins := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range stdins {
			c.Close()
		}
		stdins = nil
	}
	defer closeStdins()
	var results []tcpResult
	start := func(r int, master string) error {
		listen := "127.0.0.1:0"
		if hosts != nil {
			listen = hosts.addr(r) + ":0"
		}
		argv := []string{exe, workerCmd, "--rank", strconv.Itoa(r), "--listen", listen, "--master", master, "--config", string(cj)}
		if hosts != nil {
			argv = hosts.command(r, argv)
		}
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), tokenEnv+"="+hex.EncodeToString(token))
		// The worker exits when this pipe closes: after every rank has
		// passed the final barrier (so no rank closes its connections
		// while a peer may still need a message from it), or when this
		// process dies without killing it.
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		mu.Lock()
		stdins = append(stdins, stdin)
		mu.Unlock()
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		cmd.Stderr = &prefixWriter{w: stderr, prefix: fmt.Sprintf("[rank %d] ", r)}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 1<<20), 64<<20)
			var perr error
			for sc.Scan() {
				var l workerLine
				if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
					perr = fmt.Errorf("bad line on stdout: %q", sc.Text())
					break
				}
				if l.Listening != "" && r == 0 {
					listening <- l.Listening
				}
				if l.Done {
					finished <- r
				}
				if l.Result != nil && r == 0 {
					mu.Lock()
					results = append(results, *l.Result)
					mu.Unlock()
				}
			}
			io.Copy(io.Discard, stdout)
			err := cmd.Wait()
			if perr != nil {
				err = errors.Join(perr, err)
			}
			if err != nil && context.Cause(ctx) == nil {
				fail(r, err)
			}
		}()
		return nil
	}
	if err := start(0, ""); err != nil {
		return nil, err
	}
	var master string
	select {
	case master = <-listening:
	case <-ctx.Done():
		return nil, joinCause(ctx, errs, &mu)
	case <-time.After(30 * time.Second):
		return nil, errors.New("rank 0 did not report its address within 30 s")
	}
	for r := 1; r < cfg.Ranks; r++ {
		if err := start(r, master); err != nil {
			cancel(err)
			return nil, err
		}
	}
	exited := make(chan struct{})
	go func() { wg.Wait(); close(exited) }()
wait:
	for n := 0; n < cfg.Ranks; {
		select {
		case <-finished:
			n++
		case <-exited:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	closeStdins()
	select {
	case <-exited:
	case <-ctx.Done():
	}
	if err := joinCause(ctx, errs, &mu); err != nil {
		return nil, err
	}
	want := len(cfg.Elements) * len(cfg.Codecs) * len(cfg.Algorithms)
	if len(results) != want {
		return nil, fmt.Errorf("rank 0 reported %d results, want %d", len(results), want)
	}
	return results, nil
}

func joinCause(ctx context.Context, errs []error, mu *sync.Mutex) error {
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if c := context.Cause(ctx); c != nil {
		return c
	}
	return nil
}

// prefixWriter prefixes every line a worker writes to stderr.
type prefixWriter struct {
	mu      sync.Mutex
	w       io.Writer
	prefix  string
	midLine bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []byte
	for i, c := range b {
		if i == 0 && !p.midLine {
			out = append(out, p.prefix...)
		}
		out = append(out, c)
		if c == '\n' && i+1 < len(b) {
			out = append(out, p.prefix...)
		}
	}
	p.midLine = len(b) > 0 && b[len(b)-1] != '\n'
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// tcpRow turns rank 0's result into a row.
func tcpRow(cfg tcpConfig, topo tpu.Topology, prof tpu.Profile, link tcpLink, res tcpResult) (arRow, error) {
	opts := collective.Options{Codec: res.Codec, BlockSize: cfg.BlockSize, Algorithm: res.Algorithm, SegmentElems: cfg.Segment, FallbackElems: cfg.Fallback, RowElems: cfg.RowElems}
	est, err := collective.Estimate(topo, prof, res.Elements, opts)
	if err != nil {
		return arRow{}, err
	}
	bfOpts := opts
	bfOpts.Codec = collective.CodecBF16
	bf, err := collective.Estimate(topo, prof, res.Elements, bfOpts)
	if err != nil {
		return arRow{}, err
	}
	if len(res.Ranks) != cfg.Ranks {
		return arRow{}, fmt.Errorf("%d reports from %d ranks", len(res.Ranks), cfg.Ranks)
	}
	calls := len(res.Ranks[0].Wall)
	t := &TCPFields{LinkGbps: link.Gbps, LinkDelayUS: link.DelayUS, Processes: cfg.Ranks, Calls: calls}
	row := arRow{
		Transport: "tcp", TPU: prof.Name, Topology: topo.String(), Devices: topo.Size(), Elements: res.Elements,
		Codec: string(res.Codec), CodecUsed: res.Ranks[0].Codec, Algorithm: string(res.Algorithm), AlgorithmUsed: res.Ranks[0].Algorithm,
		BlockSize: est.BlockSize, SegmentElems: est.SegmentElems, BF16SimSeconds: bf.SimSeconds,
		RowElems: cfg.RowElems, Stripes: est.Stripes, RelErrRMS: res.RelErrRMS, MaxErrOverBlockAbsmax: res.MaxErr, Executed: true, TCPFields: t,
	}
	send := make([]float64, calls)
	recv := make([]float64, calls)
	cpu := make([]float64, calls)
	t.WallCalls = make([]float64, calls)
	for _, w := range res.Ranks {
		if len(w.Wall) != calls || len(w.Send) != calls || len(w.Recv) != calls || len(w.CPU) != calls {
			return arRow{}, errors.New("ranks report different numbers of calls")
		}
		if w.OutCRC != res.Ranks[0].OutCRC {
			return arRow{}, errors.New("ranks ended with different results (CRC32-C of the outputs differ)")
		}
		if w.Codec != row.CodecUsed || w.Algorithm != row.AlgorithmUsed {
			return arRow{}, errors.New("ranks ran different codecs or algorithms")
		}
		for i := range w.Wall {
			t.WallCalls[i] = max(t.WallCalls[i], w.Wall[i])
			send[i] = max(send[i], w.Send[i])
			recv[i] = max(recv[i], w.Recv[i])
			cpu[i] += w.CPU[i]
		}
		row.WireBytes = max(row.WireBytes, w.WireBytes)
		row.SimSeconds = max(row.SimSeconds, w.SimSeconds)
		t.SocketBytes = max(t.SocketBytes, w.SocketBytes)
		if c := w.Local.EncodeSeconds + w.Local.DecodeSeconds; c > t.CodecSeconds {
			t.CodecSeconds, t.EncodeSeconds, t.DecodeSeconds = c, w.Local.EncodeSeconds, w.Local.DecodeSeconds
		}
		t.CRCSeconds = max(t.CRCSeconds, w.Local.CRCSeconds)
		t.CodecSecondsAllRanks += w.Local.EncodeSeconds + w.Local.DecodeSeconds
	}
	if row.WireBytes != est.WireBytes {
		return arRow{}, fmt.Errorf("ranks sent at most %d bytes, the schedule %d", row.WireBytes, est.WireBytes)
	}
	row.WallSeconds = median(t.WallCalls)
	t.WallMinSeconds = slices.Min(t.WallCalls)
	t.SendSeconds = median(send)
	t.RecvWaitSeconds = median(recv)
	t.CPUSeconds = median(cpu)
	t.CPUs = res.Ranks[0].CPUs
	if t.CPUs > 0 {
		t.CPUFloorSeconds = t.CPUSeconds / float64(min(t.CPUs, cfg.Ranks))
	}
	if link.Gbps > 0 {
		t.WireFloorSeconds = float64(row.WireBytes) * 8 / (link.Gbps * 1e9)
	}
	if row.WallSeconds > 0 {
		t.GoodputGbps = float64(row.WireBytes) * 8 / row.WallSeconds / 1e9
		row.AlgoBWBytesPerSec = 2 * float64(res.Elements) / row.WallSeconds
		row.BusBWBytesPerSec = row.AlgoBWBytesPerSec * 2 * float64(topo.Size()-1) / float64(topo.Size())
	}
	if est.SimSeconds > 0 {
		t.SimSpeedupVsBF16 = bf.SimSeconds / est.SimSeconds
	}
	if row.WireBytes > 0 {
		row.WireRatioVsBF16 = float64(bf.WireBytes) / float64(row.WireBytes)
	}
	return row, nil
}

// fillTCPSpeedups sets speedup_vs_bf16 of tcp rows from wall time: the bf16
// row of the same size, algorithm and link.
func fillTCPSpeedups(rows []arRow) {
	for i := range rows {
		r := &rows[i]
		for _, b := range rows {
			if b.Codec == string(collective.CodecBF16) && b.Elements == r.Elements && b.Algorithm == r.Algorithm &&
				b.LinkGbps == r.LinkGbps && r.WallSeconds > 0 {
				r.SpeedupVsBF16 = b.WallSeconds / r.WallSeconds
			}
		}
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// timedEndpoint measures the time one rank spends inside the transport.
// It keeps the endpoint's optional interfaces (payload release, copying
// sends) so the communicator behaves exactly as over the bare endpoint.
type timedEndpoint struct {
	ep         *transport.Endpoint
	send, recv atomic.Int64 // nanoseconds
}

func (t *timedEndpoint) SendMessage(to int, m transport.Message) error {
	t0 := time.Now()
	err := t.ep.SendMessage(to, m)
	t.send.Add(int64(time.Since(t0)))
	return err
}

func (t *timedEndpoint) Recv(ctx context.Context, from int, tag transport.Tag) (transport.Message, error) {
	t0 := time.Now()
	m, err := t.ep.Recv(ctx, from, tag)
	t.recv.Add(int64(time.Since(t0)))
	return m, err
}

func (t *timedEndpoint) Abort(to int, epoch, seq uint64, cause error) {
	t.ep.Abort(to, epoch, seq, cause)
}
func (t *timedEndpoint) Release(b []byte) { t.ep.Release(b) }
func (t *timedEndpoint) SendCopies() bool { return t.ep.SendCopies() }

// workerMain is a worker process: one rank.
func workerMain(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(workerCmd, flag.ContinueOnError)
	rank := fs.Int("rank", -1, "this process's rank")
	listen := fs.String("listen", "127.0.0.1:0", "data-plane address to bind")
	master := fs.String("master", "", "rank 0's address (ranks > 0)")
	cj := fs.String("config", "", "the sweep, as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var cfg tcpConfig
	if err := json.Unmarshal([]byte(*cj), &cfg); err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if *rank < 0 || *rank >= cfg.Ranks || (*rank > 0 && *master == "") {
		return fmt.Errorf("--rank %d of %d, --master %q", *rank, cfg.Ranks, *master)
	}
	token := os.Getenv(tokenEnv)
	if token == "" {
		return errors.New("no cluster token in " + tokenEnv)
	}
	// A bound on the whole worker: every call has its own timeout, and
	// the orchestrator kills us on any failure; this catches the rest.
	ctx, cancel := context.WithTimeout(context.Background(), cfg.bound()+time.Minute)
	defer cancel()
	// stdin closes when the orchestrator releases this worker after the
	// final barrier, or when it is gone: then stop within seconds.
	released := make(chan struct{})
	go func() {
		io.Copy(io.Discard, stdin)
		close(released)
		cancel()
		time.Sleep(10 * time.Second)
		os.Exit(3)
	}()
	prof, err := tpu.LoadProfile(cfg.TPU)
	if err != nil {
		return err
	}
	topo, err := tpu.ParseTopology(fmt.Sprintf("ring:%d", cfg.Ranks))
	if err != nil {
		return err
	}
	node, err := transport.Listen(transport.NodeConfig{Node: *rank, Nodes: cfg.Ranks, Ranks: cfg.Ranks, Token: token,
		Listen: *listen, IOTimeout: cfg.CallTimeout, Describe: "bench allreduce tcp worker"})
	if err != nil {
		return err
	}
	defer node.Close()
	enc := json.NewEncoder(stdout)
	if *rank == 0 {
		if err := enc.Encode(workerLine{Listening: node.Addr()}); err != nil {
			return err
		}
		*master = node.Addr()
	}
	jctx, jcancel := context.WithTimeout(ctx, 60*time.Second)
	err = node.Join(jctx, *master, "")
	jcancel()
	if err != nil {
		return err
	}
	ep, err := node.Endpoint(*rank)
	if err != nil {
		return err
	}
	tr := &timedEndpoint{ep: ep}
	mesh, err := tpu.NewMesh(topo, prof)
	if err != nil {
		return err
	}
	comms, err := collective.NewRemoteGroup(mesh, 1, []int{*rank}, []collective.Transport{tr})
	if err != nil {
		return err
	}
	c := comms[0]
	for _, n := range cfg.Elements {
		in, exact := rankInputs(cfg, *rank, n)
		buf := make([]float32, n)
		for _, algo := range cfg.Algorithms {
			optss := make([]collective.Options, len(cfg.Codecs))
			for k, ck := range cfg.Codecs {
				optss[k] = collective.Options{Codec: ck, BlockSize: cfg.BlockSize, Algorithm: algo, SegmentElems: cfg.Segment,
					FallbackElems: cfg.Fallback, Timeout: cfg.CallTimeout, RowElems: cfg.RowElems}
			}
			var errStats [][2]float64
			if *rank == 0 {
				errStats = make([][2]float64, len(cfg.Codecs))
			}
			reps, err := runRow(ctx, c, node, tr, topo, prof, in, buf, optss, cfg, func(k int, out []float32) {
				if errStats != nil {
					blk := cfg.BlockSize
					if ck := cfg.Codecs[k]; blk <= 1 || ck == collective.CodecF32 || ck == collective.CodecBF16 {
						blk = collective.DefaultBlockSize
					}
					errStats[k][0], errStats[k][1] = errorStats(out, exact, blk)
				}
			})
			if err != nil {
				return fmt.Errorf("%d values, %s: %w", n, algo, err)
			}
			for k, ck := range cfg.Codecs {
				b, err := json.Marshal(reps[k])
				if err != nil {
					return err
				}
				all, err := c.Gather(ctx, 0, b, cfg.CallTimeout)
				if err != nil {
					return err
				}
				if *rank != 0 {
					continue
				}
				res := tcpResult{Elements: n, Codec: ck, Algorithm: algo, RelErrRMS: errStats[k][0], MaxErr: errStats[k][1]}
				for _, b := range all {
					var w workerReport
					if err := json.Unmarshal(b, &w); err != nil {
						return err
					}
					res.Ranks = append(res.Ranks, w)
				}
				if err := enc.Encode(workerLine{Result: &res}); err != nil {
					return err
				}
			}
		}
	}
	// Nobody closes its connections while a peer may still be reading:
	// after the final barrier, wait for the orchestrator's release (it
	// comes when every rank is past the barrier).
	if err := c.Barrier(ctx, cfg.CallTimeout); err != nil {
		return err
	}
	if err := enc.Encode(workerLine{Done: true}); err != nil {
		return err
	}
	select {
	case <-released:
		return nil
	case <-time.After(time.Minute):
		return errors.New("not released within a minute of the final barrier")
	}
}

// rankInputs regenerates this rank's inputs from the seed (as the emulated
// sweep draws them) and, on rank 0, the exact float64 sum of every rank's.
func rankInputs(cfg tcpConfig, rank, n int) ([]float32, []float64) {
	if rank != 0 {
		return benchInput(cfg.Input, rank, n, cfg.Seed), nil
	}
	exact := make([]float64, n)
	var mine []float32
	for r := 0; r < cfg.Ranks; r++ {
		x := benchInput(cfg.Input, r, n, cfg.Seed)
		for i, v := range x {
			exact[i] += float64(v)
		}
		if r == 0 {
			mine = x
		}
	}
	return mine, exact
}

// runRow runs the calls of one (size, algorithm) on this rank for every
// codec: the warm-up calls, then the timed calls round-robin over the
// codecs (so a slow spell of the shared machine hits all codecs alike),
// each after a barrier on the same input. firstOut sees the output of each
// codec's first timed call; every later call must end with the same bytes.
func runRow(ctx context.Context, c *collective.Communicator, node *transport.Node, tr *timedEndpoint,
	topo tpu.Topology, prof tpu.Profile, in, buf []float32, optss []collective.Options, cfg tcpConfig,
	firstOut func(k int, out []float32)) ([]workerReport, error) {
	reps := make([]workerReport, len(optss))
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	for i := 0; i < cfg.Warmup+cfg.Iters; i++ {
		for k, opts := range optss {
			rep := &reps[k]
			copy(buf, in)
			if err := c.Barrier(ctx, cfg.CallTimeout); err != nil {
				return nil, err
			}
			s0, r0 := tr.send.Load(), tr.recv.Load()
			c0 := cpuTime()
			_, _, _, b0 := node.Traffic()
			t0 := time.Now()
			st, err := c.AllReduce(ctx, buf, opts)
			wall := time.Since(t0).Seconds()
			c1 := cpuTime()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", opts.Codec, err)
			}
			_, _, _, b1 := node.Traffic()
			if i < cfg.Warmup {
				continue
			}
			rep.Wall = append(rep.Wall, wall)
			rep.Send = append(rep.Send, time.Duration(tr.send.Load()-s0).Seconds())
			rep.Recv = append(rep.Recv, time.Duration(tr.recv.Load()-r0).Seconds())
			rep.CPU = append(rep.CPU, c1-c0)
			rep.SocketBytes = b1 - b0
			rep.WireBytes, rep.SimSeconds = st.WireBytes, st.SimSeconds
			rep.Codec, rep.Algorithm = string(st.Codec), string(st.Algorithm)
			sum := crc32.Checksum(floatBytes(buf), castagnoli)
			if i == cfg.Warmup {
				rep.OutCRC = sum
				firstOut(k, buf)
			} else if sum != rep.OutCRC {
				return nil, fmt.Errorf("%s: timed call %d ended with other values than the first", opts.Codec, i-cfg.Warmup)
			}
		}
	}
	// The kernels' time: median of three replays (by encode + decode),
	// one rank at a time while the others wait at a barrier, so that it
	// is the kernels' own time, not their share of contended CPUs.
	for k, opts := range optss {
		reps[k].CPUs = runtime.NumCPU()
		var lws []collective.LocalWork
		for r := 0; r < c.Size(); r++ {
			if r == c.Rank() {
				for range 3 {
					lw, err := collective.ReplayLocalWork(topo, prof, c.Rank(), in, opts)
					if err != nil {
						return nil, err
					}
					lws = append(lws, lw)
				}
			}
			if err := c.Barrier(ctx, cfg.CallTimeout); err != nil {
				return nil, err
			}
		}
		sort.Slice(lws, func(a, b int) bool {
			return lws[a].EncodeSeconds+lws[a].DecodeSeconds < lws[b].EncodeSeconds+lws[b].DecodeSeconds
		})
		reps[k].Local = lws[1]
	}
	return reps, nil
}

// cpuTime is the user + system CPU seconds this process has used.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func floatBytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

// writeTCPTable prints tcp rows: measured wall time and where it goes,
// beside the simulated TPU time of the same schedule.
func writeTCPTable(w io.Writer, rows []arRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "link Gbit/s\tN\telements\tcodec\talgorithm\twire bytes/rank\twall ms (median)\tspeedup vs bf16 (wall)\twire ratio\twire floor ms\tcodec ms\tcrc ms\tsend ms\trecv wait ms\tCPU s (all ranks)\tcodec s (all ranks)\tCPU floor ms\tgoodput Gbit/s\tsim TPU us\trel err rms\t")
	for _, r := range rows {
		t := r.TCPFields
		if t == nil {
			continue
		}
		link := "loopback"
		if t.LinkGbps > 0 {
			link = strconv.FormatFloat(t.LinkGbps, 'g', -1, 64)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%.2f\t%.3f\t%.3f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.3f\t%.3f\t%.2f\t%.2f\t%.1f\t%.2e\t\n",
			link, r.Devices, r.Elements, r.CodecUsed, r.AlgorithmUsed, r.WireBytes, r.WallSeconds*1e3, r.SpeedupVsBF16,
			r.WireRatioVsBF16, t.WireFloorSeconds*1e3, t.CodecSeconds*1e3, t.CRCSeconds*1e3, t.SendSeconds*1e3,
			t.RecvWaitSeconds*1e3, t.CPUSeconds, t.CodecSecondsAllRanks, t.CPUFloorSeconds*1e3, t.GoodputGbps, r.SimSeconds*1e6, r.RelErrRMS)
	}
	return tw.Flush()
}
