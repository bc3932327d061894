#!/usr/bin/env bash
# membench: serves a synthetic model of a published shape and measures what
# docs/MODEL.md's memory table reports: startup time (process start to
# "ready"), the logged memory estimate, the peak RSS (VmHWM) after loading
# and after one prefill, and the time of that prefill (2048 token ids,
# int8 AllReduce) through /v1/prefill.
#
# Usage, from anywhere in the repository:
#   scripts/membench.sh MODEL TP DTYPE [TOKENS]
#   scripts/membench.sh gemma3-1b 2 bf16
# MODEL is a configs/models name; DTYPE is f32 or bf16. Linux only (reads
# /proc). Prints one summary line; the server log is kept in a temporary
# directory whose path is printed.
set -euo pipefail
model=${1:?model}; tp=${2:?tp}; dtype=${3:?dtype}; tokens=${4:-2048}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
work=$(mktemp -d)
go build -o "$work/serve" ./cmd/serve
port=$(( 20000 + RANDOM % 20000 ))
vocab=$(sed -n 's/.*"vocab_size": *\([0-9]*\).*/\1/p' "configs/models/$model.json")
ids=$(awk -v n="$tokens" -v v="$vocab" 'BEGIN { for (i = 0; i < n; i++) printf "%s%d", (i ? "," : ""), (i * 7919 + 11) % v }')
printf '{"tokens":[%s],"allreduce":"int8"}' "$ids" > "$work/req.json"
t0=$(date +%s.%N)
"$work/serve" --model "synthetic:$model" --tp "$tp" --weights-dtype "$dtype" --addr "127.0.0.1:$port" \
	--request-timeout 60m --write-timeout 61m --log-format json > "$work/serve.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
until grep -q '"msg":"ready"' "$work/serve.log"; do
	if ! kill -0 "$pid" 2>/dev/null; then
		cat "$work/serve.log" >&2
		exit 1
	fi
	sleep 0.2
done
t1=$(date +%s.%N)
hwm_load=$(awk '/^VmHWM/ { print $2 * 1024 }' "/proc/$pid/status")
curl -sf -o "$work/resp.json" -w '%{time_total}' "127.0.0.1:$port/v1/prefill" -d @"$work/req.json" > "$work/curl"
hwm_end=$(awk '/^VmHWM/ { print $2 * 1024 }' "/proc/$pid/status")
kill "$pid"
wait "$pid" || true
est=$(grep -o '"weights_bytes":[0-9]*,"batch_bytes":[0-9]*,"runtime_bytes":[0-9]*,"total_bytes":[0-9]*' "$work/serve.log" | tr -d '"')
awk -v m="$model" -v tp="$tp" -v dt="$dtype" -v t0="$t0" -v t1="$t1" -v est="$est" -v hl="$hwm_load" -v he="$hwm_end" -v pf="$(cat "$work/curl")" 'BEGIN {
	split(est, kv, ","); for (i in kv) { split(kv[i], p, ":"); e[p[1]] = p[2] }
	bound = 1.15 * e["weights_bytes"] + e["batch_bytes"]
	printf "%s tp %s %s: startup %.1f s; estimate weights %.3f GB, batch %.3f GB, total %.3f GB; VmHWM after load %.3f GB, after prefill %.3f GB (%.3f of 1.15 x weights + batch = %.3f GB); prefill of the tokens %.1f s\n",
		m, tp, dt, t1 - t0, e["weights_bytes"] / 1e9, e["batch_bytes"] / 1e9, e["total_bytes"] / 1e9, hl / 1e9, he / 1e9, he / bound, bound / 1e9, pf
}'
echo "log: $work/serve.log"
