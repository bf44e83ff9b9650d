#!/usr/bin/env bash
# Installs what is missing (Debian 12 packages, as root), configures and builds jrt.
# Usage: scripts/bootstrap.sh [preset]   (default preset: release = CPU, plus CUDA when nvcc exists)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
pkgs=(build-essential cmake ninja-build pkg-config git nlohmann-json3-dev libcli11-dev libfmt-dev libzip-dev
      libpcre2-dev libopenblas-openmp-dev libgtest-dev libgmock-dev libbenchmark-dev libomp-dev python3 python3-numpy
      python3-matplotlib)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j"$(nproc)"
