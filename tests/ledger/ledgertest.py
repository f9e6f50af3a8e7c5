"""ledgertest.py — helpers for the meter-ledgerd tests (python3 stdlib only).

  Tap           TAP output: ok(), eq(), done() (exit status 1 on failure)
  Ledger        one meter-ledgerd: its database (SQLite file or a fresh
                PostgreSQL database), the CLI (admin add, node add), start on
                a free loopback port (--listen 127.0.0.1:0, the port read
                from its log), stop with a signal, plain and signed requests
  sign()        the X-Meter-* headers of PROTOCOL.md, computed here with
                hmac/hashlib (independent of sync/protocol.c)
  run_ledger()  a test's main() on one Ledger: make it, run the cases, stop
                it (exit 0), no sanitizer report in its log, close it

Environment (tests/run sets it): LEDGERD the binary, SRCDIR, BUILD,
TESTS_TMP; LEDGER_PG_URL (or scripts/start-postgres, as root) for
PostgreSQL.  Everything listens on 127.0.0.1 only.
"""

import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

SRCDIR = os.environ.get("SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD") or os.path.join(SRCDIR, "build")
LEDGERD = os.environ.get("LEDGERD") or os.path.join(BUILD, "bin", "meter-ledgerd")

MIN_US = 60_000_000
DAY_MS = 86_400_000

# What a sanitized build (configure --enable-sanitizers) writes when it
# finds something: UBSan's "runtime error: ", ASan's "ERROR: …Sanitizer",
# and the "SUMMARY: …Sanitizer" line either ends with.
SANITIZER_REPORT = re.compile(r"runtime error: |ERROR: [A-Za-z]+Sanitizer"
                              r"|SUMMARY: [A-Za-z]+Sanitizer")


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, *diag):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, name))
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, name))
            for d in diag:
                for line in str(d).splitlines() or [""]:
                    print("#   " + line)
        sys.stdout.flush()
        return bool(cond)

    def eq(self, got, want, name):
        return self.ok(got == want, name, "got:  %r" % (got,), "want: %r" % (want,))

    def diag(self, text):
        for line in str(text).splitlines():
            print("# " + line)

    def done(self):
        print("1..%d" % self.n)
        sys.stdout.flush()
        sys.exit(1 if self.failed else 0)


def tmpdir(prefix):
    base = os.environ.get("TESTS_TMP") or os.environ.get("TMPDIR") or "/tmp"
    return tempfile.mkdtemp(prefix=prefix, dir=base)


# ------------------------------------------------------------ PostgreSQL --

def pg_base_url():
    url = os.environ.get("LEDGER_PG_URL")
    if not url:
        r = subprocess.run([os.path.join(SRCDIR, "scripts", "start-postgres")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("no PostgreSQL: set LEDGER_PG_URL or run scripts/start-postgres "
                               "as root: " + r.stderr.strip())
        url = r.stdout.strip()
        os.environ["LEDGER_PG_URL"] = url
    return url


def pg_create_db(prefix):
    """A fresh, empty database; returns (url, name)."""
    base = pg_base_url()
    name = "%s_%s" % (prefix, secrets.token_hex(6))
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", base, "-c",
                    "CREATE DATABASE " + name], check=True, capture_output=True)
    p = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit(p._replace(path="/" + name)), name


def pg_drop_db(name):
    base = os.environ.get("LEDGER_PG_URL")
    if base and name:
        subprocess.run(["psql", "-X", "-q", base, "-c",
                        "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name], capture_output=True)


# -------------------------------------------------------------- signing --

def sign(secret, method, target, body=b"", t=None, nonce=None, node="node-a"):
    """X-Meter-* headers for a request (target = path with query, as sent)."""
    t = int(time.time()) if t is None else t
    nonce = nonce or secrets.token_hex(16)
    sts = "%s\n%s\n%d\n%s\n%s" % (method, target, t, nonce, hashlib.sha256(body).hexdigest())
    sig = hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
    return {"X-Meter-Node": node, "X-Meter-Time": str(t), "X-Meter-Nonce": nonce,
            "X-Meter-Signature": sig}


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except Exception:
            return None

    def error_code(self):
        j = self.json()
        try:
            return j["error"]["code"]
        except Exception:
            return None

    def __repr__(self):
        return "HTTP %s %s" % (self.status, self.body[:300])


# ---------------------------------------------------------------- ledger --

class Ledger:
    def __init__(self, backend, tmp, env=None, share=None):
        """share: another Ledger whose database (and credentials) this
        instance uses too — a second instance behind a load balancer."""
        self.backend = backend
        self.tmp = tmp
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.port = None
        self.log = os.path.join(tmp, "ledger.log")
        self.pg_name = None
        self.admin_token = None
        self.secrets = {}
        if share is not None:
            self.dbargs = list(share.dbargs)
            self.admin_token = share.admin_token
            self.secrets = dict(share.secrets)
            self.log = os.path.join(tmp, "ledger2.log")
            return
        if backend == "pg":
            self.pg_url, self.pg_name = pg_create_db("ledger_http")
            self.dbargs = ["--pg", self.pg_url]
        else:
            self.dbargs = ["--db", os.path.join(tmp, "ledger.db")]

    def cli(self, *args, env=None):
        e = dict(self.env)
        e.update(env or {})
        r = subprocess.run([LEDGERD] + self.dbargs + list(args), capture_output=True,
                           text=True, env=e, timeout=60)
        return r.returncode, r.stdout, r.stderr

    def setup(self, admin="alice", nodes=("node-a", "node-b")):
        rc, out, err = self.cli("admin", "add", admin)
        if rc != 0:
            raise RuntimeError("admin add: " + err)
        self.admin_token = out.strip()
        for n in nodes:
            rc, out, err = self.cli("node", "add", n)
            if rc != 0:
                raise RuntimeError("node add: " + err)
            self.secrets[n] = out.strip()

    def start(self, *args, env=None):
        e = dict(self.env)
        e.update(env or {})
        self.logf = open(self.log, "a")
        self.log_start = self.logf.tell()
        self.proc = subprocess.Popen([LEDGERD] + self.dbargs + ["--listen", "127.0.0.1:0"]
                                     + list(args), stdout=self.logf, stderr=self.logf, env=e,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            with open(self.log) as f:
                f.seek(self.log_start)
                m = re.search(r"listening on https?://127\.0\.0\.1:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("meter-ledgerd did not start:\n" + self.log_text())

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.logf.close()
        return rc

    def close(self):
        if self.proc:
            self.stop(signal.SIGKILL)
        if self.pg_name:
            pg_drop_db(self.pg_name)
            self.pg_name = None

    # -------------------------------------------------------- requests --

    def request(self, method, target, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            h = dict(headers or {})
            if body is not None and "Content-Type" not in h:
                h["Content-Type"] = "application/json"
            conn.request(method, target, body=body, headers=h)
            r = conn.getresponse()
            return Response(r.status, dict(r.getheaders()), r.read())
        finally:
            conn.close()

    def admin(self, method, target, obj=None, token=None):
        body = None if obj is None else json.dumps(obj).encode()
        return self.request(method, target, body,
                            {"Authorization": "Bearer " + (token or self.admin_token)})

    def node(self, method, target, obj=None, node="node-a", secret=None, raw=None, **kw):
        body = raw if raw is not None else (b"" if obj is None else json.dumps(obj).encode())
        h = sign(secret or self.secrets[node], method, target, body, node=node, **kw)
        return self.request(method, target, body if body else None, h)

    def batch(self, records, node="node-a", **kw):
        return self.node("POST", "/v1/usage/batch", {"node": node, "records": records},
                         node=node, **kw)

    def metrics(self):
        r = self.request("GET", "/metrics")
        out = {}
        for line in r.body.decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


# ------------------------------------------------------------- records --

def run_ledger(t, backend, tmp, cases, env=None):
    """A test's main() on one ledger: makes Ledger(backend, tmp, env=env)
    (when that fails, "BACKEND: the database is available" fails and the
    test ends), runs cases(lg) (which sets it up, starts it, may restart
    it), stops it — "SIGTERM: exit 0" — and checks its log: a sanitized
    build reports into the daemon's log, not ours.  An exception fails "no
    exception in the test" with the traceback and the daemon's log.  The
    ledger is closed (its PostgreSQL database dropped) either way, and the
    test ends with t.done()."""
    lg = None
    try:
        try:
            lg = Ledger(backend, tmp, env=env)
        except Exception as e:
            t.ok(False, "%s: the database is available" % backend, e)
            t.done()
        cases(lg)
        rc = lg.stop()
        t.ok(rc in (0, None), "SIGTERM: exit 0", rc)
        with open(lg.log) as f:
            log = f.read()
        bad = SANITIZER_REPORT.search(log)
        t.ok(not bad, "no sanitizer report in the daemon's log",
             log[max(0, bad.start() - 200):bad.start() + 3000] if bad else "")
    except Exception:
        import traceback
        t.ok(False, "no exception in the test", traceback.format_exc())
        if lg:
            t.diag(lg.log_text())
    finally:
        if lg:
            lg.close()
    t.done()


def usage(rid, node="node-a", at=None, dur=MIN_US, billed=2 * MIN_US, job="job-1"):
    at = at or int(time.time() * 1000)
    return {"kind": "usage", "id": rid, "node": node, "at_ms": at, "job": job,
            "output": "out-720p", "session_id": None, "class": "general",
            "ttype": "Standard.H264.HD", "codec": "H264", "width": 1280, "height": 720,
            "duration_us": dur, "billed_us": billed, "deductible": True, "daily": False,
            "started_ms": at - 1000, "day": time.strftime("%Y-%m-%d", time.gmtime(at / 1000)),
            "state": "done"}


def deduction(rid, pack, amount, before, node="node-a", at=None, cls="general", day=None,
              ttype="Standard.H264.HD"):
    at = at or int(time.time() * 1000)
    day = day or time.strftime("%Y-%m-%d", time.gmtime(at / 1000))
    return {"kind": "deduction", "id": rid, "node": node, "at_ms": at, "charge_id": rid + "-c",
            "pack_id": pack, "class": cls, "ttype": ttype, "day": day, "amount_us": amount,
            "before_us": None if pack is None else before,
            "after_us": None if pack is None else before - amount}
