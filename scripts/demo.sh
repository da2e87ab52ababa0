#!/usr/bin/env bash
# Sets up, builds and runs `exsim demo`: the default topology in a temporary folder, the same
# workload under every pool policy for every back-end configuration, side by side.
# Extra arguments go to `exsim demo` (e.g. --quick, --html demo.html, --json demo.json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh dev
exec build/dev/app/exsim demo "$@"
