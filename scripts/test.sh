#!/usr/bin/env bash
# Sets up, builds and runs every test: unit + integration (a real KDC, back-ends, the proxy, curl).
# `bash scripts/test.sh asan` runs the same suite under AddressSanitizer + UBSan, and `tsan` the
# integration tests under ThreadSanitizer (tests/tsan.supp); neither is part of CI yet.
# Extra ctest arguments follow the preset name.
set -euo pipefail
cd "$(dirname "$0")/.."
presets=(dev)
if [ $# -gt 0 ]; then presets=("$1"); shift; fi
for preset in "${presets[@]}"; do
    echo "== $preset" >&2
    start=$SECONDS
    bash scripts/build.sh "$preset"
    ctest --preset "$preset" --timeout 1500 "$@"
    echo "== $preset: $((SECONDS - start)) s" >&2
done
