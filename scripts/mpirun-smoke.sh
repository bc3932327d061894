#!/usr/bin/env bash
# Starts a 4-process tensor-parallel group (tp 4, one rank per process) with
# Open MPI's mpirun on loopback, waits for the driver's /health, checks one
# /v1/prefill answer against the single-process server's, and stops
# everything. Exits non-zero on any failure; bounded in time.
#
# Usage, from the repository root: scripts/mpirun-smoke.sh
# Needs mpirun (Debian: openmpi-bin).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v mpirun >/dev/null || { echo "mpirun-smoke: mpirun not found (Debian package openmpi-bin)"; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for _ in $(seq 1 50); do
		pgrep -f "$work/serve" >/dev/null || break
		sleep 0.1
	done
	pkill -9 -f "$work/serve" 2>/dev/null || true
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

go build -o "$work/serve" ./cmd/serve
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
http_port=$(free_port)
master_port=$(free_port)
single_port=$(free_port)

export EQUARX_CLUSTER_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
mpi_root=()
[ "$(id -u)" = 0 ] && mpi_root=(--allow-run-as-root)
mpirun "${mpi_root[@]}" --oversubscribe -np 4 \
	-x EQUARX_CLUSTER_TOKEN -x MASTER_ADDR=127.0.0.1 -x MASTER_PORT="$master_port" \
	"$work/serve" --tp 4 --addr "127.0.0.1:$http_port" >"$work/mpirun.log" 2>&1 &
pids+=($!)
"$work/serve" --tp 4 --addr "127.0.0.1:$single_port" >"$work/single.log" 2>&1 &
pids+=($!)

wait_health() {
	for _ in $(seq 1 300); do
		if curl -sf "127.0.0.1:$1/health" >/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "mpirun-smoke: /health on port $1 did not turn 200 within 30 s"; cat "$work/mpirun.log"; return 1
}
wait_health "$http_port"
wait_health "$single_port"

req='{"tokens":[1,403,407,261,378,432,383,286,261,376,298],"allreduce":"int8","logprobs":1}'
lp() { curl -sf --max-time 30 "127.0.0.1:$1/v1/prefill" -d "$req" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token_logprobs"])'; }
a=$(lp "$http_port"); b=$(lp "$single_port")
echo "mpirun (4 processes): $a"
echo "single process:       $b"
[ "$a" = "$b" ] || { echo "mpirun-smoke: answers differ"; cat "$work/mpirun.log"; exit 1; }
grep -q 'placement_from="mpirun (Open MPI)"' "$work/mpirun.log" || { echo "mpirun-smoke: ranks did not read mpirun's environment"; cat "$work/mpirun.log"; exit 1; }
echo "mpirun-smoke: ok"
