#!/usr/bin/env bash
# Load run of the prefill server on loopback: builds cmd/serve and
# cmd/loadgen, then for batching on and off starts the server (built-in
# stories260K, tp 4, int8) and drives it with 64 concurrent clients, bounded
# in time and in count. Extra arguments go to both server runs.
#
#   scripts/load.sh                      # 64 clients, 20 s or 20000 requests per mode
#   CLIENTS=64 DURATION=30s REQUESTS=50000 scripts/load.sh --tp 8
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-64}
DURATION=${DURATION:-20s}
REQUESTS=${REQUESTS:-20000}
ROUTE=${ROUTE:-prefill}
tmp=$(mktemp -d)
server_pid=""
cleanup() {
	if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/serve" ./cmd/serve
go build -o "$tmp/loadgen" ./cmd/loadgen

for mode in batching no-batching; do
	flags=()
	[ "$mode" = no-batching ] && flags+=(--no-batching)
	"$tmp/serve" --addr 127.0.0.1:0 --log-format json --queue-limit 1024 "${flags[@]}" "$@" 2>"$tmp/serve-$mode.log" &
	server_pid=$!
	addr=""
	for _ in $(seq 200); do
		addr=$(sed -n 's/.*"msg":"listening","addr":"\([^"]*\)".*/\1/p' "$tmp/serve-$mode.log" | head -n1)
		if [ -n "$addr" ] && curl -fs "http://$addr/health" >/dev/null 2>&1; then break; fi
		sleep 0.05
	done
	[ -n "$addr" ] || { echo "server did not start:"; cat "$tmp/serve-$mode.log"; exit 1; }
	echo "== $mode (server flags: ${flags[*]:-} $*)"
	"$tmp/loadgen" --url "http://$addr" --route "$ROUTE" --clients "$CLIENTS" --duration "$DURATION" --requests "$REQUESTS"
	curl -fs "http://$addr/metrics" | awk '
		/^equarx_batch_sequences_sum/ {seqs=$2} /^equarx_batch_sequences_count/ {calls=$2}
		/^equarx_sim_tpu_seconds_total/ {sim+=$2} /^equarx_prompt_tokens_total/ {tok+=$2}
		END {
			if (calls > 0) printf "engine calls      %d, mean %.2f sequences per call\n", calls, seqs/calls
			if (tok > 0) printf "simulated TPU     %.6f s for %d prompt tokens = %.3f us/token (TPU cost model, not this CPU)\n", sim, tok, sim/tok*1e6
		}'
	kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
	echo
done
