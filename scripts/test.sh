#!/usr/bin/env bash
# Sets up, builds and runs every test (unit, then integration with a real KDC, back-ends and curl).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh dev
ctest --preset dev --timeout 900 "$@"
