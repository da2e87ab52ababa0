#!/usr/bin/env bash
# Builds the libFuzzer targets (in the asan preset's build) and runs each one for a while, one after the
# other, each on a copy of its seed corpus (tests/fuzz/run.sh), then prints a table: seconds run,
# executions, corpus size and coverage (edges) at the start and the end, and what was found.
# usage: scripts/fuzz.sh [seconds-per-target] [target...]   (default: 300 s, every target)
# Runs in -fork mode, so that one crash does not end the run: every crashing, leaking, timing-out
# or memory-hungry input is kept in build/asan/fuzz-artifacts/<target>/ with the log.
# Exit status: 0 when nothing was found, 1 when something was, 2 when a run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
shift $(($# > 0 ? 1 : 0))
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for src in tests/fuzz/*_fuzzer.cpp; do
    unit=$(basename "$src" _fuzzer.cpp)
    targets+=("$unit")
  done
fi

bash scripts/bootstrap.sh test || exit 2   # clang and its libFuzzer
bash scripts/build.sh asan exsim_fuzzers || exit 2

worst=0
rows=()
for unit in "${targets[@]}"; do
  echo "fuzz.sh: $unit for ${seconds} s" >&2
  line=$(bash tests/fuzz/run.sh "build/asan/tests/fuzz/fuzz_$unit" "$seconds" "build/asan/fuzz-artifacts/$unit" \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  status=$?
  [ "$status" -gt "$worst" ] && worst=$status
  rows+=("$line")
  echo "$line" >&2
done

# "fuzz <unit>: seconds=S execs=E corpus=A->B coverage=C->D crashes=.. leaks=.. timeouts=.. ooms=.."
printf '\n%-16s %8s %12s %14s %14s %8s %6s %9s %5s\n' target seconds execs corpus coverage crashes leaks timeouts ooms
for line in "${rows[@]}"; do
  unit=$(sed -n 's/^fuzz \([^:]*\):.*/\1/p' <<<"$line")
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
  printf '%-16s %8s %12s %14s %14s %8s %6s %9s %5s\n' "${unit:-?}" "$(field seconds)" "$(field execs)" \
    "$(field corpus)" "$(field coverage)" "$(field crashes)" "$(field leaks)" "$(field timeouts)" "$(field ooms)"
done
[ "$worst" -ne 0 ] && echo "fuzz.sh: findings are in build/asan/fuzz-artifacts/" >&2
exit "$worst"
