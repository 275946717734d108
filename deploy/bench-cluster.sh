#!/usr/bin/env bash
# Distributed-training benchmark on one machine (BENCHMARKS.md "Distributed training"):
# the single-process reference (lanlm-coordinator --local, LocalTrainer on --threads T) and a
# local cluster of W workers x 1 thread, back to back, same flags. Prints per-run medians over
# the timed steps (the first step is a warm-up) and both fingerprints.
#   deploy/bench-cluster.sh [BUILD_DIR=build-rel] [STEPS=5] [CONFIG=M] [WORKERS=2] [PER_LEASE=1]
# PER_LEASE is the cluster's --shards-per-lease (1, 2 or 4 with the 4 shards used here).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build-rel}"; steps="${2:-5}"; config="${3:-M}"; workers="${4:-2}"; per_lease="${5:-1}"
bash deploy/fetch-corpus.sh >/dev/null
out="runs/bench-cluster-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
token="$out/token"
(umask 077 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token")
flags=(--corpus data/kjv.txt --config "$config" --steps "$steps" --shards 4 --seed 1)

median() { sort -n | awk '{v[NR]=$1} END {if (NR==0) {print "nan"; exit}; print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
field() { grep -o " $1=[0-9.]*" | cut -d= -f2; }
timed() { grep -E " step [0-9]+/" "$1" | grep -v " step 1/"; }

echo "== local: lanlm-coordinator --local --threads $workers"
"$build/coordinator/lanlm-coordinator" --local --threads "$workers" "${flags[@]}" > "$out/local.out" 2> "$out/local.log"
echo "local   tok/s median $(timed "$out/local.log" | field tok/s | median)  wall_ms median $(timed "$out/local.log" | field wall_ms | median)  $(grep -o 'fingerprint=.*' "$out/local.out")"

echo "== cluster: $workers workers x 1 thread, --shards-per-lease $per_lease"
port=$((20000 + RANDOM % 20000))
"$build/coordinator/lanlm-coordinator" --listen "127.0.0.1:$port" --cluster-token-file "$token" --threads 2 \
  --min-workers "$workers" --shards-per-lease "$per_lease" "${flags[@]}" > "$out/cluster.out" 2> "$out/cluster.log" &
coordinator=$!
pids=()
for i in $(seq 1 "$workers"); do
  "$build/worker/lanlm-worker" --coordinator "127.0.0.1:$port" --threads 1 --cluster-token-file "$token" \
    2> "$out/worker-$i.log" &
  pids+=("$!")
done
wait "$coordinator"
for pid in "${pids[@]}"; do wait "$pid"; done
c="$out/cluster.log"
echo "cluster tok/s median $(timed "$c" | field tok/s | median)  wall_ms median $(timed "$c" | field wall_ms | median)" \
     " worker compute_ms (sum over shards) median $(timed "$c" | field compute_ms | median)" \
     " optimizer_ms median $(timed "$c" | field optimizer_ms | median)" \
     " bytes_out/step $(timed "$c" | field bytes_out | median) bytes_in/step $(timed "$c" | field bytes_in | median)" \
     " $(grep -o 'fingerprint=.*' "$out/cluster.out")"
echo "logs in $out"
