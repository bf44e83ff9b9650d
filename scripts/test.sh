#!/usr/bin/env bash
# The full test run (what CI runs): build, every CTest test, then the io tests again under
# AddressSanitizer + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh release
ctest --preset release -j"$(nproc)"
cmake --preset asan >/dev/null
cmake --build --preset asan -j"$(nproc)" --target $(cd tests && ls test_io_*.cpp | sed 's/\.cpp$//' | tr '\n' ' ')
ctest --preset asan -j"$(nproc)"
