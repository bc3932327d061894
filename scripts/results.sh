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

- int8 does not change what the model answers. On the 300 TinyStories items it flips none at tp 4
  against f32 or bf16, and one at tp 8 (wrong to right, against f32); on the 1000 HellaSwag items
  it agrees with f32 on every item at tp 4 and on 997 at tp 8. Mean KL to f32 is 1.07e-4 (tp 4)
  and 1.14e-4 (tp 8) nats per scored token on TinyStories, 1.8e-4 on HellaSwag text; perplexity
  rises by 0.00011 nats/token, 0.009% of the f32 value 1.2763.
- fp8 and int6 sit between int8 and int4 and close to each other: mean KL to f32 1.9e-3 and 1.8e-3
  at tp 4 (17x int8's), at most 3 of 300 TinyStories items flipped each way at tp 4 or 8,
  perplexity +0.0021 and +0.0013 nats/token. That ordering matches the Gaussian RMS errors of
  [CODECS.md](CODECS.md) (KL grows with the square of the error). fp8 spends int8's bytes for
  this; int6 spends 3/4 of them, so on this model int6 is the better of the two.
- int4 hurts: mean KL to f32 0.039 on TinyStories (0.065 on HellaSwag), 19 of 300 TinyStories
  items flipped at tp 4 (acc −2.3 ± 1.5 points) and 18 at tp 8 (+0.7 ± 1.4, the flips balance),
  perplexity +0.031 nats/token (2.4%); single positions move by up to 3.4-6.9 nats.
- bf16 is another order of magnitude closer to f32 (mean KL 1-2e-5, at most one flip).
- The quantized codecs do better here than with the contiguous layout, where blocks of 256 values
  crossed token rows (int8 mean KL to f32 at tp 4 was 2.3e-4 with 32-value blocks and 6.9e-4 with
  256; int4 cost 1.3-8.7 TinyStories points): each 64-value row is now quantized in 8-value
  stripes (4 at tp 8) with a scale per stripe. That costs wire bytes: int8 sends 1.5 bytes per
  value here at tp 4 (2 at tp 8) instead of 1.02. On the models the engine is sized for, a stripe
  holds hundreds of values (336 for Gemma 3 27B at tp 8) and the cost is small: +0.8% of the
  int8 AllReduce's simulated time ([ALLREDUCE.md](ALLREDUCE.md)).
- tp 8 has about the same KL as tp 4 for the quantized codecs (more hops, each re-quantizing, but
  blocks of 4 values instead of 8); bf16's, which has no blocks, is 1.8x.
- f32 gives identical accuracies at tp 4 and tp 8, and f32 perplexity (1.276 ± 0.017 nats/token on
  100 stories) is consistent with the validation loss llama2.c publishes for this model (1.297).
- HellaSwag is at chance for every codec (acc 26.8-27.3%, acc_norm 24.4-25.1% over 1000 items at
  tp 4 and 8), as expected for this model; the codec-induced KL on HellaSwag text is 1.6-1.7x
  TinyStories' (out-of-distribution text).
- The top-20 KL (what an HTTP client can compute) is 89-95% of the full KL and ranks the codecs
  the same way.
- Every table reproduces at any batching: the scores do not depend on `--batch-size` or
  `--concurrency`, in process or over HTTP (tested bitwise).
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
   headroom the 1e-2 policy, predicted 9.85e-3, measured 1.00002e-2 on the held-out items) it takes
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

What the measurements say (tables below; speedups are simulated TPU time on v5e ring:8 for a
2048-token prefill, quality is measured on the held-out items 151-300):

- Sensitivity: at every layer and for every codec the MLP output is 2.4-4.2x more sensitive than
  the attention output (int8: 3.7-5.9e-6 against 1.4-2.3e-5), and the last layer's MLP output is
  the most sensitive site (int4: 7.9e-3). fp8 and int6 cost about the same KL per site (16-20x
  int8's), int4 19-22x int6's.
- Single-site KLs add up: the sum over the ten sites predicts the measured held-out KL of the
  uniform policies within 3% (int8: 1.08e-4 predicted, 1.05e-4 measured; int6 1.81e-3 and 1.79e-3;
  int4 3.80e-2 and 3.83e-2), and of the automatic ones within 2% (2.39e-4 and 2.42e-4; 1.46e-3 and
  1.44e-3; 7.98e-3 and 7.96e-3). Every automatic policy stays within its budget on the held-out
  items and in perplexity.
- fp8 is never chosen: on the wire it costs what int8 costs, with int6's error.
- The automatic policies fill the gap between int8 and int4. At a 3e-4 budget two attention sites
  go to int6 (1.201x against int8's 1.189x); at 2e-3 all but the last MLP output run int6 (1.245x,
  with less KL than uniform int6); at 1e-2 four attention outputs go to int4 and the rest to int6:
  1.273x against uniform int4's 1.308x (89% of its gain over bf16), at a fifth of its KL (7.96e-3
  against 3.83e-2) and −1.3 ± 1.6 points against −3.3 ± 2.2.
- The simulated speedups are small next to the wire-byte ratios (int4 sends 26% of bf16's bytes
  for 1.31x) because at 2048 tokens the reductions are a minority of a prefill's time on these
  shapes; the AllReduce alone gains 1.89x (int8) and 2.85x (int4) on the same mesh
  ([ALLREDUCE.md](ALLREDUCE.md)).

POLICY
		cat "$jdir/policies.md"
	fi
} >"$out"
echo "wrote $out; JSON reports in $jdir"
