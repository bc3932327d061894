package main

import (
	"fmt"

	"github.com/equarx/equarx/assets"
	"github.com/equarx/equarx/evalharness"
	"github.com/equarx/equarx/tokenizer"
	"github.com/equarx/equarx/tp"
	"github.com/equarx/equarx/weights"
)

// newEngineBackend loads the model and builds the tensor-parallel engine.
func newEngineBackend(c *common, tok localTokenizer) (*evalharness.EngineBackend, func(), error) {
	var src weights.Source
	var err error
	name := "stories260K"
	if c.modelPath == "" {
		src, err = weights.ReadLlama2C(assets.Stories260K())
	} else {
		src, err = weights.OpenLlama2C(c.modelPath)
		name = c.modelPath
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load model %s: %w", name, err)
	}
	eng, err := tp.NewEngine(src, tp.EngineConfig{TP: c.tp, Topology: c.topology, TPU: c.tpu, FallbackElems: c.fallback, BatchInvariant: c.invariant, PlanRows: c.tokenBudget, WeightsDType: c.weightsDType})
	if err != nil {
		return nil, nil, fmt.Errorf("build engine: %w", err)
	}
	cfg := eng.Config()
	if tv := tok.VocabSize(); tv > cfg.Vocab {
		eng.Close()
		return nil, nil, fmt.Errorf("tokenizer vocabulary %d is larger than the model's %d", tv, cfg.Vocab)
	}
	be := &evalharness.EngineBackend{Engine: eng, Model: name, Window: cfg.MaxSeqLen, Token: func(id int) string { return tokenizer.Name(tok, id) }}
	return be, func() { eng.Close() }, nil
}
