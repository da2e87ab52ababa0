#!/usr/bin/env bash
# Shows that layout_documented.sh can fail: in a copy of the documents, the layering check and
# every folder's CMakeLists.txt, a folder's row taken out of either layout table, or a part taken
# out of check.sh's allowed map, must make it fail and name the folder.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
copy() {  # a fresh copy of what the check reads
    rm -rf "$tmp/tree" && mkdir -p "$tmp/tree/docs" "$tmp/tree/tests/layering"
    cp "$root/README.md" "$tmp/tree/" && cp "$root/docs/design.md" "$tmp/tree/docs/"
    cp "$root/tests/layering/check.sh" "$tmp/tree/tests/layering/"
    for f in "$root"/*/CMakeLists.txt; do
        mkdir -p "$tmp/tree/$(basename "$(dirname "$f")")" && cp "$f" "$tmp/tree/$(basename "$(dirname "$f")")/"
    done
}
expect_failure() {  # expect_failure WHAT MESSAGE: the check must fail with MESSAGE
    if out=$(bash "$here/layout_documented.sh" "$tmp/tree" 2>&1); then
        echo "layout_documented_self_test: passed with $1" >&2
        exit 1
    fi
    grep -qF "$2" <<<"$out" || { echo "layout_documented_self_test: $1: the failure does not say '$2': $out" >&2; exit 1; }
}

copy
bash "$here/layout_documented.sh" "$tmp/tree" >/dev/null || { echo "layout_documented_self_test: fails on the tree itself" >&2; exit 1; }
sed -i '/^| `capture\/` |/d' "$tmp/tree/README.md"
expect_failure "capture/ out of the README" "capture/ is not in README.md's layout table"
copy
sed -i '/^| `bench\/` |/d' "$tmp/tree/docs/design.md"
expect_failure "bench/ out of design.md" "bench/ is not in docs/design.md's layout table"
copy
sed -i '/^  \[capture\]=/d' "$tmp/tree/tests/layering/check.sh"
expect_failure "capture out of check.sh" "capture/ is not in tests/layering/check.sh's allowed map"
echo "layout_documented_self_test: the check fails on a folder missing from either table or from the layering, naming it"
