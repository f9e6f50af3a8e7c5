#!/usr/bin/env python3
"""fake_ledger.py — a loopback stand-in for meter-ledgerd, for the sync
client's smoke tests (tests/sync/*.sh).  Not a test itself.

It speaks the node half of sync/PROTOCOL.md with an independent
implementation of the signature check (Python hmac/hashlib), stores record
ids exactly once, and misbehaves on purpose as a script says.

    fake_ledger.py DIR

DIR/secret      the node secret (required)
DIR/script      optional: one fault per line, consumed by successive
                POST /v1/usage/batch requests; when empty, requests are
                served normally.  Faults:
                  ok             serve normally
                  500 | 503      answer that status with an error body
                  429 N          429 with Retry-After: N
                  drop           close the connection without an answer
                  garbage        200 with a body that is not JSON
                  bogus          200 listing an id that was not sent
                  silent         200 that lists no id at all
                  store500       store the records, then answer 500 (the
                                 answer is lost: a retry must get duplicates)
                  delay N        sleep N seconds, then serve normally
DIR/config.json optional: {"bearer": bool, "max_records": N,
                "reject_job": "substring", "node": "name"}
DIR/packs.json  optional: the answer to GET /v1/nodes/{node}/packs
DIR/cert.pem, DIR/key.pem  optional: serve HTTPS with this certificate
Writes DIR/port (when listening) and DIR/state.json after every request:
{"records": {id: record}, "stores": {id: times stored}, "requests": [...]}.
"""
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIR = sys.argv[1]
LOCK = threading.Lock()
STATE = {"records": {}, "stores": {}, "requests": [], "nonces": []}
SEEN_NONCES = set()


def read(name, default=None):
    try:
        with open(os.path.join(DIR, name)) as f:
            return f.read()
    except FileNotFoundError:
        return default


def config():
    return json.loads(read("config.json", "{}"))


def next_fault():
    path = os.path.join(DIR, "script")
    with LOCK:
        lines = (read("script", "") or "").splitlines()
        lines = [l for l in lines if l.strip()]
        if not lines:
            return ["ok"]
        with open(path, "w") as f:
            f.write("".join(l + "\n" for l in lines[1:]))
        return lines[0].split()


def save():
    tmp = os.path.join(DIR, "state.json.tmp")
    with open(tmp, "w") as f:
        json.dump(STATE, f)
    os.replace(tmp, os.path.join(DIR, "state.json"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, status, obj, extra=None):
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, code, msg, extra=None):
        self.send_json(status, {"error": {"code": code, "message": msg}}, extra)

    def authenticate(self, body):
        """None when fine, else (status, code, message)."""
        secret = read("secret").strip()
        cfg = config()
        node = self.headers.get("X-Meter-Node", "")
        if cfg.get("node") and node != cfg["node"]:
            return (403, "forbidden", "unknown node %s" % node)
        if cfg.get("bearer"):
            if self.headers.get("Authorization", "") != "Bearer " + secret:
                return (401, "unauthorized", "bad bearer token")
            return None
        t, nonce, sig = (self.headers.get(h, "") for h in
                         ("X-Meter-Time", "X-Meter-Nonce", "X-Meter-Signature"))
        if not t.isdigit() or abs(int(t) - time.time()) > 300:
            return (401, "unauthorized", "time outside the window")
        if not (16 <= len(nonce) <= 64) or any(c not in "0123456789abcdefABCDEF" for c in nonce):
            return (401, "unauthorized", "bad nonce")
        sts = "\n".join([self.command, self.path, t, nonce,
                         hashlib.sha256(body).hexdigest()])
        want = hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig.lower()):
            return (401, "unauthorized", "bad signature")
        with LOCK:
            if nonce in SEEN_NONCES:
                return (401, "unauthorized", "replayed nonce")
            SEEN_NONCES.add(nonce)
        return None

    def note(self, what):
        with LOCK:
            STATE["requests"].append(what)
            save()

    def do_GET(self):
        bad = self.authenticate(b"")
        if bad:
            self.note({"method": "GET", "status": bad[0]})
            return self.error(*bad)
        node = config().get("node") or self.headers.get("X-Meter-Node")
        if self.path != "/v1/nodes/%s/packs" % node:
            self.note({"method": "GET", "status": 404})
            return self.error(404, "not_found", "no such path " + self.path)
        self.note({"method": "GET", "status": 200})
        self.send_json(200, json.loads(read("packs.json", '{"packs": []}')))

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        bad = self.authenticate(body)
        if bad:
            self.note({"method": "POST", "status": bad[0]})
            return self.error(*bad)
        if self.path != "/v1/usage/batch":
            return self.error(404, "not_found", "no such path")
        if self.headers.get("Content-Type") != "application/json":
            return self.error(415, "unsupported_media_type", "JSON only")
        fault = next_fault()
        kind = fault[0]
        try:
            batch = json.loads(body)
            records = batch["records"]
        except (ValueError, KeyError, TypeError):
            return self.error(400, "bad_request", "malformed batch")
        cfg = config()
        self.note({"method": "POST", "fault": kind, "records": len(records),
                   "bytes": len(body)})
        if len(records) > cfg.get("max_records", 1000):
            return self.error(413, "too_large", "at most %d records" % cfg["max_records"])
        if kind in ("500", "503"):
            return self.error(int(kind), "internal" if kind == "500" else "unavailable",
                              "injected failure", {"Retry-After": "1"} if kind == "503" else None)
        if kind == "429":
            return self.error(429, "rate_limited", "slow down", {"Retry-After": fault[1]})
        if kind == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if kind == "garbage":
            return self.send_json(200, b"<html>proxy error</html>")
        if kind == "bogus":
            return self.send_json(200, {"accepted": ["zz-not-sent"], "duplicates": [],
                                        "rejected": []})
        if kind == "silent":
            return self.send_json(200, {"accepted": [], "duplicates": [], "rejected": []})
        if kind == "delay":
            time.sleep(float(fault[1]))
        answer = {"accepted": [], "duplicates": [], "rejected": []}
        with LOCK:
            for r in records:
                rid = r.get("id")
                if cfg.get("reject_job") and cfg["reject_job"] in r.get("job", ""):
                    answer["rejected"].append({"id": rid, "reason": "usage.job: refused by test"})
                elif rid in STATE["records"]:
                    answer["duplicates"].append(rid)
                else:
                    STATE["records"][rid] = r
                    STATE["stores"][rid] = STATE["stores"].get(rid, 0) + 1
                    answer["accepted"].append(rid)
            save()
        if kind == "store500":
            return self.error(500, "internal", "stored, but the answer is lost")
        self.send_json(200, answer)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass   # a client that timed out and left: expected in these tests


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    cert = os.path.join(DIR, "cert.pem")
    if os.path.exists(cert):
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, os.path.join(DIR, "key.pem"))
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    save()
    tmp = os.path.join(DIR, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, os.path.join(DIR, "port"))
    srv.serve_forever()


if __name__ == "__main__":
    main()
