#!/usr/bin/env bash
# Soak run on loopback, bounded in time and count: the default server
# (stories260K, tp 4, int8) with a small queue, driven by more clients than
# the queue holds, with a mix of valid, invalid and client-abandoned
# requests. Reports answers by status, unexpected answers (must be 0), peak
# RSS of the server, goroutines before and after, and latency quantiles.
#
#   scripts/soak.sh                                   # 3 minutes or 300000 requests
#   SOAK_DURATION=5m CLIENTS=128 QUEUE=32 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_DURATION=${SOAK_DURATION:-3m}
SOAK_REQUESTS=${SOAK_REQUESTS:-300000}
CLIENTS=${CLIENTS:-96}
QUEUE=${QUEUE:-32}
tmp=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/serve" ./cmd/serve
go build -o "$tmp/loadgen" ./cmd/loadgen
"$tmp/serve" --addr 127.0.0.1:0 --log-format json --queue-limit "$QUEUE" --request-timeout 10s --idle-timeout 5s "$@" 2>"$tmp/serve.log" &
pid=$!
addr=""
for _ in $(seq 200); do
	addr=$(sed -n 's/.*"msg":"listening","addr":"\([^"]*\)".*/\1/p' "$tmp/serve.log" | head -n1)
	if [ -n "$addr" ] && curl -fs "http://$addr/health" >/dev/null 2>&1; then break; fi
	sleep 0.05
done
[ -n "$addr" ] || { echo "server did not start"; cat "$tmp/serve.log"; exit 1; }

goroutines() { curl -fs "http://$addr/metrics" | awk '/^go_goroutines / {print $2}'; }
before=$(goroutines)
echo "== soak: $CLIENTS clients, queue limit $QUEUE, $SOAK_DURATION or $SOAK_REQUESTS requests; 20% invalid, 10% abandoned"
"$tmp/loadgen" --url "http://$addr" --clients "$CLIENTS" --duration "$SOAK_DURATION" --requests "$SOAK_REQUESTS" \
	--invalid-frac 0.2 --cancel-frac 0.1 --cancel-after 50ms --timeout 30s
sleep 6 # longer than the idle timeout: keep-alive connections close
after=$(goroutines)
echo "goroutines        $before before, $after after (server, from /metrics)"
echo "peak RSS          $(awk '/^VmHWM/ {print $2, $3}' /proc/$pid/status) (server VmHWM)"
curl -fs "http://$addr/metrics" | awk '/^equarx_http_requests_total/ {print "server counted    " $0}'
if grep -q '"level":"ERROR"' "$tmp/serve.log"; then echo "server logged errors:"; grep '"level":"ERROR"' "$tmp/serve.log" | head; fi
