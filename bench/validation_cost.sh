#!/usr/bin/env bash
# Cost of the coordinator's validation loss (BENCHMARKS.md, "Validation loss in the coordinator"):
# config S, 2 workers x 1 thread, coordinator --threads 1, --eval-every 1 (every step) vs 0 (only at
# the end), alternated rounds. Prints per run the median step wall_ms (steps 2..9) and eval_ms.
# Run from the repository root after building lanlm-coordinator and lanlm-worker in ./build
# (B=DIR for another build folder).
set -euo pipefail
b=${B:-build}; d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
c=tests/data/genesis.txt
tok=$d/token; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > $tok
run() {  # $1 = eval-every, $2 = label
  port=$((20000 + RANDOM % 20000))
  "$b/coordinator/lanlm-coordinator" --listen 127.0.0.1:$port --cluster-token-file $tok --corpus $c --config S \
    --vocab-size 512 --steps 10 --warmup 2 --threads 1 --min-workers 2 --eval-every $1 --eval-windows 16 \
    > $d/cl.out 2>$d/$2.log &
  cp=$!
  "$b/worker/lanlm-worker" --coordinator 127.0.0.1:$port --cluster-token-file $tok --threads 1 2>/dev/null &
  w1=$!
  "$b/worker/lanlm-worker" --coordinator 127.0.0.1:$port --cluster-token-file $tok --threads 1 2>/dev/null &
  w2=$!
  wait $cp; wait $w1 || true; wait $w2 || true
  /usr/bin/python3 - "$d/$2.log" "$2" <<'PY'
import re, statistics, sys
text = open(sys.argv[1]).read()
walls = [float(m.group(2)) for m in re.finditer(r"step (\d+)/\d+ loss=\S+ .*?wall_ms=([\d.]+)", text)]
evals = [float(x) for x in re.findall(r"eval_ms=([\d.]+)", text)]
fp = re.findall(r"fingerprint=([0-9a-f]{16})", text)
print(f"{sys.argv[2]}: median step wall_ms (steps 2-9) {statistics.median(walls[1:9]):.0f}; "
      f"evals {len(evals)}, median eval_ms {statistics.median(evals):.0f}; fingerprint {fp[-1] if fp else '-'}")
PY
}
for r in 1 2 3; do run 1 "r$r-every1"; run 0 "r$r-endonly"; done
