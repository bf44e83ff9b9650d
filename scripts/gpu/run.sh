#!/usr/bin/env bash
# scripts/gpu/run.sh — on the GPU host, from the repository root with .devpack carried: unpacks the
# binaries of pack.sh and runs every CUDA test (the op table rows go to $OUT/*.log), then whatever
# command is given, e.g. `bash scripts/gpu/run.sh /tmp/bin/bench_cuda_generate --steps 32`.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p /tmp/libs /tmp/bin "$OUT"
tar -xJf .devpack/libs.tar.xz -C /tmp/libs && tar -xJf .devpack/bin.tar.xz -C /tmp/bin
export LD_LIBRARY_PATH=/tmp/libs:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export JRT_TEST_DATA=$PWD/tests/data JRT_BIN=/tmp/bin/jrt
rc=0
for t in $(find /tmp/bin -maxdepth 1 -type f -executable -name 'test_cuda_*' | sort); do
  n=$(basename "$t")
  timeout 300 "$t" > "$OUT/$n.log" 2>&1 || rc=1
  echo "$n: $(grep -c 'OPROW.*OK' "$OUT/$n.log") rows OK, $(grep -c 'OPROW.*FAIL' "$OUT/$n.log") FAIL, $(tail -1 "$OUT/$n.log")"
done
if [ $# -gt 0 ]; then "$@" || rc=1; fi
exit $rc
