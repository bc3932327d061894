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
for _ in $(seq 1 1200); do
	curl -sf 127.0.0.1:18080/health >/dev/null && break
	kill -0 "${pids[0]}" 2>/dev/null || { echo "dist_prefill: the server exited:"; tail -5 "$out/single.log"; exit 1; }
	sleep 0.5
done
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
for _ in \$(seq 1 1200); do
	curl -sf 127.0.0.1:18080/health >/dev/null && break
	kill -0 \$drv 2>/dev/null || { echo "dist_prefill: the driver exited"; exit 1; }
	sleep 0.5
done
"$bin/bench" served --url http://127.0.0.1:18080 --label "4 hosts, $([ "$g" = 0 ] && echo unshaped || echo "$g Gbit/s")" --json "$out/g$g.json" ${served[*]@Q} | tee "$out/g$g.txt"
kill \$drv; wait \$drv || true
RANK
	chmod +x "$bin/rank.sh"
	scripts/netns.sh -n 4 -g "$g" -t 3600 -- "$bin/rank.sh" || echo "dist_prefill: the $g Gbit/s run ended with an error (workers exit when the driver stops)"
done
# The cost model's prediction of each shaped run: the one-process engine wall
# (this CPU's compute, measured above) plus the AllReduces priced on a
# profile of the shaped link (its tc rate per direction, one link per host,
# the unidirectional ring the runs use). Compute and element-wise figures
# of the profile are set out of the way (1e18) so the model prices only
# the reductions.
for g in $gbps; do
	[ "$g" = 0 ] && continue
	cat >"$out/cpu-link-$g.json" <<PROF
{"name": "cpu-link-${g}g", "peak_bf16_flops": 1e18, "hbm_bytes_per_sec": 1e18,
 "ici_bytes_per_sec_per_link_dir": $(awk -v g="$g" 'BEGIN { printf "%.6g", g * 1e9 / 8 }'),
 "hop_latency_seconds": 3e-5, "links_per_chip": 1, "wraparound": "always", "pod_dim": 4,
 "sources": {"peak_bf16_flops": "not used: compute is the measured one-process wall",
  "hbm_bytes_per_sec": "not used: element-wise work is inside the measured one-process wall",
  "ici_bytes_per_sec_per_link_dir": "the tc tbf rate of each host's link",
  "hop_latency_seconds": "assumed: 30 us for the kernel TCP stack and the bridge per message",
  "links_per_chip": "one veth per host", "wraparound": "the ring closes through the bridge"}}
PROF
	for t in ${tokens//,/ }; do # as many sequences as the served run used
		seqs=$(python3 -c "import json,sys; print(next(r['seqs'] for r in json.load(open('$out/single.json')) if r['tokens'] == $t))")
		"$bin/bench" prefill --dry-run --exec baseline --tpu "$out/cpu-link-$g.json" --topology ring:4 --algorithm ring \
			--model "$PWD/configs/models/$model.json" --fallback -1 --codecs "$codecs" --tokens "$t" --seqs "$seqs" --json "$out/pred-$g-$t.json" >/dev/null
	done
	python3 -c "import json,glob; json.dump(sum((json.load(open(f)) for f in sorted(glob.glob('$out/pred-$g-*.json'))), []), open('$out/pred-$g.json', 'w'))"
done
python3 - "$out" "$gbps" <<'PY'
import json, os, sys
out, gbps = sys.argv[1], sys.argv[2].split()
single = {(r["tokens"], r["codec"]): r for r in json.load(open(f"{out}/single.json"))}
lines = ["| link | tokens | codec | 4 hosts: engine wall s | vs bf16 | 1 process: engine wall s | predicted s | predicted / measured | AllReduce s (model) | wire bytes |",
         "|---|---|---|---|---|---|---|---|---|---|"]
for r in single.values():
    lines.append(f"| 1 process | {r['tokens']} | {r['codec_used']} | - | - | {r['engine_wall_seconds']:.3f} | - | - | - | {r['wire_bytes']} |")
for g in gbps:
    path = f"{out}/g{g}.json"
    if not os.path.exists(path):
        continue
    pred = {}
    if os.path.exists(f"{out}/pred-{g}.json"):
        for p in json.load(open(f"{out}/pred-{g}.json")):
            pred[(p["tokens"], p["codec"])] = p["allreduce_seconds"]
    for r in json.load(open(path)):
        s = single.get((r["tokens"], r["codec"]))
        ar = pred.get((r["tokens"], r["codec"]))
        p = s["engine_wall_seconds"] + ar if s and ar is not None else None
        link = "unshaped" if g == "0" else f"{g} Gbit/s"
        lines.append(f"| {link} | {r['tokens']} | {r['codec_used']} | {r['engine_wall_seconds']:.3f} | {r['speedup_vs_bf16']:.2f}x | "
                     + (f"{s['engine_wall_seconds']:.3f}" if s else "-") + " | "
                     + (f"{p:.3f} | {p / r['engine_wall_seconds']:.2f} | {ar:.4f}" if p else "- | - | -") + f" | {r['wire_bytes']} |")
open(f"{out}/table.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "rows: $out/*.json, table: $out/table.md"
