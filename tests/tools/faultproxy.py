#!/usr/bin/env python3
"""faultproxy.py — a small fault-injecting HTTP/1.1 proxy for the tests
(loopback only; python3 stdlib).  Not a test itself.

    faultproxy.py --target HOST:PORT | --target-file F  [options]

It accepts connections on --listen, reads each HTTP request whole
(Content-Length or chunked), forwards it to the target over a fresh
connection and relays the answer — unless a fault says otherwise.  The
target is re-read from --target-file for every request, so a test can
restart the server behind it on another port.

Faults, applied to requests whose "METHOD PATH" starts with --match
(default: every request); the others always pass:
  pass            forward and relay (the default)
  drop            read the request, close without an answer (FIN);
                  the target never sees it
  reset_req       forward the head and half of the body, then reset both
                  connections (RST): the target gets a truncated request
  reset_resp      forward, read the whole answer, relay its first half,
                  then reset the client (the target has acted on it)
  delay S         forward, then hold the answer S seconds before relaying
                  it (the client may have given up by then)
  stall S         forward the head and half of the body, wait S seconds,
                  then reset both (a request in flight for S seconds)
  status CODE [RETRY_AFTER]
                  answer CODE with a JSON error body, never forwarding
  lose CODE       forward (the target acts on it), answer CODE instead
  corrupt         forward with one byte of the body changed

Where the faults come from, first match wins:
  --script F      one fault per line, consumed by successive matching
                  requests (re-read every time: a test may append while the
                  proxy runs); when empty, --random, else --fault
  --random SPEC --seed N
                  each matching request draws a fault: SPEC is
                  "fault=probability,..." over drop, reset_req, reset_resp,
                  delay (--delay S), 500, 503, 429 (Retry-After 1), lose500;
                  the rest get --fault.  A fixed seed gives a fixed sequence.
  --fault 'FAULT [ARGS]'
                  the fault otherwise (default: pass), e.g. --fault 'delay 5'

Output:
  --port-file F   the listening port, written once listening
  --log F         one line per event: "N begin METHOD PATH FAULT" when a
                  request has been read and its fault chosen, "N held" when
                  an answer (delay) or half a request (stall) is being
                  held, "N end STATUS" (the target's status, or "-" when
                  it gave none) — tests wait on these lines
  --trace F       the same lines with the time in front, for debugging
  --capture DIR   DIR/N.req: each request as received, byte for byte
"""

import argparse
import json
import os
import random
import socket
import struct
import sys
import threading
import time

LOOPBACK = ("127.0.0.1", "::1", "localhost")
FAULTS = ("pass", "drop", "reset_req", "reset_resp", "delay", "stall", "status", "lose",
          "corrupt")
RANDOM_KEYS = ("drop", "reset_req", "reset_resp", "delay", "500", "503", "429", "lose500")
REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout", 408: "Request Timeout"}
CODES = {429: "rate_limited", 500: "internal", 503: "unavailable"}


def die(msg):
    sys.stderr.write("faultproxy: %s\n" % msg)
    sys.exit(2)


def host_port(text, what):
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit():
        die("%s must be HOST:PORT, not %r" % (what, text))
    if host not in LOOPBACK:
        die("%s: loopback only (127.0.0.1, ::1, localhost), not %r" % (what, host))
    return host, int(port)


class Proxy:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.n = 0
        self.rng = random.Random(args.seed)
        self.weights = []
        if args.random:
            total = 0.0
            for item in args.random.split(","):
                k, sep, v = item.partition("=")
                k = k.strip()
                if k not in RANDOM_KEYS or not sep:
                    die("--random: unknown fault %r (know %s)" % (k, ", ".join(RANDOM_KEYS)))
                try:
                    p = float(v)
                except ValueError:
                    die("--random: %s needs a probability" % k)
                total += p
                self.weights.append((k, p))
            if total > 1.0:
                die("--random: the probabilities add up to more than 1")
        self.logf = open(args.log, "a", buffering=1) if args.log else None
        self.tracef = open(args.trace, "a", buffering=1) if args.trace else None

    # ------------------------------------------------------------- setup --

    def target(self):
        if self.args.target_file:
            with open(self.args.target_file) as f:
                return host_port(f.read().strip(), "--target-file")
        return host_port(self.args.target, "--target")

    def log(self, n, text):
        with self.lock:
            if self.logf:
                self.logf.write("%d %s\n" % (n, text))
            if self.tracef:
                self.tracef.write("%.3f %d %s\n" % (time.time(), n, text))

    def next_fault(self):
        """The fault for the next matching request, as a word list."""
        with self.lock:
            if self.args.script:
                try:
                    with open(self.args.script) as f:
                        lines = [l.strip() for l in f if l.strip()]
                except FileNotFoundError:
                    lines = []
                if lines:
                    with open(self.args.script, "w") as f:
                        f.write("".join(l + "\n" for l in lines[1:]))
                    return lines[0].split()
            if self.weights:
                x = self.rng.random()
                for k, p in self.weights:
                    if x < p:
                        return {"delay": ["delay", "%g" % self.args.delay],
                                "500": ["status", "500"], "503": ["status", "503"],
                                "429": ["status", "429", "1"],
                                "lose500": ["lose", "500"]}.get(k, [k])
                    x -= p
            return self.args.fault.split()

    # ------------------------------------------------------------ serving --

    def serve(self):
        host, port = host_port(self.args.listen, "--listen")
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, port))
        ls.listen(64)
        port = ls.getsockname()[1]
        if self.args.port_file:
            tmp = self.args.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % port)
            os.replace(tmp, self.args.port_file)
        sys.stderr.write("faultproxy: listening on %s:%d\n" % (host, port))
        sys.stderr.flush()
        while True:
            c, _ = ls.accept()
            threading.Thread(target=self.client, args=(c,), daemon=True).start()

    def client(self, c):
        buf = bytearray()
        try:
            while True:
                req = read_message(c, buf, request=True)
                if req is None:
                    return
                if not self.one(c, req):
                    return
        except OSError:
            pass
        finally:
            close(c)

    def one(self, c, req):
        """Handles one request; False when the client connection is done."""
        with self.lock:
            self.n += 1
            n = self.n
        raw, head, body = req
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        method, path = (parts + ["", ""])[:2]
        if self.args.capture:
            with open(os.path.join(self.args.capture, "%d.req" % n), "wb") as f:
                f.write(raw)
        fault = (self.next_fault() if ("%s %s" % (method, path)).startswith(self.args.match)
                 else ["pass"])
        kind = fault[0]
        self.log(n, "begin %s %s %s" % (method, path, " ".join(fault)))
        if kind == "drop":
            self.log(n, "end -")
            return False
        if kind == "status":
            code = int(fault[1])
            extra = {"Retry-After": fault[2]} if len(fault) > 2 else {}
            send_error(c, code, "injected by faultproxy", extra)
            self.log(n, "end -")
            return True
        if kind == "corrupt" and body:
            i = len(body) // 2
            b = bytearray(raw)
            b[len(raw) - len(body) + i] ^= 0x01
            raw = bytes(b)

        try:
            u = socket.create_connection(self.target(), timeout=self.args.upstream_timeout)
        except OSError:
            # the target is down: the client sees its connection reset
            self.log(n, "end - (target down)")
            reset(c)
            return False
        try:
            if kind in ("reset_req", "stall"):
                cut = len(raw) - len(body) + len(body) // 2
                u.sendall(raw[:cut])
                if kind == "stall":
                    self.log(n, "held")
                    time.sleep(float(fault[1]))
                self.log(n, "end -")
                reset(u)
                reset(c)
                return False
            u.sendall(raw)
            ubuf = bytearray()
            resp = read_message(u, ubuf, request=False, head_only_for=method)
        except OSError:
            resp = None
        finally:
            close(u)
        if resp is None:
            self.log(n, "end - (no answer from the target)")
            reset(c)
            return False
        rraw, rhead, _ = resp
        status = rhead.split(b" ", 2)[1].decode("latin-1") if b" " in rhead else "?"
        if kind == "lose":
            send_error(c, int(fault[1]), "the answer was lost (faultproxy)", {})
            self.log(n, "end %s (lost)" % status)
            return True
        if kind == "reset_resp":
            c.sendall(rraw[:len(rraw) // 2])
            self.log(n, "end %s (reset)" % status)
            reset(c)
            return False
        if kind == "delay":
            self.log(n, "held")
            time.sleep(float(fault[1]))
        try:
            c.sendall(rraw)
        except OSError:
            self.log(n, "end %s (client gone)" % status)
            return False
        self.log(n, "end %s" % status)
        return b"connection: close" not in rhead.lower()


# ---------------------------------------------------------------- HTTP --

def recv_more(s, buf):
    chunk = s.recv(65536)
    if not chunk:
        return False
    buf += chunk
    return True


def read_message(s, buf, request, head_only_for=None):
    """Reads one HTTP message from s (leftovers stay in buf).  Returns
    (raw bytes, head, body) or None at a clean end of stream."""
    while b"\r\n\r\n" not in buf:
        if not recv_more(s, buf):
            if buf and not request:
                # an answer closed before its head ended: pass on what came
                raw = bytes(buf)
                buf.clear()
                return raw, raw, b""
            return None
    end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:end])
    del buf[:end]
    fields = {}
    for l in head.split(b"\r\n")[1:]:
        k, sep, v = l.partition(b":")
        if sep:
            fields[k.strip().lower()] = v.strip()
    no_body = not request and (head_only_for == "HEAD" or head[9:10] in (b"1",) or
                               head[9:12] in (b"204", b"304"))
    if no_body:
        body = b""
    elif b"chunked" in fields.get(b"transfer-encoding", b"").lower():
        body = read_chunked(s, buf)
    elif b"content-length" in fields:
        n = int(fields[b"content-length"])
        while len(buf) < n:
            if not recv_more(s, buf):
                raise OSError("short body")
        body = bytes(buf[:n])
        del buf[:n]
    elif request:
        body = b""
    else:
        while recv_more(s, buf):   # an answer delimited by the close
            pass
        body = bytes(buf)
        buf.clear()
    return head + body, head, body


def read_chunked(s, buf):
    out = bytearray()
    while True:
        while b"\r\n" not in buf:
            if not recv_more(s, buf):
                raise OSError("short chunked body")
        i = buf.index(b"\r\n")
        size = int(bytes(buf[:i]).split(b";")[0], 16)
        need = i + 2 + size + 2
        while len(buf) < need:
            if not recv_more(s, buf):
                raise OSError("short chunk")
        out += buf[:need]
        del buf[:need]
        if size == 0:
            # (trailers are not supported: none of our clients sends them)
            return bytes(out)


def send_error(c, code, msg, extra):
    body = json.dumps({"error": {"code": CODES.get(code, "internal"), "message": msg}}).encode()
    head = "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
        code, REASONS.get(code, "Error"), len(body))
    for k, v in extra.items():
        head += "%s: %s\r\n" % (k, v)
    c.sendall(head.encode() + b"\r\n" + body)


def reset(s):
    """Closes with RST instead of FIN."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    close(s)


def close(s):
    try:
        s.close()
    except OSError:
        pass


def main():
    ap = argparse.ArgumentParser(description="fault-injecting HTTP proxy (loopback only)")
    ap.add_argument("--listen", default="127.0.0.1:0")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--target")
    g.add_argument("--target-file")
    ap.add_argument("--match", default="", help='"METHOD PATH" prefix the faults apply to')
    ap.add_argument("--script")
    ap.add_argument("--random")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fault", default="pass", help="the fault when no script line or draw applies")
    ap.add_argument("--delay", type=float, default=3.0, help="seconds, for random delays")
    ap.add_argument("--upstream-timeout", type=float, default=60.0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--capture")
    ap.add_argument("--trace", help="the log's lines with a timestamp in front (debugging)")
    args = ap.parse_args()
    if args.target:
        host_port(args.target, "--target")
    if not args.fault.split() or args.fault.split()[0] not in FAULTS:
        die("--fault: one of %s" % ", ".join(FAULTS))
    try:
        Proxy(args).serve()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
