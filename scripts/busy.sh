#!/usr/bin/env bash
# Runs a command while one core is kept busy, as on a shared or slower machine: the way to check
# that a test's verdict does not depend on the machine's speed (issue 33).
#   usage: scripts/busy.sh [-n BURNERS] COMMAND [ARGS...]
#   e.g.   scripts/busy.sh ctest --preset asan -j2 --repeat until-fail:3
# Each burner is one process spinning on one core (`sha256sum /dev/zero`) until the command ends.
set -euo pipefail
burners=1
if [ "${1:-}" = -n ]; then burners=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: $0 [-n BURNERS] COMMAND [ARGS...]" >&2; exit 2; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for _ in $(seq "$burners"); do
    sha256sum /dev/zero >/dev/null &
    pids+=($!)
done
echo "busy.sh: $burners core(s) kept busy (pids ${pids[*]}) while: $*" >&2
"$@"
