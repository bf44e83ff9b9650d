#!/usr/bin/env bash
# scripts/gpu/pack.sh — builds the CUDA binaries on this (GPU-less) machine and packs them with the
# Debian shared libraries they need into .devpack/ (git-ignored), for a GPU host whose image lacks
# those packages. Usage: bash scripts/gpu/pack.sh [build-dir]   (then carry .devpack; see run.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build/cuda}
cmake -S . -B "$B" -G Ninja -DJRT_CUDA=ON -DCMAKE_BUILD_TYPE=Release > /dev/null
ninja -C "$B" jrt bench_cuda_generate bench_cuda_prefill bench_cuda_gemm $(cd tests && ls test_cuda_*.cpp | sed 's/\.cpp$//')
rm -rf .devbin .devlibs && mkdir -p .devbin .devlibs .devpack
cp "$B/jrt" .devbin/
find "$B/tests" "$B/bench" -maxdepth 1 -type f -executable \( -name 'test_cuda_*' -o -name 'bench_cuda_*' \) \
  -exec cp {} .devbin/ \;
strip .devbin/* 2>/dev/null || true
for l in libfmt.so.9 libpcre2-8.so.0 libzip.so.4 libgfortran.so.5 libquadmath.so.0 libbz2.so.1.0 libgomp.so.1; do
  cp -L "/lib/x86_64-linux-gnu/$l" .devlibs/
done
cp -L "$(ldd "$B/jrt" | awk '/libopenblas/ {print $3}')" .devlibs/
tar -cJf .devpack/libs.tar.xz -C .devlibs .
XZ_OPT=${XZ_OPT:--9 -T2} tar -cJf .devpack/bin.tar.xz -C .devbin .
ls -la .devpack
