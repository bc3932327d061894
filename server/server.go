// Package server is the prefill HTTP service: gin routes, wire types,
// validation, one error renderer, a batching queue in front of the engine,
// health and Prometheus metrics.
package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/equarx/equarx/model"
)

// Server serves one model. Create it with New, hand it a loaded model with
// SetBackend (until then /health answers 503), serve Handler, and call Close
// after the http.Server has shut down.
type Server struct {
	opts    Options
	log     *slog.Logger
	m       *metrics
	router  *gin.Engine
	backend atomic.Pointer[loaded]
	setOnce sync.Once
	drain   atomic.Bool
}

// loaded is a backend in service.
type loaded struct {
	Backend
	cfg model.Config
	b   *batcher
}

// New builds a server with no model loaded yet.
func New(opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger}
	s.m = newMetrics(func() float64 {
		if be := s.backend.Load(); be != nil {
			return float64(be.b.pending.Load())
		}
		return 0
	})
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	mw := []gin.HandlerFunc{s.m.middleware}
	if opts.AccessLog {
		mw = append(mw, s.accessLog)
	}
	r.Use(append(mw, gin.CustomRecoveryWithWriter(io.Discard, s.recovered), s.limitBody)...)
	r.NoRoute(func(c *gin.Context) {
		s.renderError(c, &apiError{status: http.StatusNotFound, typ: TypeNotFound,
			msg: fmt.Sprintf("no route %s %s", c.Request.Method, c.Request.URL.Path)})
	})
	r.NoMethod(func(c *gin.Context) {
		s.renderError(c, &apiError{status: http.StatusMethodNotAllowed, typ: TypeMethod,
			msg: fmt.Sprintf("method %s not allowed on %s", c.Request.Method, c.Request.URL.Path)})
	})
	r.POST("/v1/prefill", s.handlePrefill)
	r.POST("/v1/completions", s.handleCompletions)
	r.GET("/v1/models", s.handleModels)
	r.GET("/tokenizer_info", s.handleTokenizerInfo)
	r.POST("/tokenize", s.handleTokenize)
	r.POST("/detokenize", s.handleDetokenize)
	r.GET("/health", s.handleHealth)
	r.GET("/version", s.handleVersion)
	metricsHandler := promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{Registry: s.m.reg})
	r.GET("/metrics", gin.WrapH(metricsHandler))
	s.router = r
	return s, nil
}

// Handler returns the HTTP handler of every route.
func (s *Server) Handler() http.Handler { return s.router }

// SetBackend puts a loaded model into service; /health turns 200. It may be
// called once.
func (s *Server) SetBackend(b Backend) error {
	if b.Engine == nil || b.Tokenizer == nil {
		return errors.New("server: backend needs an engine and a tokenizer")
	}
	if b.Name == "" {
		return errors.New("server: backend needs a model name")
	}
	cfg := b.Engine.Config()
	if cfg.Vocab <= 0 || cfg.MaxSeqLen <= 0 {
		return fmt.Errorf("server: engine config has vocab %d and max_seq_len %d", cfg.Vocab, cfg.MaxSeqLen)
	}
	if tv := b.Tokenizer.VocabSize(); tv > cfg.Vocab {
		return fmt.Errorf("server: tokenizer vocabulary %d is larger than the model's %d", tv, cfg.Vocab)
	}
	for _, p := range s.opts.Policies {
		if err := p.Validate(cfg.Layers); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	}
	if t, ok := b.Engine.(interface{ TP() int }); ok && b.TP == 0 {
		b.TP = t.TP() // *tp.Engine knows its degree
	}
	err := errors.New("server: backend already set")
	s.setOnce.Do(func() {
		s.backend.Store(&loaded{Backend: b, cfg: cfg, b: newBatcher(b.Engine, s.opts, s.m)})
		s.m.ready.Set(1)
		err = nil
	})
	return err
}

// Drain makes /health answer 503 so load balancers stop sending work;
// requests still in flight are served.
func (s *Server) Drain() {
	s.drain.Store(true)
	s.m.ready.Set(0)
}

// Close stops the batcher after the HTTP server has shut down: queued
// requests that nobody waits for are failed, the engine call in flight
// finishes first.
func (s *Server) Close() {
	s.Drain()
	if be := s.backend.Load(); be != nil {
		be.b.close()
	}
}

func (s *Server) current() (*loaded, error) {
	be := s.backend.Load()
	if be == nil {
		return nil, ErrNotReady
	}
	return be, nil
}

func (s *Server) limitBody(c *gin.Context) {
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.opts.MaxBodyBytes)
	}
	c.Next()
}

func (s *Server) recovered(c *gin.Context, rec any) {
	s.log.Error("handler panic", "route", c.FullPath(), "panic", rec, "stack", string(debug.Stack()))
	s.renderError(c, &apiError{status: http.StatusInternalServerError, typ: TypeInternal,
		msg: fmt.Sprintf("internal error: %v", rec)})
}

func (s *Server) handleHealth(c *gin.Context) {
	be := s.backend.Load()
	switch {
	case be == nil:
		c.PureJSON(http.StatusServiceUnavailable, HealthResponse{Status: "loading"})
	case s.drain.Load():
		c.PureJSON(http.StatusServiceUnavailable, HealthResponse{Status: "draining", Model: be.Name})
	default:
		if h, ok := be.Engine.(interface{ Healthy() error }); ok {
			if err := h.Healthy(); err != nil {
				c.PureJSON(http.StatusServiceUnavailable, HealthResponse{Status: "unavailable", Model: be.Name, Error: err.Error()})
				return
			}
		}
		c.PureJSON(http.StatusOK, HealthResponse{Status: "ok", Model: be.Name})
	}
}

func (s *Server) handleModels(c *gin.Context) {
	be, err := s.current()
	if err != nil {
		s.renderError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, ModelList{Object: "list", Data: []ModelCard{{
		ID: be.Name, Object: "model", OwnedBy: "equarx", MaxModelLen: be.cfg.MaxSeqLen,
		VocabSize: be.cfg.Vocab, Arch: be.cfg.Arch, DefaultCodec: string(s.opts.DefaultCodec),
		TP: be.TP, Topology: be.Topology, TPU: be.TPU,
	}}})
}

func (s *Server) handleVersion(c *gin.Context) {
	v := Version()
	if be := s.backend.Load(); be != nil {
		v.Model, v.TP, v.Topology, v.TPU = be.Name, be.TP, be.Topology, be.TPU
	}
	c.PureJSON(http.StatusOK, v)
}

func (s *Server) handleTokenizerInfo(c *gin.Context) {
	be, err := s.current()
	if err != nil {
		s.renderError(c, err)
		return
	}
	t := be.Tokenizer
	c.PureJSON(http.StatusOK, TokenizerInfo{
		TokenizerClass: strings.TrimPrefix(fmt.Sprintf("%T", t), "*"),
		BOSToken:       tokenName(t, t.BOS()),
		EOSToken:       tokenName(t, t.EOS()),
		BOSTokenID:     t.BOS(),
		EOSTokenID:     t.EOS(),
		AddBOSToken:    true,
		VocabSize:      t.VocabSize(),
		ModelMaxLength: be.cfg.MaxSeqLen,
	})
}

func (s *Server) handleTokenize(c *gin.Context) {
	be, err := s.current()
	if err != nil {
		s.renderError(c, err)
		return
	}
	var req TokenizeRequest
	if err := decodeJSON(c.Request.Body, &req); err != nil {
		s.renderError(c, err)
		return
	}
	addBOS := req.AddSpecialTokens == nil || *req.AddSpecialTokens
	var ids []int
	t := be.Tokenizer
	// The text of a special token is that token, as lm-eval's remote
	// tokenizer expects when it looks up the EOS id by its text.
	switch req.Prompt {
	case tokenName(t, t.BOS()):
		ids = []int{t.BOS()}
	case tokenName(t, t.EOS()):
		ids = []int{t.EOS()}
	default:
		if ids, err = t.Encode(req.Prompt, addBOS); err != nil {
			s.renderError(c, badRequest("prompt: %v", err))
			return
		}
	}
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = tokenName(be.Tokenizer, id)
	}
	c.PureJSON(http.StatusOK, TokenizeResponse{Tokens: ids, TokenStrs: strs, Count: len(ids), MaxModelLen: be.cfg.MaxSeqLen})
}

func (s *Server) handleDetokenize(c *gin.Context) {
	be, err := s.current()
	if err != nil {
		s.renderError(c, err)
		return
	}
	var req DetokenizeRequest
	if err := decodeJSON(c.Request.Body, &req); err != nil {
		s.renderError(c, err)
		return
	}
	if req.Tokens == nil {
		s.renderError(c, badRequest("tokens is required"))
		return
	}
	for i, id := range req.Tokens {
		if id < 0 || id >= be.cfg.Vocab {
			s.renderError(c, badRequest("tokens: token %d at position %d is outside the vocabulary 0..%d", id, i, be.cfg.Vocab-1))
			return
		}
	}
	c.PureJSON(http.StatusOK, DetokenizeResponse{Prompt: be.Tokenizer.Decode(req.Tokens)})
}
