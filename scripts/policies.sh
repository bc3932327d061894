#!/usr/bin/env bash
# Per-site reduction policies for stories260K at tp 4, end to end:
#   1. sensitivity: every (layer, site, codec) quantized alone, the rest f32,
#      mean KL from f32 on the first $CALIB TinyStories MC items (calibration);
#   2. autopolicy at each budget of $BUDGETS, priced on Gemma 3 27B at tp 8
#      (ring:8, v5e, 2048 tokens), saved to configs/policies/stories260k_tp4.json;
#   3. held-out quality: the remaining MC items and 100 TinyStories
#      validation stories (perplexity), every policy and uniform codec vs f32;
#   4. policy-table: wire bytes and simulated prefill speedup over bf16 on the
#      Gemma 3 27B and 12B shapes at tp 8, joined with the measured quality.
# Writes docs/sensitivity_tp4.png and prints the tables (Markdown) on stdout.
#
# Usage, from the repository root:  scripts/policies.sh
# Environment: CALIB (calibration items, default 150 of 300), BUDGETS
# (default "3e-4 2e-3 1e-2"), CODECS (default bf16,int8,fp8,int6,int4),
# POLICY_DIR (work files, default /tmp/equarx-policies).
set -euo pipefail

calib=${CALIB:-150}
budgets=${BUDGETS:-"3e-4 2e-3 1e-2"}
codecs=${CODECS:-bf16,int8,fp8,int6,int4}
dir=${POLICY_DIR:-/tmp/equarx-policies}
pfile=configs/policies/stories260k_tp4.json
tasks=configs/eval/tinystories_mc.jsonl
corpus=data/tinystories/tinystories_val_0000-0799.txt
mkdir -p "$dir" configs/policies
go build -o "$dir/eval" ./cmd/eval

echo "## Sensitivity (first $calib items, tp 4)"
echo
echo '```'
"$dir/eval" sensitivity --tasks "$tasks" --limit "$calib" --tp 4 --codecs "$codecs" --quiet \
	--json "$dir/sens.json" --plot docs/sensitivity_tp4.png
echo '```'
echo

rm -f "$pfile"
names=""
echo "## Automatic policies"
echo
echo '```'
for b in $budgets; do
	"$dir/eval" autopolicy --sensitivity "$dir/sens.json" --budget-kl "$b" --name "auto-$b" --out "$pfile"
	names="$names,auto-$b"
done
echo '```'
echo

uniform=${codecs}
list="f32,$uniform$(echo "$names" | sed 's/,/,policy:/g')"
pairs=$(echo "${uniform}${names}" | tr ',' '\n' | sed 's/$/_vs_f32/' | paste -sd,)
"$dir/eval" --tasks "$tasks" --skip "$calib" --tp 4 --allreduce "$list" --allreduce-policies "$pfile" \
	--pairs "$pairs" --quiet --json "$dir/mc.json" >"$dir/mc.md"
"$dir/eval" perplexity --corpus "$corpus" --limit 100 --tp 4 --allreduce "$list" --allreduce-policies "$pfile" \
	--pairs "$pairs" --quiet --json "$dir/ppl.json" >"$dir/ppl.md"

echo "## Pareto table (held-out items $((calib + 1))-300; simulated TPU time on the Gemma 3 shapes)"
echo
"$dir/eval" policy-table --policies "$pfile" --names "${uniform}${names}" --source-layers 5 \
	--price-models gemma3-27b,gemma3-12b --price-topology ring:8 \
	--mc-report "$dir/mc.json" --ppl-report "$dir/ppl.json" --markdown "$dir/pareto.md" >"$dir/pareto.txt"
cat "$dir/pareto.md"
echo
echo "Held-out multiple choice:"
echo
cat "$dir/mc.md"
echo
echo "Perplexity:"
echo
cat "$dir/ppl.md"
