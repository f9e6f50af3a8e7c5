#!/usr/bin/env python3
"""test_http.py BACKEND — meter-ledgerd over HTTP on loopback (TAP).

BACKEND is sqlite or pg (a fresh PostgreSQL database; no PostgreSQL is a
failure).  Runs the real daemon ($LEDGERD) with the test clock METER_NOW
fixed (billing rules: refund window, status); requests are signed with the
real clock, as nodes do.  Covers: the CLI, admin and node authentication
(unsigned, bad signature, tampered body, replay, expired, unknown and wrong
node → 401/403 and nothing stored), ingest exactly once, pack
administration and its rules, usage queries, the audit log, limits (413)
and malformed bodies (400/415, never a crash), /healthz and /metrics, the
config file, and SIGTERM with a request in flight.
"""

import json
import os
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ledgertest import (DAY_MS, LEDGERD, MIN_US, Ledger, Tap, deduction, run_ledger,  # noqa: E402
                        sign, tmpdir, usage)

T_NOW = 1773100800000          # 2026-03-10T00:00:00Z: the ledger's billing clock
ENV = {"METER_NOW": str(T_NOW)}

t = Tap()


def totals(lg):
    r = lg.admin("GET", "/v1/totals")
    return r.json()["totals"] if r.status == 200 else None


def record_count(lg):
    tot = totals(lg)
    return None if tot is None else sum(x["records"] for x in tot)


def raw_exchange(port, data, pause_after=None, rest=b"", timeout=10):
    """Sends raw bytes; returns the raw answer (b"" when the connection
    was closed or reset without one)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if pause_after:
            pause_after()
        if rest:
            s.sendall(rest)
        chunks = []
        while True:
            try:
                c = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not c:
                break
            chunks.append(c)
            if b"\r\n\r\n" in b"".join(chunks):
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                m = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if m and len(body) >= int(m[0].split(b":")[1]):
                    break
        return b"".join(chunks)
    finally:
        s.close()


def raw_status(answer):
    try:
        return int(answer.split(b" ", 2)[1])
    except Exception:
        return None


# ------------------------------------------------------------------ CLI --

def test_cli(lg):
    rc, out, err = lg.cli("--help")
    t.ok(rc == 0 and "meter-ledgerd" in out and "--pg" in out, "--help prints the usage")
    rc, out, err = lg.cli("--version")
    t.ok(rc == 0 and out.startswith("meter-ledgerd "), "--version")
    rc, out, err = lg.cli("--no-such-flag")
    t.ok(rc == 2 and out == "" and err.count("\n") == 1 and "--no-such-flag" in err,
         "an unknown flag: exit 2 and one line naming it", err)
    rc, out, err = lg.cli("--max-body", "12x")
    t.ok(rc == 2 and err.count("\n") == 1 and "max-body" in err, "a bad value: one line", err)
    rc, out, err = lg.cli("frobnicate")
    t.ok(rc == 2 and "unknown command" in err, "an unknown command: exit 2", err)
    rc, out, err = lg.cli("node", "add", "bad name!")
    t.ok(rc == 2 and err.count("\n") == 1, "a bad node name: exit 2, one line", err)
    rc, out, err = lg.cli("node", "add", "node-a")
    t.ok(rc == 1 and "already exists" in err and out == "", "node add twice: exit 1", err)
    rc, out, err = lg.cli("migrate")
    t.ok(rc == 0 and "schema version 3" in out, "migrate reports the version", out + err)
    conf = os.path.join(lg.tmp, "bad.conf")
    with open(conf, "w") as f:
        f.write("# comment\nlisten = 127.0.0.1:0\nfrobs = 3\n")
    rc, out, err = lg.cli("--config", conf, "migrate")
    t.ok(rc == 2 and "bad.conf:3" in err and "frobs" in err and err.count("\n") == 1,
         "an unknown config key names file and line", err)
    rc, out, err = lg.cli("--config", os.path.join(lg.tmp, "missing.conf"))
    t.ok(rc == 2 and "missing.conf" in err, "a missing config file", err)
    t.ok(len(lg.admin_token) == 64 and len(lg.secrets["node-a"]) == 64,
         "admin add and node add print 64-hex credentials")


# --------------------------------------------------------------- basics --

def test_basics(lg):
    r = lg.request("GET", "/healthz")
    t.ok(r.status == 200 and r.json().get("status") == "ok", "/healthz answers ok", r)
    t.eq(r.json().get("backend"), "postgresql" if lg.backend == "pg" else "sqlite",
         "/healthz names the backend")
    r = lg.request("GET", "/")
    t.ok(r.status == 200 and b"Resource packs" in r.body and b"Usage details" in r.body and
         r.headers.get("Content-Type", "").startswith("text/html"),
         "the console is served at /", r)
    t.ok("frame-ancestors 'none'" in r.headers.get("Content-Security-Policy", ""),
         "the console is sent with a content security policy")
    r = lg.request("GET", "/app.js")
    t.ok(r.status == 200 and b"sessionStorage" in r.body, "app.js is served")
    r = lg.request("GET", "/style.css")
    t.ok(r.status == 200 and "text/css" in r.headers.get("Content-Type", ""), "style.css is served")
    r = lg.request("GET", "/v1/nope")
    t.ok(r.status == 404 and r.error_code() == "not_found", "unknown path: 404 JSON error", r)
    r = lg.request("DELETE", "/v1/packs")
    t.ok(r.status == 405 and "GET" in r.headers.get("Allow", ""), "wrong method: 405 with Allow", r)


# ------------------------------------------------------- admin endpoints --

def test_admin_auth(lg):
    r = lg.request("GET", "/v1/packs")
    t.ok(r.status == 401 and r.error_code() == "unauthorized", "admin endpoint without a token: 401", r)
    r = lg.admin("GET", "/v1/packs", token="0" * 64)
    t.ok(r.status == 401, "a wrong admin token: 401", r)
    r = lg.admin("GET", "/v1/packs", token=lg.secrets["node-a"])
    t.ok(r.status == 403 and r.error_code() == "forbidden", "a node secret as admin token: 403", r)
    r = lg.node("GET", "/v1/packs")
    t.ok(r.status == 403, "a node-signed request on an admin endpoint: 403", r)
    r = lg.node("GET", "/v1/packs", secret="f" * 64)
    t.ok(r.status == 401, "a badly signed request on an admin endpoint: 401", r)
    r = lg.admin("POST", "/v1/packs", {"type": "general", "minutes": 10, "id": "pk-x"},
                 token="0" * 64)
    t.ok(r.status == 401, "buying with a wrong token: 401", r)
    r = lg.admin("GET", "/v1/packs/pk-x")
    t.ok(r.status == 404, "…and nothing was bought", r)


def test_packs(lg):
    start = T_NOW - 2 * DAY_MS
    r = lg.admin("POST", "/v1/packs", {"id": "pk-a", "type": "general", "minutes": 100,
                                       "start_ms": start, "node": "node-a"})
    t.ok(r.status == 201, "buy pk-a for node-a: 201", r)
    p = r.json() or {}
    t.eq((p.get("total_us"), p.get("remaining_us"), p.get("node"), p.get("status")),
         (100 * MIN_US, 100 * MIN_US, "node-a", "valid"), "pk-a as bought")
    t.eq((p.get("total_min"), p.get("remaining_min")), ("100.000", "100.000"),
         "minutes with 3 decimals")
    r = lg.admin("POST", "/v1/packs", {"id": "pk-t", "type": "tsc", "minutes": 50,
                                       "start_ms": start, "node": "node-a"})
    t.ok(r.status == 201, "buy pk-t (tsc) for node-a", r)
    r = lg.admin("POST", "/v1/packs", {"id": "pk-b", "type": "general", "minutes": 10,
                                       "start_ms": start, "node": "node-b"})
    t.ok(r.status == 201, "buy pk-b for node-b", r)
    r = lg.admin("POST", "/v1/packs", {"type": "general", "minutes": 5})
    t.ok(r.status == 201 and r.json()["id"].startswith("pk-20260310-") and
         r.json()["start_ms"] == T_NOW, "buy with a generated id, starting now", r)
    for bad, why in [({"type": "gold", "minutes": 1}, "unknown type"),
                     ({"type": "general", "minutes": 0}, "0 minutes"),
                     ({"type": "general", "minutes": "10"}, "minutes as a string"),
                     ({"type": "general", "minutes": 10 ** 8}, "too many minutes"),
                     ({"type": "general", "minutes": 1, "id": "bad id"}, "an id with a space"),
                     ({"type": "general", "minutes": 1, "start_ms": -5}, "a negative start")]:
        r = lg.admin("POST", "/v1/packs", bad)
        t.ok(r.status == 400 and r.error_code() == "bad_request", "buy refused: %s (400)" % why, r)
    r = lg.admin("POST", "/v1/packs", {"id": "pk-a", "type": "general", "minutes": 1})
    t.ok(r.status == 409 and r.error_code() == "conflict", "a taken id: 409", r)
    r = lg.admin("POST", "/v1/packs", {"type": "general", "minutes": 1, "node": "node-zz"})
    t.ok(r.status == 404, "buying for an unknown node: 404", r)

    # refund: day 5 included, day 6 not, never once used (METER_NOW = T_NOW)
    for pid, st in [("pk-r5", T_NOW - 5 * DAY_MS), ("pk-r6", T_NOW - 5 * DAY_MS - 1)]:
        lg.admin("POST", "/v1/packs", {"id": pid, "type": "general", "minutes": 10,
                                       "start_ms": st})
    r = lg.admin("POST", "/v1/packs/pk-r5/refund")
    t.ok(r.status == 200 and r.json()["status"] == "refunded",
         "refund at exactly start + 5 days: 200", r)
    r = lg.admin("POST", "/v1/packs/pk-r6/refund")
    t.ok(r.status == 422 and r.error_code() == "refused" and "5-day" in r.body.decode(),
         "refund 1 ms after the 5th day: 422", r)
    r = lg.admin("POST", "/v1/packs/pk-r5/refund")
    t.ok(r.status == 409, "refund twice: 409", r)
    r = lg.admin("POST", "/v1/packs/pk-zz/refund")
    t.ok(r.status == 404, "refund an unknown pack: 404", r)
    r = lg.admin("POST", "/v1/packs/pk-r6/refund", token="0" * 64)
    t.ok(r.status == 401, "refund without a valid token: 401", r)

    # freeze / unfreeze
    r = lg.admin("POST", "/v1/packs/pk-r6/freeze", {"reason": "test"})
    t.ok(r.status == 200 and r.json()["frozen"] is True and r.json()["status"] == "frozen",
         "freeze: 200, frozen", r)
    r = lg.admin("POST", "/v1/packs/pk-r6/freeze")
    t.ok(r.status == 409, "freeze a frozen pack: 409", r)
    r = lg.admin("POST", "/v1/packs/pk-r6/unfreeze")
    t.ok(r.status == 200 and r.json()["frozen"] is False, "unfreeze: 200", r)
    r = lg.admin("POST", "/v1/packs/pk-r5/freeze")
    t.ok(r.status == 422, "freeze a refunded pack: 422", r)
    r = lg.request("POST", "/v1/packs/pk-r6/freeze", b"not json",
                   {"Authorization": "Bearer " + lg.admin_token})
    t.ok(r.status == 400, "freeze with a body that is not JSON: 400", r)

    # assign: only while unused
    r = lg.admin("POST", "/v1/packs/pk-r6/assign", {"node": "node-b"})
    t.ok(r.status == 200 and r.json()["node"] == "node-b", "assign an unused pack: 200", r)
    r = lg.admin("POST", "/v1/packs/pk-r6/assign", {"node": "node-zz"})
    t.ok(r.status == 404, "assign to an unknown node: 404", r)
    r = lg.admin("POST", "/v1/packs/pk-r6/assign", {})
    t.ok(r.status == 400, "assign without a node: 400", r)
    r = lg.admin("GET", "/v1/packs/bad%20id")
    t.ok(r.status == 400, "an invalid pack id in the path: 400", r)

    # list and search
    r = lg.admin("GET", "/v1/packs?id=PK-R&type=general")
    ids = [p["id"] for p in r.json()["packs"]] if r.status == 200 else r
    # deduction order: pk-r6 started 1 ms earlier, so it ends first
    t.eq(ids, ["pk-r6", "pk-r5"], "search by id substring (case-insensitive) and type")
    r = lg.admin("GET", "/v1/packs?status=refunded")
    t.eq([p["id"] for p in r.json()["packs"]], ["pk-r5"], "filter by status")
    r = lg.admin("GET", "/v1/packs?node=node-a&type=tsc")
    t.eq([p["id"] for p in r.json()["packs"]], ["pk-t"], "filter by node and type")
    r = lg.admin("GET", "/v1/packs?status=sparkly")
    t.ok(r.status == 400, "an unknown status: 400", r)
    r = lg.admin("GET", "/v1/packs?type=gold")
    t.ok(r.status == 400, "an unknown type: 400", r)


# --------------------------------------------------------- node requests --

def test_ingest(lg):
    at = T_NOW + 3_600_000
    b1 = [usage("a-u1", at=at, dur=2 * MIN_US, billed=4 * MIN_US),
          deduction("a-d1", "pk-a", 4 * MIN_US, 100 * MIN_US, at=at),
          deduction("a-d2", None, MIN_US, 0, at=at),
          {"kind": "settlement", "id": "a-s1", "node": "node-a", "at_ms": at, "day": "2026-03-10",
           "class": "general", "ttype": "Standard.H264.HD", "deductible": True,
           "billed_us": MIN_US},
          {"kind": "pack_event", "id": "a-e1", "node": "node-a", "at_ms": at, "pack_id": "pk-a",
           "action": "purchase"}]
    r = lg.batch(b1)
    j = r.json() or {}
    t.ok(r.status == 200 and j.get("accepted") == ["a-u1", "a-d1", "a-d2", "a-s1", "a-e1"] and
         j.get("duplicates") == [] and j.get("rejected") == [], "a signed batch is accepted", r)
    r = lg.batch(b1)
    j = r.json() or {}
    t.ok(r.status == 200 and j.get("duplicates") == ["a-u1", "a-d1", "a-d2", "a-s1", "a-e1"] and
         j.get("accepted") == [], "the same batch again: all duplicates", r)
    p = lg.admin("GET", "/v1/packs/pk-a").json()
    t.eq((p["used_us"], p["remaining_us"], p["remaining_min"]),
         (4 * MIN_US, 96 * MIN_US, "96.000"), "pk-a charged once")

    bad = usage("a-u50", at=at)
    bad["width"] = "wide"
    b2 = [deduction("a-d3", "pk-a", MIN_US, 96 * MIN_US, at=at + 1000),
          deduction("a-d3", "pk-a", MIN_US, 96 * MIN_US, at=at + 1000),
          bad,
          usage("b-u9", node="node-b", at=at),
          deduction("a-d4", "pk-b", MIN_US, 10 * MIN_US, at=at),
          deduction("a-d5", "pk-t", MIN_US, 50 * MIN_US, at=at, cls="general"),
          {"kind": "teleport", "id": "a-k1", "node": "node-a", "at_ms": at},
          usage("a-u2", at=at + 2000, dur=MIN_US, billed=2 * MIN_US)]
    r = lg.batch(b2)
    j = r.json() or {}
    rej = {x["id"]: x["reason"] for x in j.get("rejected", [])}
    t.ok(r.status == 200 and j.get("accepted") == ["a-d3", "a-u2"] and j.get("duplicates") == [],
         "a mixed batch: the good records accepted, an in-batch copy listed once", r)
    t.eq(sorted(rej), ["a-d4", "a-d5", "a-k1", "a-u50", "b-u9"], "the bad ones rejected")
    t.ok("width" in rej.get("a-u50", ""), "…a malformed record with the field named", rej)
    t.ok("node-b" in rej.get("b-u9", ""), "…another node's record", rej)
    t.ok("not assigned" in rej.get("a-d4", ""), "…a deduction from another node's pack", rej)
    t.ok("class" in rej.get("a-d5", ""), "…a deduction of the wrong class", rej)
    t.ok("kind" in rej.get("a-k1", ""), "…an unknown kind", rej)
    r = lg.batch([usage("b-u9", node="node-b", at=at)], node="node-b")
    t.ok(r.status == 200 and r.json()["accepted"] == ["b-u9"],
         "a rejected id stays free for its real owner", r)
    r = lg.batch([])
    t.ok(r.status == 200 and r.json() == {"accepted": [], "duplicates": [], "rejected": []},
         "an empty batch", r)

    r = lg.node("GET", "/v1/nodes/node-a/packs")
    packs = {p["id"]: p for p in (r.json() or {}).get("packs", [])}
    t.ok(r.status == 200 and sorted(packs) == ["pk-a", "pk-t"], "node-a pulls its packs", r)
    pa = packs.get("pk-a", {})
    t.eq((pa.get("total_us"), pa.get("frozen"), pa.get("refunded_ms"), pa.get("type")),
         (100 * MIN_US, False, None, "general"), "…in the protocol's pack shape")
    r = lg.node("GET", "/v1/nodes/node-b/packs")
    t.ok(r.status == 403, "node-a reading node-b's packs: 403", r)
    r = lg.admin("POST", "/v1/packs/pk-a/assign", {"node": "node-b"})
    t.ok(r.status == 422, "reassigning a used pack: 422", r)
    r = lg.admin("POST", "/v1/packs/pk-a/refund")
    t.ok(r.status == 422 and "used" in r.body.decode(), "refunding a used pack: 422", r)


def test_node_auth(lg):
    """Every refused request changes nothing."""
    before = record_count(lg)
    recs = [usage("a-u101", at=T_NOW)]
    body = json.dumps({"node": "node-a", "records": recs}).encode()
    path = "/v1/usage/batch"
    now = int(time.time())
    sec = lg.secrets["node-a"]

    def post(headers, b=body):
        return lg.request("POST", path, b, headers)

    cases = []
    cases.append(("unsigned", post({}), 401))
    h = sign("0" * 64, "POST", path, body)
    cases.append(("signed with a wrong secret", post(h), 401))
    h = sign(sec, "POST", path, body)
    cases.append(("body changed after signing", post(h, body.replace(b"a-u101", b"a-u102")), 401))
    h = sign(sec, "POST", path + "?x=1", body)
    cases.append(("signed for another path", post(h), 401))
    h = sign(sec, "GET", path, body)
    cases.append(("signed for another method", post(h), 401))
    cases.append(("time 301 s in the past", post(sign(sec, "POST", path, body, t=now - 301)), 401))
    # the clock read now, not at the top: under load (ASan) the cases above
    # take seconds, and now + 301 would have drifted back into the window
    # (the exact 300/301 s edge is test_sync_protocol's, on proto_time_ok)
    cases.append(("time 310 s in the future",
                  post(sign(sec, "POST", path, body, t=int(time.time()) + 310)), 401))
    h = sign(sec, "POST", path, body, node="node-zz")
    cases.append(("an unknown node", post(h), 401))
    h = sign(sec, "POST", path, body, nonce="abc")
    cases.append(("a nonce too short", post(h), 401))
    h = sign(sec, "POST", path, body)
    h["X-Meter-Time"] = "soon"
    cases.append(("a time that is not a number", post(h), 401))
    h = sign(sec, "POST", path, body)
    h["X-Meter-Signature"] = "zz" * 32
    cases.append(("a signature that is not hex", post(h), 401))
    h = sign(sec, "POST", path, body)
    del h["X-Meter-Nonce"]
    cases.append(("a missing nonce header", post(h), 401))
    cases.append(("node-a's bearer secret without --allow-bearer",
                  post({"Authorization": "Bearer " + sec}), 401))
    cases.append(("an admin token on a node endpoint",
                  post({"Authorization": "Bearer " + lg.admin_token}), 403))
    body_b = json.dumps({"node": "node-b", "records": [usage("b-u103", node="node-b")]}).encode()
    cases.append(("node-a sending node-b's batch",
                  post(sign(sec, "POST", path, body_b), body_b), 403))
    for name, r, want in cases:
        t.ok(r.status == want and r.error_code() == ("unauthorized" if want == 401 else "forbidden"),
             "%s: %d" % (name, want), r)
    # replay: the very same request twice
    h = sign(sec, "POST", path, body)
    r1, r2 = post(h), post(h)
    t.ok(r1.status == 200 and r1.json()["accepted"] == ["a-u101"], "a signed request once: 200", r1)
    t.ok(r2.status == 401 and "replay" in r2.body.decode(), "the same request replayed: 401", r2)
    t.eq(record_count(lg), before + 1, "only the one good request stored anything")


def test_bearer(lg):
    """--allow-bearer: the node's secret as a bearer token (restarted)."""
    lg.stop()
    lg.start("--allow-bearer", env=ENV)
    sec = lg.secrets["node-b"]
    body = json.dumps({"node": "node-b", "records": [usage("b-u104", node="node-b")]}).encode()
    r = lg.request("POST", "/v1/usage/batch", body, {"Authorization": "Bearer " + sec})
    t.ok(r.status == 200 and r.json()["accepted"] == ["b-u104"], "--allow-bearer: a node token works", r)
    r = lg.request("POST", "/v1/usage/batch", body,
                   {"Authorization": "Bearer " + sec, "X-Meter-Node": "node-b"})
    t.ok(r.status == 200 and r.json()["duplicates"] == ["b-u104"], "…also with X-Meter-Node", r)
    r = lg.request("POST", "/v1/usage/batch", body,
                   {"Authorization": "Bearer " + lg.secrets["node-a"]})
    t.ok(r.status == 403, "…node-a's token cannot send node-b's batch", r)
    r = lg.request("POST", "/v1/usage/batch", body,
                   {"Authorization": "Bearer " + sec, "X-Meter-Node": "node-a"})
    t.ok(r.status == 401, "…a token that is not the named node's: 401", r)
    r = lg.request("POST", "/v1/usage/batch", body, {"Authorization": "Bearer " + "1" * 64})
    t.ok(r.status == 401, "…an unknown token: 401", r)
    lg.stop()
    lg.start(env=ENV)


# --------------------------------------------------------- bad bodies --

def test_bodies(lg):
    before = record_count(lg)
    path = "/v1/usage/batch"
    sec = lg.secrets["node-a"]

    def post_raw(body, ctype="application/json"):
        h = sign(sec, "POST", path, body)
        h["Content-Type"] = ctype
        return lg.request("POST", path, body, h)

    cases = [
        ("not JSON", post_raw(b"{nope"), 400),
        ("a JSON array", post_raw(b"[1,2]"), 400),
        ("no records member", post_raw(b'{"node":"node-a"}'), 400),
        ("records not an array", post_raw(b'{"node":"node-a","records":{}}'), 400),
        ("duplicate keys", post_raw(b'{"node":"node-a","node":"node-a","records":[]}'), 400),
        ("invalid UTF-8", post_raw(b'{"node":"node-a","records":["\xff\xfe"]}'), 400),
        ("a NUL byte", post_raw(b'{"node":"node-a",\x00"records":[]}'), 400),
        ("deeply nested", post_raw(b"[" * 100000 + b"]" * 100000), 400),
        ("binary noise", post_raw(os.urandom(3000)), 400),
        ("text/plain", post_raw(b'{"node":"node-a","records":[]}', "text/plain"), 415),
        ("no content type", lg.request("POST", path, b'{"node":"node-a","records":[]}',
                                       dict(sign(sec, "POST", path,
                                                 b'{"node":"node-a","records":[]}'),
                                            **{"Content-Type": ""})), 415),
    ]
    for name, r, want in cases:
        t.ok(r.status == want and r.json() and "error" in r.json(),
             "malformed body (%s): %d with a JSON error" % (name, want), r)
    many = {"node": "node-a", "records": [{}] * 1001}
    r = lg.node("POST", path, many)
    t.ok(r.status == 413 and r.error_code() == "too_large", "1001 records: 413", r)

    # Over --max-body (4 MiB): refused from the headers, the body never read.
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % (path, 5 * 1024 * 1024)).encode()
    ans = raw_exchange(lg.port, head, timeout=10)
    t.eq(raw_status(ans), 413, "a declared 5 MiB body: 413 before the body is sent")
    big = b'{"node":"node-a","records":[' + b'{"x":"' + b"a" * (5 * 1024 * 1024) + b'"}]}'
    try:
        r = post_raw(big)
        status = r.status
    except (BrokenPipeError, ConnectionResetError):
        status = "reset"   # the server may close before we finish writing
    t.ok(status in (413, "reset"), "a 5 MiB body sent anyway: 413 (or the connection closed)",
         status)
    # Chunked, over the limit: the connection is closed, the server lives.
    chunk = b"a" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(80)) + b"0\r\n\r\n"
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n" % path).encode()
    try:
        ans = raw_exchange(lg.port, head + body, timeout=10)
    except (BrokenPipeError, ConnectionResetError):
        ans = b""
    t.ok(raw_status(ans) in (None, 413), "a chunked body over the limit: closed", ans[:200])
    r = lg.request("GET", "/healthz")
    t.ok(r.status == 200, "the server still answers after all that", r)
    t.eq(record_count(lg), before, "no malformed or oversized body stored anything")


# ------------------------------------------------------- admin queries --

def test_queries(lg):
    r = lg.admin("GET", "/v1/usage/details?node=node-a&pack=pk-a")
    rows = r.json()["rows"] if r.status == 200 else []
    t.eq(len(rows), 1, "details: one row per day × pack × ttype")
    if rows:
        d = rows[0]
        t.eq((d["day"], d["pack_id"], d["type"], d["ttype"], d["used_us"], d["before_us"],
              d["after_us"], d["count"]),
             ("2026-03-10", "pk-a", "general", "Standard.H264.HD", 5 * MIN_US, 100 * MIN_US,
              95 * MIN_US, 2), "details of pk-a: used, before, after, count")
        t.eq((d["used_min"], d["before_min"], d["after_min"]), ("5.000", "100.000", "95.000"),
             "details in minutes with 3 decimals")
    r = lg.admin("GET", "/v1/usage/details?pack=-")
    rows = r.json()["rows"] if r.status == 200 else []
    t.ok(len(rows) == 1 and rows[0]["pack_id"] is None and rows[0]["before_us"] is None and
         rows[0]["used_us"] == MIN_US, "details of overage (pack=-)", r)
    r = lg.admin("GET", "/v1/usage/details?type=tsc")
    t.ok(r.status == 200 and r.json()["rows"] == [], "details filtered by type", r)
    r = lg.admin("GET", "/v1/usage/details?from_ms=%d" % (T_NOW + 2 * DAY_MS))
    t.ok(r.status == 200 and r.json()["rows"] == [], "details filtered by time", r)
    r = lg.admin("GET", "/v1/usage/details?from_ms=yesterday")
    t.ok(r.status == 400, "a bad time filter: 400", r)

    r = lg.admin("GET", "/v1/usage/records?node=node-a&limit=2")
    j = r.json() or {}
    ids = [x["id"] for x in j.get("records", [])]
    t.ok(r.status == 200 and len(ids) == 2 and j.get("next") == ids[-1], "records: first page", r)
    r = lg.admin("GET", "/v1/usage/records?node=node-a&limit=2&after=" + (ids[-1] if ids else "x"))
    j2 = r.json() or {}
    t.ok(r.status == 200 and [x["id"] for x in j2.get("records", [])] == ["a-u2"] and
         j2.get("next") is None, "records: last page", r)
    t.eq(ids, ["a-u101", "a-u1"], "records oldest first (a-u101 happened at T, a-u1 an hour later)")
    r = lg.admin("GET", "/v1/usage/records?limit=0")
    t.ok(r.status == 400, "limit 0: 400", r)

    tot = {x["node"]: x for x in totals(lg) or []}
    a = tot.get("node-a", {})
    t.eq((a.get("usage_count"), a.get("duration_us"), a.get("billed_us"), a.get("covered_us"),
          a.get("overage_us")),
         (3, 4 * MIN_US, 8 * MIN_US, 5 * MIN_US, MIN_US), "totals of node-a, exact")
    r = lg.admin("GET", "/v1/nodes")
    nodes = {n["name"]: n for n in (r.json() or {}).get("nodes", [])}
    t.ok(r.status == 200 and nodes.get("node-a", {}).get("last_seen_ms"), "nodes with last-seen", r)
    r = lg.admin("POST", "/v1/nodes", {"name": "node-c"})
    t.ok(r.status == 201 and len(r.json().get("secret", "")) == 64, "create a node over HTTP", r)
    r = lg.admin("POST", "/v1/nodes", {"name": "node-c"})
    t.ok(r.status == 409, "…twice: 409", r)
    r = lg.admin("POST", "/v1/nodes", {"name": "bad/name"})
    t.ok(r.status == 400, "…with a bad name: 400", r)

    r = lg.admin("GET", "/v1/audit")
    log = (r.json() or {}).get("audit", [])
    acts = [(a["admin"], a["action"], a["target"]) for a in log]
    t.ok(("alice", "pack.refund", "pk-r5") in acts and ("alice", "pack.freeze", "pk-r6") in acts
         and ("alice", "pack.purchase", "pk-a") in acts and ("alice", "node.add", "node-c") in acts
         and ("cli", "admin.add", "alice") in acts, "the audit log names who did what", acts)
    fr = [a for a in log if a["action"] == "pack.freeze"]
    t.ok(fr and fr[0]["body"] and "test" in fr[0]["body"] and fr[0]["at_ms"] == T_NOW,
         "…with the request body and time", fr)
    t.ok(not any(a["target"] == "pk-r6" and a["action"] == "pack.refund" for a in log),
         "refused actions are not in the audit log")


def test_hostile_node(lg):
    """Hardening findings 1, 2, 3 and 7 over HTTP: a node with valid
    credentials that sends what no honest node sends."""
    n0 = record_count(lg)
    r = lg.batch([usage("a-u9000"), {"no": "id"}])
    t.ok(r.status == 400 and "records[1].id" in r.body.decode(),
         "a record without an id fails the whole batch: 400 naming it", r)
    t.eq(record_count(lg), n0, "…and nothing of that batch is stored")

    # finding 1: node-b posts node-a's next id and an existing one
    r = lg.batch([usage("a-u9001", node="node-b"), usage("a-u1", node="node-b")], node="node-b")
    rej = {x["id"]: x["reason"] for x in (r.json() or {}).get("rejected", [])}
    t.ok(r.status == 200 and sorted(rej) == ["a-u1", "a-u9001"] and
         (r.json() or {}).get("duplicates") == [],
         "another node's ids are rejected, never duplicates", r)
    t.ok("namespace" in rej.get("a-u9001", ""), "…as outside node-b's namespace", rej)
    t.eq(rej.get("a-u1", "").replace("a-u1", "ID"), rej.get("a-u9001", "").replace("a-u9001", "ID"),
         "…with one answer whether the id exists or not")
    r = lg.batch([usage("a-u9001")])
    t.ok(r.status == 200 and r.json()["accepted"] == ["a-u9001"],
         "node-a's own record then lands (accepted, not a duplicate)", r)

    # finding 2: amounts bounded at decode, sums still answer
    big = 2 ** 63 - 1
    r = lg.batch([usage("a-u9002", billed=big), deduction("a-d9003", None, big, 0),
                  usage("a-u9004", dur=big)])
    rej = {x["id"]: x["reason"] for x in (r.json() or {}).get("rejected", [])}
    t.ok(r.status == 200 and "billed_us" in rej.get("a-u9002", "") and
         "amount_us" in rej.get("a-d9003", "") and "duration_us" in rej.get("a-u9004", ""),
         "INT64_MAX billed, overage and duration: rejected with the field named", rej)
    r = lg.admin("GET", "/v1/totals")
    t.ok(r.status == 200, "/v1/totals still answers", r)
    r = lg.admin("GET", "/v1/usage/details")
    t.ok(r.status == 200, "/v1/usage/details still answers", r)

    # finding 3: deductions checked against the ledger's balance of the pack
    p0 = lg.admin("GET", "/v1/packs/pk-a").json()
    rem = p0["remaining_us"]
    r = lg.batch([deduction("a-d9005", "pk-a", 9_200_000_000_000_000_000, rem),
                  deduction("a-d9006", "pk-a", MIN_US, rem + MIN_US),
                  deduction("a-d9007", "pk-a", rem + 1, rem)])
    rej = {x["id"]: x["reason"] for x in (r.json() or {}).get("rejected", [])}
    t.ok(r.status == 200 and sorted(rej) == ["a-d9005", "a-d9006", "a-d9007"],
         "a wrapping amount, a made-up balance and an overdraft: all rejected", rej)
    # (an overdraft with a true before_us has a negative after_us: the
    # decoder refuses it; the store's own check is in test_ledger_store)
    t.ok("balance" in rej.get("a-d9006", "") and "after_us" in rej.get("a-d9007", ""),
         "…each with its reason", rej)
    p1 = lg.admin("GET", "/v1/packs/pk-a").json()
    t.eq((p1["used_us"], p1["remaining_us"], p1["status"]),
         (p0["used_us"], rem, p0["status"]), "pk-a exactly as it was")


def test_accounts(lg):
    """Schema 3: every pack has an account ('default' unless bought for
    another), assigned packs are not pooled, and the account endpoints and
    filters answer (leases themselves: test_leases.py)."""
    p = lg.admin("GET", "/v1/packs/pk-a").json()
    t.eq((p.get("account"), p.get("pooled"), p.get("reserved_us"), p.get("free_us")),
         ("default", False, 0, p["remaining_us"]), "a pack answer carries account and pooled")
    r = lg.node("GET", "/v1/nodes/node-a/packs")
    t.ok(all(x.get("account") == "default" for x in r.json()["packs"]),
         "the node's pack list carries the account", r)
    r = lg.admin("POST", "/v1/accounts", {"name": "initech"})
    t.ok(r.status == 201, "POST /v1/accounts", r)
    r = lg.admin("POST", "/v1/accounts", {"name": "initech"}, token="0" * 64)
    t.ok(r.status == 401, "…needs an admin token", r)
    r = lg.node("POST", "/v1/accounts", {"name": "x"})
    t.ok(r.status == 403, "…a node may not create accounts", r)
    r = lg.admin("POST", "/v1/packs", {"id": "pk-i", "type": "general", "minutes": 3,
                                       "account": "initech", "node": "node-b"})
    t.ok(r.status == 201 and r.json()["account"] == "initech" and not r.json()["pooled"],
         "buy a pack of initech assigned to node-b", r)
    r = lg.admin("GET", "/v1/packs?account=initech")
    t.eq([x["id"] for x in r.json()["packs"]], ["pk-i"], "?account= on /v1/packs")
    r = lg.admin("GET", "/v1/accounts")
    names = [a["name"] for a in (r.json() or {}).get("accounts", [])]
    t.eq(names, ["default", "initech"], "GET /v1/accounts lists them by name")
    r = lg.admin("GET", "/v1/totals?account=initech")
    t.eq(r.json(), {"totals": []}, "?account= on /v1/totals: nothing of initech yet")
    r = lg.batch([usage("a-u8001") | {"account": "initech"},
                  usage("a-u8002") | {"account": "umbrella"}])
    rej = {x["id"]: x["reason"] for x in (r.json() or {}).get("rejected", [])}
    t.ok(r.status == 200 and r.json()["accepted"] == ["a-u8001"] and
         "account 'umbrella'" in rej.get("a-u8002", ""),
         "a record of an unknown account is rejected, naming it", r)
    r = lg.admin("GET", "/v1/usage/records?account=initech")
    t.eq([x["id"] for x in r.json()["records"]], ["a-u8001"], "?account= on /v1/usage/records")
    r = lg.admin("GET", "/v1/leases")
    t.eq((r.json() or {}).get("leases"), [], "GET /v1/leases: none")
    t.ok(isinstance((r.json() or {}).get("now_ms"), int), "…with the ledger's clock", r)
    r = lg.admin("GET", "/v1/verify")
    t.ok(r.status == 200 and r.json()["ok"] is True, "GET /v1/verify: clean", r)
    m = lg.metrics()
    t.ok('ffmeter_ledger_account_total_us{account="initech",class="general"}' in m,
         "/metrics has account labels")


def test_metrics(lg):
    m = lg.metrics()
    t.ok(m.get('ffmeter_ledger_records_total{kind="usage",result="accepted"}', 0) >= 1,
         "/metrics counts accepted usage records")
    t.ok(m.get('ffmeter_ledger_records_total{kind="deduction",result="rejected"}', 0) >= 1,
         "/metrics counts rejected deductions")
    t.ok(m.get('ffmeter_ledger_records_total{kind="invalid",result="rejected"}', 0) >= 1,
         "/metrics counts malformed records")
    t.ok(m.get('ffmeter_ledger_requests_total{code="401"}', 0) >= 1 and
         m.get('ffmeter_ledger_requests_total{code="200"}', 0) >= 1, "/metrics counts requests by code")
    t.ok(m.get('ffmeter_ledger_request_seconds_bucket{le="+Inf"}', 0) ==
         m.get("ffmeter_ledger_request_seconds_count", -1) > 0, "/metrics has a latency histogram")
    t.ok(m.get('ffmeter_ledger_node_last_seen_seconds{node="node-a"}', 0) > 1e9,
         "/metrics has node-a's last-seen time")
    t.ok(m.get("ffmeter_ledger_db_up") == 1, "/metrics: the database is up")


# ------------------------------------------------------------ shutdown --

def test_sigterm(lg):
    """SIGTERM while a request is half-sent: it is answered, then the
    daemon exits 0; meanwhile no new connection is served."""
    recs = [usage("a-u106", at=T_NOW), usage("a-u107", at=T_NOW)]
    body = json.dumps({"node": "node-a", "records": recs}).encode()
    h = sign(lg.secrets["node-a"], "POST", "/v1/usage/batch", body)
    head = "POST /v1/usage/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += "".join("%s: %s\r\n" % kv for kv in h.items())
    head += "Content-Length: %d\r\n\r\n" % len(body)
    half = len(body) // 2
    late = {}

    def wait_for(cond, what):
        deadline = time.time() + 20
        while time.time() < deadline:
            if cond():
                return True
            time.sleep(0.05)
        t.diag("timed out waiting for " + what)
        return False

    def terminate():
        # the half-sent request is in flight: /metrics counts it (and itself)
        wait_for(lambda: lg.metrics().get("ffmeter_ledger_inflight_requests", 0) >= 2,
                 "the request to be in flight")
        lg.proc.send_signal(signal.SIGTERM)
        # logged once it has stopped accepting (MHD_quiesce_daemon)
        wait_for(lambda: re.search(r"waiting for \d+ request", lg.log_text()),
                 "the daemon to stop accepting")
        try:
            s = socket.create_connection(("127.0.0.1", lg.port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            late["answer"] = s.recv(100)
            s.close()
        except OSError as e:
            late["answer"] = repr(e)
        late["alive"] = lg.proc.poll() is None

    ans = raw_exchange(lg.port, head.encode() + body[:half], pause_after=terminate,
                       rest=body[half:], timeout=20)
    t.ok(late.get("alive"), "the daemon waits for the request in flight")
    t.ok(not isinstance(late.get("answer"), bytes) or not late["answer"].startswith(b"HTTP"),
         "no new connection is served while stopping", late.get("answer"))
    t.eq(raw_status(ans), 200, "the request in flight is answered")
    t.ok(b'"accepted":["a-u106","a-u107"]' in ans, "…with its records accepted", ans[-300:])
    rc = lg.stop(timeout=30)
    t.eq(rc, 0, "then the daemon exits 0")
    t.ok("stopped" in lg.log_text(), "…and says it stopped")
    lg.start(env=ENV)
    r = lg.batch(recs)
    t.ok(r.status == 200 and r.json()["duplicates"] == ["a-u106", "a-u107"],
         "after a restart the records are there (duplicates)", r)


def test_config_file(lg):
    """Limits from a config file: --max-body and --max-records."""
    lg.stop()
    conf = os.path.join(lg.tmp, "ledger.conf")
    with open(conf, "w") as f:
        f.write("# test\nmax_body = 4096\nmax-records = 3\nverbose = yes\n")
    lg.start("--config", conf, env=ENV)
    r = lg.batch([usage("cfg-%d" % i) for i in range(4)])
    t.ok(r.status == 413, "max-records from the config file: 4 records get 413", r)
    r = lg.batch([usage("cfg-%d" % i, job="j" * 120) for i in range(3)])
    t.ok(r.status == 200, "3 records are fine", r)
    r = lg.node("POST", "/v1/usage/batch", raw=b'{"node":"node-a","records":[],"pad":"' +
                b"p" * 5000 + b'"}')
    t.ok(r.status == 413, "max-body from the config file: 5 KB get 413", r)
    lg.stop()
    lg.start(env=ENV)


def test_tls(lg):
    """--tls-cert/--tls-key: HTTPS with a self-signed certificate (openssl CLI)."""
    import ssl
    import subprocess
    import http.client
    key, crt = os.path.join(lg.tmp, "tls.key"), os.path.join(lg.tmp, "tls.crt")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", crt], capture_output=True, text=True)
    if not t.ok(r.returncode == 0, "make a test certificate with openssl", r.stderr):
        return
    lg.stop()
    lg.start("--tls-cert", crt, "--tls-key", key, env=ENV)
    ctx = ssl.create_default_context(cafile=crt)
    conn = http.client.HTTPSConnection("127.0.0.1", lg.port, context=ctx, timeout=10)
    try:
        body = json.dumps({"node": "node-a", "records": [usage("a-u105", at=T_NOW)]}).encode()
        h = sign(lg.secrets["node-a"], "POST", "/v1/usage/batch", body)
        h["Content-Type"] = "application/json"
        conn.request("POST", "/v1/usage/batch", body, h)
        resp = conn.getresponse()
        data = json.loads(resp.read())
        t.ok(resp.status == 200 and data["accepted"] == ["a-u105"],
             "HTTPS: a signed batch over TLS is accepted", data)
    finally:
        conn.close()
    try:
        c2 = http.client.HTTPConnection("127.0.0.1", lg.port, timeout=5)
        c2.request("GET", "/healthz")
        plain = c2.getresponse().status
    except Exception as e:
        plain = repr(e)
    t.ok(plain != 200, "HTTPS: plain HTTP is not served", plain)
    rc, out, err = lg.cli("--tls-cert", crt, "migrate")
    t.ok(rc == 2 and "tls-key" in err, "--tls-cert without --tls-key: usage error", err)
    rc = lg.stop()
    lg.start(env=ENV)


def test_two_instances(lg):
    """PostgreSQL: a second instance on the same database.  Nonces are
    shared (a request replayed to the other instance is refused) and the
    same batch sent to both at once is stored once."""
    import threading
    lg2 = Ledger("pg", lg.tmp, env=ENV, share=lg)
    lg2.start(env=ENV)
    try:
        body = json.dumps({"node": "node-a", "records": [usage("a-u6999", at=T_NOW)]}).encode()
        h = sign(lg.secrets["node-a"], "POST", "/v1/usage/batch", body)
        r1 = lg.request("POST", "/v1/usage/batch", body, h)
        r2 = lg2.request("POST", "/v1/usage/batch", body, h)
        t.ok(r1.status == 200 and r2.status == 401 and "replay" in r2.body.decode(),
             "pg: a request replayed to the other instance: 401", (r1, r2))
        bad = 0
        used0 = lg2.admin("GET", "/v1/packs/pk-a").json()["used_us"]
        for round_ in range(10):
            rem = lg2.admin("GET", "/v1/packs/pk-a").json()["remaining_us"]
            recs = [usage("a-u%d" % (7000 + 2 * round_), at=T_NOW),
                    deduction("a-d%d" % (7001 + 2 * round_), "pk-a", 1000, rem,
                              at=T_NOW + round_)]
            out = [None, None]

            def send(i, inst):
                out[i] = inst.batch(recs)
            ths = [threading.Thread(target=send, args=(i, x)) for i, x in enumerate((lg, lg2))]
            [th.start() for th in ths]
            [th.join() for th in ths]
            js = [o.json() if o.status == 200 else {} for o in out]
            acc = sorted(sum((j.get("accepted", []) for j in js), []))
            dup = sorted(sum((j.get("duplicates", []) for j in js), []))
            if acc != sorted(x["id"] for x in recs) or acc != dup:
                bad += 1
                t.diag("round %d: %r" % (round_, out))
        t.eq(bad, 0, "pg: the same batch to both instances at once: each record accepted once")
        p = lg2.admin("GET", "/v1/packs/pk-a").json()
        t.eq(p["used_us"], used0 + 10 * 1000, "pg: pk-a charged once per record")
    finally:
        lg2.stop()


def test_pg_connections(lg):
    """PostgreSQL: the ledger's connections are killed; the next requests
    reconnect without an error.  Then the database disappears: 503 with
    Retry-After, never a crash, and a clean exit."""
    import subprocess
    from ledgertest import pg_base_url
    for i in range(3):
        lg.request("GET", "/healthz")
    kill = subprocess.run(["psql", "-X", "-q", "-tA", pg_base_url(), "-c",
                           "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE datname = '%s' AND pid <> pg_backend_pid()" % lg.pg_name],
                          capture_output=True, text=True)
    t.ok(kill.returncode == 0 and int(kill.stdout.strip() or 0) >= 1,
         "pg: terminate the ledger's database connections", kill.stdout + kill.stderr)
    r = lg.batch([usage("a-u6998", at=T_NOW)])
    t.ok(r.status == 200 and r.json()["accepted"] == ["a-u6998"],
         "pg: the next batch reconnects and is accepted", r)
    r = lg.admin("GET", "/v1/packs/pk-a")
    t.ok(r.status == 200, "pg: admin reads work again", r)

    subprocess.run(["psql", "-X", "-q", pg_base_url(), "-c",
                    "DROP DATABASE %s WITH (FORCE)" % lg.pg_name], capture_output=True)
    r = lg.request("GET", "/healthz")
    t.ok(r.status == 503 and r.error_code() == "unavailable" and
         r.headers.get("Retry-After") == "1", "pg: database gone: /healthz 503 with Retry-After", r)
    r = lg.batch([usage("pg-gone-1", at=T_NOW)])
    t.ok(r.status == 503, "pg: database gone: a batch gets 503 (the node retries later)", r)
    r = lg.request("GET", "/metrics")
    t.ok(r.status == 200 and b"ffmeter_ledger_db_up 0" in r.body,
         "pg: database gone: /metrics still answers, db_up 0", r)
    rc = lg.stop()
    t.eq(rc, 0, "pg: and SIGTERM still exits 0")
    lg.pg_name = None   # dropped already


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("sqlite", "pg"):
        print("usage: test_http.py sqlite|pg", file=sys.stderr)
        sys.exit(2)
    backend = sys.argv[1]
    if not os.access(LEDGERD, os.X_OK):
        print("Bail out! no meter-ledgerd at %s (make ledger)" % LEDGERD)
        sys.exit(1)
    print("# backend %s, %s" % (backend, LEDGERD))
    tmp = tmpdir("ledger-http.")

    def cases(lg):
        lg.setup()
        test_cli(lg)
        lg.start(env=ENV)
        test_basics(lg)
        test_admin_auth(lg)
        test_packs(lg)
        test_ingest(lg)
        test_node_auth(lg)
        test_metrics(lg)          # per-process counters: before any restart
        test_bearer(lg)
        test_bodies(lg)
        test_queries(lg)
        test_hostile_node(lg)
        test_accounts(lg)
        test_config_file(lg)
        test_tls(lg)
        test_sigterm(lg)
        if backend == "pg":
            test_two_instances(lg)
            test_pg_connections(lg)   # last: it drops the database

    run_ledger(t, backend, tmp, cases, env=ENV)


if __name__ == "__main__":
    main()
