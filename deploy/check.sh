#!/usr/bin/env bash
# The README's test command: installs dependencies, builds lanlm (Release, warnings as
# errors), runs every test with ctest, then the engine's unit tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer. Exits non-zero on any failure.
#   LANLM_CHECK_SKIP_ASAN=1  skips the sanitizer pass
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
echo "check.sh: all tests passed"
