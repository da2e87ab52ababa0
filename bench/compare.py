#!/usr/bin/env python3
"""Side-by-side runs of the performance issue, on loopback, in one run: prints tables of ratios.

Started by bench/compare.sh (which builds exsim, installs nginx and HAProxy and raises the open
file limit); bench/README.md says what each table means. Sections:

  hop    requests/s to a back-end's anonymous /exchweb/ directly (D) and through exsim, nginx and
         HAProxy (P): R = P/D per proxy and payload size, proxy CPU per request
  auth   the exsim front-end with real authentication, per pool policy and back-end auth:
         peak requests/s, p50/p99 at one fixed rate and at half the configuration's own peak,
         back-end connections and handshakes per request, proxy CPU per request
  scale  1,000 and 10,000 directory users x 100, 1,000 and 5,000 client connections; memory per
         idle client connection and per pooled back-end connection (RSS deltas)

Every configuration is measured REPEATS times, interleaved (the order rotates each round);
tables show the median and the spread (min..max). Every number comes from `exsim load --json`,
the front-end's /metrics, and /proc/<pid>/stat and /proc/<pid>/status of the processes measured.
"""

import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


def env_list(name, default):
    return [x for x in os.environ.get(name, default).split() if x]


REPO = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("BUILD_DIR", REPO / "build" / "bench"))
EXSIM = str(BUILD / "app" / "exsim")
OUT = Path(os.environ["OUT_DIR"]) if os.environ.get("OUT_DIR") else Path(tempfile.mkdtemp(prefix="exsim-compare-"))
WORK = Path(tempfile.mkdtemp(prefix="exsim-compare-work-"))
SECTIONS = sys.argv[1:] or ["hop", "auth", "scale"]

REPEATS = env_int("REPEATS", 3)
DURATION = env_float("DURATION", 5)
WORKERS = env_int("PROXY_WORKERS", 1)      # exsim workers = nginx worker_processes = HAProxy nbthread
BACKEND_THREADS = env_int("BACKEND_THREADS", 1)
PIN = os.environ.get("PIN", "1") != "0"
CLIENT_CPU = os.environ.get("CLIENT_CPU", "0")
BACKEND_CPU = os.environ.get("BACKEND_CPU", "1")
PROXY_CPU = os.environ.get("PROXY_CPU", "")  # empty: not pinned

HOP_SIZES = env_list("HOP_SIZES", "128 16384")
HOP_SESSIONS = env_int("HOP_SESSIONS", 16)
HOP_TLS = os.environ.get("HOP_TLS", "0") == "1"

AUTH_CONFIGS = env_list("AUTH_CONFIGS", "ms04-002:negotiate ms04-002:ntlm pinned:ntlm per-user:ntlm "
                                        "no-reuse:negotiate no-reuse:ntlm")
AUTH_USERS = env_int("AUTH_USERS", 100)
AUTH_SESSIONS = env_int("AUTH_SESSIONS", 16)
AUTH_MIX = os.environ.get("AUTH_MIX", "list=70,read=30")
AUTH_RATE = env_float("AUTH_RATE", 0)     # 0: half the lowest peak of the configurations

SCALE_USERS = [int(x) for x in env_list("SCALE_USERS", "1000 10000")]
SCALE_CONNS = [int(x) for x in env_list("SCALE_CONNS", "100 1000 5000")]
SCALE_POLICY = os.environ.get("SCALE_POLICY", "ms04-002:negotiate")
IDLE_CONNS = env_int("IDLE_CONNS", 10000)
POOLED_CONNS = env_int("POOLED_CONNS", 500)

CLK_TCK = os.sysconf("SC_CLK_TCK")
report_lines = []
targets = []  # (target, measured, verdict)
procs = []


def say(text=""):
    print(text, flush=True)
    report_lines.append(text)


def note(text):  # progress, not part of the report
    print(f"  .. {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes

class Proc:
    """A process this script started: output in OUT/logs, stopped by its pid only."""

    def __init__(self, name, argv, cpu=None, cwd=None):
        self.name = name
        logs = OUT / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.out_path = logs / f"{name}.out"
        self.err_path = logs / f"{name}.err"
        if PIN and cpu:
            argv = ["taskset", "-c", str(cpu)] + list(argv)
        self.argv = [str(a) for a in argv]
        self.p = subprocess.Popen(self.argv, stdout=open(self.out_path, "w"), stderr=open(self.err_path, "w"),
                                  cwd=cwd, start_new_session=True)
        self.pid = self.p.pid
        procs.append(self)

    def exports(self, keys, timeout=300):
        """Waits for `export KEY=VALUE` lines naming every key; returns them."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = {}
            for line in self.out_path.read_text().splitlines():
                if line.startswith("export ") and "=" in line:
                    k, v = line[7:].split("=", 1)
                    found[k] = v
            if all(k in found for k in keys):
                return found
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start ({' '.join(self.argv)}):\n{self.err_path.read_text()[-2000:]}")

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self in procs:
            procs.remove(self)


def stop_all():
    for p in list(reversed(procs)):
        p.stop()


def wait_port(proc, port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.p.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} does not listen on 127.0.0.1:{port}:\n{proc.err_path.read_text()[-2000:]}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid):
    """pid and its descendants (nginx's master and worker)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
        except OSError:
            pass
    return out


def cpu_seconds(pid):
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        except OSError:
            pass
    return total / CLK_TCK


def rss_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def metrics(url):
    """Sum of every series by metric name (labels ignored)."""
    sums = {}
    with urllib.request.urlopen(url, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if not line or line.startswith("#"):
                continue
            name = line.split("{", 1)[0].split(" ", 1)[0]
            sums[name] = sums.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return sums


def load(name, args, timeout=None):
    """Runs `exsim load` on the client CPU; returns its JSON result."""
    out = OUT / "runs" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    args = [str(a) for a in args]
    argv = [EXSIM, "load", "--json", str(out)] + ([] if "--log-level" in args else ["--log-level", "error"]) + args
    if PIN:
        argv = ["taskset", "-c", CLIENT_CPU] + argv
    with open(OUT / "runs" / f"{name}.txt", "w") as log:
        rc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=timeout).returncode
    if rc not in (0, 99) or not out.exists():
        raise RuntimeError(f"exsim load failed ({rc}): see {OUT / 'runs' / (name + '.txt')}")
    return json.loads(out.read_text())


def machine_busy():
    """CPU seconds the whole machine spent busy, and stolen by the hypervisor, from /proc/stat."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def ours():
    """CPU seconds of every process this script started and of the `exsim load` runs it waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return sum(cpu_seconds(p.pid) for p in procs) + children.ru_utime + children.ru_stime


def say_others(runs):
    """One line: how busy the rest of the machine was during these runs (it shares the 2 cores)."""
    other = [r["other_cpus"] for r in runs if r.get("other_cpus") is not None]
    steal = [r["steal_cpus"] for r in runs if r.get("steal_cpus") is not None]
    if other:
        say(f"meanwhile, processes this script did not start used {statistics.median(other):.2f} CPUs (median; "
            f"max {max(other):.2f} of {os.cpu_count()}), the hypervisor stole {max(steal):.2f} at most")


def measured(name, args, proxy_pid=None, metrics_url=None, backend_pids=()):
    """One load run with the CPU of the proxy and back-ends and the proxy's request count around it,
    and how much CPU the rest of the machine took meanwhile."""
    before_cpu = cpu_seconds(proxy_pid) if proxy_pid else 0
    before_be = sum(cpu_seconds(p) for p in backend_pids)
    before_m = metrics(metrics_url) if metrics_url else {}
    (busy0, steal0), ours0, t0 = machine_busy(), ours(), time.time()
    r = load(name, args)
    (busy1, steal1), ours1, wall = machine_busy(), ours(), time.time() - t0
    r["other_cpus"], r["steal_cpus"] = max((busy1 - busy0) - (ours1 - ours0), 0) / wall, (steal1 - steal0) / wall
    r["proxy_cpu_s"] = cpu_seconds(proxy_pid) - before_cpu if proxy_pid else 0
    r["backend_cpu_s"] = sum(cpu_seconds(p) for p in backend_pids) - before_be
    if metrics_url:
        after_m = metrics(metrics_url)
        r["proxy_requests"] = after_m.get("exsim_proxy_requests_total", 0) - before_m.get("exsim_proxy_requests_total", 0)
    return r


def rotated(items, k):
    k %= max(len(items), 1)
    return items[k:] + items[:k]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return "1 run"
    m = statistics.median(values)
    pct = (max(values) - min(values)) / m * 100 if m else 0
    return f"{min(values):,.0f}..{max(values):,.0f} ({pct:.0f}%)"


def fmt(v, spec="{:,.0f}"):
    return "n/a" if v is None else spec.format(v)


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    say(line(header))
    for r in rows:
        say(line(r))


def verdict(what, ok, measured_text):
    v = "n/a" if ok is None else ("PASS" if ok else "MISS")
    targets.append((what, measured_text, v))


def errors_of(r):
    return int(r["total"]["errors"])


# ---------------------------------------------------------------------------------------------
# A topology: realm + KDC, two back-ends, the front-end, as separate processes (so that each one
# can be pinned and its CPU and memory read).

class Topology:
    def __init__(self, name, users=4, config=None):
        self.name = name
        self.users = users
        self.config = config
        self.state = WORK / name
        self.state.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        self.realm = Proc(f"{name}-realm", [EXSIM, "realm"] + self.common())
        self.kdc = self.realm.exports(["EXSIM_KDC_ADDR"], timeout=1800)
        self.realm_seconds = time.time() - t0
        self.backends, self.addresses, self.proxy = [], {}, None

    def directory_args(self, config=None):
        """The same directory for every exsim command: the topology file, the generated users."""
        args = ["--config", config or self.config] if config or self.config else []
        return args + (["--extra-users", self.users - 4] if self.users > 4 else [])

    def common(self, config=None):
        return ["--state-dir", self.state, "--log-level", "error"] + self.directory_args(config)

    def start_backends(self, auth=None):
        self.stop_backends()
        extra = ["--backend-auth", auth] if auth else []
        for b in ("be1", "be2"):
            p = Proc(f"{self.name}-{b}", [EXSIM, "backend", "--name", b, "--threads", BACKEND_THREADS, "--reset"]
                     + self.common() + extra, cpu=BACKEND_CPU)
            self.addresses[b] = p.exports([f"EXSIM_BACKEND_{b.upper()}_ADDR"])[f"EXSIM_BACKEND_{b.upper()}_ADDR"]
            self.backends.append(p)

    def stop_backends(self):
        for p in self.backends:
            p.stop()
        self.backends = []

    def start_proxy(self, policy=None, tls=True, config=None, workers=WORKERS):
        self.stop_proxy()
        argv = [EXSIM, "proxy", "--workers", workers] + self.common(config)
        for name, address in self.addresses.items():
            argv += ["--backend", f"{name}={address}"]
        if policy:
            argv += ["--policy", policy]
        if not tls:
            argv += ["--allow-insecure-http"]
        self.proxy = Proc(f"{self.name}-proxy", argv, cpu=PROXY_CPU or None)
        e = self.proxy.exports(["EXSIM_PROXY_URL", "EXSIM_METRICS_URL"])
        self.url, self.metrics_url = e["EXSIM_PROXY_URL"], e["EXSIM_METRICS_URL"]
        self.cert = self.state / "tls" / "proxy-cert.pem"
        self.key = self.state / "tls" / "proxy-key.pem"
        return self.proxy

    def stop_proxy(self):
        if self.proxy:
            self.proxy.stop()
            self.proxy = None

    def backend_pids(self):
        return [p.pid for p in self.backends]

    def stop(self):
        self.stop_proxy()
        self.stop_backends()
        self.realm.stop()


def frontend_load_args(topo):
    """`exsim load` through this topology's front-end, with its directory."""
    return topo.common() + ["--url", topo.url, "--ca-file", topo.cert, "--metrics-url", topo.metrics_url,
                            "--no-audit"]


# ---------------------------------------------------------------------------------------------
# 1. Proxy hop efficiency

NGINX_CONF = """\
{user}worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
worker_rlimit_nofile {nofile};
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream be1 {{
        server {backend};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port}{ssl};
        {tls}
        location / {{
            proxy_pass http://be1;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""

HAPROXY_CONF = """\
global
    nbthread {workers}
    maxconn {connections}
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:{port}{tls}
    default_backend be
backend be
    # http-reuse: the default, safe
    server be1 {backend}
"""


def start_nginx(topo, tls, connections=4096):
    d = WORK / "nginx"
    d.mkdir(exist_ok=True)
    port = free_port()
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers as the user running this script
    tls_lines = f"ssl_certificate {topo.cert};\n        ssl_certificate_key {topo.key};" if tls else ""
    conf = d / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, workers=WORKERS, dir=d, backend=topo.addresses["be1"], port=port,
                                      ssl=" ssl" if tls else "", tls=tls_lines, connections=connections,
                                      nofile=min(2 * connections + 100, resource.getrlimit(resource.RLIMIT_NOFILE)[1])))
    p = Proc("nginx", ["nginx", "-p", d, "-c", conf, "-e", d / "nginx-error.log"], cpu=PROXY_CPU or None)
    wait_port(p, port)
    return p, f"{'https' if tls else 'http'}://127.0.0.1:{port}"


def start_haproxy(topo, tls, connections=4096):
    d = WORK / "haproxy"
    d.mkdir(exist_ok=True)
    port = free_port()
    tls_part = ""
    if tls:
        pem = d / "cert-and-key.pem"
        pem.write_text(topo.cert.read_text() + topo.key.read_text())
        tls_part = f" ssl crt {pem}"
    conf = d / "haproxy.cfg"
    conf.write_text(HAPROXY_CONF.format(workers=WORKERS, port=port, tls=tls_part, backend=topo.addresses["be1"],
                                        connections=connections))
    p = Proc("haproxy", ["haproxy", "-db", "-f", conf], cpu=PROXY_CPU or None)
    wait_port(p, port)
    return p, f"{'https' if tls else 'http'}://127.0.0.1:{port}"


def section_hop():
    scheme = "TLS (self-signed, the same certificate)" if HOP_TLS else "plain HTTP"
    say("== 1. Proxy hop efficiency")
    say(f"GET /exchweb/blob?size=N (anonymous) over {HOP_SESSIONS} keep-alive client connections, closed model, "
        f"{DURATION:g} s x {REPEATS} interleaved runs; client->proxy {scheme}, proxy->back-end plain HTTP/1.1 "
        f"keep-alive; {WORKERS} worker per proxy; back-end be1 {BACKEND_THREADS} thread")
    topo = Topology("hop")
    topo.start_backends()
    exsim = topo.start_proxy(tls=HOP_TLS)
    nginx, nginx_url = start_nginx(topo, HOP_TLS)
    haproxy, haproxy_url = start_haproxy(topo, HOP_TLS)
    targets_ = {"direct": (f"http://{topo.addresses['be1']}", None), "exsim": (topo.url, exsim.pid),
                "nginx": (nginx_url, nginx.pid), "haproxy": (haproxy_url, haproxy.pid)}
    names = list(targets_)

    def run_one(label, name, size, extra=()):
        url, pid = targets_[name]
        args = ["--passthrough", "--url", url, "--path", f"/exchweb/blob?size={size}", "--sessions",
                HOP_SESSIONS, "--duration", DURATION, "--warmup", 20, "--no-audit", "--state-dir", topo.state, *extra]
        if url.startswith("https"):
            args += ["--ca-file", topo.cert]
        return measured(label, args, proxy_pid=pid, backend_pids=[topo.backends[0].pid])

    runs = {(s, n): [] for s in HOP_SIZES for n in names}
    for rep in range(REPEATS):
        for size in HOP_SIZES:
            for name in rotated(names, rep):
                note(f"hop {size} B {name} run {rep + 1}/{REPEATS}")
                runs[(size, name)].append(run_one(f"hop-{size}-{name}-{rep}", name, size))
    # The latency target's reference: the same open model (evenly spaced requests, latency from
    # when each was due) at half of each one's own peak, on the anonymous path.
    half_size = HOP_SIZES[0]
    half = {n: [] for n in names}
    for rep in range(REPEATS):
        for name in rotated(names, rep):
            rate = max(med([r["rps"] for r in runs[(half_size, name)]]) / 2, 1)
            note(f"hop {half_size} B {name} at half its peak ({rate:.0f}/s) run {rep + 1}/{REPEATS}")
            half[name].append(run_one(f"hop-{half_size}-{name}-half-{rep}", name, half_size, ["--rate", f"{rate:.1f}"]))
    for p in (nginx, haproxy):
        p.stop()
    topo.stop()

    rows, ratio = [], {}
    for size in HOP_SIZES:
        d = med([r["rps"] for r in runs[(size, "direct")]])
        for name in names:
            rs = runs[(size, name)]
            rps = med([r["rps"] for r in rs])
            per_req = lambda key: med([r[key] / r["total"]["requests"] * 1e6 for r in rs if r["total"]["requests"]])
            ratio[(size, name)] = rps / d if d and rps else None
            rows.append([size, name, fmt(rps), spread([r["rps"] for r in rs]),
                         "-" if name == "direct" else fmt(ratio[(size, name)], "{:.3f}"),
                         fmt(med([r["total"]["p50_ms"] for r in rs]), "{:.2f}"),
                         fmt(med([r["total"]["p99_ms"] for r in rs]), "{:.2f}"),
                         "-" if name == "direct" else fmt(per_req("proxy_cpu_s"), "{:.1f}"),
                         fmt(per_req("backend_cpu_s"), "{:.1f}"), sum(errors_of(r) for r in rs)])
    table(["bytes", "target", "req/s", "min..max (spread)", "R=P/D", "p50 ms", "p99 ms", "proxy CPU us/req",
           "back-end CPU us/req", "errors"], rows)
    say_others([r for rs in runs.values() for r in rs])
    say()
    say(f"latency, open model, {half_size} B, at half of each one's own peak (the reference for the p99 <= 2 x p50 target)")
    rows = []
    for name in names:
        p50, p99 = med([r["total"]["p50_ms"] for r in half[name]]), med([r["total"]["p99_ms"] for r in half[name]])
        rows.append([name, fmt(med([r["rate"] for r in half[name]]), "{:.0f}"), fmt(p50, "{:.2f}"),
                     fmt(med([r["total"]["p90_ms"] for r in half[name]]), "{:.2f}"), fmt(p99, "{:.2f}"),
                     fmt(p99 / p50 if p50 and p99 else None, "{:.1f}"),
                     sum(errors_of(r) + int(r.get("unsent") or 0) for r in half[name])])
    table(["target", "rate/s", "p50 ms", "p90 ms", "p99 ms", "p99/p50", "errors+unsent"], rows)
    say()
    for size in HOP_SIZES:
        e, n, h = ratio[(size, "exsim")], ratio[(size, "nginx")], ratio[(size, "haproxy")]
        best = max([x for x in (n, h) if x is not None], default=None)
        verdict(f"hop {size} B: exsim R >= max(nginx R, HAProxy R)", None if e is None or best is None else e >= best,
                f"exsim {fmt(e, '{:.3f}')}, nginx {fmt(n, '{:.3f}')}, HAProxy {fmt(h, '{:.3f}')}")


# ---------------------------------------------------------------------------------------------
# 2. Authentication strategy cost

def section_auth():
    say("== 2. Authentication strategy cost (exsim front-end, TLS + Basic; real Kerberos/NTLM to the back-ends)")
    say(f"{AUTH_USERS} directory users, {AUTH_SESSIONS} client connections (one user each), mix {AUTH_MIX}, "
        f"{DURATION:g} s x {REPEATS} interleaved runs per model; {WORKERS} proxy worker")
    topo = Topology("auth", users=AUTH_USERS)
    configs = [tuple(c.split(":")) for c in AUTH_CONFIGS]
    peak = {c: [] for c in configs}
    half = {c: [] for c in configs}
    fixed = {c: [] for c in configs}

    def up(policy, auth):
        topo.start_backends(auth)
        topo.start_proxy(policy=policy)
        return frontend_load_args(topo) + ["--sessions", AUTH_SESSIONS, "--mix", AUTH_MIX,
                                                       "--duration", DURATION, "--warmup", 3]

    for rep in range(REPEATS):
        for c in rotated(configs, rep):
            args = up(*c)
            note(f"auth {c[0]} {c[1]} peak run {rep + 1}/{REPEATS}")
            r = measured(f"auth-{c[0]}-{c[1]}-peak-{rep}", args, topo.proxy.pid, topo.metrics_url, topo.backend_pids())
            peak[c].append(r)
            rate = max(r["rps"] / 2, 1)
            note(f"auth {c[0]} {c[1]} at half its peak ({rate:.0f}/s)")
            half[c].append(measured(f"auth-{c[0]}-{c[1]}-half-{rep}", args + ["--rate", f"{rate:.1f}"], topo.proxy.pid,
                                    topo.metrics_url, topo.backend_pids()))
    lowest = min(med([r["rps"] for r in peak[c]]) or 0 for c in configs)
    rate = AUTH_RATE or max(round(lowest / 2), 1)
    for rep in range(REPEATS):
        for c in rotated(configs, rep):
            args = up(*c)
            note(f"auth {c[0]} {c[1]} at {rate:g}/s run {rep + 1}/{REPEATS}")
            fixed[c].append(measured(f"auth-{c[0]}-{c[1]}-fixed-{rep}", args + ["--rate", rate], topo.proxy.pid,
                                     topo.metrics_url, topo.backend_pids()))
    topo.stop()

    rows, latency, rps = [], [], {}
    cpu_per_request = lambda rs, key: med([r[key] / r["proxy_requests"] * 1e6 for r in rs if r["proxy_requests"]])
    for c in configs:
        rs, name = peak[c], f"{c[0]} {c[1]}"
        rps[c] = med([r["rps"] for r in rs])
        everything = rs + half[c] + fixed[c]
        rows.append([name, fmt(rps[c]), spread([r["rps"] for r in rs]),
                     fmt(med([r["backend"]["connections"] / r["total"]["requests"] for r in rs]), "{:.3f}"),
                     fmt(med([r["backend"]["handshakes"] / r["total"]["requests"] for r in rs]), "{:.3f}"),
                     fmt(cpu_per_request(rs, "proxy_cpu_s"), "{:.0f}"), fmt(cpu_per_request(rs, "backend_cpu_s"), "{:.0f}"),
                     sum(errors_of(r) for r in everything),
                     sum(r["total"]["leaks"] + r["total"]["tampers"] for r in everything)])
        latency.append([name, fmt(med([r["total"]["p50_ms"] for r in fixed[c]]), "{:.2f}"),
                        fmt(med([r["total"]["p99_ms"] for r in fixed[c]]), "{:.2f}"),
                        fmt(med([r["rate"] for r in half[c]]), "{:.0f}"),
                        fmt(med([r["total"]["p50_ms"] for r in half[c]]), "{:.2f}"),
                        fmt(med([r["total"]["p99_ms"] for r in half[c]]), "{:.2f}")])
    table(["policy / back-end auth", "peak req/s", "min..max (spread)", "be conns/req", "handshakes/req",
           "proxy CPU us/req", "back-ends CPU us/req", "errors", "leaks+tampers"], rows)
    say()
    say(f"latency, open model: at one rate for all ({rate:g}/s: half the lowest peak) and at half each one's own peak")
    table(["policy / back-end auth", f"p50 ms @{rate:g}/s", f"p99 ms @{rate:g}/s", "half peak req/s",
           "p50 ms @half", "p99 ms @half"], latency)
    say_others([r for c in configs for r in peak[c] + half[c] + fixed[c]])
    say()
    ratios = []
    for p in ("pinned", "per-user"):
        for base_c, factor in ((("ms04-002", "ntlm"), 3.0), (("ms04-002", "negotiate"), 0.75)):
            a, b = rps.get((p, "ntlm")), rps.get(base_c)
            x = a / b if a and b else None
            ratios.append([f"{p} ntlm / {base_c[0]} {base_c[1]}", fmt(x, "{:.2f}"), f">= {factor:g}"])
            verdict(f"{p} ntlm req/s >= {factor:g} x {base_c[0]} {base_c[1]}", None if x is None else x >= factor,
                    f"{fmt(x, '{:.2f}')} x")
    table(["ratio of peak req/s", "measured", "target"], ratios)
    say()
    for c in configs:
        p50, p99 = med([r["total"]["p50_ms"] for r in half[c]]), med([r["total"]["p99_ms"] for r in half[c]])
        verdict(f"{c[0]} {c[1]}: p99 <= 2 x p50 at half of peak", None if not p50 else p99 <= 2 * p50,
                f"p50 {fmt(p50, '{:.2f}')} ms, p99 {fmt(p99, '{:.2f}')} ms")
    return rps


# ---------------------------------------------------------------------------------------------
# 3. Scale

def scale_config(name, policy, pool):
    """The default topology with a front-end section (the scale runs queue thousands)."""
    t = json.loads((REPO / "configs" / "default.json").read_text())
    t["frontend"] = {"policy": policy, "pool": pool}
    path = WORK / f"{name}.json"
    path.write_text(json.dumps(t))
    return path


def spread_users(users, n):
    """`--users` for n sessions spread over the whole directory of `users` (the default topology's 4,
    then user00001...), alternating back-ends as the directory does; [] when every user takes part."""
    if n >= users:
        return []
    names = ["alice", "bob", "carol", "dave"] + [f"user{i:05}" for i in range(1, users - 3)]
    step = users // n
    picked = [names[min(i * step + i % 2, users - 1)] for i in range(n)]
    return ["--users", ",".join(picked)]


def wait_metric(topo, name, at_least, timeout, client=None):
    """Polls the front-end's metric until it reaches `at_least`, the timeout, or `client` exits."""
    deadline = time.time() + timeout
    value = 0
    while time.time() < deadline and (client is None or client.poll() is None):
        value = metrics(topo.metrics_url).get(name, 0)
        if value >= at_least:
            break
        time.sleep(0.5)
    return value


def open_fds(pid):
    n = 0
    for p in tree(pid):
        try:
            n += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return n


def client_process(name, args):
    """`exsim load` in the background (its connections stay open while it runs); stop with finish()."""
    args = [str(a) for a in args]
    argv = [EXSIM, "load"] + ([] if "--log-level" in args else ["--log-level", "error"]) + args
    if PIN:
        argv = ["taskset", "-c", CLIENT_CPU] + argv
    (OUT / "runs").mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(argv, stdout=open(OUT / "runs" / f"{name}.txt", "w"), stderr=subprocess.STDOUT)


def finish(client):
    client.send_signal(signal.SIGINT)  # exsim load stops issuing requests and closes its connections
    try:
        client.wait(timeout=60)
    except subprocess.TimeoutExpired:
        client.kill()
        client.wait()


def hold_idle(name, pid, count, args):
    """RSS of process `pid` (and its children) before and while it holds `count` idle keep-alive client
    connections: each of `count` sessions of `exsim load` sends one GET and then thinks for an hour.
    Connections held are counted from the process's open descriptors."""
    load(f"{name}-warm", args + ["--sessions", 1, "--requests", 20])
    time.sleep(1)
    rss0, fds0 = rss_kib(pid), open_fds(pid)
    ramp = max(count / 1000, 2)
    note(f"{name}: opening {count} idle client connections")
    client = client_process(name, args + ["--sessions", count, "--think-ms", 3600000, "--ramp-up", ramp,
                                          "--duration", ramp + 600, "--timeout-ms", 120000])
    try:
        deadline, last, since = time.time() + ramp + 120, -1, time.time()
        while time.time() < deadline and client.poll() is None:
            held = open_fds(pid) - fds0
            if held >= count:
                break
            if held != last:
                last, since = held, time.time()
            elif time.time() - since > 15 and time.time() > deadline - 120:
                break  # no longer growing after the ramp-up
            time.sleep(0.5)
        time.sleep(2)
        held, rss1 = open_fds(pid) - fds0, rss_kib(pid)
    finally:
        finish(client)
    return {"what": name, "rss0": rss0, "rss": rss1, "held": held, "count": count,
            "per_kib": (rss1 - rss0) / min(held, count) if held > 0 else None}


def idle_path_args(url, topo, frontend):
    args = ["--path", "/exchweb/version.json", "--url", url, "--state-dir", topo.state]
    if url.startswith("https"):
        args += ["--ca-file", topo.cert]
    return args + (["--no-audit"] if frontend else ["--passthrough", "--no-audit"])


def idle_memory(topo):
    """Idle keep-alive client connections held by exsim (TLS, then plain HTTP), nginx and HAProxy (TLS)."""
    rows = []
    for tls in (True, False):
        topo.start_proxy(tls=tls)
        rows.append(hold_idle(f"exsim ({'TLS' if tls else 'plain HTTP'})", topo.proxy.pid, IDLE_CONNS,
                              idle_path_args(topo.url, topo, True) + topo.directory_args()))
        topo.stop_proxy()
    topo.start_proxy()  # its certificate serves nginx and HAProxy too
    nginx, url = start_nginx(topo, True, connections=IDLE_CONNS + 100)
    rows.append(hold_idle("nginx (TLS)", nginx.pid, IDLE_CONNS, idle_path_args(url, topo, False)))
    nginx.stop()
    # HAProxy wants two descriptors per connection within the open file limit.
    count = min(IDLE_CONNS, (resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200) // 2)
    haproxy, url = start_haproxy(topo, True, connections=count + 50)
    rows.append(hold_idle("HAProxy (TLS)", haproxy.pid, count, idle_path_args(url, topo, False)))
    haproxy.stop()
    topo.stop_proxy()
    return rows


def pooled_backends(topo):
    """Proxy RSS per pooled idle back-end connection: POOLED_CONNS users log in one after the other
    (one request each, then idle) through a fresh front-end under per-user, which keeps one pooled
    connection per user, and under ms04-002, which re-uses one or two. Both hold the same idle
    client connections and the same cached credentials: the RSS difference over the difference in
    open back-end connections is what one pooled connection costs."""
    pool = {"max_connections": 4 * POOLED_CONNS, "max_idle": 4 * POOLED_CONNS, "idle_timeout_ms": 3600000}
    runs = {}
    for policy in ("ms04-002", "per-user"):
        config = scale_config(f"pooled-{policy}", policy, pool)
        topo.start_proxy(config=config)
        args = frontend_load_args(topo) + ["--path", "/exchange/"]
        load(f"pooled-{policy}-warm", args + ["--sessions", 1, "--requests", 20])
        time.sleep(1)
        rss0 = rss_kib(topo.proxy.pid)
        served = metrics(topo.metrics_url).get("exsim_proxy_requests_total", 0)
        ramp = max(POOLED_CONNS / 50, 2)
        note(f"pooled back-end connections: {POOLED_CONNS} users under {policy}")
        client = client_process(f"pooled-{policy}", args + ["--sessions", POOLED_CONNS, "--think-ms", 3600000,
                                                            "--ramp-up", ramp, "--duration", ramp + 600,
                                                            "--timeout-ms", 120000])
        try:
            wait_metric(topo, "exsim_proxy_requests_total", served + POOLED_CONNS, ramp + 120, client)
            time.sleep(2)
            m = metrics(topo.metrics_url)
            runs[policy] = {"rss0": rss0, "rss": rss_kib(topo.proxy.pid),
                            "open": m.get("exsim_proxy_backend_connections_open", 0),
                            "clients": m.get("exsim_proxy_client_connections_active", 0)}
        finally:
            finish(client)
        topo.stop_proxy()
    shared, per_user = runs["ms04-002"], runs["per-user"]
    extra = per_user["open"] - shared["open"]
    per = (per_user["rss"] - shared["rss"]) / extra if extra > 0 else None
    return {"shared": shared, "per_user": per_user, "pooled": extra, "per_kib": per}


def section_scale():
    policy, auth = SCALE_POLICY.split(":")
    say(f"== 3. Scale (exsim front-end, TLS + Basic, {policy} with back-end auth {auth}, {WORKERS} proxy worker)")
    say(f"closed model: every connection sends its next request when the last one is answered (no think time), "
        f"so latency = connections / throughput; open model: a fixed total rate (half the peak of the first "
        f"connection count) spread over all connections. {DURATION:g} s x {REPEATS} interleaved runs")
    # Thousands of requests may wait for a back-end connection: a queue that holds them all.
    queue_config = scale_config("scale", policy, {"queue_limit": 100000, "queue_timeout_ms": 120000})
    rows, memory, scale_runs = [], None, []
    peaks = {}
    for users in SCALE_USERS:
        note(f"scale: realm of {users} users")
        topo = Topology(f"scale{users}", users=users, config=queue_config)
        say(f"realm of {users} users created and KDC started in {topo.realm_seconds:.1f} s")
        topo.start_backends(auth)
        if memory is None:  # on the first (smallest) directory, each with a fresh proxy
            idle = idle_memory(topo)
            pooled = pooled_backends(topo)
            memory = (idle, pooled)
        topo.start_proxy()
        base = frontend_load_args(topo) + ["--mix", AUTH_MIX, "--timeout-ms", 120000, "--warmup", 1]
        closed = {c: [] for c in SCALE_CONNS}
        opened = {c: [] for c in SCALE_CONNS}
        rate = None
        for rep in range(REPEATS):
            for c in rotated(SCALE_CONNS, rep):
                note(f"scale {users} users, {c} connections, closed, run {rep + 1}/{REPEATS}")
                closed[c].append(measured(f"scale-{users}-{c}-closed-{rep}", base + spread_users(users, c) + [
                    "--sessions", c, "--duration", DURATION],
                    topo.proxy.pid, topo.metrics_url, topo.backend_pids()))
            if rate is None:
                rate = max(round(closed[min(SCALE_CONNS)][0]["rps"] / 2), 1)
            for c in rotated(SCALE_CONNS, rep):
                note(f"scale {users} users, {c} connections, {rate}/s, run {rep + 1}/{REPEATS}")
                opened[c].append(measured(f"scale-{users}-{c}-open-{rep}", base + spread_users(users, c) + [
                    "--sessions", c, "--duration", DURATION, "--rate", rate],
                    topo.proxy.pid, topo.metrics_url, topo.backend_pids()))
        rss = rss_kib(topo.proxy.pid)
        topo.stop()
        scale_runs += [r for c in SCALE_CONNS for r in closed[c] + opened[c]]
        for c in SCALE_CONNS:
            rs, os_ = closed[c], opened[c]
            peaks[(users, c)] = med([r["rps"] for r in rs])
            rows.append([users, c, fmt(peaks[(users, c)]), spread([r["rps"] for r in rs]),
                         fmt(med([r["total"]["p99_ms"] for r in rs]), "{:.1f}"),
                         fmt(med([r["proxy_cpu_s"] / r["proxy_requests"] * 1e6 for r in rs if r["proxy_requests"]]), "{:.0f}"),
                         rate, fmt(med([r["total"]["p50_ms"] for r in os_]), "{:.2f}"),
                         fmt(med([r["total"]["p99_ms"] for r in os_]), "{:.2f}"),
                         sum(errors_of(r) + r.get("unsent", 0) for r in rs + os_), f"{rss / 1024:.0f}"])
    table(["users", "connections", "peak req/s", "min..max (spread)", "p99 ms (closed)", "proxy CPU us/req",
           "open rate/s", "p50 ms (open)", "p99 ms (open)", "errors+unsent", "proxy RSS MiB after"], rows)
    say_others(scale_runs)
    say()
    if memory:
        idle, pooled = memory
        rows = [[m["what"], f"{min(m['held'], m['count']):,}", f"{m['rss0'] / 1024:.1f}", f"{m['rss'] / 1024:.1f}",
                 fmt(m["per_kib"], "{:.1f}")] for m in idle]
        rows.append([f"exsim: pooled idle back-end connections (per-user vs ms04-002, {POOLED_CONNS} users)",
                     f"{pooled['pooled']:,.0f}", f"{pooled['shared']['rss'] / 1024:.1f}",
                     f"{pooled['per_user']['rss'] / 1024:.1f}", fmt(pooled["per_kib"], "{:.1f}")])
        table(["idle keep-alive client connections held by", "connections", "RSS before MiB", "RSS with them MiB",
               "KiB each"], rows)
        say()
        for m in idle[:2]:
            full = m["held"] >= IDLE_CONNS
            m["held"] = min(m["held"], IDLE_CONNS)
            verdict(f"{IDLE_CONNS:,} idle keep-alive client connections in < 256 MiB proxy RSS, {m['what']}",
                    m["rss"] < 256 * 1024 and full, f"{m['rss'] / 1024:.0f} MiB with {m['held']:,} connections")


# ---------------------------------------------------------------------------------------------

def machine():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    load1 = open("/proc/loadavg").read().split()[:3]
    return f"{os.cpu_count()} CPUs ({model}), {os.uname().release}, load average {' '.join(load1)}"


def main():
    say(f"exsim side-by-side comparison, {time.strftime('%Y-%m-%d %H:%M:%S')}")
    say(f"machine: {machine()}")
    pin = (f"client on CPU {CLIENT_CPU}, back-ends on CPU {BACKEND_CPU}, proxies "
           + (f"on CPU {PROXY_CPU}" if PROXY_CPU else "not pinned")) if PIN else "no CPU pinning"
    say(f"placement: {pin} (taskset); results and logs in {OUT}")
    say()
    started = time.time()
    try:
        for s in SECTIONS:
            {"hop": section_hop, "auth": section_auth, "scale": section_scale}[s]()
            say()
    finally:
        stop_all()
    say("== targets")
    table(["target", "measured", "verdict"], [list(t) for t in targets])
    say()
    say(f"done in {time.time() - started:.0f} s; machine at the end: {machine()}")
    (OUT / "report.txt").write_text("\n".join(report_lines) + "\n")
    shutil.rmtree(WORK, ignore_errors=True)
    return 3 if any(t[2] == "MISS" for t in targets) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
