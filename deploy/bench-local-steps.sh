#!/usr/bin/env bash
# Learning at equal tokens, synchronous steps against --local-steps rounds (BENCHMARKS.md
# "Training over a shaped LAN", issue 9): for each mode, one coordinator and W workers x T
# threads on loopback train the same run (corpus, config, steps, shards, seed, schedule), then
# `lanlm eval` scores the final checkpoint on held-out text (the last 4 % of data/kjv.txt,
# inside the validation split). Modes are coordinator flag sets separated by commas; the
# first is the reference the others are compared with.
#   deploy/bench-local-steps.sh [-b BUILD_DIR] [-c CONFIG] [-s STEPS] [-n SHARDS] [-w WORKERS]
#                               [-t THREADS] [-e EVAL_WINDOWS] [-m "MODE,MODE,..."] [-T TIMEOUT_S]
#                               [-- extra flags for every mode, e.g. --warmup 20]
# Default modes: synchronous fp32 with --shards-per-lease 2, then rounds of H = 10, 50, 200 with
# 2 replicas (--shards-per-lease 2 of 4 shards) and 4 replicas (--shards-per-lease 1). The result
# of a mode does not depend on W (docs/CLUSTER.md), so W only sets how long it takes.
# Prints per mode: replicas, the last step line's train loss, validation loss and its change
# against the first mode, bytes out/in per token over the run, wall time and the fingerprint.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build; config=S; steps=1000; shards=4; workers=2; threads=1; windows=100; limit=7200
modes="--shards-per-lease 2"
for h in 10 50 200; do modes+=",--shards-per-lease 2 --local-steps $h,--shards-per-lease 1 --local-steps $h"; done
while getopts "b:c:s:n:w:t:e:m:T:h" opt; do
  case "$opt" in
    b) build="$OPTARG" ;; c) config="$OPTARG" ;; s) steps="$OPTARG" ;; n) shards="$OPTARG" ;;
    w) workers="$OPTARG" ;; t) threads="$OPTARG" ;; e) windows="$OPTARG" ;; m) modes="$OPTARG" ;;
    T) limit="$OPTARG" ;; *) sed -n '2,16p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[[ "${1:-}" == "--" ]] && shift
extra=("$@")
if (( workers < 1 || workers > 64 )); then echo "bench-local-steps: -w $workers is outside [1, 64]" >&2; exit 2; fi
for exe in coordinator/lanlm-coordinator worker/lanlm-worker client/lanlm; do
  [[ -x "$build/$exe" ]] || { echo "bench-local-steps: $build/$exe not found; build it first" >&2; exit 1; }
done
bash deploy/fetch-corpus.sh >/dev/null

out="runs/bench-local-steps-$(date +%Y%m%d-%H%M%S)-$$"
mkdir -p "$out/bin"
cp "$build/coordinator/lanlm-coordinator" "$build/worker/lanlm-worker" "$build/client/lanlm" "$out/bin/"
token="$out/token"
(umask 077 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token")
# Held-out text: the corpus' last 4 % from the first whole line (the file BENCHMARKS.md's
# validation figures use).
heldout="$out/heldout.txt"
tail -c $(( $(stat -c %s data/kjv.txt) / 25 )) data/kjv.txt | sed 1d > "$heldout"

# Each pid is a `timeout`, which passes SIGTERM on to its program.
source deploy/children.sh bench-local-steps interrupted

sum() { grep -E " step [0-9]+/" "$1" | grep -o " $2=[0-9.]*" | cut -d= -f2 | awk '{s += $1} END {printf "%.0f", s}'; }
echo "bench-local-steps: config $config, $steps steps, $shards shards, $workers workers x $threads threads," \
     "extra flags: ${extra[*]:-none}; held-out text $heldout ($windows windows); logs in $out"
printf '%-44s %8s %10s %9s %8s %9s %9s %8s  %s\n' mode replicas train_loss val_loss vs_first out/tok in/tok wall_s fingerprint
IFS=',' read -r -a mode_list <<< "$modes"
first_val=""
for mi in "${!mode_list[@]}"; do
  read -r -a mode <<< "${mode_list[$mi]}"
  dir="$out/mode-$mi"
  mkdir -p "$dir"
  port=$((20000 + RANDOM % 20000))
  start=$(date +%s)
  pids=()
  timeout "$limit" "$out/bin/lanlm-coordinator" --listen "127.0.0.1:$port" --cluster-token-file "$token" --threads 1 \
    --min-workers "$workers" --corpus data/kjv.txt --config "$config" --steps "$steps" --shards "$shards" --seed 1 \
    --checkpoint-dir "$dir/checkpoints" "${extra[@]}" "${mode[@]}" > "$dir/coordinator.out" 2> "$dir/coordinator.log" &
  pids+=("$!")
  for i in $(seq 1 "$workers"); do
    timeout "$limit" "$out/bin/lanlm-worker" --coordinator "127.0.0.1:$port" --threads "$threads" \
      --cluster-token-file "$token" --name "learn-w$i" 2> "$dir/worker-$i.log" &
    pids+=("$!")
  done
  wait_cluster bench-local-steps "$dir/coordinator.log" "in mode '${mode_list[$mi]}'"
  wall=$(( $(date +%s) - start ))
  c="$dir/coordinator.log"
  ckpt=$(printf '%s/checkpoints/step-%08d.safetensors' "$dir" "$steps")
  val=$("$out/bin/lanlm" eval --checkpoint "$ckpt" --text "$heldout" --max-windows "$windows" | grep -o 'loss=[0-9.]*' | head -1 | cut -d= -f2)
  [[ -z "$first_val" ]] && first_val="$val"
  vs=$(awk -v a="$val" -v b="$first_val" 'BEGIN { printf "%+.2f%%", 100 * (a - b) / b }')
  tokens=$(sum "$c" tokens)
  per_token() { awk -v b="$1" -v t="$tokens" 'BEGIN { if (t > 0) printf "%.0f", b / t; else print "-" }'; }
  per_lease=1
  for ((j = 0; j < ${#mode[@]}; ++j)); do
    [[ "${mode[$j]}" == --shards-per-lease ]] && per_lease="${mode[$((j + 1))]}"
  done
  replicas=$(( (shards + per_lease - 1) / per_lease ))
  grep -q -- "--local-steps" <<< "${mode_list[$mi]}" || replicas="sync"
  loss=$(grep -E " step [0-9]+/" "$c" | tail -1 | grep -o ' loss=[0-9.]*' | cut -d= -f2)
  fp=$(grep -o 'fingerprint=[0-9a-f]*' "$c" | tail -1 | cut -d= -f2)
  printf '%-44s %8s %10s %9s %8s %9s %9s %8s  %s\n' "${mode_list[$mi]}" "$replicas" "$loss" "$val" "$vs" \
    "$(per_token "$(sum "$c" bytes_out)")" "$(per_token "$(sum "$c" bytes_in)")" "$wall" "$fp"
done
