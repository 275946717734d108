#!/usr/bin/env bash
# The main job, end to end, on one machine: installs what is missing, builds lanlm (Release),
# fetches the default corpus (King James Bible), trains a model on a local cluster (one
# lanlm-coordinator + 2 lanlm-workers on localhost) with visible progress, then serves the
# final checkpoint and streams a generation through the `lanlm` client. Stops everything it
# started, on success, failure or Ctrl-C.
#   QUICKSTART_STEPS   optimizer steps to train (default 300, about 3-5 minutes on 2 cores)
#   QUICKSTART_PROMPT  prompt of the final generation (default "And God said")
#   QUICKSTART_PORT    first of the two localhost ports used (default 50061)
set -euo pipefail
cd "$(dirname "$0")/.."

steps="${QUICKSTART_STEPS:-300}"
prompt="${QUICKSTART_PROMPT:-And God said}"
port="${QUICKSTART_PORT:-50061}"
serve_port=$((port + 1))
build=build

echo "== 1/5 dependencies (deploy/setup-deps.sh)"
bash deploy/setup-deps.sh

echo "== 2/5 build ($build/, Release)"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target lanlm lanlm-coordinator lanlm-worker | grep -E "Linking|error" || true
for exe in "$build/client/lanlm" "$build/coordinator/lanlm-coordinator" "$build/worker/lanlm-worker"; do
  [[ -x "$exe" ]] || { echo "quickstart: build did not produce $exe" >&2; exit 1; }
done

echo "== 3/5 corpus (data/kjv.txt)"
bash deploy/fetch-corpus.sh
echo "data/kjv.txt: $(wc -c < data/kjv.txt) bytes"

source deploy/children.sh quickstart "interrupted, stopping"

echo "== 4/5 training: coordinator + 2 workers on localhost, config S, $steps steps"
out=$(mktemp)
bash deploy/local-cluster.sh -w 2 -t 1 -b "$build" -p "$port" -- --steps "$steps" --warmup 30 --lr 0.003 \
  --checkpoint-every 100 > "$out" 2>&1 &
cluster_pid=$!
pids+=("$cluster_pid")
# local-cluster.sh prints where its logs are; follow the coordinator's log until it is done.
log=""
for _ in $(seq 1 100); do
  log=$(sed -n 's/.*log \(runs\/[^ ]*coordinator\.log\).*/\1/p' "$out" | head -1)
  [[ -n "$log" && -f "$log" ]] && break
  sleep 0.2
done
[[ -n "$log" ]] || { cat "$out"; echo "quickstart: the local cluster did not start" >&2; exit 1; }
cat "$out"
# Every 20th step line, and every join/leave/checkpoint line.
tail -n +1 -f "$log" --pid "$cluster_pid" | awk '
  match($0, /step [0-9]+\/[0-9]+ loss/) { n = substr($0, RSTART + 5) + 0; if (n % 20 == 0 || n <= 2) { print; fflush() } next }
  /joined|left|checkpoint written|waiting|finished|stopping/ { print; fflush() }' || true
set +e
wait "$cluster_pid"
rc=$?
set -e
pids=()
final=$(grep -o 'fingerprint=[0-9a-f]*' "$out" | tail -1 || true)
checkpoint=$(grep -o 'checkpoint=[^ ]*' "$out" | tail -1 | cut -d= -f2 || true)
if [[ $rc -ne 0 || -z "$checkpoint" || "$checkpoint" == "-" ]]; then
  cat "$out"
  echo "quickstart: training failed (exit $rc); logs under $(dirname "$log")" >&2
  exit 1
fi
echo "trained: $checkpoint ($final)"

echo "== 5/5 streamed generation: lanlm-coordinator --serve + lanlm generate"
"$build/coordinator/lanlm-coordinator" --serve --checkpoint "$checkpoint" --listen "127.0.0.1:$serve_port" \
  2> "$(dirname "$log")/serve.log" &
pids+=("$!")
ready=0
for _ in $(seq 1 100); do
  if "$build/client/lanlm" status --server "127.0.0.1:$serve_port" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.2
done
[[ $ready == 1 ]] || { cat "$(dirname "$log")/serve.log"; echo "quickstart: server did not come up" >&2; exit 1; }
"$build/client/lanlm" status --server "127.0.0.1:$serve_port"
echo "--- prompt: $prompt"
"$build/client/lanlm" generate --server "127.0.0.1:$serve_port" --prompt "$prompt" --max-new-tokens 60 \
  --temperature 0.8 --top-k 40 --seed 7
echo
echo "== done. Try: $build/client/lanlm generate --checkpoint $checkpoint --prompt \"In the beginning\""
