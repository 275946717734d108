#!/usr/bin/env bash
# One command, one machine: starts a lanlm-coordinator and N lanlm-workers on localhost with a
# fresh random cluster token, prints where each log is, and stops them all on Ctrl-C or exit.
#   deploy/local-cluster.sh [-w WORKERS] [-t THREADS_PER_WORKER] [-b BUILD_DIR] [-p PORT] [-R]
#                           [-- extra lanlm-coordinator flags, e.g. --steps 200 --config M]
# Defaults: 2 workers x 1 thread, config S, corpus data/kjv.txt (deploy/fetch-corpus.sh),
# build dir build/, port 50051, logs and checkpoints under runs/local-<timestamp>/.
# -R: the workers relay parameters to each other (--relay-listen on ports PORT+1..PORT+W), as
#     on a LAN; `lanlm status --server 127.0.0.1:PORT` shows who fed whom.
set -euo pipefail
cd "$(dirname "$0")/.."

workers=2
threads=1
build=build
port=50051
relay=0
while getopts "w:t:b:p:Rh" opt; do
  case "$opt" in
    w) workers="$OPTARG" ;;
    t) threads="$OPTARG" ;;
    b) build="$OPTARG" ;;
    p) port="$OPTARG" ;;
    R) relay=1 ;;
    *) sed -n '2,9p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[[ "${1:-}" == "--" ]] && shift

coordinator="$build/coordinator/lanlm-coordinator"
worker="$build/worker/lanlm-worker"
for exe in "$coordinator" "$worker"; do
  if [[ ! -x "$exe" ]]; then
    echo "local-cluster: $exe not found; build first:" >&2
    echo "  cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release && cmake --build $build -j" >&2
    exit 1
  fi
done

corpus=data/kjv.txt
if [[ ! -s "$corpus" ]]; then
  if [[ -x deploy/fetch-corpus.sh ]]; then
    bash deploy/fetch-corpus.sh "$corpus"
  else
    mkdir -p data && bible 'gen1:1-rev22:21' > "$corpus"
  fi
fi

run="runs/local-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run"
token_file="$run/cluster-token"
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token_file")

source deploy/children.sh local-cluster stopping

"$coordinator" --corpus "$corpus" --config S --listen "127.0.0.1:$port" \
  --cluster-token-file "$token_file" --min-workers "$workers" --checkpoint-dir "$run/checkpoints" \
  "$@" > "$run/coordinator.out" 2> "$run/coordinator.log" &
coordinator_pid=$!
pids+=("$coordinator_pid")
echo "coordinator  pid $coordinator_pid  log $run/coordinator.log  (final line: $run/coordinator.out)"
for i in $(seq 1 "$workers"); do
  relay_flags=()
  [[ $relay == 1 ]] && relay_flags=(--relay-listen "127.0.0.1:$((port + i))")
  "$worker" --coordinator "127.0.0.1:$port" --threads "$threads" --cluster-token-file "$token_file" \
    --name "local-$i" "${relay_flags[@]}" 2> "$run/worker-$i.log" &
  pids+=("$!")
  echo "worker $i     pid $!  log $run/worker-$i.log"
done
echo "token file   $token_file;  follow progress: tail -f $run/coordinator.log;  Ctrl-C stops all"

set +e
wait "$coordinator_pid"
rc=$?
set -e
cat "$run/coordinator.out"
exit "$rc"
