#!/usr/bin/env bash
# Sets up, builds and runs `exsim up` on the embedded default topology (Ctrl-C stops it).
# Extra arguments go to `exsim up`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh dev exsim
exec build/dev/app/exsim up --state-dir "${EXSIM_STATE_DIR:-state}" "$@"
