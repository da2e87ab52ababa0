#!/usr/bin/env bash
# Installs what is missing (scripts/bootstrap.sh), then configures and builds a CMake preset.
# usage: scripts/build.sh [preset]   (default: dev)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-dev}"
bash scripts/bootstrap.sh
[ -f "build/$preset/build.ninja" ] || cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j"$(nproc)"
