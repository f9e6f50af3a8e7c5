#!/usr/bin/env python3
"""e2e.py — helpers of the end-to-end tests (tests/e2e/*.sh); not a test.

    e2e.py admin METHOD PATH [JSON]   an admin request; prints the status
                                      on the first line, then the body
    e2e.py reconcile NODE DB          the ledger's view of NODE against the
                                      node's own (meterctl --db DB): usage
                                      ids and fields, totals, usage details,
                                      packs, record count, an empty outbox;
                                      exit 1 and one line per difference
    e2e.py farm NODE=DB...            the ledger's farm-wide totals are the
                                      sum of these nodes, and no other node
                                      has records
    e2e.py snapshot FILE | same FILE [NODE...]
                                      everything the ledger shows an admin
                                      (totals, every usage record, details,
                                      packs, nodes with last-seen, the audit
                                      log), saved / compared (exit 1 and the
                                      differences when it changed; the
                                      NODEs' last-seen times may move)
    e2e.py ledger-ids NODE            the usage ids the ledger holds for NODE
    e2e.py replay FILE [--strip-auth] [--tamper] [--sign NODE SECRET_FILE]
                                      sends a request captured by
                                      faultproxy.py (--capture) straight to
                                      the ledger: as it was, without its
                                      X-Meter-* headers, with a billed
                                      amount changed after signing, or
                                      signed afresh as NODE; prints the
                                      status, then the body
    e2e.py hold-lock sqlite PATH | pg URL
                                      takes the ledger database's write
                                      lock (SQLite: BEGIN IMMEDIATE; PG:
                                      LOCK TABLE records), prints "locked",
                                      holds it until SIGTERM, rolls back
    e2e.py metric NAME                a value from /metrics (0 when absent)
    e2e.py metric-sum NAME LABEL      the sum of NAME{...} over the series
                                      whose labels contain LABEL

Environment: E2E_URL (the ledger, http://127.0.0.1:PORT), E2E_TOKEN (an
admin token), METERCTL.  Only the standard library; requests are signed
here with hmac/hashlib, independently of sync/protocol.c.
"""

import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections import Counter


def url():
    u = urllib.parse.urlsplit(os.environ["E2E_URL"])
    return u.hostname, u.port


def request(method, target, body=None, headers=None, timeout=30):
    host, port = url()
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        h = dict(headers or {})
        if body is not None:
            h.setdefault("Content-Type", "application/json")
        c.request(method, target, body=body, headers=h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def admin(method, target, obj=None):
    body = None if obj is None else (obj if isinstance(obj, bytes) else json.dumps(obj).encode())
    return request(method, target, body, {"Authorization": "Bearer " + os.environ["E2E_TOKEN"]})


def admin_json(target):
    st, body = admin("GET", target)
    if st != 200:
        raise RuntimeError("GET %s: HTTP %d %s" % (target, st, body[:300]))
    return json.loads(body)


def meterctl(db, *args):
    r = subprocess.run([os.environ["METERCTL"], "--db", db, "--format", "json"] + list(args),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("meterctl %s: exit %d: %s" % (" ".join(args), r.returncode,
                                                          r.stderr.strip()))
    return json.loads(r.stdout)


def ledger_records(node=None):
    out, after = [], None
    while True:
        q = {"limit": "1000"}
        if node:
            q["node"] = node
        if after:
            q["after"] = after
        j = admin_json("/v1/usage/records?" + urllib.parse.urlencode(q))
        out += j["records"]
        after = j.get("next")
        if not after:
            return out


def node_record_count(db):
    """Every record the node ever queued for the ledger (read-only)."""
    con = sqlite3.connect("file:%s?mode=ro" % urllib.parse.quote(db), uri=True, timeout=30)
    try:
        return sum(con.execute("SELECT count(*) FROM " + t).fetchone()[0]
                   for t in ("usage", "deductions", "settlements", "pack_events"))
    finally:
        con.close()


DETAIL_KEYS = ("day", "pack_id", "type", "ttype", "used_us", "before_us", "after_us", "count")
USAGE_KEYS = ("job", "output", "class", "ttype", "codec", "width", "height", "duration_us",
              "billed_us")


def reconcile(node, db):
    bad = []

    def diff(what, got, want):
        if got != want:
            bad.append("%s: ledger %r, node %r" % (what, got, want))

    st = meterctl(db, "sync", "status")
    diff("outbox depth (node)", 0, st["depth"])
    diff("quarantined (node)", 0, st["quarantined"])
    jobs = meterctl(db, "jobs")
    details = meterctl(db, "usage")
    packs = meterctl(db, "pack", "list")

    recs = ledger_records(node)
    ids = [r["id"] for r in recs]
    diff("usage records stored more than once", sorted(i for i, k in Counter(ids).items() if k > 1),
         [])
    mine, theirs = {j["id"]: j for j in jobs}, {r["id"]: r for r in recs}
    missing, extra = sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine))
    if missing:
        bad.append("usage records missing at the ledger: %d, e.g. %s" % (len(missing), missing[:5]))
    if extra:
        bad.append("usage records at the ledger the node does not have: %s" % extra[:5])
    for i in sorted(set(mine) & set(theirs)):
        for k in USAGE_KEYS:
            a, b = theirs[i].get(k), mine[i].get(k)
            if k == "codec":
                a, b = str(a).lower(), str(b).lower()
            if a != b:
                bad.append("usage %s: %s: ledger %r, node %r" % (i, k, theirs[i].get(k),
                                                                  mine[i].get(k)))

    tot = admin_json("/v1/totals?node=" + node)["totals"]
    t = tot[0] if tot else {}
    covered = sum(d["used_us"] for d in details if d["pack_id"] is not None)
    overage = sum(d["used_us"] for d in details if d["pack_id"] is None)
    diff("totals.usage_count", t.get("usage_count"), len(jobs))
    diff("totals.duration_us", t.get("duration_us"), sum(j["duration_us"] for j in jobs))
    diff("totals.billed_us", t.get("billed_us"), sum(j["billed_us"] for j in jobs))
    diff("totals.covered_us", t.get("covered_us"), covered)
    diff("totals.overage_us", t.get("overage_us"), overage)
    nrec = node_record_count(db)
    diff("totals.records (every kind)", t.get("records"), nrec)

    lrows = admin_json("/v1/usage/details?node=" + node)["rows"]
    norm = lambda rows: sorted((tuple(r.get(k) for k in DETAIL_KEYS) for r in rows),
                               key=repr)
    la, na = norm(lrows), norm(details)
    if la != na:
        bad.append("usage details differ:")
        bad += ["  only at the ledger: %r" % (r,) for r in la if r not in na]
        bad += ["  only on the node:   %r" % (r,) for r in na if r not in la]

    lpacks = {p["id"]: p for p in admin_json("/v1/packs?node=" + node)["packs"]}
    npacks = {p["id"]: p for p in packs}
    diff("pack ids", sorted(lpacks), sorted(npacks))
    for pid in sorted(set(lpacks) & set(npacks)):
        lp, np_ = lpacks[pid], npacks[pid]
        for lk, nk in (("type", "type"), ("total_us", "total_us"),
                       ("remaining_us", "remaining_us"), ("frozen", "frozen"),
                       ("status", "status"), ("deductions", "deductions")):
            if lp.get(lk) != np_.get(nk):
                bad.append("pack %s: %s: ledger %r, node %r" % (pid, lk, lp.get(lk), np_.get(nk)))
        if (lp.get("refunded_ms") is None) != (np_.get("refunded_at") is None):
            bad.append("pack %s: refunded: ledger %r, node %r" % (pid, lp.get("refunded_ms"),
                                                                  np_.get("refunded_at")))
    if bad:
        print("\n".join(bad))
        return 1
    print("%s: %d usage, %d records, billed %d, covered %d, overage %d us, %d packs: equal" %
          (node, len(jobs), nrec, t.get("billed_us"), covered, overage, len(npacks)))
    return 0


def farm(pairs):
    tot = {t["node"]: t for t in admin_json("/v1/totals")["totals"]}
    bad = []
    nodes = dict(p.split("=", 1) for p in pairs)
    others = sorted(set(tot) - set(nodes))
    if others:
        bad.append("records from nodes not in the farm: %s" % others)
    want_rec = sum(node_record_count(db) for db in nodes.values())
    got_rec = sum(t["records"] for t in tot.values())
    if want_rec != got_rec:
        bad.append("farm records: ledger %d, nodes %d" % (got_rec, want_rec))
    want_billed = sum(sum(j["billed_us"] for j in meterctl(db, "jobs")) for db in nodes.values())
    got_billed = sum(t["billed_us"] for t in tot.values())
    if want_billed != got_billed:
        bad.append("farm billed_us: ledger %d, nodes %d" % (got_billed, want_billed))
    if bad:
        print("\n".join(bad))
        return 1
    print("farm: %d nodes, %d records, billed %d us: equal" % (len(nodes), got_rec, got_billed))
    return 0


def snapshot():
    return {"totals": admin_json("/v1/totals")["totals"],
            "records": ledger_records(),
            "details": admin_json("/v1/usage/details")["rows"],
            "packs": admin_json("/v1/packs")["packs"],
            "nodes": admin_json("/v1/nodes")["nodes"],
            "audit": admin_json("/v1/audit")["audit"]}


def same(path, may_move=()):
    """may_move: nodes whose last-seen time may have changed (a request
    that authenticated, then was refused)."""
    with open(path) as f:
        old = json.load(f)
    new = json.loads(json.dumps(snapshot()))
    for snap in (old, new):
        for n in snap["nodes"]:
            if n["name"] in may_move:
                n["last_seen_ms"] = None
    bad = []
    for k in old:
        if old[k] != new[k]:
            bad.append("%s changed:\n  before: %s\n  after:  %s" % (
                k, json.dumps(old[k])[:600], json.dumps(new[k])[:600]))
    if bad:
        print("\n".join(bad))
        return 1
    print("ledger unchanged (%d records, %d packs, %d audit entries)" % (
        len(new["records"]), len(new["packs"]), len(new["audit"])))
    return 0


# ------------------------------------------------------------- replays --

def parse_raw(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = []
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers.append((k.strip(), v.strip()))
    return method, target, headers, body


def sign(secret, method, target, body, node):
    t = int(time.time())
    nonce = secrets.token_hex(16)
    sts = "%s\n%s\n%d\n%s\n%s" % (method, target, t, nonce, hashlib.sha256(body).hexdigest())
    sig = hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
    return [("X-Meter-Node", node), ("X-Meter-Time", str(t)), ("X-Meter-Nonce", nonce),
            ("X-Meter-Signature", sig)]


def replay(args):
    with open(args[0], "rb") as f:
        method, target, headers, body = parse_raw(f.read())
    opts = args[1:]
    auth = ("x-meter-node", "x-meter-time", "x-meter-nonce", "x-meter-signature",
            "authorization")
    if "--strip-auth" in opts or "--sign" in opts:
        headers = [(k, v) for k, v in headers if k.lower() not in auth]
    if "--sign" in opts:
        i = opts.index("--sign")
        node, secret_file = opts[i + 1], opts[i + 2]
        with open(secret_file) as f:
            headers += sign(f.read().strip(), method, target, body, node)
    if "--tamper" in opts:
        # a node lowering what it is billed: the first billed_us, minus one
        m = re.search(rb'"billed_us":(\d+)', body)
        if not m:
            print("0\nno billed_us in the captured body")
            return 1
        digits = m.group(1)
        last = b"%d" % ((digits[-1] - 48 + 1) % 10)
        new = b'"billed_us":' + digits[:-1] + last   # same length, still JSON
        body = body[:m.start()] + new + body[m.end():]
    h = {}
    for k, v in headers:
        if k.lower() not in ("host", "content-length", "connection"):
            h[k] = v
    st, out = request(method, target, body if body else None, h)
    print(st)
    print(out.decode("utf-8", "replace"))
    return 0


# --------------------------------------------------------------- locks --

def hold_lock(kind, where):
    stop = {"now": False}

    def term(*_):
        stop["now"] = True
    signal.signal(signal.SIGTERM, term)
    if kind == "sqlite":
        con = sqlite3.connect(where, isolation_level=None, timeout=30)
        con.execute("BEGIN IMMEDIATE")
        print("locked", flush=True)
        while not stop["now"]:
            time.sleep(0.05)
        con.execute("ROLLBACK")
        con.close()
        return 0
    p = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", where],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    p.stdin.write("BEGIN;\nLOCK TABLE records IN EXCLUSIVE MODE;\n\\echo locked\n")
    p.stdin.flush()
    line = p.stdout.readline()
    if line.strip() != "locked":
        print("psql did not take the lock: %r" % line, flush=True)
        return 1
    print("locked", flush=True)
    while not stop["now"]:
        time.sleep(0.05)
    p.stdin.write("ROLLBACK;\n\\q\n")
    p.stdin.close()
    p.wait(30)
    return 0


def metric(name):
    st, body = request("GET", "/metrics")
    v = 0
    for line in body.decode().splitlines():
        k, _, val = line.rpartition(" ")
        if k == name:
            v = float(val)
    print(int(v) if v == int(v) else v)
    return 0


def metric_sum(name, label):
    st, body = request("GET", "/metrics")
    v = 0.0
    for line in body.decode().splitlines():
        k, _, val = line.rpartition(" ")
        if k.startswith(name + "{") and label in k:
            v += float(val)
    print(int(v) if v == int(v) else v)
    return 0


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = a[0]
    if cmd == "admin":
        obj = json.loads(a[3]) if len(a) > 3 else None
        st, body = admin(a[1], a[2], obj)
        print(st)
        print(body.decode("utf-8", "replace"))
        return 0
    if cmd == "reconcile":
        return reconcile(a[1], a[2])
    if cmd == "farm":
        return farm(a[1:])
    if cmd == "snapshot":
        with open(a[1], "w") as f:
            json.dump(snapshot(), f)
        return 0
    if cmd == "same":
        return same(a[1], a[2:])
    if cmd == "ledger-ids":
        print("\n".join(sorted(r["id"] for r in ledger_records(a[1]))))
        return 0
    if cmd == "replay":
        return replay(a[1:])
    if cmd == "hold-lock":
        return hold_lock(a[1], a[2])
    if cmd == "metric":
        return metric(a[1])
    if cmd == "metric-sum":
        return metric_sum(a[1], a[2])
    print("e2e.py: unknown command %s" % cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
