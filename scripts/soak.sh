#!/usr/bin/env bash
# Soak run on loopback, bounded in time and count: builds cmd/serve and
# cmd/soak, starts the real server (built-in stories260K, tp 4, int8 by
# default) on a free loopback port with a small queue, and drives it with a
# few more clients than the queue holds: valid /v1/prefill and
# /v1/completions requests over all codecs, invalid ones (malformed JSON,
# out-of-range ids, too long, bad codec, ...) and requests the client
# cancels mid-flight. Prints requests sent, answers by status, unexpected
# answers (5xx, transport errors, ...: must be 0, else the script fails),
# the server's peak RSS (VmHWM), its goroutines before and after (from
# /metrics) and p50/p99 latency.
#
#   scripts/soak.sh                      # 3 minutes, queue limit 8, 12 clients
#   scripts/soak.sh -d 30s               # shorter
#   QUEUE=16 CLIENTS=24 REQUESTS=100000 scripts/soak.sh -d 5m --tp 8
# Arguments after the options go to cmd/serve.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-3m}
if [ "${1:-}" = "-d" ]; then DURATION=$2; shift 2; fi
QUEUE=${QUEUE:-8}
CLIENTS=${CLIENTS:-$((QUEUE + 4))}
REQUESTS=${REQUESTS:-1000000}
tmp=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/serve" ./cmd/serve
go build -o "$tmp/soak" ./cmd/soak
"$tmp/serve" --addr 127.0.0.1:0 --log-format json --queue-limit "$QUEUE" \
	--request-timeout 10s --idle-timeout 5s "$@" 2>"$tmp/serve.log" &
pid=$!
addr=""
for _ in $(seq 400); do
	addr=$(sed -n 's/.*"msg":"listening","addr":"\([^"]*\)".*/\1/p' "$tmp/serve.log" | head -n1)
	if [ -n "$addr" ] && curl -fs "http://$addr/health" >/dev/null 2>&1; then break; fi
	sleep 0.05
done
[ -n "$addr" ] || { echo "server did not start:"; cat "$tmp/serve.log"; exit 1; }

echo "== soak: $(date -u +%FT%TZ), $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), go $(go env GOVERSION)"
echo "== server: queue limit $QUEUE, flags: ${*:-(defaults)}; $CLIENTS clients, $DURATION or $REQUESTS requests"
status=0
"$tmp/soak" --url "http://$addr" --clients "$CLIENTS" --duration "$DURATION" --requests "$REQUESTS" \
	--server-pid "$pid" ${SOAK_JSON:+--json "$SOAK_JSON"} || status=$?
errors=$(grep -c '"level":"ERROR"' "$tmp/serve.log" || true)
echo "server log        $errors ERROR lines"
if [ "$errors" -gt 0 ]; then grep '"level":"ERROR"' "$tmp/serve.log" | head -n 5; fi
kill -TERM "$pid"
if ! wait "$pid"; then echo "server did not shut down cleanly"; status=1; fi
pid=""
exit "$status"
