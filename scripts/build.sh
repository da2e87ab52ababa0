#!/usr/bin/env bash
# Installs what is missing (scripts/bootstrap.sh), then configures and builds a CMake preset.
# usage: scripts/build.sh [preset] [target ...]   (default: dev, every target)
#   With targets (scripts/demo.sh asks for `exsim`) only those are built, and only the packages
#   that building and running exsim needs are installed. Without, everything the preset has,
#   with the test packages: GoogleTest and Google Benchmark must then be found.
#   EXSIM_BUILD_PURPOSE=test installs and requires the test packages also for a few targets
#   (scripts/test.sh's dev stage builds exsim and runs the tests that need only it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stage.sh
preset="${1:-dev}"
shift || true
targets=("$@")

purpose=test
[ ${#targets[@]} -gt 0 ] && purpose=demo
purpose="${EXSIM_BUILD_PURPOSE:-$purpose}"
stage "checking Debian packages ($purpose)"
bash scripts/bootstrap.sh "$purpose"

cache="build/$preset/CMakeCache.txt"
if [ ! -f "build/$preset/build.ninja" ]; then
    stage "configuring build/$preset"
    cmake --preset "$preset" -DEXSIM_REQUIRE_TESTS="$([ "$purpose" = test ] && echo ON || echo OFF)" >/dev/null
elif [ "$purpose" = test ] && ! grep -q '^EXSIM_REQUIRE_TESTS:BOOL=ON' "$cache"; then
    # configured by a demo build, before the test packages were there
    stage "configuring build/$preset with the tests"
    cmake --preset "$preset" -DEXSIM_REQUIRE_TESTS=ON >/dev/null
fi

if [ ${#targets[@]} -gt 0 ]; then
    stage "building ${targets[*]} (build/$preset)"
    cmake --build --preset "$preset" -j"$(nproc)" --target "${targets[@]}"
else
    stage "building every target of build/$preset"
    cmake --build --preset "$preset" -j"$(nproc)"
fi
stage "built"
