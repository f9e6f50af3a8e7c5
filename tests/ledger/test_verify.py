#!/usr/bin/env python3
"""test_verify.py BACKEND — `meter-ledgerd verify` and GET /v1/verify catch
every kind of violation of the ledger's invariants (TAP).

A ledger is filled through HTTP the honest way (an assigned pack and its
deductions, an account with pooled packs, a lease and its postings, a
charge whose deductions add up) and verifies clean.  Then the database is
corrupted directly — an UPDATE through sqlite3 or psql, as a bug or a
hand edit would — one kind at a time: verify exits 1 with a line naming
what broke, and clean again once the UPDATE is undone.  Postings and
records are append-only, so the two corruptions that add rows come last.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ledgertest import DAY_MS, MIN_US, Tap, deduction, run_ledger, tmpdir, usage  # noqa: E402

T_NOW = 1773100800000
ENV = {"METER_NOW": str(T_NOW)}
t = Tap()


def sql(lg, q):
    if lg.backend == "sqlite":
        r = subprocess.run(["sqlite3", lg.dbargs[1], q], capture_output=True, text=True)
    else:
        r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", lg.pg_url, "-c",
                            q], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s: %s" % (q, r.stderr))
    return r.stdout.strip()


def verify_cli(lg):
    return lg.cli("verify", env=ENV)


def fill(lg):
    lg.start(env=ENV)
    start = T_NOW - DAY_MS
    r = lg.admin("POST", "/v1/accounts", {"name": "acme"})
    assert r.status == 201, r
    for body in ({"id": "pk-as", "type": "general", "minutes": 100, "start_ms": start,
                  "node": "node-a"},
                 {"id": "pa1", "type": "general", "minutes": 10, "start_ms": start,
                  "account": "acme"}):
        r = lg.admin("POST", "/v1/packs", body)
        assert r.status == 201, r
    r = lg.node("POST", "/v1/leases", {"id": "na-l1", "account": "acme", "class": "general",
                                       "want_us": 6 * MIN_US})
    assert r.status == 201, r
    at = T_NOW + 1000
    d = deduction("na-d2", "pk-as", 4 * MIN_US, 100 * MIN_US, at=at)
    d["charge_id"] = "na-u1"
    ld = deduction("na-d3", "pa1", 2 * MIN_US, 6 * MIN_US, at=at)
    ld.update({"lease_id": "na-l1", "account": "acme"})
    r = lg.batch([usage("na-u1", at=at, billed=4 * MIN_US), d, ld])
    assert r.json()["accepted"] == ["na-u1", "na-d2", "na-d3"], r
    lg.stop()


CASES = [
    # (what, corrupting UPDATE, undoing UPDATE, text the line must hold)
    ("an assigned pack's used amount off its deduction records",
     "UPDATE packs SET used_us = used_us + 1 WHERE id = 'pk-as'",
     "UPDATE packs SET used_us = used_us - 1 WHERE id = 'pk-as'",
     "pack 'pk-as': used 240000001 µs, but its deduction records add up to 240000000 µs"),
    ("a pooled pack's used amount off its postings",
     "UPDATE packs SET used_us = used_us + 7 WHERE id = 'pa1'",
     "UPDATE packs SET used_us = used_us - 7 WHERE id = 'pa1'",
     "pack 'pa1': used 120000007 µs, but its postings add up to 120000000 µs"),
    ("used + reserved beyond the total",
     "UPDATE packs SET total_us = 300000000 WHERE id = 'pa1'",
     "UPDATE packs SET total_us = 600000000 WHERE id = 'pa1'",
     "pack 'pa1': used 120000000 µs + reserved 240000000 µs is outside 0"),
    ("a refunded pack still reserved",
     "UPDATE packs SET refunded_ms = 1 WHERE id = 'pa1'",
     "UPDATE packs SET refunded_ms = NULL WHERE id = 'pa1'",
     "pack 'pa1': refunded, yet open leases reserve 240000000 µs"),
    ("a slice's posted amount off its lease postings",
     "UPDATE lease_slices SET posted_us = posted_us + 5 WHERE lease_id = 'na-l1'",
     "UPDATE lease_slices SET posted_us = posted_us - 5 WHERE lease_id = 'na-l1'",
     "lease 'na-l1', slice of pack 'pa1': posted 120000005 µs of 360000000 µs granted, its "
     "lease postings add up to 120000000 µs"),
    ("a slice posted beyond what it was granted",
     "UPDATE lease_slices SET granted_us = 60000000 WHERE lease_id = 'na-l1'",
     "UPDATE lease_slices SET granted_us = 360000000 WHERE lease_id = 'na-l1'",
     "posted 120000000 µs of 60000000 µs granted"),
    ("a lease's grant off the sum of its slices",
     "UPDATE leases SET granted_us = granted_us + 1 WHERE id = 'na-l1'",
     "UPDATE leases SET granted_us = granted_us - 1 WHERE id = 'na-l1'",
     "lease 'na-l1' (open, resolved_ms null): granted 360000001 µs, its slices granted "
     "360000000 µs"),
    ("an open lease with a resolved_ms",
     "UPDATE leases SET resolved_ms = 5 WHERE id = 'na-l1'",
     "UPDATE leases SET resolved_ms = NULL WHERE id = 'na-l1'",
     "lease 'na-l1' (open, resolved_ms 5)"),
    ("a resolved lease without one",
     "UPDATE leases SET state = 'released' WHERE id = 'na-l1'",
     "UPDATE leases SET state = 'open' WHERE id = 'na-l1'",
     "lease 'na-l1' (released, resolved_ms null)"),
]


def main():
    backend = sys.argv[1] if len(sys.argv) == 2 else ""
    if backend not in ("sqlite", "pg"):
        print("usage: test_verify.py sqlite|pg", file=sys.stderr)
        sys.exit(2)

    def cases(lg):
        lg.setup()
        fill(lg)
        rc, out, err = verify_cli(lg)
        t.ok(rc == 0 and out == "ledger verified: every invariant holds\n",
             "an honest ledger verifies clean: exit 0", out + err)
        for what, bad, undo, want in CASES:
            sql(lg, bad)
            rc, out, err = verify_cli(lg)
            t.ok(rc == 1 and want in out and err == "", "verify catches %s: exit 1" % what,
                 out + err)
            sql(lg, undo)
            rc, out, err = verify_cli(lg)
            t.ok(rc == 0, "…and is clean again once undone", out + err)
        # append-only tables: a posting more than its deduction's amount
        sql(lg, "INSERT INTO postings (deduction_id, pack_id, lease_id, source, amount_us, at_ms)"
                " VALUES ('na-d3', NULL, 'na-l1', 'overage', 1, 0)")
        rc, out, err = verify_cli(lg)
        t.ok(rc == 1 and "deduction 'na-d3' of lease na-l1: amount 120000000 µs, its postings "
             "add up to 120000001 µs" in out and out.count("\n") == 1,
             "verify catches a deduction whose postings do not add up: one line", out + err)
        # a node whose deductions do not add up to what it billed
        lg.start(env=ENV)
        at = T_NOW + 2000
        d = deduction("na-d5", "pk-as", 3 * MIN_US, 96 * MIN_US, at=at)
        d["charge_id"] = "na-u4"
        r = lg.batch([usage("na-u4", at=at, billed=5 * MIN_US), d])
        t.ok(r.status == 200 and r.json()["accepted"] == ["na-u4", "na-d5"],
             "a charge of 5 min with 3 min of deductions is stored", r)
        r = lg.admin("GET", "/v1/verify")
        j = r.json() or {}
        t.ok(r.status == 200 and j.get("ok") is False and len(j.get("violations", [])) == 2 and
             any("node 'node-a', charge 'na-u4': billed 300000000 µs, its deduction records add "
                 "up to 180000000 µs" in v for v in j["violations"]),
             "GET /v1/verify: ok false, one line per violation, the charge named", r)

    run_ledger(t, backend, tmpdir("ledger-verify."), cases, env=ENV)


if __name__ == "__main__":
    main()
