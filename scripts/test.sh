#!/usr/bin/env bash
# Sets up, builds and runs the tests, once per build (CMakePresets.json).
#
# `bash scripts/test.sh` (and CI, .ci/run) runs the three builds in turn, each with the tests only
# it can run, so that no test runs twice:
#   dev   gcc, as `scripts/demo.sh` builds it: exsim and the benchmark programs, and the tests that
#         use exsim from outside: the browser view (Chromium), the reference proxies (nginx, HAProxy,
#         Squid, Apache in front of exsim's back-ends), the layering and layout checks
#   asan  every unit and integration test (a real KDC, back-ends, the proxy, curl) under
#         AddressSanitizer + UndefinedBehaviorSanitizer (clang; tests/lsan.supp), and a short smoke
#         run of every libFuzzer target (tests/fuzz/run.sh), built in the same tree
#   tsan  the concurrency tests under ThreadSanitizer (clang; tests/tsan.supp)
# `bash scripts/test.sh dev` (or asan, tsan) builds one preset whole and runs every test it has
# (dev: the unit and integration tests too, unsanitized: the quick check while developing); extra
# ctest arguments follow its name. Every build's time is printed at the end. Tests run $(nproc) at
# a time, the longest first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stage.sh
times=()
run_preset() {  # run_preset PRESET "BUILD TARGETS" CTEST-ARGS...
    local preset=$1 targets=$2 start=$SECONDS built
    shift 2
    stage "$preset: build"
    # shellcheck disable=SC2086  # targets: a word list, empty for every target
    EXSIM_BUILD_PURPOSE=test bash scripts/build.sh "$preset" $targets
    built=$((SECONDS - start))
    stage "$preset: tests (ctest --preset $preset -j$(nproc) $*)"
    ctest --preset "$preset" -j"$(nproc)" --timeout 1500 "$@"
    times+=("$preset: build ${built} s, tests $((SECONDS - start - built)) s")
}
documents='layering.*|layout.*|function_lengths'  # checks of the tree (layering, layout tables, function lengths): scripts, no build
if [ $# -gt 0 ]; then
    preset=$1
    shift
    run_preset "$preset" "" "$@"
else
    run_preset dev "exsim exsim_benchmarks" -R "^(browser|proxies\..*|$documents)\$"
    run_preset asan "" -E "^($documents)\$"
    run_preset tsan ""
fi
printf '== %s\n' "${times[@]}" >&2
