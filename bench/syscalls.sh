#!/usr/bin/env bash
# Syscalls per proxied request of exsim, nginx and HAProxy, counted during one
# `bench/compare.sh hop` run at 128 B (the per-request fixed cost, where exsim misses the hop target):
#   bench/syscalls.sh            # about 3 minutes on 2 cores once build/bench is built
# Attaches `perf stat -I 1000` (syscall tracepoints; needs root or perf_event_paranoid <= -1) to each
# proxy as compare.py starts it, keeps the seconds where the proxy was at least at 80 % of its
# busiest second (the closed-model runs), and divides by the requests: sends / 2 (one to the
# back-end, one to the client). The proxies are found by their command lines, so run it on a
# machine where no other nginx or HAProxy is running. Prints a line per proxy (with its CPU per
# request split into user and kernel time over its whole life), then the hop table.
set -euo pipefail
command -v perf >/dev/null || { echo "bench/syscalls.sh: perf is missing (Debian package linux-perf)" >&2; exit 1; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(mktemp -d)"
events=raw_syscalls:sys_enter
for s in sendmsg sendto writev recvfrom recvmsg read readv epoll_wait epoll_ctl getsockopt clock_gettime; do
    events+=",syscalls:sys_enter_$s"
done

HOP_SIZES=128 OUT_DIR="$out/bench" bash "$here/compare.sh" hop >"$out/report.txt" 2>&1 &
bench=$!
declare -A counted=() files=()
perfs=()
while kill -0 "$bench" 2>/dev/null; do
    for name in exsim nginx haproxy; do
        case $name in
            exsim) pattern="exsim proxy --workers" ;;
            nginx) pattern="nginx: worker" ;;
            haproxy) pattern="haproxy -db" ;;
        esac
        pid="$(pgrep -f "$pattern" | head -1 || true)"
        if [ -n "$pid" ] && [ -z "${counted[$pid]:-}" ]; then
            counted[$pid]=1
            perf stat -I 1000 -x, -e "$events" -p "$pid" -o "$out/$name.$pid.csv" 2>/dev/null &
            perfs+=($!)
            files[$pid]="$out/$name.$pid"
        fi
    done
    for pid in "${!files[@]}"; do   # the last utime and stime seen (clock ticks), for the user/kernel split
        stat="$(cat "/proc/$pid/stat" 2>/dev/null || true)"
        [ -z "$stat" ] || awk '{print $12, $13}' <<<"${stat##*)}" >"${files[$pid]}.cpu"
    done
    sleep 0.2
done
wait "$bench" || true    # exit 3 (a target missed) is expected
kill -INT "${perfs[@]}" 2>/dev/null || true
wait "${perfs[@]}" 2>/dev/null || true

/usr/bin/python3 - "$out" <<'PY'
import collections, glob, os, sys
sends = {"exsim": "sendmsg", "nginx": "writev", "haproxy": "sendto"}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.csv"))):
    label = os.path.basename(path)[:-4]   # <proxy>.<pid>: a line per process
    name = label.split(".")[0]
    seconds = collections.defaultdict(dict)
    for line in open(path):
        fields = line.split(",")
        if line.startswith("#") or len(fields) < 4 or not fields[1].strip().isdigit():
            continue
        seconds[fields[0]][fields[3].replace("syscalls:sys_enter_", "")] = int(fields[1])
    send = sends[name]
    busiest = max((s.get(send, 0) for s in seconds.values()), default=0)
    total = collections.Counter()
    busy = [s for s in seconds.values() if busiest and s.get(send, 0) >= 0.8 * busiest]
    for s in busy:
        total.update(s)
    requests = total[send] / 2
    if not requests:
        print(f"{label}: no busy second counted")
        continue
    split = ""
    if os.path.exists(path[:-4] + ".cpu"):   # whole life: both models' requests and CPU
        user, kernel = (int(t) / os.sysconf("SC_CLK_TCK") for t in open(path[:-4] + ".cpu").read().split())
        life = sum(s.get(send, 0) for s in seconds.values()) / 2
        split = f"; CPU per request {user / life * 1e6:.1f} µs user + {kernel / life * 1e6:.1f} µs kernel"
    parts = ", ".join(f"{k} {v / requests:.2f}" for k, v in sorted(total.items())
                      if k != "raw_syscalls:sys_enter" and v / requests >= 0.01)
    print(f"{label}: {total['raw_syscalls:sys_enter'] / requests:.2f} syscalls per request "
          f"({len(busy)} s, {requests:.0f} requests): {parts}{split}")
PY
grep -E "^bytes|^128 " "$out/report.txt"
echo "logs and perf output in $out"
