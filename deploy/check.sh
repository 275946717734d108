#!/usr/bin/env bash
# The README's test command: installs dependencies, builds lanlm (Release, warnings as
# errors), runs every test with ctest, then the engine's unit tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer, in a portable build without FMA (x86-64-v2)
# and in a clang Release build, the coordinator, worker, Generate and threaded engine tests
# under ThreadSanitizer, and each libFuzzer target for a while (the clang passes when clang is
# installed; docs/TESTING.md). Exits non-zero on any failure.
#   LANLM_CHECK_SKIP_ASAN=1  skips the ASan/UBSan pass
#   LANLM_CHECK_SKIP_PORTABLE=1  skips the portable (x86-64-v2) pass
#   LANLM_CHECK_SKIP_CLANG=1  skips the clang Release pass
#   LANLM_CHECK_SKIP_TSAN=1  skips the ThreadSanitizer pass
#   LANLM_CHECK_SKIP_FUZZ=1  skips the fuzz pass; LANLM_CHECK_FUZZ_SECONDS (default 30) per target
#   LANLM_CHECK_LABEL=unit   runs only tests with that ctest label (unit or slow)
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup-deps.sh

jobs=$(nproc)
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

echo "== build (Release, -Werror) =="
cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DLANLM_WERROR=ON >/dev/null
cmake --build build -j"$jobs"

echo "== tests =="
label=()
[[ -n "${LANLM_CHECK_LABEL:-}" ]] && label=(-L "$LANLM_CHECK_LABEL")
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 900 "${label[@]}"

if [[ "${LANLM_CHECK_SKIP_ASAN:-0}" != 1 ]]; then
  echo "== engine unit tests under ASan + UBSan =="
  cmake -S . -B build-asan "${generator[@]}" -DCMAKE_BUILD_TYPE=Debug -DLANLM_SANITIZE=ON \
    -DLANLM_ENGINE_ONLY=ON -DLANLM_WERROR=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 900 -L unit
fi
if [[ "${LANLM_CHECK_SKIP_PORTABLE:-0}" != 1 ]]; then
  # The generic vector code (SSE, no FMA: products and sums rounded separately) that the
  # native build never compiles.
  echo "== engine unit tests, portable build (x86-64-v2) =="
  cmake -S . -B build-portable "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DLANLM_PORTABLE=ON \
    -DLANLM_PORTABLE_ARCH=x86-64-v2 -DLANLM_ENGINE_ONLY=ON -DLANLM_WERROR=ON >/dev/null
  cmake --build build-portable -j"$jobs"
  ctest --test-dir build-portable --output-on-failure -j"$jobs" --timeout 900 -L unit
fi
if [[ "${LANLM_CHECK_SKIP_CLANG:-0}" != 1 ]]; then
  if command -v clang++ >/dev/null; then
    # What makes clang a verified compiler for optimised builds (cmake/flags.cmake).
    echo "== engine unit tests, clang Release build =="
    CC=clang CXX=clang++ cmake -S . -B build-clang "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DLANLM_ENGINE_ONLY=ON -DLANLM_WERROR=ON >/dev/null
    cmake --build build-clang -j"$jobs"
    ctest --test-dir build-clang --output-on-failure -j"$jobs" --timeout 900 -L unit
  else
    echo "== clang pass skipped: clang++ not installed =="
  fi
fi
if [[ "${LANLM_CHECK_SKIP_TSAN:-0}" != 1 ]]; then
  echo "== coordinator, worker, Generate and threaded engine tests under ThreadSanitizer =="
  bash deploy/tsan.sh
fi

if [[ "${LANLM_CHECK_SKIP_FUZZ:-0}" != 1 ]]; then
  if command -v clang++ >/dev/null; then
    for target in $(bash deploy/fuzz.sh --list); do
      echo "== fuzz $target (${LANLM_CHECK_FUZZ_SECONDS:-30} s) =="
      bash deploy/fuzz.sh "$target" "${LANLM_CHECK_FUZZ_SECONDS:-30}"
    done
  else
    echo "== fuzz pass skipped: clang++ not installed =="
  fi
fi
echo "check.sh: all tests passed"
