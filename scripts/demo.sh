#!/usr/bin/env bash
# Sets up, builds and runs `exsim demo`: the default topology in a temporary folder, the same
# workload under every pool policy for every back-end configuration, side by side.
# Builds only the `exsim` program (not the tests or the benchmarks) and installs only what it needs.
# Extra arguments go to `exsim demo` (e.g. --quick, --html demo.html, --json demo.json).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stage.sh
bash scripts/build.sh dev exsim
stage "running exsim demo $*"
exec build/dev/app/exsim demo "$@"
