#!/usr/bin/env bash
# doccheck: runs every command of README.md, docs/*.md, configs/*/README.md
# and data/README.md, as written, from a fresh clone of the committed tree
# (git clone into a temporary directory, nothing beside it), and fails on
# the first command that fails.
#
# A command is a line of a code block (indented or fenced) whose first word
# is go, curl, bash, scripts/..., lm_eval, sudo or an environment assignment
# (VAR=value); lines ending in a backslash continue it. Other block lines
# (API listings, formulas, example answers) are not commands. A line that
# leaves a single quote open continues on the next line (joined with a
# space, which is what the JSON bodies that do this need).
#
#   - `go run ./cmd/serve ...` lines are servers: each is started, must
#     answer GET /health with 200 within the timeout (go run compiles
#     first: a cold cgo build for OpenBLAS takes minutes), and is stopped.
#   - Lines that talk to http://127.0.0.1:8080 (curl, cmd/eval --server,
#     cmd/loadgen --url) run against the README's `go run ./cmd/serve`,
#     started for them; a curl answer holding an "error" object fails.
#   - Every other line runs with a timeout (DOCCHECK_TIMEOUT, default 900 s).
#   - Lines matching SKIP below are not run; each says why. Lines needing
#     OpenBLAS run only when its headers are installed.
#
# Measured 2026-12-02 on a 2-vCPU AMD EPYC shared with other builds (load
# average 9-15): 51 commands ran, 14 skipped, 31 min wall; the slowest were
# the 300-item eval (430 s; docs/RESULTS.md: 82 s at load average 4.5),
# the eval over HTTP (200 s) and a cold OpenBLAS build of cmd/serve (148 s).
#
# Usage, from anywhere in the repository:
#   scripts/doccheck.sh            # run everything not skipped
#   scripts/doccheck.sh --list     # only list the commands and what would happen
# Environment: DOCCHECK_TIMEOUT (seconds per command), DOCCHECK_KEEP=1 keeps
# the clone and the logs.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
list_only=false
[ "${1:-}" = "--list" ] && list_only=true
per_cmd_timeout=${DOCCHECK_TIMEOUT:-900}

# SKIP: "substring of the command|why it is not run here". Keep each reason
# true: it is printed in every run.
SKIP=(
	"go test ./...|the full test suite is CI's own step (.ci/run runs it just before)"
	"lm_eval |needs Python's lm-evaluation-harness and downloads HellaSwag from the Hugging Face Hub"
	"apt-get install|installs a system package (.ci/run installs libopenblas-dev itself)"
	"EQUARX_GEMMA3_1B=1|builds a 1B-parameter synthetic Gemma 3 and runs it: up to 40 min"
	"PrefillLlama110M|synthesizes a 110M-parameter model and prefills 512 tokens at tp 1, 2, 4 (about 12 s each at the 43 tok/s of docs/MODEL.md, plus setup): left out to keep doccheck near 10 min in CI"
	"--tasks data/hellaswag/hellaswag_val_1000.jsonl|all 1000 HellaSwag items over 6-8 codec variants at tp 4/8: 10-12 min each on 2 cores (docs/RESULTS.md lists the times)"
	"--tasks configs/eval/tinystories_mc.jsonl --tp|a docs/RESULTS.md table: 2-3 min each on 2 cores, regenerated together by scripts/results.sh"
	"scripts/soak.sh|a 3-minute soak (scripts/soak.sh -d 30s is the short form)"
	"scripts/dist_prefill.sh|serves a model as 4 processes in shaped namespaces and as one process, every codec and length: 6 min (Stories110M shape, 3 reps) to 20 min (Gemma 3 1B shape) on 2 cores; scripts/lossy_link_drill.sh and scripts/mpirun-smoke.sh, which .ci/run runs, cover the same processes"
	"-fuzztime 60s|a 60 s fuzz run; .ci/run fuzzes every target with 10000 inputs"
	"synthetic:gemma3-4b --tp 4 --weights-dtype f32|shows the refusal of a model that does not fit: it exits with status 2 by design, before listening"
	"\"allreduce_policy\": \"auto-2e-3\"|asks the server started with --allreduce-policies on the line above, while doccheck runs clients against the default server; tp's TestShippedPolicies runs every shipped policy and server's TestPolicyRequests the request field"
	"scripts/membench.sh|generates a 1B- or 4B-parameter synthetic Gemma 3 and prefills 2048 tokens: 1.5-10 min each on 2 cores and up to 9 GB of memory"
	"cmd/bench gguf|writes the 110M shape as a 537 MB F32 GGUF file, which only scripts/llamacpp_bench.sh reads"
	"scripts/llamacpp_bench.sh|downloads node-llama-cpp and its prebuilt llama.cpp binaries from the npm registry (117 packages) and runs 512-token prefills of the 110M shape at 2 and 1 threads: about 2 min on 2 cores with a warm npm cache"
)

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -TERM -- "-$p" 2>/dev/null || true
	done
	if [ "${DOCCHECK_KEEP:-}" = 1 ]; then
		echo "doccheck: kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

git clone -q "$repo" "$work/clone"
cd "$work/clone"
logs="$work/logs"
mkdir -p "$logs"

# extract FILE: print "FILE:LINE<TAB>command" for every command line.
extract() {
	awk -v F="$1" '
	function emit() { if (cmd != "") print F ":" start "\t" cmd; cmd = "" }
	function consider(line, n) {
		sub(/^[ \t]+/, "", line)
		if (cmd != "") {                    # a continuation
			cmd = cmd " " line
		} else if (line ~ /^(go|curl|bash|lm_eval|sudo|scripts\/[^ ]+|[A-Z_][A-Z0-9_]*=[^ ]*)( |$)/) {
			cmd = line; start = n
		} else {
			return
		}
		if (cmd ~ /\\$/) { sub(/[ \t]*\\$/, "", cmd); return }
		q = cmd
		if (gsub(/\047/, "", q) % 2 == 1) return # an open single quote: joined with a space
		emit()
	}
	/^```/ { fence = !fence; emit(); next }
	fence { consider($0, NR); next }
	/^    / && (prev_blank || in_block) { in_block = 1; consider($0, NR); next }
	{ in_block = 0; emit() }
	{ prev_blank = ($0 ~ /^[ \t]*$/) }
	END { emit() }
	' "$1"
}

files=(README.md docs/*.md configs/*/README.md data/README.md)
: >"$work/commands"
for f in "${files[@]}"; do
	[ -f "$f" ] && extract "$f" >>"$work/commands"
done

have_openblas() {
	[ -e /usr/include/cblas.h ] || ls /usr/include/*/cblas*.h >/dev/null 2>&1 || [ -e /usr/include/openblas/cblas.h ]
}

# classify CMD: skip:<reason> | server | client | run
classify() {
	local c=$1 s
	for s in "${SKIP[@]}"; do
		if [[ "$c" == *"${s%%|*}"* ]]; then
			echo "skip:${s#*|}"
			return
		fi
	done
	if [[ "$c" == *openblas* ]] && ! have_openblas; then
		echo "skip:OpenBLAS headers are not installed here (libopenblas-dev)"
		return
	fi
	if [[ "$c" =~ (^|[[:space:]])go\ run\ (-tags\ [a-z]+\ )?\./cmd/serve([[:space:]]|$) ]]; then
		echo server
	elif [[ "$c" == curl* || "$c" == *"http://127.0.0.1:8080"* ]]; then
		echo client
	else
		echo run
	fi
}

# addr_of CMD: the --addr of a serve command, or the default.
addr_of() {
	local a
	a=$(sed -nE 's/.*--addr[ =]([^ ]+).*/\1/p' <<<"$1")
	echo "${a:-127.0.0.1:8080}"
}

port_free() {
	! (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

# start_server CMD LOG: starts CMD in its own process group; prints its pid.
start_server() {
	local c=${1%&}
	setsid bash -c "$c" >"$2" 2>&1 &
	echo $!
}

wait_healthy() { # ADDR PID LOG
	local deadline=$((SECONDS + per_cmd_timeout))
	while [ $SECONDS -lt $deadline ]; do
		if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$1/health" 2>/dev/null)" = 200 ]; then
			return 0
		fi
		if ! kill -0 "$2" 2>/dev/null; then
			echo "doccheck: the server exited before it was healthy:"; tail -n 20 "$3"
			return 1
		fi
		sleep 0.5
	done
	echo "doccheck: the server was not healthy within $per_cmd_timeout s:"; tail -n 20 "$3"
	return 1
}

stop_server() { # PID
	kill -TERM -- "-$1" 2>/dev/null || true
	local i
	for i in $(seq 1 60); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.5
	done
	kill -KILL -- "-$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	local keep=()
	for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	pids=("${keep[@]}")
}

n=0 ran=0 skipped=0
declare -a servers clients runs
while IFS=$'\t' read -r where c; do
	n=$((n + 1))
	k=$(classify "$c")
	case $k in
	skip:*)
		skipped=$((skipped + 1))
		printf 'SKIP  %s  %s\n      why: %s\n' "$where" "$c" "${k#skip:}"
		;;
	server) servers+=("$where"$'\t'"$c") ;;
	client) clients+=("$where"$'\t'"$c") ;;
	run) runs+=("$where"$'\t'"$c") ;;
	esac
done <"$work/commands"

if $list_only; then
	for e in "${servers[@]}"; do printf 'SERVE %s\n' "${e/$'\t'/  }"; done
	for e in "${clients[@]}"; do printf 'CLIENT %s\n' "${e/$'\t'/  }"; done
	for e in "${runs[@]}"; do printf 'RUN   %s\n' "${e/$'\t'/  }"; done
	exit 0
fi

fail() {
	echo "doccheck: FAILED: $1"
	[ -n "${2:-}" ] && tail -n 40 "$2"
	exit 1
}

log_of() { echo "$logs/$(printf '%03d' "$1").log"; }

# 1. Every server command starts and becomes healthy.
i=0
for e in "${servers[@]}"; do
	i=$((i + 1))
	where=${e%%$'\t'*} c=${e#*$'\t'}
	addr=$(addr_of "$c")
	port_free "$addr" || fail "$addr is in use before '$c' ($where)"
	log=$(log_of "$i")
	echo "SERVE $where  $c"
	t0=$SECONDS
	pid=$(start_server "$c" "$log")
	pids+=("$pid")
	wait_healthy "$addr" "$pid" "$log" || fail "$where: $c" "$log"
	stop_server "$pid"
	ran=$((ran + 1))
	echo "      ok: healthy, stopped ($((SECONDS - t0)) s)"
done

# 2. The clients, against the README's default server.
if [ ${#clients[@]} -gt 0 ]; then
	port_free 127.0.0.1:8080 || fail "127.0.0.1:8080 is in use"
	slog="$logs/default-server.log"
	echo "SERVE go run ./cmd/serve   (for the client commands)"
	spid=$(start_server "go run ./cmd/serve" "$slog")
	pids+=("$spid")
	wait_healthy 127.0.0.1:8080 "$spid" "$slog" || fail "the default server" "$slog"
	for e in "${clients[@]}"; do
		i=$((i + 1))
		where=${e%%$'\t'*} c=${e#*$'\t'}
		log=$(log_of "$i")
		echo "CLIENT $where  $c"
		t0=$SECONDS
		if ! timeout "$per_cmd_timeout" bash -c "$c" >"$log" 2>&1; then
			fail "$where: $c" "$log"
		fi
		if [[ "$c" == curl* ]] && grep -q '"error":{' "$log"; then
			fail "$where: $c answered an error" "$log"
		fi
		ran=$((ran + 1))
		echo "      ok ($((SECONDS - t0)) s): $(head -c 120 "$log" | tr '\n' ' ')"
	done
	stop_server "$spid"
fi

# 3. Everything else, one at a time.
for e in "${runs[@]}"; do
	i=$((i + 1))
	where=${e%%$'\t'*} c=${e#*$'\t'}
	log=$(log_of "$i")
	echo "RUN   $where  $c"
	t0=$SECONDS
	if ! timeout "$per_cmd_timeout" bash -c "$c" >"$log" 2>&1; then
		fail "$where: $c" "$log"
	fi
	ran=$((ran + 1))
	echo "      ok ($((SECONDS - t0)) s)"
done

# The committed multiple-choice set is what its documented command builds.
git diff --exit-code -- configs/eval/tinystories_mc.jsonl >/dev/null ||
	fail "configs/eval/README.md's build-mc command does not reproduce configs/eval/tinystories_mc.jsonl"

echo "doccheck: ok: $ran commands ran, $skipped skipped (reasons above), of $n in ${files[*]}"
