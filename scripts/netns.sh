#!/usr/bin/env bash
# Emulated hosts: runs a command once per rank, each in its own Linux network
# namespace, all joined by veth pairs to a bridge that lives in a namespace of
# its own (no interface of the calling namespace is created or touched).
# Each host's link is shaped with tbf to the given rate in both directions;
# with -d, netem adds a one-way delay (needs a kernel with sch_netem).
# Everything is removed on exit (also on Ctrl-C, errors and timeout).
#
# Usage (root):
#   scripts/netns.sh [-n ranks] [-g gbit_per_s] [-d delay_us] [-t timeout_s] -- command [args...]
# The command runs with RANK, NRANKS, HOST_ADDR (this host's address) and
# MASTER_ADDR (rank 0's address) in its environment, e.g.
#   scripts/netns.sh -n 2 -g 10 -- sh -c 'echo $RANK $HOST_ADDR'
# The bench does the same in Go: go run ./cmd/bench allreduce --transport tcp --link-gbps 10
set -euo pipefail

ranks=4 gbps=10 delay=0 limit=600
while getopts "n:g:d:t:h" o; do
	case $o in
	n) ranks=$OPTARG ;;
	g) gbps=$OPTARG ;;
	d) delay=$OPTARG ;;
	t) limit=$OPTARG ;;
	*) sed -n '2,16p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || { echo "netns.sh: no command" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "netns.sh: needs root" >&2; exit 1; }
command -v ip >/dev/null && command -v tc >/dev/null || { echo "netns.sh: needs iproute2 (ip, tc)" >&2; exit 1; }
case $ranks in '' | *[!0-9]*) echo "netns.sh: -n $ranks" >&2; exit 2 ;; esac
[ "$ranks" -ge 1 ] && [ "$ranks" -le 250 ] || { echo "netns.sh: -n $ranks: want 1..250" >&2; exit 2; }

prefix="eqx$$"
subnet=10.213.0
pids=()
cleanup() {
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for ns in $(ip netns list | awk -v p="$prefix-" 'index($1, p) == 1 { print $1 }'); do
		ip netns del "$ns" || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rate_kbit=$(awk -v g="$gbps" 'BEGIN { printf "%d", g * 1e6 }')
burst=$(awk -v g="$gbps" 'BEGIN { b = g * 1e9 / 8 * 200e-6; if (b < 98304) b = 98304; printf "%d", b }')
shape() { # namespace device
	[ "$rate_kbit" -gt 0 ] || return 0
	# a 16 MiB queue: a short one drops at the sender's own egress (a NIC would stop the socket)
	tc -n "$1" qdisc add dev "$2" root handle 1: tbf rate "${rate_kbit}kbit" burst "$burst" limit 16777216
}

br="$prefix-br"
ip netns add "$br"
ip -n "$br" link set lo up
ip -n "$br" link add br0 type bridge
ip -n "$br" link set br0 up
for ((i = 0; i < ranks; i++)); do
	ns="$prefix-r$i"
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip -n "$br" link add "v$i" type veth peer name eth0 netns "$ns"
	ip -n "$br" link set "v$i" master br0
	ip -n "$br" link set "v$i" up
	ip -n "$ns" addr add "$subnet.$((i + 1))/24" dev eth0
	ip -n "$ns" link set eth0 up
	shape "$ns" eth0
	shape "$br" "v$i"
	if [ "$delay" != 0 ]; then
		tc -n "$ns" qdisc add dev eth0 parent 1:1 handle 10: netem delay "${delay}us" ||
			{ echo "netns.sh: -d needs the netem qdisc, which this kernel lacks" >&2; exit 1; }
	fi
done

for ((i = 0; i < ranks; i++)); do
	RANK=$i NRANKS=$ranks HOST_ADDR="$subnet.$((i + 1))" MASTER_ADDR="$subnet.1" \
		timeout -k 5 "$limit" ip netns exec "$prefix-r$i" "$@" &
	pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
