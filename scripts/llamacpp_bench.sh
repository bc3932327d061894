#!/usr/bin/env bash
# llamacpp_bench: measures llama.cpp's CPU prefill on the shape equarx
# benchmarks. It writes the synthetic model as an F32 GGUF file (bench
# gguf), installs node-llama-cpp and its prebuilt linux-x64 CPU binaries
# from the npm registry into a temporary directory (versions pinned by
# scripts/llamacpp/package.json and package-lock.json; install scripts are
# not run, so nothing is built from source or downloaded from elsewhere)
# and runs scripts/llamacpp/bench.mjs: a prefill of TOKENS random token ids
# in one batch, one warm-up and RUNS timed runs per thread count and output
# mode, median tok/s.
#
# Usage, from anywhere in the repository:
#   scripts/llamacpp_bench.sh [MODEL [TOKENS]]
#   scripts/llamacpp_bench.sh llama-110m 512
# MODEL is a configs/models name of a Llama shape (default llama-110m).
# Environment: LLAMACPP_THREADS (default 2,1), LLAMACPP_RUNS (default 5),
# LLAMACPP_OUTPUTS (default last,all: logits of no position / of every
# position, see docs/MODEL.md "Against llama.cpp"). Linux x64 with node >= 20.
set -euo pipefail
model=${1:-llama-110m}; tokens=${2:-512}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/bench" ./cmd/bench
"$work/bench" gguf --model "synthetic:$model" --out "$work/model.gguf"
cp scripts/llamacpp/package.json scripts/llamacpp/package-lock.json scripts/llamacpp/bench.mjs "$work/"
(cd "$work" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true timeout 900 npm install --omit=optional --ignore-scripts \
	--no-audit --no-fund --registry=https://registry.npmjs.org/ > npm.log 2>&1) || { cat "$work/npm.log" >&2; exit 1; }
ctx=$(sed -n 's/.*"max_seq_len": *\([0-9]*\).*/\1/p' "configs/models/$model.json")
(cd "$work" && timeout 3600 node bench.mjs --model model.gguf --tokens "$tokens" --ctx "${ctx:-1024}" \
	--threads "${LLAMACPP_THREADS:-2,1}" --runs "${LLAMACPP_RUNS:-5}" --outputs "${LLAMACPP_OUTPUTS:-last,all}")
