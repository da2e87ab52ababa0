#!/usr/bin/env bash
# Shows that the layering check can fail: a copy of the tree's sources in a temporary folder,
# with one include the load generator must not have, must make it fail and name the file.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for d in common auth backend_sim proxy loadgen lab app; do
    [ -d "$root/$d" ] && cp -r "$root/$d" "$tmp/"
done
bash "$here/check.sh" "$tmp" >/dev/null || { echo "self_test: the check fails on the tree itself" >&2; exit 1; }
echo '#include "exsim/proxy/server.hpp"' > "$tmp/loadgen/src/bad_arrow.cpp"
if out=$(bash "$here/check.sh" "$tmp" 2>&1); then
    echo "self_test: a loadgen/ include of exsim/proxy/ passed the check" >&2
    exit 1
fi
grep -q "loadgen/src/bad_arrow.cpp:1 includes exsim/proxy/" <<<"$out" || { echo "self_test: the failure does not name the file: $out" >&2; exit 1; }
rm "$tmp/loadgen/src/bad_arrow.cpp"
# The back-end's part is backend_sim everywhere: an include of it from loadgen/ is caught too.
echo '#include "exsim/backend_sim/server.hpp"' > "$tmp/loadgen/src/bad_backend.cpp"
if bash "$here/check.sh" "$tmp" >/dev/null 2>&1; then
    echo "self_test: a loadgen/ include of exsim/backend_sim/ passed the check" >&2
    exit 1
fi
echo "self_test: the check fails on a loadgen/ -> proxy/ or -> backend_sim/ include, naming it"
