#!/usr/bin/env bash
# The layering check: fails when a part includes the headers of, or links, a part it must not
# know. The arrows allowed are the ones docs/design.md ("Layout") draws:
#
#   app ──> lab ──> loadgen ──┐
#    ┆       │ └──> proxy ────┼──> auth ──> common
#    ┆       ├──> backend_sim ┘              ▲
#    ┆       └────> capture ─────────────────┘
#    └┄┄> and every part lab uses, directly (the commands that start one part include it)
#
# The load generator is a client: it knows the front-end and the back-ends only over HTTP and
# reads the audit log as data (its format lives in common/). Nothing below lab/ knows lab/.
# usage: tests/layering/check.sh [ROOT]   (default: the repository this script is in)
set -uo pipefail
root="${1:-$(cd "$(dirname "$0")/../.." && pwd)}"

# folder -> the header folders (include/exsim/<name>/) and libraries (exsim_<name>) it may use;
# each part's folder, header folder and library are the same word
declare -A allowed=(
  [common]="common"
  [auth]="auth common"
  [backend_sim]="backend_sim auth common"
  [proxy]="proxy auth common"
  [loadgen]="loadgen auth common"
  [capture]="capture common"
  [lab]="lab loadgen proxy backend_sim capture auth common"
  [app]="lab loadgen proxy backend_sim capture auth common"
)
parts="common auth backend_sim proxy loadgen capture lab"

failures=0
for folder in "${!allowed[@]}"; do
    [ -d "$root/$folder" ] || continue
    ok=" ${allowed[$folder]} "
    # includes: #include <exsim/X/...> or "exsim/X/..."
    while IFS=: read -r file line text; do
        part=$(sed -E 's/.*exsim\/([a-z_]+)\/.*/\1/' <<<"$text")
        if [[ "$ok" != *" $part "* ]]; then
            echo "layering: ${file#$root/}:$line includes exsim/$part/: $folder/ may use only ${allowed[$folder]}" >&2
            failures=$((failures + 1))
        fi
    done < <(grep -rnE '^\s*#\s*include\s*[<"]exsim/[a-z_]+/' "$root/$folder" --include='*.hpp' --include='*.cpp' --include='*.h' --include='*.in')
    # links: exsim_X named in the folder's CMakeLists.txt
    cmake="$root/$folder/CMakeLists.txt"
    [ -f "$cmake" ] || continue
    for part in $parts; do
        grep -qE "\bexsim_$part\b" "$cmake" || continue
        if [[ "$ok" != *" $part "* ]]; then
            echo "layering: ${cmake#$root/} links exsim_$part: $folder/ may use only ${allowed[$folder]}" >&2
            failures=$((failures + 1))
        fi
    done
done
if [ "$failures" -gt 0 ]; then
    echo "layering: $failures arrow(s) that must not exist" >&2
    exit 1
fi
echo "layering: every include and link follows the allowed arrows"
