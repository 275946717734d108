#!/bin/bash
# Side-by-side serving benchmark rounds (BENCHMARKS.md, issue 11, fourth session).
# Every measured program runs in its own scheduler autogroup at nice -19 (hi): with
# sched_autogroup_enabled, nice works only inside a session, so other sessions' builds on a
# shared 2-core machine otherwise take half the CPU of a 2-thread run. Memory bandwidth and the
# L3 stay shared. Usage:
#   bench/serving_rounds.sh batch1 THREADS ANCHOR_DIR BIN...   # INF15M batch 1: run.c, then each BIN
#   bench/serving_rounds.sh batched CONFIG SESSIONS FORMAT THREADS BIN...
#   bench/serving_rounds.sh prefill FORMAT TOKENS BIN...
# ANCHOR_DIR holds run1 (run.c, gcc -O3 -march=native -ffast-math), run_omp (the same with
# -fopenmp), inf15m_fp32.bin and tokenizer.bin. Each call prints one line; alternate calls.
# BENCH_ARGS adds flags to every lanlm-bench call, e.g. BENCH_ARGS="--temperature 0.8" to draw
# tokens with the server's default sampling instead of greedily.
set -u
hi() { setsid -w bash -c 'echo -19 > /proc/$$/autogroup; exec nice -n -19 "$@"' hi "$@"; }
field() { grep -o "$1[0-9.]*" | head -1 | awk -v p="$1" '{ print substr($0, length(p) + 1) }'; }
mode=$1; shift
read -r -a extra <<< "${BENCH_ARGS:-}"
out="load=$(cut -d' ' -f1 /proc/loadavg)"
case $mode in
  batch1)
    t=$1 a=$2; shift 2
    run="$a/run1"; [ "$t" -gt 1 ] && run="$a/run_omp"
    r=$(cd "$a" && OMP_NUM_THREADS=$t hi timeout 120 "$run" inf15m_fp32.bin -z tokenizer.bin -n 201 -t 0 2>&1 | field "achieved tok/s: ")
    out="$out run.c=$r"
    for b in "$@"; do for f in fp32 bf16 q8; do
      v=$(hi "$b" --config INF15M --mode decode --threads "$t" --runs 3 --tokens 200 --weights $f "${extra[@]}" | field " tokens/s=")
      out="$out $(basename "$b").$f=$v"
    done; done ;;
  batched)
    c=$1 s=$2 f=$3 t=$4; shift 4
    out="$out $c S=$s $f t=$t"
    for b in "$@"; do
      v=$(hi "$b" --config "$c" --mode decode --threads "$t" --runs 2 --tokens 20 --sessions "$s" --weights "$f" "${extra[@]}" | field " tokens/s=")
      out="$out $(basename "$b")=$v"
    done ;;
  prefill)
    f=$1 n=$2; shift 2
    out="$out prefill $f N=$n"
    for b in "$@"; do
      v=$(hi "$b" --config INF15M --mode prefill --threads 1 --tokens "$n" --runs 21 --weights "$f" "${extra[@]}" | field " tokens/s=")
      out="$out $(basename "$b")=$v"
    done ;;
  *) echo "unknown mode '$mode' (batch1, batched, prefill)" >&2; exit 2 ;;
esac
echo "$out"
