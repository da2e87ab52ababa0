#!/usr/bin/python3
"""CTest's `proxies` suite: one reference verdict per reverse proxy and configuration.

  run.py VARIANT            e.g. nginx-keepalive (run.py --list names them)

Starts exsim's back-ends (`exsim check-proxy --serve`: realm, KDC and four back-ends) in a
temporary folder, then one Debian-packaged reverse proxy from the template VARIANT's entry names
(this folder), as the user running the test, on a free loopback port, with its pid file, logs
and temporary files in that folder. Runs `exsim check-proxy` through it and fails unless every
check's verdict is the one VARIANT expects (or, for a proxy through which no handshake can
complete, unless the pre-flight stops it with the expected sentence). Everything it started is
stopped by process id (and process group) at the end, whatever happened.

Environment:
  EXSIM_BINARY          the exsim program (CTest passes the build's)
  EXSIM_PROXIES_JSON    a folder: each run's check-proxy report is written there as
                        VARIANT.json, with the proxy's version, the template and the expected
                        verdicts, for scripts/proxies_table.py
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
# The variants: proxy, template, and what `exsim check-proxy` must report for it, check by check,
# with why (docs/proxies.md tells the longer story, with sources).

# Every check of exsim check-proxy, in its order.
CHECKS = ["separate-connections", "concurrent-mix", "reauth-on-connection", "kerberos", "spnego-ntlm",
          "kerberos-persist", "abandoned-handshake", "post-401-once", "anonymous-interleaved", "cost"]


class Variant:
    def __init__(self, proxy, template, expect, preflight=None):
        self.proxy, self.template = proxy, template
        self.expect = expect        # check -> (verdict, why)
        self.preflight = preflight  # (what check-proxy says, why): it stops before any check


def verdicts(default, **by_check):
    """check -> (verdict, why) for every check: `default` unless named (a_b for a-b)."""
    out = {c: default for c in CHECKS}
    for name, v in by_check.items():
        out[name.replace("_", "-")] = v
    return out


TICKET_PER_REQUEST = ("safe", "every request carries its own Kerberos ticket: the back-end authenticates each one")
POOLED = "an idle back-end connection, authenticated as whoever used it last, serves the next request"
PINNED = "a server connection that carried authentication is tied to its client connection"
PRIVATE = "a 401 with WWW-Authenticate NTLM/Nego makes the server connection private to the client's session"
NO_ANSWER = ("the probe's handshake never completes: check-proxy's pre-flight reports that be1's audit log "
             "saw none of its requests")

# nginx's keepalive and Apache's pool: every connection-bound authentication crosses users.
LEAKS = verdicts(("LEAK", POOLED), kerberos=TICKET_PER_REQUEST,
                 reauth_on_connection=("safe", "one client connection's requests, one at a time, take the same idle "
                                               "upstream connection back: the new handshake on it switches it to the "
                                               "new user before anyone else can have it"),
                 abandoned_handshake=("safe", "a half-done handshake authenticates nobody: the next "
                                              "user is answered 401 and authenticates on it"))
# HAProxy in either re-use mode.
HAPROXY = verdicts(("safe", PRIVATE), kerberos=TICKET_PER_REQUEST,
                   kerberos_persist=("safe", "the 401 Negotiate before the ticket makes the connection private"))

VARIANTS = {
    "nginx-keepalive": Variant(Nginx, "nginx-keepalive.conf.in", LEAKS),
    "nginx-no-keepalive": Variant(Nginx, "nginx-no-keepalive.conf.in", verdicts(
        ("BROKEN", "a new upstream connection per request: an NTLM handshake's legs never meet"),
        kerberos=TICKET_PER_REQUEST,
        kerberos_persist=("safe", "every request reaches a new back-end connection, is answered 401 and "
                                  "carries a ticket again: nothing is kept to re-use"))),
    "haproxy-reuse-safe": Variant(HAProxy, "haproxy-reuse-safe.cfg.in", HAPROXY),
    "haproxy-reuse-always": Variant(HAProxy, "haproxy-reuse-always.cfg.in", HAPROXY),
    "squid-accel": Variant(Squid, "squid-accel.conf.in", {}, preflight=(
        "be1's audit log saw none of the probe's requests",
        "to a cache_peer originserver, Squid forwards no Authorization header unless login=PASS/PASSTHRU: "
        + NO_ANSWER)),
    "squid-passthru": Variant(Squid, "squid-passthru.conf.in", verdicts(("safe", PINNED))),
    "squid-passthru-connection-auth-off": Variant(Squid, "squid-passthru-connection-auth-off.conf.in", {}, preflight=(
        "be1's audit log saw none of the probe's requests",
        "connection-auth=off removes the NTLM and Negotiate challenges from the back-ends' 401s: " + NO_ANSWER)),
    "apache-keepalive": Variant(Apache, "apache-keepalive.conf.in", LEAKS),
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
    """`exsim check-proxy --serve`: realm, KDC and the four back-ends check-proxy judges through
    (be1 NTLM; be2 Negotiate; be3 Negotiate with persist_kerberos; be4 Negotiate without a
    Kerberos key), until stopped."""

    def __init__(self, exsim, workdir):
        self.state = workdir / "state"
        self.log = open(workdir / "check-proxy-serve.log", "w")
        self.proc = subprocess.Popen([exsim, "check-proxy", "--serve", "--state-dir", str(self.state)],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        env_file = self.state / "endpoints.env"
        deadline = time.monotonic() + 120
        while not env_file.exists() or "EXSIM_BACKEND_BE4_ADDR" not in env_file.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise Failure(f"exsim check-proxy --serve did not start:\n{(workdir / 'check-proxy-serve.log').read_text()[-3000:]}")
            time.sleep(0.1)
        self.env = read_env(env_file)

    def addresses(self):
        """be1..be4 -> ADDRESS:PORT, for the templates' @BE1@ ... @BE4@."""
        return {f"be{n}": self.env[f"EXSIM_BACKEND_BE{n}_ADDR"] for n in range(1, 5)}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def check_proxy(exsim, backends, port, out):
    """`exsim check-proxy` through the proxy; its JSON report, or None and its one-sentence error
    when the pre-flight stopped it (exit 1)."""
    argv = [exsim, "check-proxy", "--proxy", f"127.0.0.1:{port}", "--state-dir", str(backends.state),
            "--json", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    print(done.stdout + done.stderr)
    if done.returncode == 1:
        return None, done.stderr.strip()
    if done.returncode not in (0, 99) or not out.exists():
        raise Failure(f"exsim check-proxy failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(out.read_text()), ""


def wrong_verdicts(variant, report, error):
    """The differences between what check-proxy reported and what the variant expects, one line each."""
    if variant.preflight:
        said, why = variant.preflight
        return [] if report is None and said in error else [f"expected the pre-flight to stop it ({said}: {why}); "
                                                             f"got {error or 'a report'}"]
    if report is None:
        return [f"the pre-flight stopped check-proxy: {error}"]
    got = {c["name"]: c["verdict"] for c in report["checks"]}
    wrong = []
    for check in sorted(set(got) | set(variant.expect), key=lambda c: CHECKS.index(c) if c in CHECKS else len(CHECKS)):
        expected, why = variant.expect.get(check, ("(no expectation)", "a check this suite does not know: add it"))
        if got.get(check) != expected:
            wrong.append(f"{check}: {got.get(check, 'not run')}, expected {expected} ({why})")
    return wrong


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
        report, error = check_proxy(exsim, backends, port, workdir / "check.json")
        save(name, variant, proxy, report, error, started)
        wrong = wrong_verdicts(variant, report, error)
        if wrong:
            print(f"{name}: not as expected:\n  " + "\n  ".join(wrong) + f"\n{proxy.logs(20)}", file=sys.stderr)
            return 1
        print(f"{name}: every verdict as expected")
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


def save(name, variant, proxy, report, error, started):
    """VARIANT.json in $EXSIM_PROXIES_JSON: check-proxy's report (or its pre-flight error) with the
    proxy's version, the template and the expectations, for scripts/proxies_table.py."""
    folder = os.environ.get("EXSIM_PROXIES_JSON")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    doc = {"variant": name, "proxy": proxy.name, "version": proxy.version(), "template": variant.template,
           "seconds": round(time.monotonic() - started, 1), "check": report, "preflight_error": error,
           "expect": {c: {"verdict": v, "why": w} for c, (v, w) in variant.expect.items()},
           "preflight": {"said": variant.preflight[0], "why": variant.preflight[1]} if variant.preflight else None}
    (Path(folder) / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
