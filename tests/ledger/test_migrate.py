#!/usr/bin/env python3
"""test_migrate.py — ledger databases written by older releases migrate to
the current schema (3) and keep serving:

  v1 (tests/ledger/fixtures/ledger-v1.*.sql, made by fixtures/make_v1.py
  with ffmeter 0.1.0): schema 2 binds record ids to nodes.  The fixture
  holds the hardening issue's attack: node-h stored "vv-u3" under node-v's
  prefix after node-v had synced.  Migration binds each prefix to the node
  of its earliest record, so vv stays node-v's, and node-h can no longer
  write under it.
  v2 (ledger-v2.*.sql, made by fixtures/make_v2.py with c37fa12): schema 3
  adds accounts, pooled packs and leases.  Every pack and record becomes
  account 'default'; the unassigned pack is pooled and can be leased; the
  ledger verifies clean.

    test_migrate.py sqlite|pg
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from ledgertest import (Ledger, Tap, tmpdir, usage, deduction, MIN_US, SRCDIR)  # noqa: E402

t = Tap()
T = 1772409600000


def load_fixture(lg, backend, version=1):
    path = os.path.join(SRCDIR, "tests", "ledger", "fixtures",
                        "ledger-v%d.%s.sql" % (version, backend))
    sql = open(path).read()
    if backend == "sqlite":
        r = subprocess.run(["sqlite3", lg.dbargs[1]], input=sql, capture_output=True, text=True)
        # the sqlite3 shell created it 0644: meter-ledgerd refuses a ledger
        # file others can read (it holds the node secrets) until chmod 600
        os.chmod(lg.dbargs[1], 0o600)
    else:
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", lg.pg_url],
                           input=sql, capture_output=True, text=True)
    return r.returncode == 0, r.stderr


def sql(lg, backend, q):
    if backend == "sqlite":
        return subprocess.run(["sqlite3", lg.dbargs[1], q], capture_output=True,
                              text=True).stdout.strip()
    return subprocess.run(["psql", "-X", "-At", lg.pg_url, "-c", q],
                          capture_output=True, text=True).stdout.strip()


def from_v2(backend):
    lg = Ledger(backend, tmpdir("ledger-migrate2."))
    try:
        ok, err = load_fixture(lg, backend, 2)
        t.ok(ok, "load the schema-2 fixture (%s)" % backend, err)
        rc, out, err = lg.cli("migrate")
        t.ok(rc == 0 and "schema version 3" in out, "migrate: 2 → 3", out + err)
        rc, out, err = lg.cli("migrate")
        t.ok(rc == 0 and "schema version 3" in out, "migrate again: a no-op", out + err)
        t.eq(sql(lg, backend, "SELECT account, count(*) FROM packs GROUP BY account"),
             "default|4", "every pack is account 'default'")
        t.eq(sql(lg, backend, "SELECT account, count(*) FROM records GROUP BY account"),
             "default|7", "every record is account 'default'")
        t.eq(sql(lg, backend, "SELECT count(*) FROM records WHERE lease_id IS NOT NULL"), "0",
             "no record has a lease")
        rc, out, err = lg.cli("verify")
        t.ok(rc == 0 and out.count("\n") == 1, "verify: the migrated ledger is consistent",
             out + err)
        rc, out, err = lg.cli("admin", "add", "bob")
        lg.admin_token = out.strip()
        for n in ("node-v", "node-w"):
            lg.secrets[n] = sql(lg, backend, "SELECT secret FROM nodes WHERE name = '%s'" % n)
        lg.start(env={"METER_NOW": str(T + 3_600_000)})
        r = lg.admin("GET", "/v1/accounts")
        acc = {a["name"]: a for a in (r.json() or {}).get("accounts", [])}
        g = acc.get("default", {}).get("classes", {}).get("general", {})
        # pk-v 100 (40 used) + pk-pool 30; pk-cold is frozen: not usable
        t.eq((sorted(acc), acc.get("default", {}).get("packs"), g.get("total_us"),
              g.get("used_us"), g.get("remaining_us"), g.get("packs")),
             (["default"], 4, 130 * MIN_US, 40 * MIN_US, 90 * MIN_US, 2),
             "account default holds the four packs; usable general minutes 130, 40 used")
        r = lg.admin("GET", "/v1/packs?account=default")
        packs = {p["id"]: p for p in (r.json() or {}).get("packs", [])}
        t.eq(sorted((i, p["pooled"], p["account"]) for i, p in packs.items()),
             [("pk-cold", True, "default"), ("pk-pool", True, "default"),
              ("pk-v", False, "default"), ("pk-w", False, "default")],
             "unassigned packs are pooled, assigned ones stay their node's")
        r = lg.admin("GET", "/v1/totals?account=default")
        t.eq({x["node"]: x["billed_us"] for x in (r.json() or {}).get("totals", [])},
             {"node-v": 40 * MIN_US, "node-w": 2 * MIN_US}, "totals of account default")
        r = lg.node("POST", "/v1/leases", {"id": "vv-l1", "account": "default",
                                           "class": "general", "want_us": 10 * MIN_US},
                    node="node-v")
        lease = (r.json() or {}).get("lease", {})
        t.ok(r.status == 201 and [s["pack_id"] for s in lease.get("slices", [])] == ["pk-pool"]
             and lease.get("granted_us") == 10 * MIN_US,
             "node-v leases 10 minutes of the pooled pk-pool (pk-cold is frozen)", r)
        d = deduction("vv-d9", "pk-pool", 4 * MIN_US, 10 * MIN_US, node="node-v",
                      at=T + 3_600_000)
        d["lease_id"] = "vv-l1"
        r = lg.batch([d], node="node-v")
        t.ok(r.status == 200 and r.json()["accepted"] == ["vv-d9"],
             "a deduction against the lease is accepted", r)
        r = lg.admin("GET", "/v1/verify")
        t.ok(r.status == 200 and r.json() == {"ok": True, "violations": []},
             "GET /v1/verify: consistent", r)
        r = lg.node("POST", "/v1/leases", {"id": "ww-l1", "account": "acme",
                                           "class": "general", "want_us": MIN_US}, node="node-w")
        t.ok(r.status == 404 and "acme" in r.body.decode(),
             "a lease of an account the ledger does not know: 404", r)
        lg.stop()
    except Exception:
        import traceback
        t.ok(False, "no exception in the v2 test", traceback.format_exc())
    finally:
        lg.close()


def main():
    backend = sys.argv[1]
    from_v2(backend)
    lg = Ledger(backend, tmpdir("ledger-migrate."))
    try:
        ok, err = load_fixture(lg, backend)
        t.ok(ok, "load the schema-1 fixture (%s)" % backend, err)
        rc, out, err = lg.cli("migrate")
        t.ok(rc == 0 and "schema version 3" in out, "migrate: 1 → 3", out + err)
        rc, out, err = lg.cli("migrate")
        t.ok(rc == 0 and "schema version 3" in out, "migrate again: a no-op", out + err)

        # the fixture's credentials are not ours: make new ones
        rc, out, err = lg.cli("admin", "add", "bob")
        lg.admin_token = out.strip()
        lg.start()
        r = lg.admin("GET", "/v1/totals")
        tot = {x["node"]: x for x in (r.json() or {}).get("totals", [])}
        t.eq({n: (x["usage_count"], x["billed_us"]) for n, x in tot.items()},
             {"node-v": (1, 40 * MIN_US), "node-h": (2, 42 * MIN_US),
              "node-w": (2, 4 * MIN_US)}, "every record kept, under the node that sent it")
        r = lg.admin("GET", "/v1/packs/pk-v")
        t.ok(r.status == 200 and r.json()["used_us"] == 40 * MIN_US, "pk-v's balance kept", r)

        # node secrets were kept too: the fixture's nodes sign with them
        sec = {}
        for n in ("node-v", "node-h", "node-w"):
            q = ("SELECT secret FROM nodes WHERE name = '%s'" % n)
            if backend == "sqlite":
                sec[n] = subprocess.run(["sqlite3", lg.dbargs[1], q], capture_output=True,
                                        text=True).stdout.strip()
            else:
                sec[n] = subprocess.run(["psql", "-X", "-At", lg.pg_url, "-c", q],
                                        capture_output=True, text=True).stdout.strip()
        lg.secrets.update(sec)
        # vv is node-v's (its record came first); hh node-h's; ww1, ww2 node-w's
        r = lg.batch([usage("vv-u5", node="node-h", at=T + 9000)], node="node-h")
        t.ok(r.status == 200 and [x["id"] for x in r.json()["rejected"]] == ["vv-u5"],
             "node-h can no longer write under node-v's prefix", r)
        r = lg.batch([usage("vv-u5", node="node-v", at=T + 9000)], node="node-v")
        t.ok(r.status == 200 and r.json()["accepted"] == ["vv-u5"], "node-v can", r)
        r = lg.batch([usage("hh-u5", node="node-h", at=T + 9000)], node="node-h")
        t.ok(r.status == 200 and r.json()["accepted"] == ["hh-u5"], "node-h keeps hh", r)
        r = lg.batch([usage("ww1-u5", node="node-w", at=T + 9000),
                      usage("ww2-u5", node="node-w", at=T + 9000)], node="node-w")
        t.ok(r.status == 200 and r.json()["accepted"] == ["ww1-u5", "ww2-u5"],
             "node-w keeps both of its prefixes", r)
        r = lg.batch([usage("ww3-u1", node="node-w", at=T + 9000)], node="node-w")
        t.ok(r.status == 200 and [x["id"] for x in r.json()["rejected"]] == ["ww3-u1"],
             "a third prefix is not bound by use", r)
        lg.stop()
        rc, out, err = lg.cli("node", "bind", "node-w", "ww3")
        t.ok(rc == 0 and "ww1" in out and "ww3" in out, "node bind lists the prefixes",
             out + err)
        rc, out, err = lg.cli("node", "bind", "node-h", "vv")
        t.ok(rc == 1 and "node-v" in err and err.count("\n") == 1,
             "binding another node's prefix: exit 1, one line naming its owner", err)
        rc, out, err = lg.cli("node", "bind", "node-zz", "zz")
        t.ok(rc == 1 and "no node" in err, "binding for an unknown node: exit 1", err)
        rc, out, err = lg.cli("node", "bind", "node-w", "a-b")
        t.ok(rc == 2 and err.count("\n") == 1, "a prefix with '-': exit 2, one line", err)
        lg.start()
        r = lg.batch([usage("ww3-u1", node="node-w", at=T + 9000)], node="node-w")
        t.ok(r.status == 200 and r.json()["accepted"] == ["ww3-u1"], "…then it is accepted", r)
        r = lg.admin("GET", "/v1/audit")
        t.ok(any(a["action"] == "node.bind" and a["target"] == "node-w ww3"
                 for a in (r.json() or {}).get("audit", [])), "the binding is audited", r)
        lg.stop()
    except Exception:
        import traceback
        t.ok(False, "no exception in the test", traceback.format_exc())
    finally:
        lg.close()
    t.done()


if __name__ == "__main__":
    main()
