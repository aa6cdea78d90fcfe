#!/usr/bin/env bash
# Runs every libFuzzer target (build-fuzz/fuzz_*, `make fuzz`) for SECONDS each on a copy of its
# committed seed corpus (fuzz/corpus/<target>/; new inputs go to WORK/<target>, default a
# temporary folder that is removed) and prints one summary line per target. Crash inputs are
# written to WORK/crashes/. Exit 1 if any target found a crash, leak or sanitizer error.
#   fuzz/run.sh [SECONDS] [WORK]        (.ci/run: fuzz/run.sh 30)
set -u
SECS=${1:-30}
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD_FUZZ:-$HERE/../build-fuzz}
WORK=${2:-}
KEEP=1
if [ -z "$WORK" ]; then WORK=$(mktemp -d /tmp/df-fuzz.XXXXXX); KEEP=0; fi
mkdir -p "$WORK/crashes"
shopt -s nullglob
targets=("$BUILD"/fuzz_*)
[ ${#targets[@]} -gt 0 ] || { echo "fuzz/run.sh: no targets in $BUILD (run make fuzz)" >&2; exit 1; }
fail=0 total=0
for t in "${targets[@]}"; do
  name=$(basename "$t")
  mkdir -p "$WORK/$name"
  log="$WORK/$name.log"
  "$t" -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 -timeout=20 \
       -print_final_stats=1 -artifact_prefix="$WORK/crashes/$name-" \
       "$WORK/$name" "$HERE/corpus/$name" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  total=$((total + ${execs:-0}))
  printf '%-20s rc %d  execs %10s  cov %5s  ft %6s\n' "$name" "$rc" "${execs:-?}" "${cov:-?}" "${ft:-?}"
  if [ "$rc" -ne 0 ]; then
    fail=1
    grep -E "ERROR|SUMMARY|runtime error|abort" "$log" | head -5
  fi
done
echo "total executions: $total"
[ "$KEEP" -eq 1 ] || rm -rf "$WORK"
exit $fail
