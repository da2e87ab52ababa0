#!/usr/bin/python3
"""CTest's `proxies` suite: one reference verdict per reverse proxy and configuration.

  run.py VARIANT            e.g. nginx-keepalive (run.py --list names them)

Starts exsim's back-ends (`exsim up` on backends.json, realm and KDC included) in a temporary
folder, then one Debian-packaged reverse proxy from the template VARIANT's entry names (this
folder), as the user running the test, on a free loopback port, with its pid file, logs and
temporary files in that folder. Drives it with each workload (`exsim load --passthrough`), judges
each run by both oracles (the responses and the back-ends' audit logs, which must agree), and
fails unless every verdict is the one VARIANT expects. Everything it started is stopped by
process id (and process group) at the end, whatever happened.

Environment:
  EXSIM_BINARY          the exsim program (CTest passes the build's)
  EXSIM_PROXIES_JSON    a folder: each run's JSON is copied there as VARIANT.json, with the
                        proxy's version and the template, for scripts/proxies_table.py
  EXSIM_PROXIES_KEEP=1  keep the temporary folder (its path is printed)

Standard library only: run with /usr/bin/python3.
"""
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


class Failure(Exception):
    """A run that could not judge the proxy (it did not start, exsim failed): not a verdict."""


# ---------------------------------------------------------------------------------------------
# The proxies: how each one is started as this user with everything in its folder.

def run_user():
    """The user and group the proxy's workers run as. As root, each proxy would otherwise switch
    to its package's user (nobody, proxy, www-data); Apache and Squid refuse to serve as root, so
    there the folder is handed to their usual user instead."""
    uid = os.geteuid()
    return pwd.getpwuid(uid).pw_name, grp.getgrgid(os.getegid()).gr_name


class Proxy:
    name = ""         # the Debian program
    label = ""        # how the docs name it
    binary = ""
    conf_name = ""    # the file the template becomes
    drops_to = None   # the account it switches to when started as root (None: it stays root)

    def __init__(self, workdir):
        self.dir = workdir
        self.proc = None

    def version(self):
        """"nginx 1.22.1", from the binary itself (nginx -v, haproxy -v, squid -v, apache2 -v)."""
        out = subprocess.run([self.binary, "-v"], capture_output=True, text=True)
        found = re.search(r"\d+\.\d+[0-9A-Za-z.+~-]*", out.stdout + out.stderr)
        return f"{self.label} {found.group(0) if found else 'unknown version'}"

    def argv(self, conf):
        raise NotImplementedError

    def fill(self, template, port, backends):
        """The template with its placeholders filled: @DIR@, @PORT@, @USER@, @GROUP@, and per
        back-end @BE1@ (ADDRESS:PORT), @BE1_HOST@, @BE1_PORT@, ..."""
        user, group = run_user()
        if os.geteuid() == 0 and self.drops_to:
            user, group = self.drops_to
        values = {"DIR": str(self.dir), "PORT": str(port), "USER": user, "GROUP": group}
        for name, address in backends.items():
            host, backend_port = address.rsplit(":", 1)
            key = name.upper()
            values.update({key: address, f"{key}_HOST": host, f"{key}_PORT": backend_port})
        text = template.read_text()
        for k, v in values.items():
            text = text.replace(f"@{k}@", v)
        leftover = sorted(set(re.findall(r"@[A-Z0-9_]+@", text)))
        if leftover:
            raise Failure(f"{template.name}: no value for {', '.join(leftover)}")
        return text

    def start(self, template, backends):
        if not Path(self.binary).exists():
            raise Failure(f"{self.binary} is not installed (scripts/bootstrap.sh test installs it)")
        if os.geteuid() == 0 and self.drops_to:
            # The workers run as drops_to: they must be able to write their logs here.
            uid, gid = pwd.getpwnam(self.drops_to[0]).pw_uid, grp.getgrnam(self.drops_to[1]).gr_gid
            os.chown(self.dir, uid, gid)
        port = free_port()
        conf = self.dir / self.conf_name
        conf.write_text(self.fill(template, port, backends))
        self.out = open(self.dir / "stdout-stderr.log", "w")
        self.proc = subprocess.Popen([str(a) for a in self.argv(conf)], stdout=self.out, stderr=subprocess.STDOUT,
                                     cwd=self.dir, start_new_session=True)
        wait_port(port, self.proc, lambda: self.logs(40))
        return port

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # The process group it was started in: nginx's and Apache's workers go with it.
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self.out.close()

    def logs(self, lines):
        out = []
        for f in sorted(self.dir.glob("*.log")):
            text = f.read_text(errors="replace").splitlines()[-lines:]
            if text:
                out.append(f"--- {f.name}\n" + "\n".join(text))
        return "\n".join(out)


class Nginx(Proxy):
    name, label, binary, conf_name = "nginx", "nginx", "/usr/sbin/nginx", "nginx.conf"

    def argv(self, conf):
        # -e: the error log before the configuration is read (the default is under /var/log).
        return [self.binary, "-p", self.dir, "-c", conf, "-e", self.dir / "error.log"]


class HAProxy(Proxy):
    name, label, binary, conf_name = "haproxy", "HAProxy", "/usr/sbin/haproxy", "haproxy.cfg"

    def argv(self, conf):
        return [self.binary, "-db", "-f", conf]  # -db: foreground, no daemon


class Squid(Proxy):
    name, label, binary, conf_name = "squid", "Squid", "/usr/sbin/squid", "squid.conf"
    drops_to = ("proxy", "proxy")  # Squid will not serve as root (cache_effective_user)

    def argv(self, conf):
        return [self.binary, "-N", "-f", conf]  # -N: no daemon, no kid processes


class Apache(Proxy):
    name, label, binary, conf_name = "apache2", "Apache httpd", "/usr/sbin/apache2", "httpd.conf"
    drops_to = ("www-data", "www-data")  # Apache's children refuse to run as root

    def argv(self, conf):
        # -d: ServerRoot; no apache2ctl and no /etc/apache2/envvars: everything is in the file.
        return [self.binary, "-d", self.dir, "-f", conf, "-DFOREGROUND"]


# ---------------------------------------------------------------------------------------------
# The workloads (back-ends in backends.json), and the variants: proxy, template, and the verdict
# the suite expects of each workload, with why.

class Workload:
    def __init__(self, backend, users, requests, mechanism, what):
        self.backend, self.users, self.requests, self.mechanism, self.what = backend, users, requests, mechanism, what

    def args(self):
        # Two users, four sessions each (kept-alive client connections), the mixed workload.
        return ["--users", ",".join(self.users), "--sessions", "8", "--requests", str(self.requests),
                "--mechanism", self.mechanism]


WORKLOADS = {
    # The workload that showed nginx's upstream keepalive leaking from outside.
    "ntlm": Workload("be1", ["alice", "bob"], 1500, "ntlm", "NTLM, connection-bound (be1)"),
    "kerberos": Workload("be2", ["grace", "heidi"], 600, "kerberos",
                         "Kerberos, a ticket on every request (be2)"),
    "kerberos-persist": Workload("be3", ["ivan", "judy"], 600, "kerberos",
                                 "Kerberos kept on the back-end connection, persist_kerberos (be3)"),
}


class Variant:
    def __init__(self, proxy, template, expect):
        self.proxy, self.template = proxy, template
        self.expect = expect  # workload -> (verdict, why)


PINNED = "the server connection is tied to its client connection once it carried authentication"
NO_AUTH_FORWARDED = ("to a cache_peer originserver, Squid forwards no Authorization header unless "
                     "login=PASS/PASSTHRU: no user can log in")
CHALLENGES_REMOVED = "connection-auth=off removes the NTLM and Negotiate challenges: no user can log in"
TICKET_PER_REQUEST = ("safe", "every request carries its own ticket: the back-end authenticates each one")
# HAProxy in either re-use mode: what makes its server connections private is the 401 challenge.
HAPROXY = {
    "ntlm": ("safe", "a 401 with WWW-Authenticate NTLM/Nego makes the server connection private to the "
                     "client's session, in every http-reuse mode over HTTP/1.1"),
    "kerberos": TICKET_PER_REQUEST,
    "kerberos-persist": ("safe", "the 401 Negotiate before the ticket makes the connection private"),
}

VARIANTS = {
    "nginx-keepalive": Variant(Nginx, "nginx-keepalive.conf.in", {
        "ntlm": ("leak", "the keepalive cache gives an idle upstream connection, authenticated as "
                         "whoever used it last, to the next request for that upstream"),
        "kerberos": TICKET_PER_REQUEST,
        "kerberos-persist": ("leak", "as NTLM: the authentication stays on a pooled connection"),
    }),
    "nginx-no-keepalive": Variant(Nginx, "nginx-no-keepalive.conf.in", {
        "ntlm": ("broken", "a new upstream connection per request: the handshake's legs never meet"),
        "kerberos": TICKET_PER_REQUEST,
        "kerberos-persist": ("safe", "every request reaches a new back-end connection, is answered 401, "
                                     "and the client sends its ticket again: nothing is kept to re-use"),
    }),
    "haproxy-reuse-safe": Variant(HAProxy, "haproxy-reuse-safe.cfg.in", HAPROXY),
    "haproxy-reuse-always": Variant(HAProxy, "haproxy-reuse-always.cfg.in", HAPROXY),
    "squid-accel": Variant(Squid, "squid-accel.conf.in", {
        "ntlm": ("broken", NO_AUTH_FORWARDED),
        "kerberos": ("broken", NO_AUTH_FORWARDED),
        "kerberos-persist": ("broken", NO_AUTH_FORWARDED),
    }),
    "squid-passthru": Variant(Squid, "squid-passthru.conf.in", {
        "ntlm": ("safe", PINNED),
        "kerberos": ("safe", PINNED),
        "kerberos-persist": ("safe", PINNED),
    }),
    "squid-passthru-connection-auth-off": Variant(Squid, "squid-passthru-connection-auth-off.conf.in", {
        "ntlm": ("broken", CHALLENGES_REMOVED),
        "kerberos": ("broken", CHALLENGES_REMOVED),
        "kerberos-persist": ("broken", CHALLENGES_REMOVED),
    }),
    "apache-keepalive": Variant(Apache, "apache-keepalive.conf.in", {
        "ntlm": ("leak", "mod_proxy_http takes a back-end connection from the worker's pool per request "
                         "and gives it back after the response"),
        "kerberos": TICKET_PER_REQUEST,
        "kerberos-persist": ("leak", "as NTLM: the authentication stays on a pooled connection"),
    }),
}


# ---------------------------------------------------------------------------------------------
# exsim: the back-ends, and the load through the proxy.

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, describe, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failure(f"exited with status {proc.returncode} before listening on 127.0.0.1:{port}\n{describe()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise Failure(f"does not listen on 127.0.0.1:{port} after {timeout} s\n{describe()}")


def read_env(path):
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            k, v = line[len("export "):].split("=", 1)
            out[k] = v
    return out


class Backends:
    """`exsim up` on backends.json: realm, KDC, be1 (NTLM), be2 (Negotiate), be3 (Negotiate,
    persist_kerberos), and exsim's own front-end, unused here."""

    def __init__(self, exsim, workdir):
        self.exsim, self.state = exsim, workdir / "state"
        self.log = open(workdir / "exsim-up.log", "w")
        self.proc = subprocess.Popen([exsim, "up", "--config", str(HERE / "backends.json"), "--state-dir",
                                      str(self.state), "--log-level", "warn"],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        env_file = self.state / "endpoints.env"
        deadline = time.monotonic() + 120
        while not env_file.exists() or "EXSIM_POLICY" not in env_file.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise Failure(f"exsim up did not start:\n{(workdir / 'exsim-up.log').read_text()[-3000:]}")
            time.sleep(0.1)
        self.env = read_env(env_file)

    def addresses(self):
        """be1..be4 -> ADDRESS:PORT. The templates route four back-ends (check-proxy's); be4
        (SPNEGO falling back to NTLM) is not in backends.json: be2 stands in for it."""
        out = {}
        for n in range(1, 5):
            out[f"be{n}"] = self.env.get(f"EXSIM_BACKEND_BE{n}_ADDR") or self.env["EXSIM_BACKEND_BE2_ADDR"]
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()



def run_load(exsim, backends, address, workload, out):
    """`exsim load --passthrough` to ADDRESS (the proxy, or the back-end itself), with the
    workload's users; its JSON result (None when no challenge reached the client) and table."""
    port = address.rsplit(":", 1)[1]
    argv = [exsim, "load", "--passthrough", "--state-dir", str(backends.state), "--log-level", "error",
            "--url", f"http://{workload.backend}.exsim.test:{port}/", "--connect-to", address,
            "--json", str(out)] + workload.args()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if not out.exists():
        # Before any load, exsim load asks for a challenge; a proxy that strips them all leaves
        # nothing to authenticate with: that is a verdict (broken), not a failure of the run.
        if "the server offers only" in done.stderr:
            return None, done.stderr.strip()
        raise Failure(f"exsim load failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(out.read_text()), done.stdout


def judge_load(r):
    """safe / leak / broken from one load run, by both oracles: the responses and the audit logs
    (which must agree). Broken: more than one request in ten failed."""
    if r is None:
        return "broken"
    total = r["total"]
    requests, errors = int(total["requests"]), int(total["errors"])
    crossed = int(total["leaks"]) + int(total["tampers"])
    audit = r.get("audit_cross_user")
    if audit is None:
        raise Failure("the load run read no audit log: the back-ends' side is unknown")
    if int(audit) != crossed:
        raise Failure(f"the oracles disagree: responses crossed {crossed}, audit logs {audit}")
    if crossed:
        return "leak"
    if requests == 0 or errors * 10 > requests:
        return "broken"
    return "safe"


def judge(name, variant, exsim, backends, port, workdir):
    """Every workload through the proxy, then NTLM straight to be1 (the cost); returns the runs
    and the workloads whose verdict is not the expected one."""
    runs, wrong = {}, []
    for w, workload in WORKLOADS.items():
        result, table = run_load(exsim, backends, f"127.0.0.1:{port}", workload, workdir / f"{w}.json")
        verdict = judge_load(result)
        expected, why = variant.expect[w]
        print(f"--- {w}: {workload.what}\n{table}\n{name} {w}: {verdict} (expected {expected}: {why})\n")
        runs[w] = {"verdict": verdict, "expected": expected, "why": why, "what": workload.what, "result": result}
        if verdict != expected:
            wrong.append(w)
    # The same NTLM load straight to be1, right after: what the proxy costs on this machine.
    direct, table = run_load(exsim, backends, backends.addresses()["be1"], WORKLOADS["ntlm"], workdir / "direct.json")
    print(f"--- ntlm straight to be1 (no proxy)\n{table}")
    if judge_load(direct) != "safe":
        raise Failure("the NTLM load straight to be1 was not clean: the back-ends, not the proxy, are at fault")
    runs["direct"] = {"result": direct}
    return runs, wrong


def main(argv):
    if len(argv) != 2 or argv[1] not in VARIANTS and argv[1] != "--list":
        print(f"usage: {argv[0]} VARIANT | --list\nvariants: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    if argv[1] == "--list":
        print("\n".join(VARIANTS))
        return 0
    name, variant = argv[1], VARIANTS[argv[1]]
    exsim = os.environ.get("EXSIM_BINARY")
    if not exsim or not Path(exsim).exists():
        print("run.py: EXSIM_BINARY must name the exsim program (CTest sets it)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix=f"exsim-proxies-{name}-"))
    workdir.chmod(0o755)  # a proxy that switches users must still reach its own folder
    proxy_dir = workdir / "proxy"
    proxy_dir.mkdir()
    started = time.monotonic()
    backends = proxy = None
    try:
        backends = Backends(exsim, workdir)
        proxy = variant.proxy(proxy_dir)
        port = proxy.start(HERE / variant.template, backends.addresses())
        print(f"{name}: {proxy.version()} on 127.0.0.1:{port} -> {backends.addresses()} ({workdir})")
        runs, wrong = judge(name, variant, exsim, backends, port, workdir)
        save(name, variant, proxy, runs, started)
        if wrong:
            print(f"{name}: not as expected: {', '.join(wrong)}\n{proxy.logs(20)}", file=sys.stderr)
            return 1
        return 0
    except Failure as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 1
    finally:
        if proxy:
            proxy.stop()
        if backends:
            backends.stop()
        if os.environ.get("EXSIM_PROXIES_KEEP") == "1":
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def save(name, variant, proxy, runs, started):
    """VARIANT.json in $EXSIM_PROXIES_JSON: what scripts/proxies_table.py makes docs/proxies.md from."""
    folder = os.environ.get("EXSIM_PROXIES_JSON")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    doc = {"variant": name, "proxy": proxy.name, "version": proxy.version(), "template": variant.template,
           "seconds": round(time.monotonic() - started, 1), "workloads": runs}
    (Path(folder) / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
