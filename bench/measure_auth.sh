#!/usr/bin/env bash
# The authentication measurements of the scale issue, in one command:
#   1. builds exsim and auth_benchmark (Release, its own build dir: build/bench);
#   2. times realm creation for 10 and 5,000 extra users (fresh temp folders, deleted after);
#   3. runs bench/auth_benchmark (10,000 users by default; includes the RSS flatness check);
#   4. prints a summary of measured values against the targets (PASS/MISS).
#
# Environment (all optional):
#   BUILD_DIR        build folder (default <repo>/build/bench)
#   MIN_TIME         --benchmark_min_time in seconds (default 0.5)
#   REALM_SIZES      realm creation sizes (default "10 5000")
#   EXSIM_BENCH_*    passed to auth_benchmark (see the top of auth_benchmark.cpp), e.g.
#                    EXSIM_BENCH_USERS=10000 EXSIM_BENCH_RSS_HANDSHAKES=20000
#   BENCH_ARGS       extra arguments for auth_benchmark (e.g. --benchmark_filter=Ntlm)
#   OUT_DIR          where the JSON and logs go (default: a temp folder, kept and printed)
# Exit status: 0 when every target passed, 3 when one was missed, other values on errors.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="${BUILD_DIR:-$repo/build/bench}"
min_time="${MIN_TIME:-0.5}"
realm_sizes="${REALM_SIZES:-10 5000}"
out="${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/exsim-measure-XXXXXX")}"
mkdir -p "$out"
py="$(command -v /usr/bin/python3 || command -v python3)"

tmp_dirs=()
cleanup() { for d in "${tmp_dirs[@]+"${tmp_dirs[@]}"}"; do rm -rf "$d"; done; }
trap cleanup EXIT

echo "== build ($build, Release)"
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEXSIM_BUILD_TESTS=OFF >"$out/configure.log" \
    || { cat "$out/configure.log"; exit 1; }
cmake --build "$build" --target exsim auth_benchmark -j2 >"$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }

echo "== realm creation (exsim realm --create-only)"
: >"$out/realm.tsv"
for n in $realm_sizes; do
    d="$(mktemp -d "${TMPDIR:-/tmp}/exsim-realm-XXXXXX")"
    tmp_dirs+=("$d")
    t0=$(date +%s.%N)
    line="$("$build/app/exsim" realm --state-dir "$d" --extra-users "$n" --create-only --log-level warn)"
    t1=$(date +%s.%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    echo "  --extra-users $n: ${wall} s wall; $line"
    printf '%s\t%s\t%s\n' "$n" "$wall" "$line" >>"$out/realm.tsv"
    rm -rf "$d"
done

echo "== auth_benchmark (min_time ${min_time} s; realm of ${EXSIM_BENCH_USERS:-10000} generated users)"
# shellcheck disable=SC2086
"$build/bench/auth_benchmark" --benchmark_min_time="$min_time" \
    --benchmark_out="$out/auth_benchmark.json" --benchmark_out_format=json ${BENCH_ARGS:-} \
    2> >(tee "$out/auth_benchmark.stderr" >&2) | tee "$out/auth_benchmark.txt"
wait  # the tee of stderr

echo "== summary (files in $out)"
"$py" - "$out" <<'EOF'
import json, sys, os
out = sys.argv[1]
data = json.load(open(os.path.join(out, "auth_benchmark.json")))
ctx = data.get("context", {})
bench = {b["name"]: b for b in data["benchmarks"] if b.get("run_type", "iteration") == "iteration"}

def get(name, key):
    b = bench.get(name)
    if not b or b.get("error_occurred"):
        return None
    return b.get(key)

def us(name):  # time per iteration in microseconds
    b = bench.get(name)
    if not b or b.get("error_occurred"):
        return None
    scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b["time_unit"]]
    return b["real_time"] * scale

rows = []  # (what, measured, target, verdict)
def row(what, value, fmt, target=None, ok=None):
    if value is None:
        rows.append((what, "n/a (not run or failed)", target or "", "MISS" if target else ""))
    else:
        rows.append((what, fmt.format(value), target or "", ("PASS" if ok(value) else "MISS") if target else "info"))

for line in open(os.path.join(out, "realm.tsv")):
    n, wall, text = line.rstrip("\n").split("\t", 2)
    row(f"realm creation, {n} extra users (s)", float(wall), "{:.2f}")
row(f"realm creation, {ctx.get('exsim_users', '?')} users in auth_benchmark (s)",
    float(ctx["exsim_realm_create_s"]) if "exsim_realm_create_s" in ctx else None, "{:.2f}")
row("Kerberos accept/s, 1 thread", get("BM_KerberosAccept/real_time", "items_per_second"), "{:,.0f}")
row("Kerberos accept/s, 2 threads", get("BM_KerberosAccept/real_time/threads:2", "items_per_second"), "{:,.0f}",
    ">= 5,000", lambda v: v >= 5000)
row(f"NTLM acceptor us/handshake, raw ({ctx.get('exsim_worst_ntlm_user', '?')}, "
    f"line {ctx.get('exsim_worst_ntlm_line', '?')})", us("BM_NtlmAccept/raw/manual_time"),
    "{:.0f}", "< 1,000", lambda v: v < 1000)
row("NTLM acceptor us/handshake, via SPNEGO", us("BM_NtlmAccept/spnego/manual_time"), "{:.0f}", "< 1,000",
    lambda v: v < 1000)
row("  baseline: gss-ntlmssp on the whole file, AUTHENTICATE us", us("BM_NtlmAcceptWholeFile/manual_time"), "{:.0f}")
row("NTLM full handshake us, raw", us("BM_NtlmHandshakeFull/spnego:0/real_time"), "{:.0f}")
row("NTLM full handshake us, via SPNEGO", us("BM_NtlmHandshakeFull/spnego:1/real_time"), "{:.0f}")
row("Kerberos full handshake us (SPNEGO)", us("BM_KerberosHandshakeFull/real_time"), "{:.0f}")
row("Kerberos full handshakes/s, 2 threads", get("BM_KerberosHandshakeFull/real_time/threads:2", "items_per_second"),
    "{:,.0f}")
rss = "BM_RssFlat/iterations:1/real_time"
before, after = get(rss, "rss_before_kib"), get(rss, "rss_after_kib")
row("RSS before (KiB)", before, "{:,.0f}")
row("RSS after NTLM (KiB)", get(rss, "rss_after_ntlm_kib"), "{:,.0f}")
row("RSS after NTLM + Kerberos (KiB)", after, "{:,.0f}")
row("RSS after/before", get(rss, "rss_ratio"), "{:.3f}", "<= 1.10", lambda v: v <= 1.10)
fds_before, fds_after = get(rss, "fds_before"), get(rss, "fds_after")
row("open fds after - before", None if fds_before is None else fds_after - fds_before, "{:.0f}", "0",
    lambda v: v <= 0)
cpu1, cpu2 = get("BM_CpuControl/real_time", "items_per_second"), get("BM_CpuControl/real_time/threads:2", "items_per_second")
k1, k2 = get("BM_KerberosAccept/real_time", "items_per_second"), get("BM_KerberosAccept/real_time/threads:2", "items_per_second")
row("cores available (CPU control, 2 threads / 1)", cpu2 / cpu1 if cpu1 and cpu2 else None, "{:.2f}")
row("Kerberos accept scaling (2 threads / 1)", k2 / k1 if k1 and k2 else None, "{:.2f}")

w = max(len(r[0]) for r in rows)
print(f"{'measurement':<{w}}  {'measured':>14}  {'target':>9}  verdict")
for what, value, target, verdict in rows:
    print(f"{what:<{w}}  {value:>14}  {target:>9}  {verdict}")
errors = [n for n, b in bench.items() if b.get("error_occurred")]
for n in errors:
    print(f"ERROR in {n}: {bench[n].get('error_message')}")
sys.exit(3 if errors or any(r[3] == "MISS" for r in rows) else 0)
EOF
