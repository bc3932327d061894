package main

import (
	"fmt"

	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/weights"
)

// syntheticSeed fixes the synthetic weights, so every process of a group
// (and every run) holds the same model.
const syntheticSeed = 1

// openSynthetic returns deterministic synthetic weights for a published
// shape: NAME is a config in configs/models (or a path to one). Such a
// model has no trained tokenizer: prompts are encoded byte by byte.
func openSynthetic(arg, name string) (weights.Source, string, error) {
	mc, err := model.LoadNamed(arg, "")
	if err != nil {
		return nil, "", fmt.Errorf("synthetic model: %w", err)
	}
	src, err := weights.Synthetic(mc, syntheticSeed)
	if err != nil {
		return nil, "", err
	}
	if name == "" {
		name = "synthetic-" + mc.Name
	}
	return src, name, nil
}
