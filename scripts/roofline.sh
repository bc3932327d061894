#!/usr/bin/env bash
# Measures the CPU kernels and the prefill against this machine's own limits
# and prints the figures that docs/MODEL.md ("CPU kernels and throughput")
# quotes:
#   1. the roofline table (cmd/roofline: FMA peak and copy bandwidth
#      measured first, then every GEMM shape, SiLU and the softmax exp);
#   2. BenchmarkSgemm: gonum (the old default), the kernels package per call
#      and prepacked, and OpenBLAS when libopenblas-dev is installed;
#   3. the 512-token prefill benchmarks at tp 1, 2, 4, default build and
#      OpenBLAS (tok/s, MFU against the measured peak, and the CPU-time
#      figures that hold up on a shared machine).
# Usage: scripts/roofline.sh [out.txt]   (about 10-15 minutes on 2 vCPUs)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-/dev/stdout}"
have_openblas() { [ -e /usr/include/cblas.h ] || compgen -G '/usr/include/*/cblas.h' >/dev/null; }
{
	echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "== roofline (go run ./cmd/roofline)"
	go run ./cmd/roofline -reps 5
	echo "== go test ./kernels -bench 'FMAPeak|MicroKernel'"
	go test ./kernels -run '^$' -bench 'FMAPeak|MicroKernel' -count 3
	echo "== go test ./model -bench Sgemm (default build)"
	go test ./model -run '^$' -bench Sgemm -benchtime 2s
	if have_openblas; then
		echo "== the same with -tags openblas"
		CGO_LDFLAGS=-lopenblas go test -tags openblas ./model -run '^$' -bench 'Sgemm/.*/impl=openblas' -benchtime 2s
	fi
	echo "== go test ./tp -bench Prefill (default build)"
	go test ./tp -run '^$' -bench 'PrefillStories' -benchtime 20x -count 3
	go test ./tp -run '^$' -bench 'PrefillLlama110M' -benchtime 3x -count 2 -timeout 30m
	if have_openblas; then
		echo "== the same with -tags openblas"
		CGO_LDFLAGS=-lopenblas go test -tags openblas ./tp -run '^$' -bench 'PrefillStories' -benchtime 20x -count 3
		CGO_LDFLAGS=-lopenblas go test -tags openblas ./tp -run '^$' -bench 'PrefillLlama110M/tp=1' -benchtime 3x -count 2 -timeout 30m
	fi
	echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out" 2>&1
