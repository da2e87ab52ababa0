#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS on a copy of its seed corpus and prints one summary line:
#   fuzz <unit>: seconds=.. execs=.. corpus=N0->N1 coverage=C0->C1 crashes=.. leaks=.. timeouts=.. ooms=..
# usage: tests/fuzz/run.sh BINARY SECONDS [ARTIFACT_DIR [libFuzzer flags...]]
#
# BINARY is fuzz_<unit>; its seeds are tests/fuzz/corpus/<unit>/ and its dictionary
# tests/fuzz/<unit>.dict when there is one. The copy and anything the target writes (TMPDIR) live
# in a temporary folder removed at the end. An input that crashes, leaks, times out or runs out
# of memory is kept in ARTIFACT_DIR (default ./fuzz-artifacts/<unit>) with libFuzzer's log; only
# what this run wrote there counts.
# Exit status: 0 nothing found, 1 something found, 2 the run itself failed.
# Coverage is what libFuzzer counts (edges reached) when it loads the corpus before and after.
set -uo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 BINARY SECONDS [ARTIFACT_DIR [libFuzzer flags...]]" >&2
  exit 2
fi
binary=$(realpath "$1")
seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
unit=$(basename "$binary")
unit=${unit#fuzz_}
artifacts=$(realpath -m "${3:-fuzz-artifacts/$unit}")
shift $(($# < 3 ? $# : 3))
seeds="$here/corpus/$unit"
[ -d "$seeds" ] || { echo "fuzz $unit: no seed corpus at $seeds" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/exsim-fuzz-$unit.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/tmp" "$artifacts"
cp -r "$seeds/." "$work/corpus/"

export TMPDIR="$work/tmp"
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$here/../lsan.supp:print_suppressions=0}"

flags=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "-artifact_prefix=$artifacts/")
[ -f "$here/$unit.dict" ] && flags+=("-dict=$here/$unit.dict")

# Edges reached by the inputs of a corpus folder (libFuzzer's "INITED cov:").
coverage() {
  "$binary" -runs=0 "-artifact_prefix=$artifacts/" "$1" 2>&1 | sed -n 's/.*INITED cov: \([0-9]*\).*/\1/p' | tail -1
}
count() { find "$1" -type f | wc -l; }

touch "$work/started"  # what this run found is newer; earlier findings stay where they are
corpus_start=$(count "$work/corpus")
coverage_start=$(coverage "$work/corpus")
start=$(date +%s)
"$binary" "${flags[@]}" "-max_total_time=$seconds" "$@" "$work/corpus" >"$artifacts/fuzz.log" 2>&1
status=$?
elapsed=$(($(date +%s) - start))
corpus_end=$(count "$work/corpus")
coverage_end=$(coverage "$work/corpus")

# Executions: the final stats of a plain run, or the last status line of a -fork run.
execs=$(sed -n 's/^stat::number_of_executed_units: \([0-9]*\)/\1/p' "$artifacts/fuzz.log" | tail -1)
[ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\): cov:.*/\1/p' "$artifacts/fuzz.log" | tail -1)
found() { find "$artifacts" -maxdepth 1 -type f -name "$1-*" -newer "$work/started" | wc -l; }
crashes=$(found crash) leaks=$(found leak) timeouts=$(found timeout) ooms=$(found oom)

echo "fuzz $unit: seconds=$elapsed execs=${execs:-?} corpus=$corpus_start->$corpus_end" \
  "coverage=${coverage_start:-?}->${coverage_end:-?} crashes=$crashes leaks=$leaks timeouts=$timeouts ooms=$ooms"
if [ $((crashes + leaks + timeouts + ooms)) -gt 0 ]; then
  echo "fuzz $unit: inputs and log kept in $artifacts (reproduce: $binary <input>)" >&2
  tail -n 60 "$artifacts/fuzz.log" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "fuzz $unit: the fuzzer exited with status $status; log: $artifacts/fuzz.log" >&2
  tail -n 60 "$artifacts/fuzz.log" >&2
  exit 2
fi
exit 0
