#!/usr/bin/env bash
# End-to-end served prefill across emulated hosts: cmd/serve as 4 processes
# (tp 4, one rank each: a driver and three workers), each in its own network
# namespace with its link shaped by tc (scripts/netns.sh), and the same model
# in one process for comparison. `bench served` times /v1/prefill per codec
# and prompt length on each. Writes JSON rows and a Markdown table.
#
# Usage (root), from the repository root:
#   scripts/dist_prefill.sh [-m model] [-g "gbps ..."] [-t tokens] [-c codecs] [-r reps] [-o outdir]
# Defaults: -m llama-110m -g "1 10" -t 512,2048 -c f32,bf16,int8,int4 -r 3 -o /tmp/equarx-dist
# model: a name in configs/models, served with synthetic weights.
set -euo pipefail
cd "$(dirname "$0")/.."

model=llama-110m gbps="1 10" tokens=512,2048 codecs=f32,bf16,int8,int4 reps=3 out=/tmp/equarx-dist
while getopts "m:g:t:c:r:o:h" o; do
	case $o in
	m) model=$OPTARG ;; g) gbps=$OPTARG ;; t) tokens=$OPTARG ;; c) codecs=$OPTARG ;;
	r) reps=$OPTARG ;; o) out=$OPTARG ;; *) sed -n '2,12p' "$0"; exit 2 ;;
	esac
done
mkdir -p "$out"
bin=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$bin"
}
trap cleanup EXIT INT TERM
go build -o "$bin/serve" ./cmd/serve
go build -o "$bin/bench" ./cmd/bench
export EQUARX_CLUSTER_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
common=(--tp 4 --model "synthetic:$PWD/configs/models/$model.json" --fallback-elems -1 --algorithm ring
	--allreduce-timeout 600s --request-timeout 1200s --write-timeout 1300s --batch-tokens 8192 --batch-wait 200ms --log-level warn)
served=(--tokens "$tokens" --codecs "$codecs" --reps "$reps" --timeout 3600s)

# One process: the emulated mesh, no network.
"$bin/serve" "${common[@]}" --addr 127.0.0.1:18080 >"$out/single.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 1200); do curl -sf 127.0.0.1:18080/health >/dev/null && break; sleep 0.5; done
"$bin/bench" served --url http://127.0.0.1:18080 --label "1 process" --json "$out/single.json" "${served[@]}" | tee "$out/single.txt"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

# Four processes in shaped namespaces; "0" = unshaped (the bridge only).
for g in $gbps; do
	cat >"$bin/rank.sh" <<RANK
#!/usr/bin/env bash
set -euo pipefail
args=(${common[*]@Q} --nnodes 4 --node-rank "\$RANK" --master-addr "\$MASTER_ADDR" --master-port 29500)
if [ "\$RANK" != 0 ]; then
	exec "$bin/serve" "\${args[@]}" --bind-addr "\$HOST_ADDR:0" 2>>"$out/g$g-worker\$RANK.log"
fi
"$bin/serve" "\${args[@]}" --addr 127.0.0.1:18080 2>>"$out/g$g-driver.log" &
drv=\$!
for _ in \$(seq 1 1200); do curl -sf 127.0.0.1:18080/health >/dev/null && break; sleep 0.5; done
"$bin/bench" served --url http://127.0.0.1:18080 --label "4 hosts, $g Gbit/s" --json "$out/g$g.json" ${served[*]@Q} | tee "$out/g$g.txt"
kill \$drv; wait \$drv || true
RANK
	chmod +x "$bin/rank.sh"
	scripts/netns.sh -n 4 -g "$g" -t 3600 -- "$bin/rank.sh" || echo "dist_prefill: the $g Gbit/s run ended with an error (workers exit when the driver stops)"
done
echo "rows: $out/*.json"
