// Package assets embeds the built-in default model so that equarx runs with
// no files beside the binary: stories260K (a 260K-parameter Llama trained on
// TinyStories, llama2.c format, MIT) and its 512-token tokenizer.
package assets

import _ "embed"

//go:embed stories260K.bin
var stories260K []byte

//go:embed tok512.bin
var tok512 []byte

//go:embed greedy_from_bos.json
var greedyFromBOS []byte

// Stories260K returns the llama2.c checkpoint bytes. Callers must not modify them.
func Stories260K() []byte { return stories260K }

// Tok512 returns the llama2.c tokenizer bytes. Callers must not modify them.
func Tok512() []byte { return tok512 }

// GreedyFromBOS returns llama2.c run.c's float32 greedy decode from BOS
// (JSON: ids and text), the reference the model must reproduce.
func GreedyFromBOS() []byte { return greedyFromBOS }
