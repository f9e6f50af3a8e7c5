#!/usr/bin/env python3
"""test_limits.py BACKEND — what strangers and slow clients can make
meter-ledgerd hold (TAP).

BACKEND is sqlite or pg.  Runs the real daemon on 127.0.0.1; the attacking
sockets come from other loopback addresses (127.0.0.10 …), so the per-IP
connection limit applies to them and not to the test's own requests.

  amplification  60 connections without valid credentials announce 4 MiB
                 bodies and send them: refused from the headers, nothing
                 held (the ledger's VmRSS stays put), real requests work
  budget         40 connections that pass every check the headers allow
                 (a known node, a fresh nonce) send 4 MiB bodies slowly:
                 no more than --max-body-total (64 MiB) is held, the rest
                 get 503 with Retry-After, and the budget comes back
  chunked        a chunked body takes its budget as it grows
  slowloris      300 sockets from one address trickle a byte a second:
                 /healthz, asked from 127.0.0.2 every 0.5 s, always answers
  deadline       requests trickled a byte a second (in the request line,
                 the headers, the body) are cut at --request-deadline

Bounded: about 30 s.
"""

import json
import os
import re
import secrets
import selectors
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ledgertest import LEDGERD, Tap, run_ledger, sign, tmpdir, usage  # noqa: E402

MIB = 1024 * 1024
BODY = 4 * MIB                 # the default --max-body: the largest body allowed
BUDGET = 64 * MIB              # the default --max-body-total

t = Tap()


def rss_kib(lg):
    with open("/proc/%d/status" % lg.proc.pid) as f:
        m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1))


def connect(lg, addr, timeout=5):
    return socket.create_connection(("127.0.0.1", lg.port), timeout=timeout,
                                    source_address=(addr, 0))


def head(target, headers, length=None, method="POST"):
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: x", "Content-Type: application/json"]
    lines += ["%s: %s" % kv for kv in headers.items()]
    if length is not None:
        lines.append("Content-Length: %d" % length)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(s, wait):
    """The status and head of an answer on s within wait seconds: (status,
    head bytes); (None, b"") when none came and the connection is still
    open; ("closed", …) when it was closed or reset without one."""
    s.settimeout(wait)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            c = s.recv(4096)
            if not c:
                break
            data += c
    except socket.timeout:
        if not data:
            return None, b""
    except OSError:
        pass
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(m.group(1)) if m else "closed"), data


def send_and_hold(lg, addr, hdr, body_len, out, i):
    """Sends the head and all but the last byte of the body, then waits
    briefly for an answer; keeps the socket open (out[i] = (outcome, head,
    socket)).  outcome: "held" (the ledger took the body and waits for the
    rest), an HTTP status, or "closed"."""
    s = None
    try:
        s = connect(lg, addr, timeout=20)
        s.sendall(hdr)
        chunk = b"x" * 65536
        left = body_len - 1
        try:
            while left > 0:
                n = s.send(chunk[:min(left, len(chunk))])
                left -= n
        except OSError:
            pass   # refused: the ledger closed without reading the body
        status, data = read_answer(s, 2)
        out[i] = ("held" if status is None else status, data, s)
    except OSError as e:
        out[i] = ("error %r" % e, b"", s)


def attack(lg, heads, addrs, body_len):
    out = [None] * len(heads)
    ths = [threading.Thread(target=send_and_hold,
                            args=(lg, addrs[i % len(addrs)], h, body_len, out, i))
           for i, h in enumerate(heads)]
    [th.start() for th in ths]
    [th.join() for th in ths]
    return out


def close_all(out):
    for o in out:
        if o and o[2]:
            o[2].close()


def warm_up(lg, make_heads, addrs):
    """The same connections with 10-byte bodies, closed again: what the
    ledger needs to answer them anyway (threads, database connections, and
    under ASan its allocator caches and quarantine) is then in place, so
    the VmRSS growth measured next is what the bodies cost."""
    close_all(attack(lg, make_heads(10), addrs, 10))
    time.sleep(0.5)


def batch_ok(lg, rid):
    r = lg.batch([usage(rid)])
    return r.status == 200 and r.json()["accepted"] == [rid], r


def fake_signed(node="node-a"):
    """Headers that pass every check but the signature itself."""
    return {"X-Meter-Node": node, "X-Meter-Time": str(int(time.time())),
            "X-Meter-Nonce": secrets.token_hex(16), "X-Meter-Signature": "ab" * 32}


# -------------------------------------------------------- amplification --

def test_amplification(lg):
    """Bodies of strangers are refused from the headers, never buffered."""
    kinds = [
        ("POST", "/v1/usage/batch", lambda: {}),                            # anonymous
        ("POST", "/v1/usage/batch", lambda: fake_signed("no-such-node")),  # unknown node
        ("POST", "/v1/usage/batch",
         lambda: dict(fake_signed(), **{"X-Meter-Time": "1000"})),         # stale time
        ("POST", "/v1/packs", lambda: {"Authorization": "Bearer " + "0" * 64}),  # wrong token
        ("POST", "/v1/packs", lambda: {}),                                  # anonymous admin
        ("POST", "/v1/usage/batch",
         lambda: {"Authorization": "Bearer " + lg.admin_token}),           # admin as node
        ("GET", "/healthz", lambda: {}),                                    # a body on a GET
    ]
    def make_heads(length):
        heads = []
        for i in range(60):
            method, target, hdrs = kinds[i % len(kinds)]
            heads.append(head(target, hdrs(), length, method))
        return heads
    addrs = ["127.0.0.%d" % a for a in range(10, 15)]     # 12 per address
    warm_up(lg, make_heads, addrs)
    before = rss_kib(lg)
    out = attack(lg, make_heads(BODY), addrs, BODY)
    grew = rss_kib(lg) - before
    held = [o[0] for o in out if o[0] == "held"]
    refused = [o[0] for o in out if o[0] in (400, 401, 403, "closed")]
    t.eq(len(held), 0, "60 connections without credentials, 4 MiB bodies each: none is held")
    t.ok(len(refused) == 60, "…each refused (401/403, 400 for a GET; or closed unread)",
         sorted(set(str(o[0]) for o in out)))
    t.ok(grew < 40 * 1024, "…and the ledger's memory stays put (VmRSS grew %d KiB, "
         "under 40 MiB; holding them would take 240 MiB)" % grew, grew)
    ok, r = batch_ok(lg, "a-u1")
    t.ok(ok, "meanwhile a signed batch is accepted", r)
    r = lg.admin("GET", "/v1/packs")
    t.ok(r.status == 200, "…and an admin request answered", r)
    close_all(out)


# ---------------------------------------------------------------- budget --

def test_budget(lg):
    """Credentials that pass the header checks still cannot make the
    ledger hold more than --max-body-total."""
    n = 40

    def make_heads(length):
        return [head("/v1/usage/batch", fake_signed(), length) for _ in range(n)]
    addrs = ["127.0.0.%d" % a for a in range(20, 24)]     # 10 per address
    warm_up(lg, make_heads, addrs)
    before = rss_kib(lg)
    out = attack(lg, make_heads(BODY), addrs, BODY)
    grew = rss_kib(lg) - before
    held = [o for o in out if o[0] == "held"]
    busy = [o for o in out if o[0] == 503 and b"\r\nRetry-After: " in o[1]]
    t.ok(len(held) <= BUDGET // BODY, "40 slow 4 MiB bodies with plausible headers: at most "
         "%d held (the 64 MiB budget)" % (BUDGET // BODY), len(held))
    t.ok(len(held) + len(busy) == n, "…the others refused from the headers with 503 and "
         "Retry-After", sorted(set(str(o[0]) for o in out)))
    t.ok(grew < (64 + 40) * 1024, "…memory held is about the budget (VmRSS grew %d KiB, "
         "under 104 MiB; all of them would be 160 MiB)" % grew, grew)
    r = lg.batch([usage("a-u2")])
    t.ok(r.status == 503 and r.headers.get("Retry-After") == "1",
         "a batch while the budget is spent: 503 with Retry-After (the node retries)", r)
    r = lg.request("GET", "/healthz")
    t.ok(r.status == 200, "…/healthz (no body) still answers", r)
    close_all(out)
    deadline = time.time() + 10
    ok, r = False, None
    while not ok and time.time() < deadline:
        ok, r = batch_ok(lg, "a-u3")
        if not ok:
            time.sleep(0.2)
    t.ok(ok, "once the slow bodies are gone the budget is back: the batch is accepted", r)


# -------------------------------------------------------------- slowloris --

class Trickler(threading.Thread):
    """Keeps sockets that each send a byte a second until stopped.  spec:
    a list of (source address, first bytes, trickled bytes); reconnect: a
    socket the ledger closed is opened again a second later."""

    def __init__(self, lg, spec, reconnect):
        super().__init__(daemon=True)
        self.lg, self.spec, self.reconnect = lg, spec, reconnect
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.socks = [None] * len(spec)
        self.opened = [None] * len(spec)      # when the current socket opened
        self.lived = []                        # (opened, closed by the ledger) per socket
        self.sent = [0] * len(spec)

    def open(self, i):
        addr, first, _ = self.spec[i]
        try:
            s = connect(self.lg, addr, timeout=2)
            s.sendall(first)
            s.setblocking(False)
        except OSError:
            return
        self.socks[i], self.opened[i], self.sent[i] = s, time.time(), 0

    def closed(self, i):
        with self.lock:
            self.lived.append((self.opened[i], time.time()))
        self.socks[i].close()
        self.socks[i] = None

    def open_count(self, older_than=0):
        """Sockets open, those opened more than older_than seconds ago."""
        now = time.time()
        return sum(1 for s, o in zip(self.socks, self.opened)
                   if s is not None and now - o >= older_than)

    def run(self):
        for i in range(len(self.spec)):
            self.open(i)
        while not self.stop.wait(1.0):
            sel = selectors.DefaultSelector()
            for i, s in enumerate(self.socks):
                if s is not None:
                    sel.register(s, selectors.EVENT_READ, i)
            for key, _ in sel.select(0):
                # closed, reset or answered (an error status): the ledger
                # ended this request
                self.closed(key.data)
            sel.close()
            for i, s in enumerate(self.socks):
                if s is None:
                    if self.reconnect:
                        self.open(i)
                    continue
                rest = self.spec[i][2]
                try:
                    s.send(rest[self.sent[i] % len(rest):][:1])
                    self.sent[i] += 1
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed(i)

    def finish(self):
        self.stop.set()
        self.join(10)
        for s in self.socks:
            if s is not None:
                s.close()


def probe_healthz(lg):
    """/healthz from 127.0.0.2: True when it answered 200 within 3 s."""
    try:
        s = connect(lg, "127.0.0.2", timeout=3)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status, _ = read_answer(s, 3)
            return status == 200
        finally:
            s.close()
    except OSError:
        return False


def test_slowloris(lg):
    """300 trickling sockets from one host do not make /healthz unreachable."""
    slow = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    spec = [("127.0.0.1", slow, b"X-Slow: " + b"a" * 4000)] * 300
    tr = Trickler(lg, spec, reconnect=True)
    tr.start()
    time.sleep(1.5)
    answered, probes, most = 0, 0, 0
    end = time.time() + 10
    while time.time() < end:
        probes += 1
        answered += probe_healthz(lg)
        most = max(most, tr.open_count(older_than=2))
        time.sleep(0.5)
    tr.finish()
    # sockets refused by the per-IP limit are closed at once; those open for
    # 2 s are being served
    t.ok(most >= 16, "the attack is under way: the ledger served %d of the trickling sockets "
         "at once" % most, most)
    t.eq(answered, probes, "300 sockets trickling a byte a second: /healthz from another "
         "address answered every time (%d probes in 10 s)" % probes)


def test_deadline(lg):
    """Requests that trickle in are cut at --request-deadline (3 s here),
    wherever they trickle: the request line, the headers, the body."""
    lg.stop()
    lg.start("--request-deadline", "3")
    line = ("127.0.0.30", b"GET /hea", b"lthz HTTP/1.1\r\n" + b"a" * 100)
    header = ("127.0.0.31", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Slow: " + b"a" * 100)
    spec = [line] * 5 + [header] * 10
    spec += [("127.0.0.32", head("/v1/usage/batch", fake_signed(), 1000),
              b'{"node":"node-a","records":[' + b" " * 1000) for _ in range(10)]
    tr = Trickler(lg, spec, reconnect=False)
    tr.start()
    time.sleep(1.5)
    started = tr.open_count()
    time.sleep(8.5)
    tr.finish()
    t.eq(started, len(spec), "25 trickling requests accepted (under the per-IP limit)")
    t.eq(tr.open_count(), 0, "…none of them still open 10 s later (deadline 3 s; the idle "
         "timeout alone would have kept them)")
    t.eq(len(tr.lived), len(spec), "…each closed by the ledger")
    t.ok("whose request had not arrived after 3 s" in lg.log_text(),
         "…which says so in its log", lg.log_text()[-1500:])
    r = lg.request("GET", "/healthz")
    t.ok(r.status == 200, "the ledger still answers", r)


def test_chunked_budget(lg):
    """A chunked body (no announced size) takes its budget as it grows: past
    the budget its connection is closed; within it, it is read."""
    lg.stop()
    lg.start("--max-body", "65536", "--max-body-total", "65536")
    hog = connect(lg, "127.0.0.40")
    hog.sendall(head("/v1/usage/batch", fake_signed(), 65536) + b" " * 1000)
    time.sleep(0.5)   # its 64 KiB are reserved: the budget is spent
    body = json.dumps({"node": "node-a", "records": [usage("a-u4")]}).encode()

    def chunked():
        h = sign(lg.secrets["node-a"], "POST", "/v1/usage/batch", body)
        h["Transfer-Encoding"] = "chunked"
        data = head("/v1/usage/batch", h) + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        s = connect(lg, "127.0.0.41")
        try:
            s.sendall(data)
            return read_answer(s, 5)
        finally:
            s.close()
    status, _ = chunked()
    t.eq(status, "closed", "a chunked body while the budget is spent: the connection is closed")
    hog.close()
    time.sleep(0.5)
    status, ans = chunked()
    t.eq(status, 200, "…and read once there is room")
    t.ok("max-body-total" in lg.log_text(), "…the log names the budget")


def test_options(lg):
    for args, word in ((["--max-body-total", "1000"], "max-body-total"),
                       (["--max-body", "8192", "--max-body-total", "4096"], "max-body-total"),
                       (["--max-connections-per-ip", "0"], "max-connections-per-ip"),
                       (["--max-connections-per-ip", "257"], "max-connections-per-ip"),
                       (["--request-deadline", "0"], "request-deadline")):
        rc, out, err = lg.cli(*(args + ["migrate"]))
        t.ok(rc == 2 and err.count("\n") == 1 and word in err,
             "%s: a one-line usage error" % " ".join(args), err)


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("sqlite", "pg"):
        print("usage: test_limits.py sqlite|pg", file=sys.stderr)
        sys.exit(2)
    backend = sys.argv[1]
    if not os.access(LEDGERD, os.X_OK):
        print("Bail out! no meter-ledgerd at %s (make ledger)" % LEDGERD)
        sys.exit(1)
    print("# backend %s, %s" % (backend, LEDGERD))
    tmp = tmpdir("ledger-limits.")

    def cases(lg):
        lg.setup()
        test_options(lg)
        lg.start()
        test_amplification(lg)
        test_budget(lg)
        test_slowloris(lg)
        test_deadline(lg)
        test_chunked_budget(lg)

    run_ledger(t, backend, tmp, cases)


if __name__ == "__main__":
    main()
