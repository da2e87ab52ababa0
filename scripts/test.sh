#!/usr/bin/env bash
# Sets up, builds and runs every test, twice over:
#   dev   the normal build: unit + integration (a real KDC, back-ends, the proxy, curl);
#   asan  the same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
# `bash scripts/test.sh dev` (or asan, or tsan: the integration tests under ThreadSanitizer with
# tests/tsan.supp, not yet part of CI) runs one of them; extra ctest arguments follow it.
set -euo pipefail
cd "$(dirname "$0")/.."
presets=(dev asan)
if [ $# -gt 0 ]; then presets=("$1"); shift; fi
for preset in "${presets[@]}"; do
    echo "== $preset" >&2
    start=$SECONDS
    bash scripts/build.sh "$preset"
    ctest --preset "$preset" --timeout 1500 "$@"
    echo "== $preset: $((SECONDS - start)) s" >&2
done
