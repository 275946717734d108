#!/usr/bin/env bash
# Training over a shaped LAN on one machine (BENCHMARKS.md "Training over a LAN"): the
# coordinator and W workers (T threads each) each run in their own network namespace, joined
# by veth pairs to a bridge in another namespace (the host's network is never touched). For
# every rate, every link is limited with `tc ... tbf` in both directions (the node's veth and
# the bridge's port), and the same run is repeated; "none" is the unshaped reference.
#   deploy/bench-lan.sh [-b "BUILD_DIR ..."] [-s STEPS] [-c CONFIG] [-w WORKERS] [-t THREADS]
#                       [-k PER_LEASE] [-n SHARDS] [-r "none 1gbit 100mbit 20mbit"] [-T TIMEOUT_S] [-R]
#                       [-- extra lanlm-coordinator flags, e.g. --wire bf16 --relay-fanout 2]
# -R: every worker relays parameters (lanlm-worker --relay-listen ITS_IP:7400), so the
# coordinator sends one copy per step (protocol 7); without it the coordinator sends W copies.
# With several build folders (-b "build-main build"), each rate runs every build in turn, side
# by side on the same machine state, and each build's efficiency is against its own unshaped
# run. Prints per rate (and build): median tokens/s and step wall time over the timed steps (the first step
# is a warm-up), median worker compute (sum over leases), the median step overhead (wall
# minus compute / W: the time the link adds when leases are balanced), bytes out/in per
# step and per token, efficiency (tokens/s against the unshaped run of the same invocation)
# and the fingerprint. On a busy machine compute varies from run to run; the overhead does
# not depend on it. The binaries are copied first, so a rebuild cannot disturb a run; a run
# longer than TIMEOUT_S (default 1800) fails. Needs root and iproute2 (tc). Everything it
# creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build; steps=4; config=M; workers=2; threads=1; per_lease=2; shards=4; limit=1800
rates="none 1gbit 100mbit 20mbit"; relay=0
while getopts "b:s:c:w:t:k:n:r:T:Rh" opt; do
  case "$opt" in
    b) build="$OPTARG" ;; s) steps="$OPTARG" ;; c) config="$OPTARG" ;; w) workers="$OPTARG" ;;
    t) threads="$OPTARG" ;; k) per_lease="$OPTARG" ;; n) shards="$OPTARG" ;; r) rates="$OPTARG" ;; T) limit="$OPTARG" ;; R) relay=1 ;;
    *) sed -n '2,20p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[[ "${1:-}" == "--" ]] && shift
extra=("$@")

if [[ "$(id -u)" != 0 ]]; then echo "bench-lan: network namespaces need root" >&2; exit 1; fi
for tool in ip tc; do
  command -v "$tool" >/dev/null || { echo "bench-lan: '$tool' not found (apt-get install iproute2)" >&2; exit 1; }
done
if (( steps < 2 )); then echo "bench-lan: -s $steps: need at least 2 steps (the first is a warm-up)" >&2; exit 2; fi
if (( workers < 1 || workers > 200 )); then echo "bench-lan: -w $workers is outside [1, 200]" >&2; exit 2; fi
read -r -a builds <<< "$build"
for b in "${builds[@]}"; do
  for exe in "$b/coordinator/lanlm-coordinator" "$b/worker/lanlm-worker"; do
    [[ -x "$exe" ]] || { echo "bench-lan: $exe not found; build it first" >&2; exit 1; }
  done
done
bash deploy/fetch-corpus.sh >/dev/null

out="runs/bench-lan-$(date +%Y%m%d-%H%M%S)-$$"
mkdir -p "$out"
for i in "${!builds[@]}"; do
  mkdir -p "$out/bin$i"
  cp "${builds[$i]}/coordinator/lanlm-coordinator" "${builds[$i]}/worker/lanlm-worker" "$out/bin$i/"
done
token="$out/token"
(umask 077 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token")

# Unique per invocation, so two runs (or a test) never share a namespace.
tag="llan$$x$RANDOM"
br="$tag-br"
nodes=("$tag-c")
for i in $(seq 1 "$workers"); do nodes+=("$tag-w$i"); done
# Each pid is a `timeout`, which passes SIGTERM on to its program (a SIGKILL would not).
source deploy/children.sh bench-lan interrupted
cleanup() {
  trap - EXIT INT TERM
  stop_children
  for ns in "${nodes[@]}" "$br"; do ip netns del "$ns" 2>/dev/null || true; done
}

ip netns add "$br"
ip -n "$br" link add br0 type bridge
ip -n "$br" link set br0 up
for i in "${!nodes[@]}"; do
  ns="${nodes[$i]}"
  ip netns add "$ns"
  ip -n "$ns" link add veth0 type veth peer name "port$i" netns "$br"
  ip -n "$br" link set "port$i" master br0 up
  ip -n "$ns" addr add "10.78.$((i / 250)).$((i % 250 + 1))/16" dev veth0
  ip -n "$ns" link set veth0 up
  ip -n "$ns" link set lo up
done
coordinator_ip=10.78.0.1

# Limits every link at $1 in both directions (egress of the node's veth, egress of the
# bridge port towards the node); "none" removes the limits. Burst: 10 ms at the rate, at
# least 64 KiB, so a full-size segment always fits.
shape() {
  local rate="$1"
  for i in "${!nodes[@]}"; do
    ip netns exec "${nodes[$i]}" tc qdisc del dev veth0 root 2>/dev/null || true
    ip netns exec "$br" tc qdisc del dev "port$i" root 2>/dev/null || true
    [[ "$rate" == none ]] && continue
    local bits burst
    bits=$(tc_bits "$rate")
    burst=$(( bits / 800 > 65536 ? bits / 800 : 65536 ))
    ip netns exec "${nodes[$i]}" tc qdisc add dev veth0 root tbf rate "$rate" burst "$burst" latency 50ms
    ip netns exec "$br" tc qdisc add dev "port$i" root tbf rate "$rate" burst "$burst" latency 50ms
  done
}
tc_bits() {
  local r="${1,,}"
  case "$r" in
    *gbit) echo $(( ${r%gbit} * 1000000000 )) ;;
    *mbit) echo $(( ${r%mbit} * 1000000 )) ;;
    *kbit) echo $(( ${r%kbit} * 1000 )) ;;
    *) echo "bench-lan: rate '$1': use NNNgbit, NNNmbit or NNNkbit" >&2; exit 2 ;;
  esac
}

median() { sort -n | awk '{v[NR]=$1} END {if (NR==0) {print "nan"; exit}; print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
field() { grep -o " $1=[0-9.]*" | cut -d= -f2; }
# Step lines after the first (a warm-up); with --local-steps a line is a round of H steps.
timed() { grep -E " step [0-9]+/" "$1" | tail -n +2 || true; }

flags=(--corpus data/kjv.txt --config "$config" --steps "$steps" --shards "$shards" --seed 1 "${extra[@]}")
echo "bench-lan: config $config, $shards shards, --shards-per-lease $per_lease, $workers workers x $threads threads," \
     "$steps steps (the first step line, a step or a round, is a warm-up), extra flags: ${extra[*]:-none}," \
     "relay: $([[ $relay == 1 ]] && echo on || echo off); logs in $out"
row() { printf '%-9s %-24s %8s %9s %5s %11s %11s %10s %10s %9s %8s  %s\n' "$@"; }
row rate build tok/s wall_ms eff compute_ms overhead_ms bytes_out bytes_in out/tok in/tok fingerprint
declare -A base_tps=()
tokens_per_step=""
for rate in $rates; do
 shape "$rate"
 for bi in "${!builds[@]}"; do
  bindir="$out/bin$bi"
  dir="$out/$rate-$bi"
  mkdir -p "$dir"
  port=$((20000 + RANDOM % 20000))
  pids=()
  ip netns exec "${nodes[0]}" timeout "$limit" "$bindir/lanlm-coordinator" --listen "$coordinator_ip:$port" \
    --cluster-token-file "$token" --threads 2 --min-workers "$workers" --shards-per-lease "$per_lease" \
    "${flags[@]}" > "$dir/coordinator.out" 2> "$dir/coordinator.log" &
  pids+=("$!")
  for i in $(seq 1 "$workers"); do
    relay_flags=()
    [[ $relay == 1 ]] && relay_flags=(--relay-listen "10.78.$((i / 250)).$((i % 250 + 1)):7400")
    ip netns exec "${nodes[$i]}" timeout "$limit" "$bindir/lanlm-worker" --coordinator "$coordinator_ip:$port" \
      --threads "$threads" --cluster-token-file "$token" --name "lan-w$i" "${relay_flags[@]}" \
      2> "$dir/worker-$i.log" &
    pids+=("$!")
  done
  wait_cluster bench-lan "$dir/coordinator.log" "at rate $rate"
  c="$dir/coordinator.log"
  tps=$(timed "$c" | field tok/s | median)
  wall=$(timed "$c" | field wall_ms | median)
  compute=$(timed "$c" | field compute_ms | median)
  bout=$(timed "$c" | field bytes_out | median)
  bin=$(timed "$c" | field bytes_in | median)
  overhead=$(timed "$c" | awk -v w="$workers" '{ for (i = 1; i <= NF; ++i) { split($i, kv, "=");
             if (kv[1] == "wall_ms") wall = kv[2]; if (kv[1] == "compute_ms") compute = kv[2] }
             printf "%.0f\n", wall - compute / w }' | median)
  # Tokens per step line (a round with --local-steps), as the coordinator logs them.
  tokens_per_step=$(timed "$c" | field tokens | median)
  [[ -z "${base_tps[$bi]:-}" && "$rate" == none ]] && base_tps[$bi]="$tps"
  eff=$(awk -v a="$tps" -v b="${base_tps[$bi]:-0}" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "-" }')
  per_token() { awk -v b="$1" -v t="${tokens_per_step:-0}" 'BEGIN { if (t > 0) printf "%.0f", b / t; else print "-" }'; }
  fp=$(grep -o 'fingerprint=[0-9a-f]*' "$c" | tail -1 | cut -d= -f2)
  label=$(realpath "${builds[$bi]}"); label="$(basename "$(dirname "$label")")/$(basename "$label")"
  row "$rate" "$label" "$tps" "$wall" "$eff" "$compute" "$overhead" "$bout" "$bin" "$(per_token "$bout")" \
    "$(per_token "$bin")" "$fp"
 done
done
