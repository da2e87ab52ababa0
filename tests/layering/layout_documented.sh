#!/usr/bin/env bash
# Fails, naming the folder, when a top-level folder with a CMakeLists.txt is missing from the
# README's layout table or docs/design.md's ("Layout"), or when a part's folder (one that defines
# the library exsim_<folder>, or the exsim program) is missing from the layering check's `allowed`
# map (tests/layering/check.sh): a folder nobody placed is one whose arrows nobody checks.
# usage: tests/layering/layout_documented.sh [ROOT]   (default: the repository this script is in)
set -uo pipefail
root="${1:-$(cd "$(dirname "$0")/../.." && pwd)}"

# The folders a markdown table names in its first cell ("| `name/` | ..."), under the first
# heading that matches HEADING, up to the next heading.
table_folders() {  # table_folders FILE HEADING
    awk -v h="$2" '/^#/ { inside = ($0 ~ h) }
                   inside && /^\| `[a-z_]+\/` \|/ { split($0, cell, "`"); sub(/\/$/, "", cell[2]); print cell[2] }' "$1"
}
# The keys of check.sh's `allowed` map, and the words of its `parts` list (the libraries whose
# links it checks).
allowed_keys() { sed -n '/^declare -A allowed=(/,/^)/p' "$1" | grep -oE '^\s*\[[a-z_]+\]' | tr -d ' []'; }
linked_parts() { sed -nE 's/^parts="([^"]*)"/\1/p' "$1" | tr ' ' '\n'; }

readme=$(table_folders "$root/README.md" '^## Layout')
design=$(table_folders "$root/docs/design.md" '^## .*Layout')
allowed=$(allowed_keys "$root/tests/layering/check.sh")
parts=$(linked_parts "$root/tests/layering/check.sh")
# A file that is not there, or a table that moved, must fail rather than check nothing.
for list in readme design allowed parts; do
    [ -n "${!list}" ] || { echo "layout_documented: found no $list list to check against" >&2; exit 1; }
done

failures=0
missing() {  # missing FOLDER WHERE
    echo "layout_documented: $1/ is not in $2" >&2
    failures=$((failures + 1))
}
for dir in "$root"/*/; do
    folder=$(basename "$dir")
    cmake="$dir/CMakeLists.txt"
    [ -f "$cmake" ] || continue
    grep -qxF "$folder" <<<"$readme" || missing "$folder" "README.md's layout table"
    grep -qxF "$folder" <<<"$design" || missing "$folder" "docs/design.md's layout table"
    if grep -qE "add_library\(exsim_$folder[[:space:])]" "$cmake"; then
        grep -qxF "$folder" <<<"$allowed" || missing "$folder" "tests/layering/check.sh's allowed map"
        grep -qxF "$folder" <<<"$parts" || missing "$folder" "tests/layering/check.sh's parts (its links go unchecked)"
    elif grep -qE "add_executable\(exsim[[:space:])]" "$cmake"; then
        grep -qxF "$folder" <<<"$allowed" || missing "$folder" "tests/layering/check.sh's allowed map"
    fi
done
if [ "$failures" -gt 0 ]; then
    echo "layout_documented: $failures place(s) where a folder is missing" >&2
    exit 1
fi
echo "layout_documented: every folder with a CMakeLists.txt is in both layout tables, every part in the layering check"
