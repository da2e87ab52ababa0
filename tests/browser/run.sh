#!/usr/bin/env bash
# CTest's `browser` entry: installs playwright-core exactly as package-lock.json pins it (npm ci,
# once per change of the lock file; a fresh clone has no node_modules), then runs the test.
# Arguments go to owa_leak.test.mjs (scenario names).
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.exsim-package-lock.json
if ! cmp -s package-lock.json "$stamp"; then
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json "$stamp"
fi
exec node owa_leak.test.mjs "$@"
