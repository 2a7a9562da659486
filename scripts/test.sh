#!/usr/bin/env bash
# Sets up, builds (release) and runs the test suite, then the fuzz targets for a bounded time (tests/fuzz/run.sh): the
# command the README gives and CI runs.
# With --asan, also builds with AddressSanitizer + UndefinedBehaviorSanitizer and runs the tests again
# (all but the PyTorch parity scripts, which drive the release binary's logic unchanged and are slow under ASan).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
cmake --preset release -DUNMASK_TESTS=ON >/dev/null
cmake --build --preset release
ctest --preset release -j2
# Every parser under libFuzzer (clang++, preset fuzz) for 30 s per target; a finding fails the run.
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
bash tests/fuzz/run.sh 30
if [ "${1:-}" = "--asan" ]; then
  cmake --preset asan -DUNMASK_TESTS=ON >/dev/null
  cmake --build --preset asan
  ASAN_OPTIONS=detect_leaks=1 ctest --preset asan -j2
fi
