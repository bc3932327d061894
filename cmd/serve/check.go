package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/server"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/tpu"
	"github.com/equarx/equarx/weights"
)

const usageLine = "usage: serve [flags]"

const description = `Serves prefill of a transformer sharded tensor-parallel over emulated TPU
devices, with a selectable AllReduce codec (int8, fp8, int6, int4, bf16, f32) per
request, over an OpenAI-style HTTP API (/v1/prefill, /v1/completions,
/tokenize, /v1/models, /version, /health, /metrics). With no flags it serves
the built-in stories260K model at tp 4 (ring:4, v5e) with int8 AllReduce on
127.0.0.1:8080. Routes and settings: docs/SERVING.md.`

func printUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintln(w, usageLine)
	fmt.Fprintln(w)
	fmt.Fprintln(w, description)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "flags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// usageError is a bad flag, config file or setting: main prints it as one
// line and exits with status 2, before anything listens.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

// errVersion asks main to print the version and exit.
var errVersion = errors.New("version requested")

func printVersion(w io.Writer) error {
	b, err := json.MarshalIndent(server.Version(), "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// checkMesh checks the topology and TPU profile against --tp.
func (c *Config) checkMesh() error {
	if c.Topology != "" {
		topo, err := tpu.ParseTopology(c.Topology)
		if err != nil {
			return fmt.Errorf("--topology: %v", strings.TrimPrefix(err.Error(), "tpu: "))
		}
		if topo.Size() != c.TP {
			return fmt.Errorf("--topology %s has %d devices but --tp is %d", c.Topology, topo.Size(), c.TP)
		}
	}
	if _, err := tpu.LoadProfile(c.TPU); err != nil {
		return fmt.Errorf("--tpu: %v", strings.TrimPrefix(err.Error(), "tpu: "))
	}
	if _, err := collective.NewCodec(collective.CodecKind(c.AllReduce), c.BlockSize); err != nil {
		return fmt.Errorf("--allreduce %s --block-size %d: %v", c.AllReduce, c.BlockSize, err)
	}
	return nil
}

// checkModel reads only the model's configuration and checks that --tp
// shards it (every rank must get whole attention heads) and that the
// memory it needs fits --max-memory. It runs before the
// server listens, so a bad --tp or --model is a usage error, not a server
// that starts and then stops.
func (c *Config) checkModel() (model.Config, error) {
	mc, _, err := c.checkModelPlan()
	return mc, err
}

// checkModelPlan is checkModel that also returns the memory plan.
func (c *Config) checkModelPlan() (model.Config, *memoryPlan, error) {
	var (
		src weights.Source
		err error
	)
	synthName, synthetic := strings.CutPrefix(c.Model, "synthetic:")
	switch {
	case c.Model == "":
		src, err = weights.ReadLlama2C(assets.Stories260K())
	case synthetic:
		src, _, err = openSynthetic(synthName, "") // lazy: nothing is generated until read
	default:
		st, serr := os.Stat(c.Model)
		switch {
		case serr != nil:
			return model.Config{}, nil, usagef("--model: %v", serr)
		case st.IsDir() || strings.HasSuffix(c.Model, ".safetensors"):
			src, err = weights.OpenSafetensors(c.Model)
		default:
			src, err = weights.OpenLlama2C(c.Model)
		}
	}
	if err != nil {
		return model.Config{}, nil, usagef("--model %s: %v", c.Model, err)
	}
	defer src.Close()
	mc := src.Config()
	for r := range c.TP {
		if _, err := tp.HeadShard(mc, c.TP, r); err != nil {
			return model.Config{}, nil, usagef("--tp %d does not shard the model: %v", c.TP, strings.TrimPrefix(err.Error(), fmt.Sprintf("tp %d: ", c.TP)))
		}
	}
	plan, err := c.planMemory(mc, weights.StoredDType(src))
	if err != nil {
		return model.Config{}, nil, err
	}
	return mc, plan, nil
}

// logStartup names the build and the serving defaults before the model
// loads: version, commit, Go, BLAS, CPU features, and the codec settings
// requests get when they name none.
func logStartup(log *slog.Logger, c *Config) {
	v := server.Version()
	log.Info("starting", "version", v.Version, "commit", v.Commit, "modified", v.Modified, "go", v.GoVersion,
		"blas", v.BLAS, "cpu_avx2", v.CPU.AVX2, "cpu_avx512f", v.CPU.AVX512F, "cpu_fma", v.CPU.FMA)
	block := c.BlockSize
	if cd, err := collective.NewCodec(collective.CodecKind(c.AllReduce), c.BlockSize); err == nil {
		block = cd.BlockSize()
	}
	fallback := "cost-model crossover per call"
	switch {
	case c.FallbackElems < 0:
		fallback = "never"
	case c.FallbackElems > 0:
		fallback = fmt.Sprintf("below %d values", c.FallbackElems)
	}
	topo := c.Topology
	if topo == "" {
		topo = fmt.Sprintf("ring:%d", c.TP)
	}
	log.Info("defaults", "allreduce", c.AllReduce, "block_size", block, "bf16_fallback", fallback,
		"tp", c.TP, "topology", topo, "tpu", c.TPU, "access_log", c.AccessLog)
}
