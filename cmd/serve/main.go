// Command serve runs the equarx prefill HTTP service. With no arguments it
// serves the built-in stories260K model at tp 4 with int8 AllReduce on
// 127.0.0.1:8080. See docs/SERVING.md for the routes and every setting.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/server"
	"github.com/equarx/equarx/tokenizer"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/weights"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		var ue *usageError
		switch {
		case errors.Is(err, flag.ErrHelp):
			os.Exit(0)
		case errors.Is(err, errVersion):
			if err := printVersion(os.Stdout); err != nil {
				fmt.Fprintf(os.Stderr, "serve: %v\n", err)
				os.Exit(1)
			}
			os.Exit(0)
		case errors.As(err, &ue):
			fmt.Fprintf(os.Stderr, "serve: %v (serve --help lists the flags)\n", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "serve: %v\n", err)
		os.Exit(1)
	}
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log_level: %w", err)
	}
	return l, nil
}

func newLogger(c *Config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel) // validated
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func run(args []string, stderr io.Writer) error {
	cfg, err := loadConfig(args, stderr)
	if err != nil {
		return err
	}
	_, plan, err := cfg.checkModelPlan()
	if err != nil {
		return err
	}
	log := newLogger(&cfg, stderr)
	slog.SetDefault(log)
	gin.SetMode(gin.ReleaseMode)
	logStartup(log, &cfg)
	plan.apply(log)
	if cfg.Dist.NNodes > 1 && cfg.Dist.NodeRank != 0 {
		// A worker: no HTTP, only its ranks on the data plane.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runWorker(ctx, &cfg, log)
	}

	srv, err := server.New(cfg.serverOptions(log))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	httpSrv := newHTTPServer(&cfg, srv.Handler(), log)
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Load the model while /health answers 503.
	loaded := make(chan error, 1)
	var closeModel func()
	go func() {
		start := time.Now()
		be, closer, err := loadBackend(&cfg, log)
		if err == nil {
			err = srv.SetBackend(be)
		}
		if err == nil {
			log.Info("ready", "model", be.Name, "tp", cfg.TP, "topology", cfg.Topology, "tpu", cfg.TPU,
				"allreduce", cfg.AllReduce, "load_seconds", time.Since(start).Seconds())
		}
		closeModel = closer
		loaded <- err
	}()

	var runErr error
	select {
	case err := <-loaded:
		if err != nil {
			runErr = fmt.Errorf("loading the model: %w", err)
			break
		}
		select {
		case <-ctx.Done():
		case err := <-serveErr:
			runErr = fmt.Errorf("http server: %w", err)
		}
	case <-ctx.Done():
		<-loaded // the loader cannot be interrupted; it is bounded by the model size
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}
	stop()

	log.Info("shutting down", "timeout", time.Duration(cfg.ShutdownTimeout).String())
	srv.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil {
		log.Warn("shutdown did not finish in time; closing connections", "err", err)
		httpSrv.Close()
	}
	srv.Close()
	if closeModel != nil {
		closeModel()
	}
	log.Info("stopped")
	return runErr
}

// newHTTPServer applies the connection limits: slow or stalled clients are
// cut off by the read timeouts, idle keep-alive connections by IdleTimeout.
func newHTTPServer(cfg *Config, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadTimeout:       time.Duration(cfg.ReadTimeout),
		ReadHeaderTimeout: time.Duration(cfg.ReadHeaderTimeout),
		WriteTimeout:      time.Duration(cfg.WriteTimeout),
		IdleTimeout:       time.Duration(cfg.IdleTimeout),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// loadBackend opens the weights and tokenizer and builds the engine. The
// returned function releases them.
func loadBackend(cfg *Config, log *slog.Logger) (server.Backend, func(), error) {
	src, tok, name, err := openModel(cfg, true)
	if err != nil {
		return server.Backend{}, nil, err
	}
	var (
		eng       *tp.Engine
		closeDist = func() {}
	)
	if cfg.Dist.NNodes > 1 {
		eng, closeDist, err = newDriverEngine(cfg, src, name, log)
	} else {
		eng, err = tp.NewEngine(src, cfg.engineConfig())
	}
	if err != nil {
		src.Close()
		return server.Backend{}, nil, fmt.Errorf("engine: %w", err)
	}
	eng.LoadStats().Log(log)
	mc := eng.Config()
	log.Info("model loaded", "name", name, "arch", mc.Arch, "params", mc.Params(),
		"weights_dtype", eng.WeightsDType(), "layers", mc.Layers,
		"dim", mc.Dim, "vocab", mc.Vocab, "max_seq_len", mc.MaxSeqLen, "peak_rss_bytes", peakRSS())
	closer := func() {
		if err := eng.Close(); err != nil {
			log.Warn("closing the engine", "err", err)
		}
		closeDist()
		if err := src.Close(); err != nil {
			log.Warn("closing the weights", "err", err)
		}
	}
	return server.Backend{Name: name, Engine: eng, Tokenizer: tok, Classify: classifyEngineError,
		TP: cfg.TP, Topology: cfg.Topology, TPU: cfg.TPU}, closer, nil
}

// openModel opens the weights (and, when withTokenizer, the tokenizer) the
// config names, and the model's display name.
func openModel(cfg *Config, withTokenizer bool) (weights.Source, server.Tokenizer, string, error) {
	if cfg.Topology == "" {
		cfg.Topology = fmt.Sprintf("ring:%d", cfg.TP)
	}
	var (
		src  weights.Source
		tok  server.Tokenizer
		name = cfg.ModelName
		err  error
	)
	synthName, synthetic := strings.CutPrefix(cfg.Model, "synthetic:")
	switch {
	case synthetic:
		if src, name, err = openSynthetic(synthName, name); err != nil {
			return nil, nil, "", err
		}
	case cfg.Model == "":
		if src, err = weights.ReadLlama2C(assets.Stories260K()); err != nil {
			return nil, nil, "", fmt.Errorf("built-in model: %w", err)
		}
		if name == "" {
			name = "stories260K"
		}
	default:
		st, err := os.Stat(cfg.Model)
		if err != nil {
			return nil, nil, "", fmt.Errorf("model: %w", err)
		}
		if st.IsDir() || strings.HasSuffix(cfg.Model, ".safetensors") {
			src, err = weights.OpenSafetensors(cfg.Model)
		} else {
			src, err = weights.OpenLlama2C(cfg.Model)
		}
		if err != nil {
			return nil, nil, "", fmt.Errorf("model %s: %w", cfg.Model, err)
		}
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(filepath.Clean(cfg.Model)), ".bin")
		}
	}
	if !withTokenizer {
		return src, nil, name, nil
	}
	switch {
	case cfg.Tokenizer != "":
		tok, err = tokenizer.Open(cfg.Tokenizer)
	case cfg.Model == "":
		tok, err = tokenizer.LoadLlama2C(assets.Tok512())
	case synthetic:
		tok, err = tokenizer.NewBytes(src.Config().Vocab)
	default:
		st, serr := os.Stat(cfg.Model)
		if serr == nil && st.IsDir() {
			tok, err = tokenizer.Open(cfg.Model)
		} else {
			err = errors.New("a llama2.c checkpoint carries no tokenizer: pass --tokenizer")
		}
	}
	if err != nil {
		src.Close()
		return nil, nil, "", fmt.Errorf("tokenizer: %w", err)
	}
	return src, tok, name, nil
}

// classifyEngineError maps the engine's input errors to HTTP statuses.
func classifyEngineError(err error) int {
	switch {
	case errors.Is(err, tp.ErrGroupIncomplete):
		return http.StatusServiceUnavailable
	case errors.Is(err, tp.ErrTooLong):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, tp.ErrInvalidInput):
		return http.StatusBadRequest
	}
	return 0
}
