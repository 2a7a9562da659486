#!/usr/bin/env bash
# Runs every fuzz target of the preset fuzz (build/fuzz) for SECONDS each (default 30), from its committed seeds
# (tests/fuzz/corpus/NAME/) and what earlier runs kept (build/fuzz/corpus/NAME/). A finding (crash, sanitizer report,
# hang, leak, exception other than unmask::Error) is saved under build/fuzz/findings/NAME/ and fails the script.
# Longer runs, more processes, reproducing a finding: docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-30}"
build=build/fuzz
shopt -s nullglob
targets=("$build"/tests/fuzz/fuzz_*)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no targets in $build/tests/fuzz: run cmake --preset fuzz && cmake --build --preset fuzz" >&2
  exit 1
fi
status=0
for bin in "${targets[@]}"; do
  name=$(basename "$bin")
  name=${name#fuzz_}
  corpus="$build/corpus/$name"
  findings="$build/findings/$name/"
  log="$build/fuzz_$name.log"
  mkdir -p "$corpus" "$findings"
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$findings" "$corpus" "tests/fuzz/corpus/$name" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz $name: ${runs:-?} executions in ${seconds} s, no findings"
  else
    echo "fuzz $name: FINDING (log $log, input saved in $findings):"
    tail -n 40 "$log"
    status=1
  fi
done
exit $status
