#!/usr/bin/env bash
# Regenerates docs/RESULTS.md: stories260K on the TinyStories multiple-choice
# set (configs/eval/tinystories_mc.jsonl) and on HellaSwag validation items at
# tp 4 and 8, with every AllReduce codec (CODECS, default: all of them), plus
# perplexity on TinyStories validation stories; then the per-site policy
# section from scripts/policies.sh (skipped with POLICIES=0).
#
# Usage, from the repository root (the data are committed in data/):
#   scripts/results.sh
# Environment: HS_LIMIT (HellaSwag items, default 0 = all 1000),
# PPL_LIMIT (stories for perplexity, default 100), JOBS (runs in parallel,
# default 2), RESULTS_JSON_DIR (JSON reports, default /tmp/equarx-results),
# CODECS (default f32,bf16,int8,fp8,int6,int4), POLICIES (1 = append the
# per-site policy section, default 1).
set -euo pipefail

hs_limit=${HS_LIMIT:-0}
ppl_limit=${PPL_LIMIT:-100}
jobs=${JOBS:-2}
jdir=${RESULTS_JSON_DIR:-/tmp/equarx-results}
out=docs/RESULTS.md
mkdir -p "$jdir" docs
go build -o "$jdir/eval" ./cmd/eval

hellaswag="data/hellaswag/hellaswag_val_1000.jsonl"
corpus="data/tinystories/tinystories_val_0000-0799.txt"
codecs=${CODECS:-f32,bf16,int8,fp8,int6,int4}
policies=${POLICIES:-1}
pairs=$(echo "$codecs" | tr ',' '\n' | grep -v '^f32$' | sed 's/$/_vs_f32/' | paste -sd,)
pairs="$pairs,int8_vs_bf16,int4_vs_bf16"
common=(--allreduce "$codecs" --pairs "$pairs" --quiet)

# run NAME TITLE ARGS...: one report section into $jdir/NAME.md
run() {
	local name=$1 title=$2
	shift 2
	{
		echo "### $title"
		echo
		echo '```'
		echo "go run ./cmd/eval $* ${common[*]} --json /tmp/equarx-results/$name.json"
		echo '```'
		echo
		/usr/bin/time -f "CPU time of this command: %U s user + %S s system, %e s wall (machine load varies)." \
			"$jdir/eval" "$@" "${common[@]}" --json "$jdir/$name.json" 2>"$jdir/$name.err"
		echo
		tail -n 1 "$jdir/$name.err"
		echo
	} >"$jdir/$name.md"
}

names=()
spawn() {
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
	names+=("$1")
	run "$@" &
}

hs_note="first $hs_limit of the 1000 items"
[ "$hs_limit" = 0 ] && hs_note="all 1000 items"
for tpd in 4 8; do
	spawn "tinystories_tp$tpd" "TinyStories multiple choice (300 items), tp $tpd" \
		--tasks configs/eval/tinystories_mc.jsonl --tp "$tpd"
done
for tpd in 4 8; do
	spawn "hellaswag_tp$tpd" "HellaSwag validation ($hs_note), tp $tpd" \
		--tasks "$hellaswag" --limit "$hs_limit" --tp "$tpd"
done
spawn "perplexity_tp4" "Perplexity, first $ppl_limit TinyStories validation stories, tp 4" \
	perplexity --corpus "$corpus" --limit "$ppl_limit" --tp 4
wait
if [ "$policies" = 1 ]; then
	POLICY_DIR="$jdir/policies" scripts/policies.sh >"$jdir/policies.md"
	sed -i 's/^## /### /' "$jdir/policies.md"
fi

{
	cat <<'HEAD'
# Results: does the quantized AllReduce hurt quality?

Model: stories260K (260K-parameter Llama trained on TinyStories, embedded), sharded
tensor-parallel over emulated TPU devices (profile v5e, ring topology). Every row-parallel output
(two per decoder layer) is summed by the AllReduce codec under test; `--fallback-elems -1` (the
eval default) makes every reduction use that codec, however small the buffer. f32 is exact
float32 summation; bf16, int8, fp8, int6 and int4 are the codecs of [CODECS.md](CODECS.md).

Reductions are batch-invariant (the default; [ALLREDUCE.md](ALLREDUCE.md)): the reduced buffer is
laid out as token rows, each row is cut into stripes of its own, and a quantization block never
leaves a stripe. A sequence's scores therefore do not depend on which other sequences share its
engine call, and these tables reproduce at any `--batch-size` and `--concurrency`. With the
model's width of 64 and the bidirectional ring the planner picks (2N stripes per row), a stripe
holds 8 values at tp 4 and 4 at tp 8, so the quantized codecs run 8- and 4-value blocks whatever
`--block-size` says (a stripe shorter than the smallest block size is one short block): on this
model the block size is not a free parameter, and the tables have one row per codec.

How to read the tables (definitions in `evalharness`, lm-evaluation-harness conventions):

- acc / acc_norm / acc_bytes: argmax of the summed log-likelihood of each ending, raw / divided by
  the ending's length in characters / in UTF-8 bytes; ± is the standard error (sample standard
  deviation over sqrt(n)). Zero-shot, BOS prepended, target delimiter " ".
- A_vs_B compares codec A with reference B on the same items: agreement = fraction of items where
  both pick the same ending; acc Δ = acc(A) − acc(B) with the paired standard error; flips count
  items B got right and A wrong (B✓→A✗) and the reverse.
- KL = KL(B‖A) in nats between the full next-token distributions at every scored position (every
  ending token of every item, or every token for perplexity); top-k KL is the same after
  coarse-graining to the 20 best tokens shared by both lists plus a rest bin (the figure an HTTP
  scorer can compute); |Δ logprob| is the change in log-probability of the actual token.
- HellaSwag items get lm-evaluation-harness's hellaswag preprocessing (task version 1.0). A
  260K-parameter TinyStories model is expected to sit at chance (25%) there: those rows test the
  harness's format handling and show codec effects on out-of-distribution text, not reasoning.
  `HS_LIMIT=200 scripts/results.sh` scores the first 200 items only, for a quicker run.
- Wall times are CPU wall clock on a shared 2-vCPU machine and vary with its load; the CPU time
  line under each table is the better guide to cost.

## Observations

OBSERVATIONS
HEAD
	echo
	echo "Generated by \`scripts/results.sh\` at $(date -u +%Y-%m-%dT%H:%MZ) from commit $(git rev-parse --short HEAD)$([ -z "$(git status --porcelain --untracked-files=normal -- . | grep -vE ' (docs/RESULTS.md|docs/sensitivity_tp4.png|configs/policies/.*)$')" ] || echo ' (with uncommitted changes in the tree)')."
	echo
	for n in "${names[@]}"; do
		cat "$jdir/$n.md"
	done
	if [ "$policies" = 1 ]; then
		cat <<'POLICY'
## Per-site reduction policies

Each decoder layer has two reduction sites, the attention output and the MLP output, and a
policy gives each its own codec (`tp.Policy`, [SERVING.md](SERVING.md)). `scripts/policies.sh`
measures how sensitive each site is, chooses policies against error budgets and checks them on
data they were not chosen on:

1. Sensitivity: on the first 150 TinyStories MC items (the calibration half), each site in turn
   runs one codec while every other site stays f32; the figure is the mean KL from the all-f32
   distributions over every scored token (`go run ./cmd/eval sensitivity`, heat map below).
2. Automatic policy (`go run ./cmd/eval autopolicy --budget-kl B`): the predicted error of a
   policy is the sum of its sites' single-site KLs; among the policies whose prediction stays
   within 90% of the budget (`--headroom 0.1`, the default: it covers the calibration set's
   sampling error and the interaction of coarse sites, which the sum does not see; with no
   headroom the 1e-2 policy measured 1.002e-2 on the held-out items, predicted 9.85e-3) it takes
   the one with the least simulated prefill time on the target
   (Gemma 3 27B at tp 8, ring:8, v5e, 2048 tokens), exactly, by a Pareto frontier over the sites.
   The policy is written for stories260K's 5 layers and carried to a deeper model by relative
   depth: layer t of an L-layer model takes the settings of layer floor(5t/L).
3. Held-out check: every policy and uniform codec is scored against f32 on the other 150 items
   and on perplexity over 100 validation stories (`go run ./cmd/eval --allreduce policy:NAME`).
4. `go run ./cmd/eval policy-table`: wire bytes against bf16 and simulated prefill speedup over
   bf16 on the Gemma 3 27B and 12B shapes at tp 8 (simulated TPU time), joined with the measured
   quality.

The policies are saved in `configs/policies/stories260k_tp4.json`; a server loads them with
`--allreduce-policies` and a request picks one with `"allreduce_policy": "NAME"`.

![Sensitivity heat map](sensitivity_tp4.png)

POLICY_OBSERVATIONS

POLICY
		cat "$jdir/policies.md"
	fi
} >"$out"
echo "wrote $out; JSON reports in $jdir"
