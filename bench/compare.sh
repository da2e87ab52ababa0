#!/usr/bin/env bash
# The side-by-side comparisons of the performance issue, in one command:
#   bench/compare.sh                 # hop, auth and scale: about 25 minutes on 2 cores
#   bench/compare.sh hop             # one section (hop | auth | scale), or several
#
# 1. builds exsim (Release, its own build dir: build/bench, shared with measure_auth.sh);
# 2. installs Debian's nginx-light and haproxy when missing (apt-get, as root or with sudo;
#    their services are never started: policy-rc.d refuses while they install);
# 3. raises the open file limit (10,000 idle client connections need more than 1,024);
# 4. runs bench/compare.py, which starts every process itself (realm + KDC, back-ends, the exsim
#    front-end, nginx and HAProxy as this user, in temp folders, on 127.0.0.1 only), measures,
#    stops them by their process ids, and prints the tables and the targets (PASS/MISS).
#
# Environment (all optional; bench/README.md has the full list): BUILD_DIR, OUT_DIR (results,
# logs and report.txt; default a temp folder, printed), REPEATS (3), DURATION (5 s per run),
# PIN (1: taskset the client to CLIENT_CPU=0 and the back-ends to BACKEND_CPU=1), PROXY_WORKERS (1),
# HOP_SIZES, HOP_SESSIONS, HOP_TLS, AUTH_CONFIGS, AUTH_USERS, AUTH_SESSIONS, AUTH_MIX, AUTH_RATE,
# SCALE_USERS, SCALE_CONNS, SCALE_POLICY, IDLE_CONNS, POOLED_CONNS.
# Exit status: 0 when every target passed, 3 when one was missed, other values on errors.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="${BUILD_DIR:-$repo/build/bench}"
py="$(command -v /usr/bin/python3 || command -v python3)"

echo "== build ($build, Release)" >&2
[ -f "$build/build.ninja" ] || cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEXSIM_BUILD_TESTS=OFF >/dev/null
build_log="$(mktemp)"
if ! cmake --build "$build" --target exsim -j"$(nproc)" >"$build_log" 2>&1; then
    tail -50 "$build_log" >&2
    exit 1
fi
rm -f "$build_log"

missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]} from Debian" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # Keep the packages' services from starting (they would listen on port 80 of every address).
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo -E apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ -z "$made_policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
fi
export PATH="$PATH:/usr/sbin"

want=$(( ${IDLE_CONNS:-10000} + 2000 ))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then
    ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    if [ "$(ulimit -n)" -lt "$want" ]; then
        echo "compare: the open file limit is $(ulimit -n) (hard limit): IDLE_CONNS lowered to fit" >&2
        export IDLE_CONNS=$(( $(ulimit -n) - 2000 ))
    fi
fi

export BUILD_DIR="$build"
exec "$py" "$here/compare.py" "$@"
