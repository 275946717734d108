#!/usr/bin/env bash
# Builds one libFuzzer target with clang (-fsanitize=fuzzer,address,undefined) in build-fuzz/
# and runs it for SECONDS on its committed seed corpus (fuzz/corpus/TARGET/, read only: new
# inputs go to a scratch folder). Exits non-zero when the target crashes, leaks, hangs
# (-timeout) or trips a sanitizer; the input that did so is left in build-fuzz/artifacts/.
#   deploy/fuzz.sh TARGET SECONDS     TARGET: json tokenizer checkpoint cluster_messages generate_messages
#   deploy/fuzz.sh --list             prints the targets
# LANLM_FUZZ_JOBS (default 1): parallel fuzzing processes (libFuzzer -fork=N).
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(json tokenizer checkpoint cluster_messages generate_messages)
usage() { echo "usage: deploy/fuzz.sh TARGET SECONDS (TARGET one of: ${targets[*]})" >&2; exit 2; }
[[ "${1:-}" == --list ]] && { printf '%s\n' "${targets[@]}"; exit 0; }
[[ $# -eq 2 ]] || usage
target=$1
seconds=$2
[[ " ${targets[*]} " == *" $target "* ]] || { echo "fuzz.sh: unknown target '$target'" >&2; usage; }
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: SECONDS must be a positive integer, not '$seconds'" >&2; usage; }
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (bash deploy/setup-deps.sh installs it)" >&2; exit 1; }

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
CC=clang CXX=clang++ cmake -S . -B build-fuzz "${generator[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=Debug \
  -DLANLM_FUZZ=ON -DLANLM_BUILD_TESTS=OFF -DLANLM_WERROR=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "fuzz_$target" >/dev/null

scratch=build-fuzz/corpus-work/$target
artifacts=build-fuzz/artifacts/$target
mkdir -p "$scratch" "$artifacts"
# -rss_limit_mb: a loader must refuse a huge size before allocating; -timeout: per input.
# LeakSanitizer stays on; the Generate harness's service is deliberately never torn down.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
echo "fuzz.sh: $target for ${seconds}s (seeds fuzz/corpus/$target)"
fork=()
[[ "${LANLM_FUZZ_JOBS:-1}" -gt 1 ]] && fork=(-fork="$LANLM_FUZZ_JOBS")
log=build-fuzz/fuzz-$target.log
set +e
"build-fuzz/fuzz/fuzz_$target" "$scratch" "fuzz/corpus/$target" -max_total_time="$seconds" -timeout=25 \
  -rss_limit_mb=2048 -print_final_stats=1 "${fork[@]}" -artifact_prefix="$artifacts/" >"$log" 2>&1
status=$?
set -e
tail -n 30 "$log"
[[ $status -eq 0 ]] || echo "fuzz.sh: $target FAILED (exit $status); inputs in $artifacts/" >&2
exit "$status"
