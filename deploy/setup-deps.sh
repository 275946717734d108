#!/usr/bin/env bash
# Installs every Debian 12 package that building, testing and running lanlm need, then the
# dashboard's web dependencies from npm into third_party/ (git-ignored): uPlot (compiled
# into lanlm-coordinator) and playwright-core (drives Debian's chromium in the browser test;
# no browser download). clang, its runtimes (libFuzzer, sanitizers) and llvm (llvm-symbolizer)
# are for the fuzz targets (deploy/fuzz.sh). Idempotent: prints nothing and touches nothing when everything is
# already installed. LANLM_SKIP_WEB_DEPS=1 skips npm (the dashboard then has no charts and
# the browser test skips).
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config git
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libboost-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev nlohmann-json3-dev
  python3 python3-grpcio python3-protobuf
  bible-kjv iproute2 procps
  prometheus chromium systemd
  clang libclang-rt-14-dev llvm
)
# Node.js for npm (a nodesource or other node already on PATH will do).
command -v npm >/dev/null || packages+=(nodejs npm)
# The PyTorch anchor for BENCHMARKS.md. Debian's python3-torch calls whatever libblas.so.3
# the alternatives system provides; with only the reference BLAS installed (its default) it
# trains config M at about 90 tokens/s instead of about 2,300, so install OpenBLAS with it.
if [[ "${LANLM_WITH_TORCH:-0}" == 1 ]]; then packages+=(python3-torch libopenblas0-pthread); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  echo "setup-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- web dependencies (pinned versions) ----
[[ "${LANLM_SKIP_WEB_DEPS:-0}" == 1 ]] && exit 0
UPLOT_VERSION=1.6.32
PLAYWRIGHT_VERSION=1.65.1
third_party="$(cd "$(dirname "$0")/.." && pwd)/third_party"
uplot="$third_party/uplot"
if [[ ! -f "$uplot/uPlot.iife.min.js" || "$(cat "$uplot/VERSION" 2>/dev/null)" != "$UPLOT_VERSION" ]]; then
  echo "setup-deps: fetching uPlot $UPLOT_VERSION from npm into $uplot" >&2
  tmp=$(mktemp -d)
  if (cd "$tmp" && npm pack --silent "uplot@$UPLOT_VERSION" >/dev/null); then
    mkdir -p "$uplot"
    tar -xzf "$tmp"/uplot-*.tgz -C "$tmp"
    cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$tmp/package/LICENSE" "$uplot/"
    echo "$UPLOT_VERSION" > "$uplot/VERSION"
  else
    echo "setup-deps: npm pack uplot failed; the dashboard will have no charts" >&2
  fi
  rm -rf "$tmp"
fi
browser="$third_party/browser"
if [[ "$(cat "$browser/VERSION" 2>/dev/null)" != "$PLAYWRIGHT_VERSION" ]]; then
  echo "setup-deps: installing playwright-core $PLAYWRIGHT_VERSION from npm into $browser" >&2
  mkdir -p "$browser"
  if PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund --prefix "$browser" \
      "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null; then
    echo "$PLAYWRIGHT_VERSION" > "$browser/VERSION"
  else
    echo "setup-deps: npm install playwright-core failed; the browser test will skip" >&2
  fi
fi
