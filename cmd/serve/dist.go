package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/transport"
	"github.com/equarx/equarx/weights"
)

// DistConfig places this process in a multi-process tensor-parallel group.
// Flags are named like torchrun's and vLLM's; what they leave unset comes
// from the launcher's environment (torchrun, mpirun, srun,
// LeaderWorkerSet). With one node (the default) nothing here is used.
type DistConfig struct {
	NNodes     int    `json:"nnodes"`      // processes in the group; 0 = from the launcher, else 1
	NodeRank   int    `json:"node_rank"`   // this process; -1 = from the launcher
	MasterAddr string `json:"master_addr"` // node 0's address; "" = from the launcher, else 127.0.0.1
	MasterPort int    `json:"master_port"` // 0 = from the launcher, else 29500
	// BindAddr is a worker's data-plane address (host:port). "" = the local
	// address that routes to the master, on a free port.
	BindAddr    string   `json:"bind_addr"`
	JoinTimeout Duration `json:"join_timeout"` // how long a worker waits to join

	// Token: --cluster-token or $EQUARX_CLUSTER_TOKEN, never a config file.
	Token  string `json:"-"`
	Source string `json:"-"` // where the placement came from, for the log
}

func bindDistFlags(fs *flag.FlagSet, d *DistConfig) {
	fs.IntVar(&d.NNodes, "nnodes", d.NNodes, "processes in the tensor-parallel group (0 = from the launcher's environment, else 1)")
	fs.IntVar(&d.NodeRank, "node-rank", d.NodeRank, "this process's index in the group; 0 serves HTTP, the others are workers (-1 = from the launcher)")
	fs.StringVar(&d.MasterAddr, "master-addr", d.MasterAddr, "address of node 0, where the group meets (empty = from the launcher, else 127.0.0.1)")
	fs.IntVar(&d.MasterPort, "master-port", d.MasterPort, "port of node 0's data plane (0 = from the launcher, else 29500)")
	fs.StringVar(&d.BindAddr, "bind-addr", d.BindAddr, "worker data-plane address host:port (empty = the local address that reaches the master, free port)")
	fs.StringVar(&d.Token, "cluster-token", d.Token, "shared secret every data-plane connection proves (default: $EQUARX_CLUSTER_TOKEN)")
	fs.Var(durationFlag{&d.JoinTimeout}, "join-timeout", "how long a worker tries to join the group")
}

func defaultDist() DistConfig {
	return DistConfig{NodeRank: -1, JoinTimeout: Duration(5 * time.Minute)}
}

// resolve fills what the flags left unset from the launcher's environment
// and checks the result against tp.
func (d *DistConfig) resolve(getenv func(string) string, tpDegree int) error {
	l, ok, err := transport.LaunchFromEnv(getenv)
	if err != nil {
		return err
	}
	d.Source = "flags"
	if ok {
		d.Source = l.Source
		if d.NNodes == 0 {
			d.NNodes = l.Nodes
		}
		if d.NodeRank < 0 {
			d.NodeRank = l.NodeRank
		}
		if d.MasterAddr == "" {
			d.MasterAddr = l.MasterAddr
		}
		if d.MasterPort == 0 {
			d.MasterPort = l.MasterPort
		}
	}
	if d.NNodes == 0 {
		d.NNodes = 1
	}
	if d.NNodes < 1 {
		return fmt.Errorf("nnodes must be >= 1, got %d", d.NNodes)
	}
	if d.NNodes == 1 {
		if d.NodeRank > 0 {
			return fmt.Errorf("node-rank %d with one node", d.NodeRank)
		}
		d.NodeRank = 0
		return nil
	}
	if d.NodeRank < 0 || d.NodeRank >= d.NNodes {
		return fmt.Errorf("node-rank must be in [0, %d) with --nnodes %d (or come from a launcher), got %d", d.NNodes, d.NNodes, d.NodeRank)
	}
	if tpDegree%d.NNodes != 0 {
		return fmt.Errorf("tp %d does not split over %d nodes (each node runs tp/nnodes ranks)", tpDegree, d.NNodes)
	}
	if d.MasterAddr == "" {
		d.MasterAddr = "127.0.0.1"
	}
	if d.MasterPort == 0 {
		d.MasterPort = transport.DefaultMasterPort
	}
	if d.MasterPort < 1 || d.MasterPort > 65535 {
		return fmt.Errorf("master-port %d out of range", d.MasterPort)
	}
	if d.Token == "" {
		d.Token = getenv("EQUARX_CLUSTER_TOKEN")
	}
	if d.Token == "" {
		return errors.New("a multi-process group needs a shared secret: set --cluster-token or EQUARX_CLUSTER_TOKEN on every node")
	}
	if d.JoinTimeout <= 0 {
		return errors.New("join-timeout must be positive")
	}
	return nil
}

func (d *DistConfig) master() string {
	return net.JoinHostPort(d.MasterAddr, strconv.Itoa(d.MasterPort))
}

// buildID names the build: VCS revision (with +dirty) or "unknown", and
// the Go version.
func buildID() string {
	rev, dirty := "unknown", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev + " " + runtime.Version()
}

// fingerprint identifies what a node serves: the model (name and every
// config field), tp, topology, TPU profile, the AllReduce fallback setting
// (every rank must pick the same codec for a reduction) and build. Nodes that differ in
// any of them refuse each other.
func fingerprint(cfg *Config, name string, mc model.Config) ([32]byte, string) {
	mcj, _ := json.Marshal(mc)
	desc := fmt.Sprintf("model %s (%s, dim %d, %d layers, vocab %d), tp %d, %s, %s, algorithm %q, fallback-elems %d, build %s",
		name, mc.Arch, mc.Dim, mc.Layers, mc.Vocab, cfg.TP, cfg.Topology, cfg.TPU, cfg.Algorithm, cfg.FallbackElems, buildID())
	return sha256.Sum256([]byte(desc + "\n" + string(mcj))), desc
}

// listenNode opens this process's data plane: node 0 on the master
// address, workers on --bind-addr (or the address that routes to the
// master).
func listenNode(cfg *Config, name string, mc model.Config, log *slog.Logger) (*transport.Node, error) {
	d := &cfg.Dist
	addr := d.master()
	if d.NodeRank != 0 {
		addr = d.BindAddr
		if addr == "" {
			host, err := transport.LocalAddrToward(d.master())
			if err != nil {
				return nil, fmt.Errorf("finding the local address toward the master %s: %w", d.master(), err)
			}
			addr = net.JoinHostPort(host, "0")
		}
	}
	fp, desc := fingerprint(cfg, name, mc)
	n, err := transport.Listen(transport.NodeConfig{
		Node: d.NodeRank, Nodes: d.NNodes, Ranks: cfg.TP, Token: d.Token,
		Fingerprint: fp, Describe: desc, Listen: addr,
		IOTimeout: time.Duration(cfg.AllReduceTimeout), Logger: log,
	})
	if err != nil {
		return nil, err
	}
	log.Info("data plane listening", "node", d.NodeRank, "nodes", d.NNodes, "addr", n.Addr(),
		"ranks", fmt.Sprint(n.LocalRanks()), "placement_from", d.Source, "master", d.master())
	return n, nil
}

func (c *Config) engineConfig() tp.EngineConfig {
	return tp.EngineConfig{TP: c.TP, Topology: c.Topology, TPU: c.TPU, Algorithm: collective.Algorithm(c.Algorithm),
		FallbackElems: c.FallbackElems, Timeout: time.Duration(c.AllReduceTimeout),
		BatchInvariant: c.BatchInvariant, PlanRows: c.BatchTokenBudget, WeightsDType: c.WeightsDType}
}

// newDriverEngine is node 0's engine: it opens the data plane, lets the
// workers join (for the process's life: a restarted worker joins again)
// and serves once they are all connected (/health says 503 until then).
func newDriverEngine(cfg *Config, src weights.Source, name string, log *slog.Logger) (*tp.Engine, func(), error) {
	n, err := listenNode(cfg, name, src.Config(), log)
	if err != nil {
		return nil, nil, err
	}
	eng, err := tp.NewDriver(src, cfg.engineConfig(), n, log)
	if err != nil {
		n.Close()
		return nil, nil, err
	}
	n.OnChange(eng.MarkPeersChanged)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		if err := n.Join(ctx, "", ""); err == nil {
			log.Info("tensor-parallel group complete", "nodes", cfg.Dist.NNodes, "tp", cfg.TP)
		}
	}()
	return eng, func() { cancel(); n.Close() }, nil
}

// runWorker is the whole life of a worker process: load its shard, join,
// run batches until the driver goes away or a signal arrives.
func runWorker(ctx context.Context, cfg *Config, log *slog.Logger) error {
	src, _, name, err := openModel(cfg, false)
	if err != nil {
		return err
	}
	defer src.Close()
	n, err := listenNode(cfg, name, src.Config(), log)
	if err != nil {
		return err
	}
	defer n.Close()
	jctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.Dist.JoinTimeout))
	defer cancel()
	if err := n.Join(jctx, cfg.Dist.master(), ""); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	log.Info("joined the group", "node", cfg.Dist.NodeRank, "master", cfg.Dist.master())
	err = tp.RunWorker(ctx, src, cfg.engineConfig(), n, log)
	if err == nil {
		log.Info("stopped")
	}
	return err
}
