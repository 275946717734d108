#!/usr/bin/env bash
# The one prepared run for a lent many-core machine (the device tool's 16-core AMX machine):
# bf16 native-kernel tests, the AMX probe, training-step scaling of lanlm (fp32, bf16 native and
# emulated) beside PyTorch (fp32, bf16 autocast) at 1..N threads, and INF15M decoding beside
# llama2.c's run.c / runq.c. Every line it prints goes to $OUT/device.log too.
#
# Usage: bash bench/device_bench.sh BUILD ANCHORS [SECTIONS]
#   BUILD    an engine-only build made for that CPU, statically linked (the machine has no gRPC
#            or GoogleTest), e.g.
#              cmake -S . -B build-dev-spr -DCMAKE_BUILD_TYPE=Release -DLANLM_ENGINE_ONLY=ON \
#                -DLANLM_PORTABLE=ON -DLANLM_PORTABLE_ARCH=sapphirerapids -DCMAKE_EXE_LINKER_FLAGS=-static
#              ninja -C build-dev-spr lanlm-bench lanlm-kernel-bench lanlm-amx-probe lanlm_engine_tests
#   ANCHORS  a copy of shared/anchors (the machine sees only the repository), with static run/runq
#            binaries under ANCHORS/bin as a fallback where the machine has no C compiler
#   SECTIONS any of: tests probe train decode (default: all, in that order)
# Each command has its own timeout, so one that hangs costs its slice, not the lease.
set -uo pipefail
BUILD=${1:?usage: device_bench.sh BUILD ANCHORS [SECTIONS]}
ANCHORS=${2:?usage: device_bench.sh BUILD ANCHORS [SECTIONS]}
SECTIONS=${3:-tests probe train decode}
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/device.log") 2>&1
PY=${PY:-python3}
MAXT=$(nproc)
THREADS="1 2 4 8 $MAXT"
export PYTHONUNBUFFERED=1

say() { echo "== $(date +%T) $*"; }
run() { local t=$1; shift; echo "\$ $*"; timeout "$t" "$@"; local rc=$?; [ $rc -ne 0 ] && echo "(rc=$rc)"; return 0; }

say "machine"
nproc
lscpu | grep -E 'Model name|Socket|Core|Thread|NUMA node|MHz|L1d|L2|L3' || true
grep -m1 -o -w -E 'avx512_bf16|amx_bf16|amx_tile|avx512f|avx_vnni' /proc/cpuinfo | sort -u | tr '\n' ' '
echo
for f in avx512f avx512_bf16 amx_tile amx_bf16 amx_int8; do
  grep -q -w "$f" /proc/cpuinfo && echo "cpu flag $f: yes" || echo "cpu flag $f: no"
done
free -g | head -2
$PY -c 'import torch; print("torch", torch.__version__, "threads", torch.get_num_threads(), torch.backends.mkldnn.is_available())' 2>&1 | tail -1

# The engine tests find their data through the source directory compiled in (LANLM_SOURCE_DIR).
# BUILD's CMakeCache.txt names it (CMAKE_HOME_DIRECTORY); point it at this checkout if it is absent.
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
if [ -n "$src" ] && [ ! -e "$src" ]; then mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src"; fi

for section in $SECTIONS; do
case $section in
tests)
  say "engine tests: bf16 (native kernel == emulated, VDPBF16PS == two FMAs), matmul, model"
  run 150 "$BUILD/tests/lanlm_engine_tests" --gtest_brief=1 \
    --gtest_filter='*Bf16*:*bf16*:Matmul*:Model*:Gemv*:DecoderBatch*:Trainer*:Attention*'
  ;;
probe)
  say "AMX probe"
  run 90 "$BUILD/bench/lanlm-amx-probe"
  ;;
train)
  say "training step, config M: lanlm fp32 / bf16 native / bf16 emulated, torch fp32 / bf16, by threads"
  for t in $THREADS; do
    run 60 "$BUILD/bench/lanlm-bench" --config M --mode train --threads "$t" --steps 5 --warmup 1
    run 60 "$BUILD/bench/lanlm-bench" --config M --mode train --threads "$t" --steps 5 --warmup 1 --precision bf16
    if [ "$t" = 1 ] || [ "$t" = "$MAXT" ]; then
      run 60 "$BUILD/bench/lanlm-bench" --config M --mode train --threads "$t" --steps 5 --warmup 1 \
        --precision bf16 --bf16-kernel emulated
    fi
    run 90 $PY "$ANCHORS/torch_ref.py" train --config M --threads "$t" --steps 5 --warmup-steps 2
    run 90 $PY "$ANCHORS/torch_ref.py" train --config M --threads "$t" --steps 5 --warmup-steps 2 --bf16
  done
  say "kernels at config M shapes, 1 and $MAXT threads"
  run 60 "$BUILD/bench/lanlm-kernel-bench" --threads "1,$MAXT" --configs M --reps 3
  ;;
decode)
  say "INF15M decoding: lanlm fp32 / bf16 / q8 vs run.c / runq.c"
  w=/tmp/inf15m
  run 120 $PY "$ANCHORS/llama2c/make_inf15m.py" "$w"
  if command -v gcc >/dev/null; then
    gcc -Ofast -march=native -fopenmp "$ANCHORS/llama2c/run.c" -lm -o /tmp/run &&
      gcc -Ofast -march=native -fopenmp "$ANCHORS/llama2c/runq.c" -lm -o /tmp/runq && echo "run/runq: built here with gcc"
  fi
  [ -x /tmp/run ] || { cp "$ANCHORS/bin/run" "$ANCHORS/bin/runq" /tmp/ && echo "run/runq: carried static builds"; }
  for t in 1 2 $MAXT; do
    for wf in fp32 bf16 q8; do
      run 60 "$BUILD/bench/lanlm-bench" --config INF15M --mode decode --threads "$t" --runs 3 --tokens 100 --weights "$wf"
    done
    for prog in run:inf15m_fp32.bin runq:inf15m_q8.bin; do
      echo "\$ OMP_NUM_THREADS=$t /tmp/${prog%%:*} ${prog#*:} -n 101 -t 0 (3 runs)"
      for r in 1 2 3; do
        OMP_NUM_THREADS=$t timeout 60 "/tmp/${prog%%:*}" "$w/${prog#*:}" -z "$w/tokenizer.bin" -n 101 -t 0 2>&1 | grep -a "tok/s"
      done
    done
  done
  say "batched decoding (32 sessions) and prefill (256 tokens), INF15M, by format, 1 and $MAXT threads"
  for t in 1 $MAXT; do
    for wf in fp32 bf16 q8; do
      run 60 "$BUILD/bench/lanlm-bench" --config INF15M --mode decode --threads "$t" --runs 2 --tokens 20 \
        --sessions 32 --weights "$wf"
      run 60 "$BUILD/bench/lanlm-bench" --config INF15M --mode prefill --threads "$t" --tokens 256 --runs 5 --weights "$wf"
    done
  done
  say "decoding GEMV, panels vs the row-major form, 1 thread"
  run 60 "$BUILD/bench/lanlm-gemv-layouts"
  ;;
esac
done
say "done"
