#!/usr/bin/env bash
# Installs every Debian 12 package that building, testing and running lanlm need.
# Idempotent: prints nothing and touches nothing when everything is already installed.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config git
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libboost-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev
  python3 python3-grpcio python3-protobuf
  bible-kjv iproute2 procps
)
# The PyTorch anchor for BENCHMARKS.md. Debian's python3-torch calls whatever libblas.so.3
# the alternatives system provides; with only the reference BLAS installed (its default) it
# trains config M at about 90 tokens/s instead of about 2,300, so install OpenBLAS with it.
if [[ "${LANLM_WITH_TORCH:-0}" == 1 ]]; then packages+=(python3-torch libopenblas0-pthread); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "setup-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
