#!/usr/bin/env python3
"""farm.py — helpers of the farm-mode tests (tests/farm/*.sh); not a test.

The ledger's database is read directly (read-only, one statement per
question, so every answer is one consistent snapshot): FARM_DB is
"sqlite:PATH" or "pg:URL".  The ledger's HTTP API is reached through
E2E_URL / E2E_TOKEN (tests/e2e/e2e.py's conventions).

    farm.py pack ACCOUNT            "total used reserved postings open_leases" of the
                                    account's pooled packs (summed), reserved as of now
    farm.py open-lease NODE         the id of an open lease of NODE with unposted
                                    minutes (empty when none)
    farm.py lease LEASE_ID          "state granted posted created_ms expires_ms resolved_ms"
    farm.py granted-after NODE MS   leases of other nodes than NODE created after MS
                                    that hold pack minutes (a count)
    farm.py monitor OUT STOP ACCOUNT [URL...]
                                    samples the account's pooled packs every ~0.1 s
                                    until the file STOP exists: used ≤ total, used +
                                    reserved ≤ total (Σ granted − posted over open,
                                    unexpired leases ≤ the pack's free minutes), used
                                    = Σ its postings; GET /v1/verify on each URL about
                                    every FARM_VERIFY_EVERY (3) s.  Writes a JSON summary to OUT.
    farm.py monitor-report OUT      prints the summary; exit 1 if it holds problems
    farm.py postings ACCOUNT TOTAL_US [LEDGER_LOG...]
                                    the final money checks (see postings()); the
                                    ledgers' --verbose logs bound the time slack
    farm.py late NODE LEASE_ID      the node's deductions against LEASE_ID that the
                                    ledger received after the lease resolved were
                                    posted from free minutes or as overage, never
                                    from the reservation, each exactly once
    farm.py reconcile NODE DB       what the node recorded equals what the ledger holds
                                    for it (usage ids and fields, billed and duration
                                    totals, every record kind, Σ deductions to the µs)
    farm.py verify URL              GET /v1/verify: exit 1 with the violations

Times: the ledger's clock is the real one in these tests (no METER_NOW);
"now" for a reservation is read after the snapshot's statement returns, so
a lease the ledger may already have treated as expired is never counted.
"""

import http.client
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections import defaultdict, Counter

MIN_US = 60000000
VERIFY_EVERY = float(os.environ.get("FARM_VERIFY_EVERY", "3"))   # seconds between /v1/verify


# ------------------------------------------------------------------ the db --

class DB:
    def __init__(self, spec=None):
        spec = spec or os.environ["FARM_DB"]
        self.kind, _, self.where = spec.partition(":")
        self.psql = None
        if self.kind == "sqlite":
            self.con = sqlite3.connect("file:%s?mode=ro" % urllib.parse.quote(self.where),
                                       uri=True, timeout=30, isolation_level=None)
        elif self.kind != "pg":
            raise SystemExit("FARM_DB must be sqlite:PATH or pg:URL")

    def _pg(self, sql):
        if self.psql is None or self.psql.poll() is not None:
            self.psql = subprocess.Popen(
                ["psql", "-X", "-q", "-tA", "-F", "\x1f", "-P", "null=\\N", self.where],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, bufsize=1)
        self.psql.stdin.write(sql.rstrip().rstrip(";") + ";\n\\echo __farm_end__\n")
        self.psql.stdin.flush()
        rows, err = [], []
        for line in self.psql.stdout:
            line = line.rstrip("\n")
            if line == "__farm_end__":
                break
            if line.startswith(("ERROR:", "FATAL:", "psql:")) or err:
                err.append(line)
                continue
            rows.append(tuple(None if v == "\\N" else conv(v) for v in line.split("\x1f")))
        else:
            raise RuntimeError("psql ended: %s" % "\n".join(err))
        if err:
            raise RuntimeError("psql: %s\n%s" % ("\n".join(err), sql))
        return rows

    def q(self, sql):
        if self.kind == "pg":
            return self._pg(sql)
        return [tuple(r) for r in self.con.execute(sql).fetchall()]


def conv(v):
    try:
        return int(v)
    except ValueError:
        if v in ("t", "f"):
            return 1 if v == "t" else 0
        return v


def lit(s):
    return "'" + str(s).replace("'", "''") + "'"


def now_ms():
    return int(time.time() * 1000)


# Reserved minutes of each pooled pack: non-voided slices of leases open
# and unexpired at NOW (the placeholder is filled in after the statement
# ran: see pack_rows).
PACK_SQL = """
SELECT p.id, p.total_us, p.used_us,
  (SELECT COALESCE(SUM(s.granted_us - s.posted_us), 0) FROM lease_slices s
     JOIN leases l ON l.id = s.lease_id
    WHERE s.pack_id = p.id AND CAST(s.voided AS INTEGER) = 0 AND l.state = 'open'),
  (SELECT COALESCE(SUM(po.amount_us), 0) FROM postings po WHERE po.pack_id = p.id),
  (SELECT COUNT(*) FROM lease_slices s JOIN leases l ON l.id = s.lease_id
    WHERE s.pack_id = p.id AND l.state = 'open'),
  (SELECT COALESCE(MIN(l.expires_ms), 0) FROM lease_slices s JOIN leases l ON l.id = s.lease_id
    WHERE s.pack_id = p.id AND l.state = 'open' AND CAST(s.voided AS INTEGER) = 0
      AND s.granted_us > s.posted_us)
FROM packs p WHERE p.node IS NULL AND p.account = %s ORDER BY p.id
"""

# The same, but the reservation as of a time: leases still 'open' in the
# table whose expires_ms has passed hold nothing (the ledger resolves them
# at its next lease operation, and may grant their minutes first).
RES_SQL = """
SELECT s.pack_id, l.expires_ms, s.granted_us - s.posted_us FROM lease_slices s
  JOIN leases l ON l.id = s.lease_id JOIN packs p ON p.id = s.pack_id
 WHERE p.node IS NULL AND p.account = %s AND l.state = 'open'
   AND CAST(s.voided AS INTEGER) = 0
"""


def pack_rows(db, account):
    """[(id, total, used, reserved, postings, open_leases)] as of one snapshot."""
    db.q("BEGIN" if db.kind == "sqlite" else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        packs = db.q(PACK_SQL % lit(account))
        res = db.q(RES_SQL % lit(account))
    finally:
        db.q("COMMIT")
    t = now_ms()
    reserved = defaultdict(int)
    for pid, exp, rest in res:
        if exp > t:
            reserved[pid] += rest
    return [(pid, total, used, reserved[pid], posted, nopen)
            for pid, total, used, _r, posted, nopen, _e in packs], t


# ------------------------------------------------------------------- http --

def request(url, method, target, body=None, timeout=10):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        h = {"Authorization": "Bearer " + os.environ["E2E_TOKEN"]}
        if body is not None:
            h["Content-Type"] = "application/json"
        c.request(method, target, body=body, headers=h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def ledger_get(target, url=None):
    st, body = request(url or os.environ["E2E_URL"], "GET", target)
    if st != 200:
        raise RuntimeError("GET %s: HTTP %d %s" % (target, st, body[:300]))
    return json.loads(body)


def verify_url(url):
    j = ledger_get("/v1/verify", url)
    return bool(j.get("ok")), j.get("violations", [])


# ------------------------------------------------------------- commands --

def cmd_pack(account):
    rows, _ = pack_rows(DB(), account)
    s = [sum(r[i] for r in rows) for i in range(1, 6)]
    print(" ".join(str(v) for v in s))
    return 0


def cmd_open_lease(node):
    db = DB()
    rows = db.q("""SELECT l.id, l.expires_ms, SUM(s.granted_us - s.posted_us) FROM leases l
                   JOIN lease_slices s ON s.lease_id = l.id
                   WHERE l.node = %s AND l.state = 'open' AND CAST(s.voided AS INTEGER) = 0
                   GROUP BY l.id, l.expires_ms ORDER BY l.id""" % lit(node))
    t = now_ms()
    for lid, exp, rest in rows:
        if exp > t and rest > 0:
            print(lid)
            return 0
    return 0


def cmd_lease(lid):
    db = DB()
    rows = db.q("""SELECT l.state, l.granted_us,
                     (SELECT COALESCE(SUM(posted_us), 0) FROM lease_slices WHERE lease_id = l.id),
                     l.created_ms, l.expires_ms, l.resolved_ms FROM leases l WHERE l.id = %s"""
                % lit(lid))
    if not rows:
        print("none")
        return 1
    print(" ".join("-" if v is None else str(v) for v in rows[0]))
    return 0


def cmd_granted_after(node, ms):
    db = DB()
    rows = db.q("""SELECT COUNT(DISTINCT l.id) FROM leases l JOIN lease_slices s ON s.lease_id = l.id
                   WHERE l.node <> %s AND l.created_ms > %d AND s.granted_us > 0"""
                % (lit(node), int(ms)))
    print(rows[0][0])
    return 0


def cmd_monitor(out, stop, account, urls):
    db = DB()
    problems, samples, verifies, verify_errors, vtimes = [], 0, 0, 0, []
    first_full_reserve = None
    max_res, max_open = 0, 0
    last_verify = 0.0
    t_end = time.time() + 600
    while not os.path.exists(stop) and time.time() < t_end:
        try:
            rows, t = pack_rows(db, account)
        except Exception as e:   # a PG restart, an SQLite busy moment
            problems.append("sample failed: %s" % e) if "locked" not in str(e) else None
            time.sleep(0.2)
            continue
        samples += 1
        for pid, total, used, res, posted, nopen in rows:
            max_res, max_open = max(max_res, res), max(max_open, nopen)
            if used < 0 or used > total:
                problems.append("t=%d pack %s: used %d outside 0..%d" % (t, pid, used, total))
            if used + res > total:
                problems.append("t=%d pack %s: used %d + reserved %d = %d > total %d "
                                "(a minute reserved twice)" % (t, pid, used, res, used + res, total))
            if used != posted:
                problems.append("t=%d pack %s: used %d != sum of its postings %d"
                                % (t, pid, used, posted))
            if first_full_reserve is None and used + res == total:
                first_full_reserve = t
        if urls and time.time() - last_verify >= VERIFY_EVERY:
            last_verify = time.time()
            for u in urls:
                try:
                    t0 = time.time()
                    okv, viol = verify_url(u)
                    vtimes.append(time.time() - t0)
                    verifies += 1
                    if not okv:
                        problems.append("t=%d %s/v1/verify: %s" % (t, u, "; ".join(viol[:5])))
                except Exception:
                    verify_errors += 1   # a ledger down (killed on purpose)
        time.sleep(0.1)
    if len(problems) > 50:
        problems = problems[:50] + ["... %d more" % (len(problems) - 50)]
    with open(out, "w") as f:
        json.dump({"samples": samples, "problems": problems, "verifies": verifies,
                   "verify_unreachable": verify_errors, "max_reserved_us": max_res,
                   "max_open_leases": max_open, "first_full_ms": first_full_reserve,
                   "verify_max_s": max(vtimes or [0]),
                   "verify_mean_s": sum(vtimes) / len(vtimes) if vtimes else 0}, f)
    return 0


def cmd_monitor_report(out):
    with open(out) as f:
        m = json.load(f)
    print("%d samples, %d verify calls (%d while a ledger was down; %.2f s mean, %.2f s max), "
          "at most %d open leases, %.3f min reserved at once"
          % (m["samples"], m["verifies"], m["verify_unreachable"], m["verify_mean_s"],
             m["verify_max_s"], m["max_open_leases"], m["max_reserved_us"] / MIN_US))
    if m["problems"] or m["samples"] < 5:
        print("\n".join(m["problems"] or ["too few samples"]))
        return 1
    return 0


def slack_ms(logs):
    """The longest request the ledger logged (--verbose: "METHOD PATH STATUS
    N ms"), in ms, rounded up: a record's or lease's time at the ledger is
    its request's arrival (meter_now() when the request came in), its
    transaction commits within that long."""
    w = 0.0
    for path in logs:
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    m = re.search(r" (\d{3}) (\d+(?:\.\d+)?) ms", line)
                    if m:
                        w = max(w, float(m.group(2)))
        except OSError:
            pass
    return int(w) + 1


def postings(account, total_us, slack=0):
    """The money at the end of a drain:
      * the account's pooled packs' postings add up to TOTAL_US exactly, and
        packs.used_us says the same;
      * every posting is > 0; per deduction of the account, its postings add
        up to its amount (pooled-settled), and no deduction id has postings
        twice over;
      * in posting order the pack's cumulative never passes its total (never
        below zero);
      * every overage posting was made when the pack had no free minute:
        total − posted before it (posting order) − reserved then ≤ 0, the
        reservation rebuilt from the leases' lifetimes.  The ledger's times
        are its requests' arrival times and a transaction commits up to
        SLACK ms later (the longest request it logged), so "then" is any
        moment of [t, t + SLACK] and a lease counts when it was alive at any
        moment of it (the lenient side);
      * no open lease holds unposted minutes of a fully spent pack."""
    db = DB()
    bad = []
    packs = db.q("SELECT id, total_us, used_us FROM packs WHERE node IS NULL AND account = %s"
                 % lit(account))
    if not packs:
        print("no pooled pack of account %s" % account)
        return 1
    total = sum(p[1] for p in packs)
    pids = {p[0] for p in packs}
    post = db.q("""SELECT po.seq, po.deduction_id, po.pack_id, po.lease_id, po.source, po.amount_us,
                          po.at_ms, r.received_ms, r.amount_us, r.account
                     FROM postings po LEFT JOIN records r ON r.id = po.deduction_id
                    ORDER BY po.seq""")
    post = [p for p in post if p[9] == account or p[2] in pids]
    from_packs = sum(p[5] for p in post if p[2] in pids)
    used = sum(p[2] for p in packs)
    if from_packs != total_us or used != total_us or total != total_us:
        bad.append("pack total %d, used_us %d, postings from the packs %d; want all %d"
                   % (total, used, from_packs, total_us))
    if any(p[5] <= 0 for p in post):
        bad.append("postings of 0 or less: %s" % [p for p in post if p[5] <= 0][:3])
    per = defaultdict(int)
    for p in post:
        per[p[1]] += p[5]
    for did, s in per.items():
        amt = next(p[8] for p in post if p[1] == did)
        if amt is None:
            bad.append("posting of unknown deduction %s" % did)
        elif s != amt:
            bad.append("deduction %s: postings add up to %d, its amount is %d" % (did, s, amt))
    deds = db.q("""SELECT id, amount_us FROM records WHERE kind = 'deduction' AND account = %s
                   AND amount_us > 0""" % lit(account))
    unposted = [d for d in deds if d[0] not in per]
    if unposted:
        bad.append("%d deductions of the account without postings, e.g. %s"
                   % (len(unposted), unposted[:3]))
    # cumulative, in order
    cum, full_seq, full_at = defaultdict(int), None, None
    for p in post:
        if p[2] in pids:
            cum[p[2]] += p[5]
            tot = next(x[1] for x in packs if x[0] == p[2])
            if cum[p[2]] > tot:
                bad.append("posting %d takes pack %s to %d > total %d" % (p[0], p[2], cum[p[2]], tot))
            if full_seq is None and sum(cum.values()) == total:
                full_seq, full_at = p[0], max(p[6] or 0, p[7] or 0)
    # overage only when nothing was free
    leases = {r[0]: r for r in db.q(
        "SELECT id, node, created_ms, expires_ms, resolved_ms, state FROM leases WHERE account = %s"
        % lit(account))}
    slices = db.q("""SELECT s.lease_id, s.pack_id, s.granted_us, CAST(s.voided AS INTEGER)
                     FROM lease_slices s JOIN leases l ON l.id = s.lease_id
                     WHERE l.account = %s""" % lit(account))
    lease_post = defaultdict(list)   # (lease, pack) -> [(seq, amount)]
    for p in post:
        if p[4] == "lease":
            lease_post[(p[3], p[2])].append((p[0], p[5]))
    over = [p for p in post if p[4] == "overage"]
    early = 0
    for o in over:
        seq, t = o[0], max(o[6] or 0, o[7] or 0)
        posted_before = sum(p[5] for p in post if p[2] in pids and p[0] < seq)
        reserved = 0
        for lid, pid, granted, voided in slices:
            l = leases.get(lid)
            if l is None or voided or pid not in pids:
                continue
            end = l[4] if l[4] is not None else l[3]   # resolved, else its expiry
            if l[2] <= t + slack and t <= end + slack:
                reserved += granted - sum(a for s, a in lease_post[(lid, pid)] if s < seq)
        free = total - posted_before - reserved
        if full_seq is None or seq < full_seq:
            early += 1
        if free > 0:
            bad.append("overage posting %d (deduction %s, %d us, at %d) while the pack had %d us "
                       "free (posted %d, reserved %d)"
                       % (seq, o[1], o[5], t, free, posted_before, reserved))
    # nothing left reserved on a spent pack
    rows, _ = pack_rows(db, account)
    for pid, tot, u, res, _po, nopen in rows:
        if u == tot and res:
            bad.append("pack %s is spent but %d us are still reserved" % (pid, res))
    by_src = Counter()
    for p in post:
        by_src[p[4]] += p[5]
    if len(bad) > 40:
        bad = bad[:40] + ["... %d more" % (len(bad) - 40)]
    if bad:
        print("\n".join(bad))
        return 1
    print("%d postings: lease %.6f min, free %.6f min, overage %.6f min; the pack (%d us) "
          "fully spent at posting %s; %d overage postings, %d of them before that (pack fully "
          "reserved then), %d leases; time slack %d ms"
          % (len(post), by_src["lease"] / MIN_US, by_src["free"] / MIN_US,
             by_src["overage"] / MIN_US, total, full_seq, len(over), early, len(leases), slack))
    return 0


def late(node, lid):
    db = DB()
    l = db.q("SELECT state, resolved_ms, expires_ms FROM leases WHERE id = %s" % lit(lid))
    if not l:
        print("no lease %s" % lid)
        return 1
    state, resolved, expires = l[0]
    if state == "open" or resolved is None:
        print("lease %s is %s (resolved_ms %s): it should have expired" % (lid, state, resolved))
        return 1
    recs = db.q("""SELECT r.id, r.amount_us, r.received_ms, r.at_ms FROM records r
                   WHERE r.kind = 'deduction' AND r.node = %s AND r.lease_id = %s"""
                % (lit(node), lit(lid)))
    post = defaultdict(list)
    for did, src, amt in db.q("""SELECT po.deduction_id, po.source, po.amount_us FROM postings po
                                 JOIN records r ON r.id = po.deduction_id
                                 WHERE r.node = %s AND r.lease_id = %s""" % (lit(node), lit(lid))):
        post[did].append((src, amt))
    bad, nlate, srcs = [], 0, Counter()
    for did, amt, rec_ms, at in recs:
        ps = post.get(did, [])
        if sum(a for _, a in ps) != amt:
            bad.append("deduction %s: postings %s, amount %d" % (did, ps, amt))
        if rec_ms > resolved:
            nlate += 1
            for s, a in ps:
                srcs[s] += a
                if s == "lease":
                    bad.append("late deduction %s (received %d, lease resolved %d) posted from "
                               "the reservation" % (did, rec_ms, resolved))
    if nlate == 0:
        bad.append("no deduction against lease %s reached the ledger after it resolved (%s at %d)"
                   % (lid, state, resolved))
    if bad:
        print("\n".join(bad[:30]))
        return 1
    print("lease %s %s at %d: %d of its %d deductions came late: free %d us, overage %d us"
          % (lid, state, resolved, nlate, len(recs), srcs["free"], srcs["overage"]))
    return 0


def meterctl(db, *args):
    r = subprocess.run([os.environ["METERCTL"], "--db", db, "--format", "json"] + list(args),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("meterctl %s: exit %d: %s" % (" ".join(args), r.returncode,
                                                          r.stderr.strip()))
    return json.loads(r.stdout)


USAGE_KEYS = ("job", "output", "class", "ttype", "codec", "width", "height", "duration_us",
              "billed_us", "account")


def reconcile(node, ndb):
    """The node's own records against the ledger's, read from both
    databases (the node's read-only)."""
    bad = []
    st = meterctl(ndb, "sync", "status")
    if st.get("depth") != 0 or st.get("quarantined") != 0:
        bad.append("node outbox depth %s, quarantined %s (want 0, 0)"
                   % (st.get("depth"), st.get("quarantined")))
    con = sqlite3.connect("file:%s?mode=ro" % urllib.parse.quote(ndb), uri=True, timeout=30)
    try:
        n_usage = {r[0]: r for r in con.execute(
            "SELECT id, billed_us, duration_us, account FROM usage")}
        n_ded = {r[0]: r for r in con.execute(
            "SELECT id, amount_us, account FROM deductions")}
        n_count = sum(con.execute("SELECT count(*) FROM " + t).fetchone()[0]
                      for t in ("usage", "deductions", "settlements", "pack_events"))
    finally:
        con.close()
    db = DB()
    l_usage = {r[0]: r for r in db.q(
        "SELECT id, billed_us, duration_us, account FROM records WHERE kind = 'usage' AND node = %s"
        % lit(node))}
    l_ded = {r[0]: r for r in db.q(
        "SELECT id, amount_us, account FROM records WHERE kind = 'deduction' AND node = %s"
        % lit(node))}
    l_count = db.q("SELECT count(*) FROM records WHERE node = %s" % lit(node))[0][0]
    for what, n, l in (("usage", n_usage, l_usage), ("deductions", n_ded, l_ded)):
        miss, extra = sorted(set(n) - set(l)), sorted(set(l) - set(n))
        if miss:
            bad.append("%s missing at the ledger: %d, e.g. %s" % (what, len(miss), miss[:3]))
        if extra:
            bad.append("%s at the ledger the node does not have: %s" % (what, extra[:3]))
        for i in sorted(set(n) & set(l)):
            if tuple(n[i]) != tuple(l[i]):
                bad.append("%s %s: node %r, ledger %r" % (what, i, n[i], l[i]))
                if len(bad) > 20:
                    break
    sums = lambda d, k: sum(r[k] for r in d.values())
    nb, lb = sums(n_usage, 1), sums(l_usage, 1)
    nd, ld = sums(n_ded, 1), sums(l_ded, 1)
    if nb != lb:
        bad.append("billed: node %d us, ledger %d us" % (nb, lb))
    if nd != ld:
        bad.append("deducted: node %d us, ledger %d us" % (nd, ld))
    if n_count != l_count:
        bad.append("records of every kind: node %d, ledger %d" % (n_count, l_count))
    tot = ledger_get("/v1/totals?node=" + urllib.parse.quote(node))["totals"]
    t = tot[0] if tot else {}
    if t.get("billed_us") != nb or t.get("usage_count") != len(n_usage):
        bad.append("/v1/totals: billed %s, usage %s; node %d, %d"
                   % (t.get("billed_us"), t.get("usage_count"), nb, len(n_usage)))
    if bad:
        print("\n".join(bad[:30]))
        return 1
    print("%s: %d usage billed %d us, %d deductions %d us, %d records: equal"
          % (node, len(n_usage), nb, len(n_ded), nd, n_count))
    return 0


def node_leases(account, pairs):
    """The nodes' `meterctl lease list`: at least half of them were granted
    a lease of ACCOUNT (a node asking while the others hold the whole pool
    is refused, rightly: 422), and the refusals were for want of minutes."""
    bad, info, granted = [], [], 0
    for pair in pairs:
        node, _, ndb = pair.partition("=")
        ls = meterctl(ndb, "lease", "list")
        got = [x for x in ls if x["account"] == account and x["granted_us"] > 0]
        granted += 1 if got else 0
        for x in ls:
            if x["state"] == "refused" and "no %s minutes" % x["class"] not in (x.get("reason") or ""):
                bad.append("%s: lease %s refused: %s" % (node, x["id"], x.get("reason")))
        info.append("%s %d/%d" % (node, len(got), len(ls)))
    if granted * 2 < len(pairs):
        bad.append("only %d of %d nodes were granted a lease (%s)"
                   % (granted, len(pairs), ", ".join(info)))
    if bad:
        print("\n".join(bad[:20]))
        return 1
    print("%d of %d nodes granted; granted/asked: %s" % (granted, len(pairs), ", ".join(info)))
    return 0


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__, file=sys.stderr)
        return 2
    c = a[0]
    if c == "pack":
        return cmd_pack(a[1])
    if c == "open-lease":
        return cmd_open_lease(a[1])
    if c == "lease":
        return cmd_lease(a[1])
    if c == "granted-after":
        return cmd_granted_after(a[1], a[2])
    if c == "node-leases":
        return node_leases(a[1], a[2:])
    if c == "count-leases":
        rows = DB().q("SELECT state, COUNT(*) FROM leases GROUP BY state ORDER BY state")
        print(", ".join("%s %d" % r for r in rows) or "none")
        return 0
    if c == "monitor":
        return cmd_monitor(a[1], a[2], a[3], a[4:])
    if c == "monitor-report":
        return cmd_monitor_report(a[1])
    if c == "postings":
        return postings(a[1], int(a[2]), slack_ms(a[3:]))
    if c == "late":
        return late(a[1], a[2])
    if c == "reconcile":
        return reconcile(a[1], a[2])
    if c == "verify":
        okv, viol = verify_url(a[1])
        print("\n".join(viol) if viol else "ok")
        return 0 if okv else 1
    print("farm.py: unknown command %s" % c, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
