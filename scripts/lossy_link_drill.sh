#!/usr/bin/env bash
# Fault drill on a real (emulated) link: a driver and a worker of cmd/serve
# (tp 2, one rank each) in two network namespaces (scripts/netns.sh, 10
# Gbit/s). Midway the worker's link is made to drop every packet (tbf at 8
# bit/s with a 1 ms queue: nothing fits, everything is dropped, no FIN or
# RST is sent), a request must fail with a 500 engine_error that names rank
# 1 within the AllReduce timeout, then the link is restored and the same
# request must get the same answer again, with no restart.
#
# Usage (root), from the repository root: scripts/lossy_link_drill.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "lossy_link_drill: needs root (network namespaces)"; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/serve" ./cmd/serve
export EQUARX_CLUSTER_TOKEN=drill-$$ BIN=$bin
cat >"$bin/rank.sh" <<'RANK'
#!/usr/bin/env bash
set -euo pipefail
args=(--tp 2 --nnodes 2 --node-rank "$RANK" --master-addr "$MASTER_ADDR" --master-port 29500 --allreduce-timeout 3s --log-level warn)
if [ "$RANK" != 0 ]; then
	exec "$BIN/serve" "${args[@]}" --bind-addr "$HOST_ADDR:0" 2>"$BIN/worker.log"
fi
"$BIN/serve" "${args[@]}" --addr 127.0.0.1:18081 2>"$BIN/driver.log" &
drv=$!
trap 'kill $drv 2>/dev/null || true' EXIT
me=$(ip netns identify $$)
prefix=${me%-r0}
for _ in $(seq 1 200); do curl -sf 127.0.0.1:18081/health >/dev/null && break; sleep 0.1; done
req='{"tokens":[1,403,407,261,378,432,383,286,261,376,298,315,421],"allreduce":"int8"}'
lp() { curl -s --max-time 30 -o "$BIN/body" -w '%{http_code}' 127.0.0.1:18081/v1/prefill -d "$req"; }
[ "$(lp)" = 200 ] || { echo "drill: first request failed: $(cat "$BIN/body")"; exit 1; }
good=$(python3 -c 'import json; print(json.load(open("'"$BIN/body"'"))["token_logprobs"])')
echo "drill: link of rank 1 drops everything"
for dev in "$prefix-r1 eth0" "$prefix-br v1"; do
	set -- $dev
	tc -n "$1" qdisc change dev "$2" root handle 1: tbf rate 8bit burst 100 latency 1ms
done
start=$(date +%s.%N)
code=$(lp)
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
echo "drill: answer $code after ${took}s: $(head -c 300 "$BIN/body")"
[ "$code" = 500 ] && grep -q engine_error "$BIN/body" && grep -q "from 1" "$BIN/body" ||
	{ echo "drill: want a 500 engine_error naming rank 1"; exit 1; }
awk -v t="$took" 'BEGIN { exit !(t < 6) }' || { echo "drill: failing took ${took}s (timeout 3s)"; exit 1; }
echo "drill: link restored"
for dev in "$prefix-r1 eth0" "$prefix-br v1"; do
	set -- $dev
	tc -n "$1" qdisc change dev "$2" root handle 1: tbf rate 10gbit burst 250000 latency 5ms
done
for i in $(seq 1 100); do
	code=$(lp)
	[ "$code" = 200 ] && break
	sleep 0.2
done
[ "$code" = 200 ] || { echo "drill: no 200 after the link came back: $code $(cat "$BIN/body")"; cat "$BIN/driver.log"; exit 1; }
again=$(python3 -c 'import json; print(json.load(open("'"$BIN/body"'"))["token_logprobs"])')
[ "$again" = "$good" ] || { echo "drill: answer changed after recovery"; exit 1; }
echo "drill: served again after recovery ($i attempts), same answer"
touch "$BIN/ok"
RANK
chmod +x "$bin/rank.sh"
scripts/netns.sh -n 2 -g 10 -t 120 -- "$bin/rank.sh" || true
[ -e "$bin/ok" ] || { echo "lossy_link_drill: FAILED"; exit 1; }
echo "lossy_link_drill: ok"
