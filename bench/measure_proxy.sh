#!/usr/bin/env bash
# Requests per second through the front-end, per policy and back-end authentication, measured
# on this machine in one run: for each configuration a fresh `exsim up` (realm, KDC, back-ends,
# front-end over TLS), then ApacheBench (`ab`, keep-alive) as two users of be1 at once, each
# with CONCURRENCY client connections for DURATION seconds, against GET /exchange/ (the
# user's inbox). Prints one line per configuration and the ratios to the first one, plus the
# back-end connections the front-end opened and the cross-user count of the audit log.
#
# Environment (all optional):
#   BUILD_DIR    where exsim is built (default <repo>/build/dev; built if missing)
#   DURATION     seconds per configuration and user (default 10)
#   CONCURRENCY  client connections per user (default 8)
#   WORKERS      front-end workers (default 0: one per core)
#   CONFIGS      space-separated policy:auth pairs
#                (default "ms04-002:negotiate ms04-002:ntlm pinned:ntlm no-reuse:negotiate legacy:ntlm")
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="${BUILD_DIR:-$repo/build/dev}"
duration="${DURATION:-10}"
concurrency="${CONCURRENCY:-8}"
workers="${WORKERS:-0}"
configs="${CONFIGS:-ms04-002:negotiate ms04-002:ntlm pinned:ntlm no-reuse:negotiate legacy:ntlm}"
py="$(command -v /usr/bin/python3 || command -v python3)"

command -v ab >/dev/null || { echo "measure_proxy: ab is missing: run scripts/bootstrap.sh (apache2-utils)" >&2; exit 1; }
[ -f "$build/build.ninja" ] || cmake --preset dev >/dev/null
cmake --build "$build" --target exsim >/dev/null  # never measure a stale binary

work="$(mktemp -d "${TMPDIR:-/tmp}/exsim-proxy-measure-XXXXXX")"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

metric() {  # metric <metrics text file> <series prefix>: sum of matching series
  awk -v p="$2" 'index($0, p) == 1 { s += $NF } END { printf "%d", s }' "$1"
}

echo "exsim front-end throughput: $(nproc) cores, ${duration}s per configuration, 2 users x ${concurrency} keep-alive connections, GET /exchange/ over TLS"
printf "%-22s %10s %12s %9s %12s %12s %11s\n" configuration "req/s" "p50 ms a/b" "failed" "be conns" "handshakes" "cross_user"
first=""
for cfg in $configs; do
  policy="${cfg%%:*}"; auth="${cfg##*:}"
  state="$work/$policy-$auth"
  "$build/app/exsim" up --state-dir "$state" --policy "$policy" --backend-auth "$auth" --workers "$workers" \
    --log-level error >"$state.out" 2>"$state.err" &
  pid=$!
  for _ in $(seq 100); do [ -s "$state/endpoints.env" ] && break; sleep 0.2; done
  # shellcheck disable=SC1091
  source "$state/endpoints.env"
  for u in alice bob; do  # warm the credentials (AS and TGS exchanges) outside the measurement
    curl -sk -o /dev/null -u "$u:$u-pw" "$EXSIM_PROXY_URL/exchange/"
  done
  ab_pids=()
  for u in alice bob; do
    ab -q -k -t "$duration" -n 100000000 -c "$concurrency" -A "$u:$u-pw" "$EXSIM_PROXY_URL/exchange/" >"$state.ab-$u" 2>&1 &
    ab_pids+=($!)
  done
  wait "${ab_pids[@]}"
  curl -s "$EXSIM_METRICS_URL" >"$state.metrics"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  rps=$(awk '/Requests per second/ { s += $4 } END { printf "%.0f", s }' "$state".ab-*)
  p50="$(awk '/^  50%/ { print $2 }' "$state.ab-alice")/$(awk '/^  50%/ { print $2 }' "$state.ab-bob")"  # each user's median
  failed=$(awk '/^Failed requests|^Non-2xx responses/ { s += $NF } END { printf "%d", s }' "$state".ab-*)
  opened=$(metric "$state.metrics" exsim_proxy_backend_connections_opened_total)
  handshakes=$(metric "$state.metrics" exsim_proxy_backend_handshakes_total)
  cross=$("$py" -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l).get("cross_user")))' "$state/audit-be1.jsonl")
  printf "%-22s %10s %12s %9s %12s %12s %11s\n" "$policy $auth" "$rps" "$p50" "$failed" "$opened" "$handshakes" "$cross"
  if [ -z "$first" ]; then first="$rps"; firstname="$policy $auth"; fi
  ratios+="  $policy $auth / $firstname: $(awk -v a="$rps" -v b="$first" 'BEGIN { printf "%.2f", b ? a / b : 0 }')"$'\n'
done
echo "ratios:"
printf "%s" "$ratios"
