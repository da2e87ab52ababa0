#!/usr/bin/env bash
# Builds the dev preset and runs the soak test (tests/integration/soak_test.cpp) for longer than
# CI does: mixed load through `exsim proxy` under ms04-002 while back-ends restart and idle
# connections close at random; at the end nothing leaked or lost and the proxy's descriptors
# and memory are flat. Prints the seed, each fault and the summary table.
# usage: scripts/soak.sh [seconds]   (default 300; CI runs 40 s in the integration suite)
# EXSIM_SOAK_SEED repeats the faults and choices of an earlier run. EXSIM_BUILD_LOCK names a
# lock file to take around the build (when others build in the same tree).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
if [ -n "${EXSIM_BUILD_LOCK:-}" ]; then
    flock "$EXSIM_BUILD_LOCK" bash scripts/build.sh dev
else
    bash scripts/build.sh dev
fi
EXSIM_SOAK_SECONDS="$seconds" exec build/dev/tests/exsim_integration_tests --gtest_filter='Soak.*'
