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
DIR/pool.json   optional: pooled packs the lease endpoints grant from,
                {"packs": [{"id", "account", "class", "total_us",
                "start_ms", "end_ms", "frozen"?}], "ttl_ms": 300000,
                "lease_max_us": N, "leases_per_node": N}; re-read at every
                request (packs are matched by id: their used and reserved
                minutes are the fake's state; a frozen pack grants
                nothing and a renewal voids its slices)
DIR/lease_script optional: one fault per line, consumed by successive
                POST /v1/leases… requests (the batch script is not
                touched): ok | 500 | drop (nothing stored, no answer) |
                lose (the request is served and stored, then the
                connection closes without the answer)
DIR/clock_ms    optional: milliseconds added to the fake's clock (lease
                expiry is the ledger's clock: a test ages leases with it)
DIR/cert.pem, DIR/key.pem  optional: serve HTTPS with this certificate
Writes DIR/port (when listening) and DIR/state.json after every request:
{"records": {id: record}, "stores": {id: times stored}, "requests": [...],
"leases": {id: LEASE (+ "grants": times reserved)}}; every request is
logged in order with its path (lease requests also with "lease" and the
batch with "ids").
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
STATE = {"records": {}, "stores": {}, "requests": [], "nonces": [], "leases": {}}
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


def now_ms():
    return int(time.time() * 1000) + int((read("clock_ms", "0") or "0").strip() or 0)


def next_lease_fault():
    path = os.path.join(DIR, "lease_script")
    with LOCK:
        lines = [l for l in (read("lease_script", "") or "").splitlines() if l.strip()]
        if not lines:
            return "ok"
        with open(path, "w") as f:
            f.write("".join(l + "\n" for l in lines[1:]))
        return lines[0].strip()


def pool():
    return json.loads(read("pool.json", '{"packs": []}'))


def expire_leases(now):
    """Open leases past their expiry resolve, once (the ledger's rule)."""
    for l in STATE["leases"].values():
        if l["state"] == "open" and l["expires_ms"] <= now:
            l["state"] = "expired"
            l["resolved_ms"] = l["expires_ms"]


def pack_used(pid):
    return sum(sl["posted_us"] for l in STATE["leases"].values()
               for sl in l["slices"] if sl["pack_id"] == pid)


def pack_reserved(pid, now):
    return sum(sl["granted_us"] - sl["posted_us"] for l in STATE["leases"].values()
               if l["state"] == "open" and l["expires_ms"] > now
               for sl in l["slices"] if sl["pack_id"] == pid and not sl["voided"])


def lease_view(l, now):
    v = {k: l[k] for k in ("id", "node", "account", "class", "state", "requested_us",
                           "granted_us", "created_ms", "expires_ms", "resolved_ms", "slices")}
    v["ttl_ms"] = max(0, l["expires_ms"] - now) if l["state"] == "open" else 0
    return {"lease": v}


def post_deductions(records):
    """Deductions from a lease post against its slice (the fake keeps no
    late-usage rules: enough for the client's tests)."""
    for r in records:
        if r.get("kind") != "deduction" or not r.get("lease_id"):
            continue
        l = STATE["leases"].get(r["lease_id"])
        for sl in (l["slices"] if l else []):
            if sl["pack_id"] == r.get("pack_id"):
                sl["posted_us"] = min(sl["granted_us"], sl["posted_us"] + r["amount_us"])


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
        if self.path.startswith("/v1/leases"):
            return self.lease_post(body)
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
        self.note({"method": "POST", "path": self.path, "fault": kind,
                   "records": len(records), "bytes": len(body),
                   "ids": [r.get("id") for r in records if isinstance(r, dict)]})
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
                    post_deductions([r])
            save()
        if kind == "store500":
            return self.error(500, "internal", "stored, but the answer is lost")
        self.send_json(200, answer)


    def lease_post(self, body):
        fault = next_lease_fault()
        note = {"method": "POST", "path": self.path, "fault": fault}
        if fault == "500":
            self.note(dict(note, status=500))
            return self.error(500, "internal", "injected failure")
        if fault == "drop":
            self.note(dict(note, status=0))
            self.close_connection = True
            self.connection.shutdown(2)
            return
        try:
            req = json.loads(body)
            assert isinstance(req, dict)
        except (ValueError, AssertionError):
            self.note(dict(note, status=400))
            return self.error(400, "bad_request", "body is not a JSON object")
        node = self.headers.get("X-Meter-Node", "")
        now = now_ms()
        parts = self.path.split("/")   # ['', 'v1', 'leases', id, action]
        with LOCK:
            expire_leases(now)
            if len(parts) == 3:
                status, answer = self.lease_request(req, node, now)
            elif len(parts) == 5 and parts[4] in ("renew", "release"):
                status, answer = self.lease_change(parts[3], parts[4], node, now)
            else:
                status, answer = 404, {"error": {"code": "not_found", "message": "no such path"}}
            note.update(status=status, lease=(req.get("id") if len(parts) == 3 else parts[3]),
                        want_us=req.get("want_us"), account=req.get("account"))
            STATE["requests"].append(note)
            save()
        if fault == "lose":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send_json(status, answer)

    def lease_request(self, req, node, now):
        lid = req.get("id")
        if not isinstance(lid, str) or "-l" not in lid:
            return 400, {"error": {"code": "bad_request", "message": "lease.id: not a lease id"}}
        old = STATE["leases"].get(lid)
        if old:
            if old["node"] != node:
                return 404, {"error": {"code": "not_found", "message": "no lease " + lid}}
            return 200, lease_view(old, now)
        cfg = pool()
        account, cls, want = req.get("account"), req.get("class"), req.get("want_us")
        packs = [p for p in cfg["packs"] if p["account"] == account]
        if not packs:
            return 404, {"error": {"code": "not_found", "message": "unknown account " + str(account)}}
        open_n = sum(1 for l in STATE["leases"].values() if l["node"] == node and l["state"] == "open")
        if open_n >= cfg.get("leases_per_node", 64):
            return 429, {"error": {"code": "rate_limited", "message": "too many open leases"}}
        want = min(int(want), cfg.get("lease_max_us", 600 * 60000000))
        slices = []
        for p in sorted((p for p in packs if p["class"] == cls and not p.get("frozen")
                         and p["start_ms"] <= now < p["end_ms"]),
                        key=lambda p: (p["end_ms"], p["start_ms"], p["id"])):
            free = p["total_us"] - pack_used(p["id"]) - pack_reserved(p["id"], now)
            take = min(free, want - sum(s["granted_us"] for s in slices))
            if take > 0:
                slices.append({"pack_id": p["id"], "granted_us": take, "posted_us": 0,
                               "start_ms": p["start_ms"], "end_ms": p["end_ms"], "voided": False})
        granted = sum(s["granted_us"] for s in slices)
        if granted == 0:
            return 422, {"error": {"code": "refused",
                                   "message": "account %s has no %s minutes to reserve" % (account, cls)}}
        ttl = cfg.get("ttl_ms", 300000)
        l = {"id": lid, "node": node, "account": account, "class": cls, "state": "open",
             "requested_us": int(req.get("want_us")), "granted_us": granted, "created_ms": now,
             "expires_ms": now + ttl, "resolved_ms": None, "slices": slices}
        STATE["leases"][lid] = l
        return 201, lease_view(l, now)

    def lease_change(self, lid, action, node, now):
        l = STATE["leases"].get(lid)
        if not l or l["node"] != node:
            return 404, {"error": {"code": "not_found", "message": "no lease " + lid}}
        if action == "renew":
            if l["state"] != "open":
                return 409, {"error": {"code": "conflict",
                                       "message": "lease %s is %s" % (lid, l["state"])}}
            cfg = pool()
            frozen = {p["id"] for p in cfg["packs"] if p.get("frozen")}
            for sl in l["slices"]:   # the unposted rest of a frozen pack goes back
                sl["voided"] = sl["voided"] or sl["pack_id"] in frozen
            l["expires_ms"] = now + cfg.get("ttl_ms", 300000)
            l["renewals"] = l.get("renewals", 0) + 1
        elif l["state"] == "open":
            l["state"] = "released"
            l["resolved_ms"] = now
        return 200, lease_view(l, now)


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
