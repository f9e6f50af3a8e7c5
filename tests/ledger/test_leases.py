#!/usr/bin/env python3
"""test_leases.py BACKEND — accounts and leases through meter-ledgerd over
HTTP, with signed requests (TAP).

BACKEND is sqlite or pg.  The ledger's clock is METER_NOW (restarted with
a later METER_NOW to let leases expire); requests are signed with the real
clock, as nodes do.  Covers POST/GET /v1/accounts, POST /v1/leases (201
new, 200 repeat, 404 another node's id or an unknown account, 422 nothing
to reserve, 400 bad bodies, asks cut to lease-max-minutes, 429 at
leases-per-node), renew (409 once resolved, voided slices of a frozen
pack) and release, GET /v1/leases filters, the hostile node's deductions,
late usage settled after expiry, GET /v1/verify, /metrics' account labels.
On PostgreSQL also: two ledger servers on one database and many threads
asking leases of one account at once through both — Σ granted never
exceeds the pool, and verify stays clean.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ledgertest import (DAY_MS, MIN_US, Ledger, Tap, deduction, run_ledger,  # noqa: E402
                        tmpdir, usage)

T_NOW = 1773100800000          # 2026-03-10T00:00:00Z
ENV = {"METER_NOW": str(T_NOW)}
t = Tap()


def lease_req(lid, want, account="acme", cls="general"):
    return {"id": lid, "account": account, "class": cls, "want_us": want}


def ask(lg, lid, want, node="node-a", **kw):
    return lg.node("POST", "/v1/leases", lease_req(lid, want, **kw), node=node)


def lded(rid, pack, lease, amount, node="node-a", at=None, account="acme"):
    d = deduction(rid, pack, amount, amount, node=node, at=at or T_NOW + 1000)
    d["lease_id"] = lease
    d["account"] = account
    return d


def verify(lg, what):
    r = lg.admin("GET", "/v1/verify")
    return t.ok(r.status == 200 and r.json() == {"ok": True, "violations": []},
                "verify clean %s" % what, r)


def test_accounts(lg):
    r = lg.admin("POST", "/v1/accounts", {"name": "acme"})
    t.ok(r.status == 201 and r.json()["name"] == "acme", "POST /v1/accounts: 201", r)
    r = lg.admin("POST", "/v1/accounts", {"name": "acme"})
    t.ok(r.status == 409, "the same account again: 409", r)
    r = lg.admin("POST", "/v1/accounts", {"name": "bad name"})
    t.ok(r.status == 400, "a bad account name: 400", r)
    rc, out, err = lg.cli("account", "add", "globex")
    t.ok(rc == 0 and "globex" in out, "meter-ledgerd account add", out + err)
    rc, out, err = lg.cli("account", "add", "globex")
    t.ok(rc == 1 and err.count("\n") == 1 and "exists" in err, "…twice: exit 1, one line", err)
    rc, out, err = lg.cli("account", "frob")
    t.ok(rc == 2 and err.count("\n") == 1, "account with a wrong subcommand: exit 2", err)
    start = T_NOW - DAY_MS
    for body in ({"id": "pa1", "type": "general", "minutes": 10, "start_ms": start,
                  "account": "acme"},
                 {"id": "pa2", "type": "general", "minutes": 20, "start_ms": start + 1,
                  "account": "acme"},
                 {"id": "pa3", "type": "tsc", "minutes": 5, "start_ms": start, "account": "acme"},
                 {"id": "pg1", "type": "general", "minutes": 7, "start_ms": start,
                  "account": "globex"}):
        r = lg.admin("POST", "/v1/packs", body)
        t.ok(r.status == 201 and r.json()["account"] == body["account"] and r.json()["pooled"],
             "buy %s for %s (pooled)" % (body["id"], body["account"]), r)
    r = lg.admin("POST", "/v1/packs", {"type": "general", "minutes": 1, "account": "nope"})
    t.ok(r.status == 404 and "nope" in r.body.decode(), "a pack of an unknown account: 404", r)
    r = lg.admin("GET", "/v1/packs?account=globex")
    t.eq([p["id"] for p in (r.json() or {}).get("packs", [])], ["pg1"], "?account= on /v1/packs")
    rc, out, err = lg.cli("account", "list")
    t.ok(rc == 0 and "acme" in out and "globex" in out and "default" in out,
         "meter-ledgerd account list", out + err)


def test_grants(lg):
    r = ask(lg, "na-l1", 15 * MIN_US)
    j = (r.json() or {}).get("lease", {})
    t.ok(r.status == 201 and j.get("state") == "open" and j.get("node") == "node-a" and
         [(s["pack_id"], s["granted_us"]) for s in j.get("slices", [])] ==
         [("pa1", 10 * MIN_US), ("pa2", 5 * MIN_US)], "POST /v1/leases: 201, FIFO over pa1, pa2",
         r)
    t.eq((j.get("ttl_ms"), j.get("expires_ms"), j.get("resolved_ms")),
         (300000, T_NOW + 300000, None), "…ttl 300 s by the ledger's clock")
    r = ask(lg, "na-l1", 15 * MIN_US)
    t.ok(r.status == 200 and r.json()["lease"]["granted_us"] == 15 * MIN_US,
         "the same id again: 200, the stored lease", r)
    r = lg.admin("GET", "/v1/accounts")
    acc = {a["name"]: a for a in (r.json() or {}).get("accounts", [])}
    g = acc.get("acme", {}).get("classes", {}).get("general", {})
    t.eq((g.get("total_us"), g.get("reserved_us"), g.get("remaining_us"), g.get("packs"),
          g.get("open_leases")), (30 * MIN_US, 15 * MIN_US, 15 * MIN_US, 2, 1),
         "GET /v1/accounts: acme general 30, 15 reserved, 15 remaining, 2 packs, 1 lease")
    r = ask(lg, "na-l1", MIN_US, node="node-b")
    t.ok(r.status == 404, "node-b asking with node-a's lease id: 404", r)
    r404 = r.body.decode().replace("node-b", "N")
    r = ask(lg, "na-l999", MIN_US, node="node-b")
    t.ok(r.status == 404 and r.body.decode().replace("na-l999", "na-l1").replace("node-b", "N")
         == r404, "…the same answer as for an id of node-a's not stored", r)
    r = ask(lg, "nb-l1", 100 * MIN_US, node="node-b")
    t.ok(r.status == 201 and r.json()["lease"]["granted_us"] == 15 * MIN_US,
         "node-b asks 100 minutes and gets the 15 left", r)
    r = ask(lg, "nb-l2", MIN_US, node="node-b")
    t.ok(r.status == 422 and r.error_code() == "refused", "nothing left to reserve: 422", r)
    r = lg.admin("GET", "/v1/leases?node=node-b")
    t.eq([x["id"] for x in (r.json() or {}).get("leases", [])], ["nb-l1"],
         "…and nothing stored for it")
    r = ask(lg, "na-l2", MIN_US, account="nope")
    t.ok(r.status == 404 and "nope" in r.body.decode(), "an unknown account: 404", r)
    for bad, why in [({"id": "na-l3", "account": "acme", "class": "gold", "want_us": 1}, "class"),
                     ({"id": "na-u3", "account": "acme", "class": "general", "want_us": 1}, "id"),
                     ({"id": "na-l3", "account": "acme", "class": "general", "want_us": 0},
                      "want_us"),
                     ({"id": "na-l3", "class": "general", "want_us": 5}, "account")]:
        r = lg.node("POST", "/v1/leases", bad)
        t.ok(r.status == 400 and why in r.body.decode(), "a bad request (%s): 400" % why, r)
    r = ask(lg, "nb-l9", 10 ** 6 * MIN_US, account="globex", node="node-b")
    t.ok(r.status == 201 and r.json()["lease"]["requested_us"] == 15 * MIN_US and
         r.json()["lease"]["granted_us"] == 7 * MIN_US,
         "an ask beyond lease-max-minutes (15 here) is cut to it (and gets pg1's 7)", r)
    r = lg.admin("GET", "/v1/leases?account=globex&state=open")
    t.eq([x["id"] for x in (r.json() or {}).get("leases", [])], ["nb-l9"],
         "GET /v1/leases?account=&state=")
    t.eq((r.json() or {}).get("now_ms"), T_NOW, "the lease list carries the ledger's clock")
    r = lg.admin("GET", "/v1/leases?state=lost")
    t.ok(r.status == 400, "an unknown state: 400", r)
    r = lg.admin("POST", "/v1/packs/pa1/refund")
    t.ok(r.status == 422 and "lease" in r.body.decode(), "refunding a leased pack: 422", r)
    verify(lg, "after the grants")


def test_limit(lg):
    """leases-per-node is 3: node-b holds nb-l1 and nb-l9."""
    r = ask(lg, "nb-l3", MIN_US, cls="tsc", node="node-b")
    t.ok(r.status == 201, "node-b's third open lease", r)
    r = ask(lg, "nb-l4", MIN_US, cls="tsc", node="node-b")
    t.ok(r.status == 429 and r.error_code() == "rate_limited" and "Retry-After" in r.headers,
         "a fourth: 429", r)
    r = lg.node("POST", "/v1/leases/nb-l3/release", {}, node="node-b")
    t.ok(r.status == 200 and r.json()["lease"]["state"] == "released", "release nb-l3: 200", r)
    r = lg.node("POST", "/v1/leases/nb-l3/release", node="node-b")
    t.ok(r.status == 200 and r.json()["lease"]["state"] == "released",
         "release again (no body): 200, as it was", r)
    r = ask(lg, "nb-l4", MIN_US, cls="tsc", node="node-b")
    t.ok(r.status == 201, "then a new one is granted", r)


def test_usage(lg):
    at = T_NOW + 1000
    r = lg.batch([usage("na-u10", at=at, billed=4 * MIN_US) | {"account": "acme"},
                  lded("na-d11", "pa1", "na-l1", 4 * MIN_US, at=at) | {"charge_id": "na-u10"}])
    t.ok(r.status == 200 and r.json()["accepted"] == ["na-u10", "na-d11"],
         "node-a posts 4 minutes on its lease", r)
    r = lg.admin("GET", "/v1/leases?node=node-a&state=open")
    s = {x["pack_id"]: x for x in r.json()["leases"][0]["slices"]}
    t.eq(s["pa1"]["posted_us"], 4 * MIN_US, "…posted on pa1's slice")
    r = lg.batch([lded("nb-d12", "pa1", "na-l1", MIN_US, node="node-b")], node="node-b")
    rej = {x["id"]: x["reason"] for x in (r.json() or {}).get("rejected", [])}
    t.ok("not a lease of node" in rej.get("nb-d12", ""), "node-b posting on node-a's lease: "
         "rejected", r)
    r = lg.batch([lded("na-d13", "pa3", "na-l1", MIN_US),
                  lded("na-d14", "pa1", "na-l1", MIN_US, account="globex"),
                  usage("na-u15", at=at) | {"account": "nope"},
                  deduction("na-d16", "pa2", MIN_US, 20 * MIN_US, at=at) | {"account": "acme"}])
    rej = {x["id"]: x["reason"] for x in (r.json() or {}).get("rejected", [])}
    t.ok(r.status == 200 and sorted(rej) == ["na-d13", "na-d14", "na-d16", "na-u15"],
         "the hostile node's deductions are all rejected", r)
    t.ok("no slice" in rej.get("na-d13", ""), "…a pack the lease has no slice of", rej)
    t.ok("account" in rej.get("na-d14", ""), "…a lease of another account", rej)
    t.ok("nope" in rej.get("na-u15", ""), "…a record of an unknown account", rej)
    t.ok("pooled" in rej.get("na-d16", ""), "…a pooled pack without its lease", rej)
    r = lg.batch([lded("na-d17", "pa2", "na-l1", 9 * MIN_US, at=at)])
    t.ok(r.status == 200 and r.json()["accepted"] == ["na-d17"],
         "more than the slice holds (9 of 5): accepted", r)
    p = lg.admin("GET", "/v1/packs/pa2").json()
    # pa2: 20; na-l1 holds 5 (now posted), nb-l1 holds 15: nothing free → 4 overage
    t.eq((p["used_us"], p["reserved_us"], p["free_us"]), (5 * MIN_US, 15 * MIN_US, 0),
         "…5 from the reservation, pa2 never below zero, the rest overage")
    r = lg.admin("GET", "/v1/usage/records?account=acme")
    t.eq([x["id"] for x in (r.json() or {}).get("records", [])], ["na-u10"],
         "?account= on /v1/usage/records")
    r = lg.admin("GET", "/v1/usage/details?account=acme")
    rows = (r.json() or {}).get("rows", [])
    t.ok(r.status == 200 and rows and all(x["account"] == "acme" for x in rows),
         "?account= on /v1/usage/details, rows name their account", r)
    r = lg.admin("GET", "/v1/totals?account=acme")
    t.eq([(x["node"], x["billed_us"]) for x in (r.json() or {}).get("totals", [])],
         [("node-a", 4 * MIN_US)], "?account= on /v1/totals")
    verify(lg, "after usage")


def test_expiry(lg):
    """Restart the ledger 10 minutes later: every open lease has expired."""
    lg.stop()
    later = T_NOW + 600000
    lg.start("--lease-max-minutes", "5", "--leases-per-node", "3",
             env={"METER_NOW": str(later)})
    r = lg.node("POST", "/v1/leases/na-l1/renew", {})
    t.ok(r.status == 409 and r.error_code() == "conflict" and "expired" in r.body.decode(),
         "renewing an expired lease: 409 naming the state", r)
    r = lg.node("POST", "/v1/leases/na-l1/renew", {}, node="node-b")
    t.ok(r.status == 404, "renewing another node's lease: 404", r)
    r = lg.node("POST", "/v1/leases/na-l404/renew", {})
    t.ok(r.status == 404, "renewing an unknown lease: 404", r)
    r = lg.admin("GET", "/v1/leases?state=open")
    t.eq(r.json()["leases"], [], "no lease is open any more (lazy expiry, nothing in memory)")
    r = lg.admin("GET", "/v1/leases?node=node-a")
    j = r.json()["leases"][0]
    t.eq((j["state"], j["resolved_ms"], j["ttl_ms"]), ("expired", T_NOW + 300000, 0),
         "na-l1 expired at its expiry")
    # the node was cut off: its late usage arrives now
    r = lg.batch([lded("na-d20", "pa1", "na-l1", 3 * MIN_US, at=T_NOW + 200000)])
    t.ok(r.status == 200 and r.json()["accepted"] == ["na-d20"], "late usage is accepted", r)
    p = lg.admin("GET", "/v1/packs/pa1").json()
    t.eq((p["used_us"], p["reserved_us"]), (7 * MIN_US, 0),
         "…paid from pa1's free minutes (4 + 3 used)")
    r = ask(lg, "na-l21", 30 * MIN_US)
    j = (r.json() or {}).get("lease", {})
    t.ok(r.status == 201 and j.get("granted_us") == 5 * MIN_US and
         j["slices"][0]["pack_id"] == "pa1", "the returned minutes can be leased again", r)
    r = lg.admin("POST", "/v1/packs/pa1/freeze")
    t.ok(r.status == 200, "freeze pa1", r)
    r = lg.node("POST", "/v1/leases/na-l21/renew", {})
    j = (r.json() or {}).get("lease", {})
    t.ok(r.status == 200 and j["slices"][0]["voided"] is True and j["ttl_ms"] == 300000,
         "a renewal voids the frozen pack's slice and moves the expiry", r)
    r = ask(lg, "na-l22", MIN_US)
    t.ok(r.status == 201 and [s["pack_id"] for s in r.json()["lease"]["slices"]] == ["pa2"],
         "a frozen pack gives no new lease minutes", r)
    rc, out, err = lg.cli("verify")
    t.ok(rc == 0 and "verified" in out, "meter-ledgerd verify: exit 0", out + err)
    verify(lg, "after the expiry")
    m = lg.metrics()
    t.ok(m.get('ffmeter_ledger_account_reserved_us{account="acme",class="general"}') ==
         3 * MIN_US and
         m.get('ffmeter_ledger_account_open_leases{account="acme",class="general"}') == 2,
         "/metrics: per-account reserved minutes and open leases",
         {k: v for k, v in m.items() if "acme" in k})
    t.ok(m.get('ffmeter_ledger_lease_requests_total{op="grant",result="ok"}', 0) >= 2 and
         m.get('ffmeter_ledger_lease_requests_total{op="renew",result="conflict"}', 0) >= 1,
         "/metrics: lease calls by operation and result")


def test_hoard(lg):
    """Review: what one node may hold and what its deductions may claim.
    The ledger runs with --lease-max-minutes 5 --leases-per-node 3 (test_expiry)."""
    later = T_NOW + 600000
    for n in ("node-c", "node-d"):
        rc, out, err = lg.cli("node", "add", n)
        t.ok(rc == 0, "node add %s" % n, out + err)
        lg.secrets[n] = out.strip()
    r = lg.admin("POST", "/v1/accounts", {"name": "initech"})
    t.ok(r.status == 201, "account initech", r)
    for body in ({"id": "pi1", "type": "general", "minutes": 100, "start_ms": T_NOW - DAY_MS,
                  "account": "initech"},
                 {"id": "pc1", "type": "general", "minutes": 10, "start_ms": T_NOW - DAY_MS,
                  "account": "initech", "node": "node-c"}):
        r = lg.admin("POST", "/v1/packs", body)
        t.ok(r.status == 201, "buy %s" % body["id"], r)
    # denial by reservation: one node asking lease after lease of one account
    r = ask(lg, "nc-l1", 5 * MIN_US, account="initech", node="node-c")
    t.ok(r.status == 201 and r.json()["lease"]["granted_us"] == 5 * MIN_US,
         "hoard: node-c's first lease of initech: 5 minutes", r)
    r = ask(lg, "nc-l2", 5 * MIN_US, account="initech", node="node-c")
    t.ok(r.status == 422 and r.error_code() == "refused" and "lease-max-minutes" in r.body.decode(),
         "hoard: a second lease while it holds lease-max-minutes of initech/general: 422", r)
    g = {a["name"]: a for a in lg.admin("GET", "/v1/accounts").json()["accounts"]}
    t.eq(g["initech"]["classes"]["general"]["reserved_us"], 5 * MIN_US,
         "hoard: node-c holds no more than lease-max-minutes of initech")
    r = lg.batch([lded("nc-d1", "pi1", "nc-l1", 2 * MIN_US, node="node-c", at=later,
                       account="initech")], node="node-c")
    t.ok(r.status == 200 and r.json()["accepted"] == ["nc-d1"], "hoard: node-c posts 2", r)
    r = ask(lg, "nc-l3", 5 * MIN_US, account="initech", node="node-c")
    t.ok(r.status == 201 and r.json()["lease"]["granted_us"] == 2 * MIN_US,
         "hoard: then a new lease is cut to what it may still hold (2 of 5)", r)
    r = ask(lg, "nd-l1", 5 * MIN_US, account="initech", node="node-d")
    t.ok(r.status == 201 and r.json()["lease"]["granted_us"] == 5 * MIN_US,
         "hoard: another node still gets its lease-max-minutes", r)
    # a deduction's account must be its pack's and its charge's
    r = lg.batch([deduction("nc-d2", "pc1", MIN_US, 10 * MIN_US, node="node-c", at=later)
                  | {"account": "acme"}], node="node-c")
    rej = {x["id"]: x["reason"] for x in (r.json() or {}).get("rejected", [])}
    t.ok(r.status == 200 and "account" in rej.get("nc-d2", ""),
         "account: a deduction of acme from node-c's pack of initech: rejected", r)
    p = lg.admin("GET", "/v1/packs/pc1").json()
    t.eq(p["used_us"], 0, "account: …pc1 untouched")
    r = lg.batch([usage("nc-u3", node="node-c", at=later) | {"account": "acme"},
                  lded("nc-d4", "pi1", "nc-l1", MIN_US, node="node-c", at=later,
                       account="initech") | {"charge_id": "nc-u3"}], node="node-c")
    rej = {x["id"]: x["reason"] for x in (r.json() or {}).get("rejected", [])}
    t.ok(r.status == 200 and r.json()["accepted"] == ["nc-u3"] and "charge" in rej.get("nc-d4", ""),
         "account: acme's usage paid by a deduction of initech (same batch): rejected", r)
    r = lg.batch([lded("nc-d5", "pi1", "nc-l1", MIN_US, node="node-c", at=later,
                       account="initech") | {"charge_id": "nc-u3"}], node="node-c")
    rej = {x["id"]: x["reason"] for x in (r.json() or {}).get("rejected", [])}
    t.ok(r.status == 200 and "charge" in rej.get("nc-d5", ""),
         "account: …and when the usage was stored by an earlier batch", r)
    verify(lg, "after the hoarding node")


def test_two_instances(lg):
    """Two servers on one PostgreSQL; 16 threads ask 3-minute leases of a
    60-minute pool through both at once: Σ granted ≤ 60, verify clean."""
    r = lg.admin("POST", "/v1/accounts", {"name": "race"})
    for i in range(4):
        lg.admin("POST", "/v1/packs", {"id": "pr%d" % i, "type": "general", "minutes": 15,
                                       "start_ms": T_NOW - DAY_MS, "account": "race"})
    lg.stop()
    lg.start("--leases-per-node", "1000", env=ENV)
    lg2 = Ledger("pg", lg.tmp, share=lg)
    lg2.start("--leases-per-node", "1000", env=ENV)
    results = []
    lock = threading.Lock()

    def worker(k):
        inst = lg if k % 2 == 0 else lg2
        node = "node-a" if k % 4 < 2 else "node-b"
        pre = "na" if node == "node-a" else "nb"
        for j in range(6):
            lid = "%s-l%d" % (pre, 1000 + k * 10 + j)
            try:
                r = inst.node("POST", "/v1/leases", lease_req(lid, 3 * MIN_US, account="race"),
                              node=node)
            except Exception as e:   # noqa: BLE001
                r = e
            with lock:
                results.append(r)

    ths = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    [th.start() for th in ths]
    [th.join() for th in ths]
    statuses = sorted({getattr(r, "status", repr(r)) for r in results})
    granted = sum(r.json()["lease"]["granted_us"] for r in results
                  if getattr(r, "status", 0) == 201)
    n201 = sum(1 for r in results if getattr(r, "status", 0) == 201)
    t.ok(set(statuses) <= {201, 422}, "pg: every concurrent ask answered 201 or 422",
         statuses, [r for r in results if getattr(r, "status", 0) not in (201, 422)][:3])
    t.eq((granted, n201), (60 * MIN_US, 20), "pg: 96 asks of 3 min on 60 min: exactly 20 granted")
    r = lg2.admin("GET", "/v1/packs?account=race")
    t.ok(all(p["reserved_us"] + p["used_us"] <= p["total_us"] for p in r.json()["packs"]),
         "pg: no pack reserved beyond its total", r)
    r = lg2.admin("GET", "/v1/verify")
    t.ok(r.status == 200 and r.json()["ok"] is True, "pg: verify clean after the race", r)
    lg2.stop()


def main():
    backend = sys.argv[1] if len(sys.argv) == 2 else ""
    if backend not in ("sqlite", "pg"):
        print("usage: test_leases.py sqlite|pg", file=sys.stderr)
        sys.exit(2)

    def cases(lg):
        lg.setup()
        lg.start("--lease-max-minutes", "15", "--leases-per-node", "3", env=ENV)
        test_accounts(lg)
        test_grants(lg)
        test_limit(lg)
        test_usage(lg)
        test_expiry(lg)
        test_hoard(lg)
        if backend == "pg":
            test_two_instances(lg)

    run_ledger(t, backend, tmpdir("ledger-leases."), cases, env=ENV)


if __name__ == "__main__":
    main()
