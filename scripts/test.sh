#!/usr/bin/env bash
# Sets up, builds and runs every test, once per build (CMakePresets.json):
#   dev   the normal build: unit + integration tests (a real KDC, back-ends, the proxy, curl)
#   asan  the same suite under AddressSanitizer + UndefinedBehaviorSanitizer (clang; tests/lsan.supp),
#         and a short smoke run of every libFuzzer target (tests/fuzz/run.sh), built in the same tree
#   tsan  the concurrency tests under ThreadSanitizer (clang; tests/tsan.supp)
# With no argument: all three, as CI runs them (.ci/run).
# `bash scripts/test.sh asan` (or dev, tsan) runs one build; extra ctest arguments follow
# its name. Every build's time is printed at the end. Tests run $(nproc) at a time, the longest
# first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stage.sh
presets=(dev asan tsan)
if [ $# -gt 0 ]; then presets=("$1"); shift; fi
times=()
for preset in "${presets[@]}"; do
    stage "$preset: build"
    start=$SECONDS
    bash scripts/build.sh "$preset"
    built=$((SECONDS - start))
    stage "$preset: tests (ctest --preset $preset -j$(nproc))"
    ctest --preset "$preset" -j"$(nproc)" --timeout 1500 "$@"
    times+=("$preset: build ${built} s, tests $((SECONDS - start - built)) s")
done
printf '== %s\n' "${times[@]}" >&2
