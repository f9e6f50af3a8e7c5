#!/usr/bin/env python3
"""load.py — helpers of the load tests (tests/load/*.sh); not a test.

    load.py reader STOP_FILE OUT.json
        An admin reading the console's endpoints in a loop, back to back,
        until STOP_FILE exists (then one last round): GET /v1/packs,
        /v1/usage/details, /v1/usage/records (one page of 500 per round,
        walking the whole listing with `after`, again from the start when
        it ends), /v1/totals, /metrics.  Each request on a new connection,
        timed client-side from connect to the last byte of the answer.
        Writes OUT.json: {"times": {ENDPOINT: [seconds, ...]},
        "rounds": N, "walks": N, "problems": [one line each]}.  A problem
        is an answer other than 200 or not the promised JSON, a listing
        page out of order or repeating an id within a walk, a node's
        totals (usage, records, billed) or a pack's used_us going down
        between rounds, or a pack's used_us outside 0 … total.

    load.py buy-packs NODE...
        Buys each node's three packs at the ledger, assigned to it: a
        general pack of 200 minutes started a day ago (so it ends first
        and is used first, and runs out early), a general pack of 10^7
        minutes that never runs out, a TSC pack of 50 minutes.  Ids
        pk-NODE-small, pk-NODE-big, pk-NODE-tsc.  Exit 1 and one line per
        purchase that did not answer 201.

    load.py figures RESULTS_DIR WALL_SECONDS
        Prints the figures as TAP diagnostics ("# " lines) from what the
        test left in RESULTS_DIR: sync-NODE.json (meterctl --format json
        sync), times-NODE.txt (tests/load/curltime.so: PATH STATUS
        CURLCODE SECONDS per request) and reader.json.

    load.py check-times RESULTS_DIR
        Exit 0 when the shim saw each node's sync: as many failed
        requests as it retried, at least one batch POST answered 200 per
        1000 records it sent, one GET of the pull answered; else 1 and why.

Environment: E2E_URL (the ledger), E2E_TOKEN (an admin token).  Only the
standard library.
"""

import glob
import http.client
import json
import os
import sys
import time
import urllib.parse


def request(target, body=None):
    u = urllib.parse.urlsplit(os.environ["E2E_URL"])
    t0 = time.perf_counter()
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    try:
        h = {"Authorization": "Bearer " + os.environ["E2E_TOKEN"]}
        if body is None:
            c.request("GET", target, headers=h)
        else:
            h["Content-Type"] = "application/json"
            c.request("POST", target, body=json.dumps(body).encode(), headers=h)
        r = c.getresponse()
        body = r.read()
        return r.status, body, time.perf_counter() - t0
    finally:
        c.close()


class Reader:
    def __init__(self):
        self.times = {}
        self.problems = []
        self.rounds = 0
        self.walks = 0
        self.after = None          # the listing walk's cursor
        self.last_at = None        # at_ms of the walk's last record
        self.seen = set()          # ids of this walk
        self.seen_totals = {}      # node -> (usage_count, records, billed_us)
        self.used = {}             # pack -> used_us

    def problem(self, line):
        if len(self.problems) < 50:
            self.problems.append(line)

    def get(self, name, target, want_json=True):
        try:
            status, body, dt = request(target)
        except (OSError, http.client.HTTPException) as e:
            self.problem("%s: %s" % (target, e))
            return None
        self.times.setdefault(name, []).append(dt)
        if status != 200:
            self.problem("%s: HTTP %d %s" % (target, status, body[:200]))
            return None
        if not want_json:
            return body
        try:
            return json.loads(body)
        except ValueError as e:
            self.problem("%s: not JSON (%s)" % (target, e))
            return None

    def packs(self):
        j = self.get("packs", "/v1/packs")
        for p in (j or {}).get("packs", []):
            used = p["used_us"]
            if not 0 <= used <= p["total_us"]:
                self.problem("pack %s: used_us %d outside 0 … %d" % (p["id"], used, p["total_us"]))
            if used < self.used.get(p["id"], 0):
                self.problem("pack %s: used_us went down from %d to %d" %
                             (p["id"], self.used[p["id"]], used))
            self.used[p["id"]] = used

    def totals(self):
        j = self.get("totals", "/v1/totals")
        for t in (j or {}).get("totals", []):
            now = (t["usage_count"], t["records"], t["billed_us"])
            before = self.seen_totals.get(t["node"], (0, 0, 0))
            if any(a < b for a, b in zip(now, before)):
                self.problem("totals of %s went down: (usage, records, billed) %r -> %r" %
                             (t["node"], before, now))
            self.seen_totals[t["node"]] = now

    def records_page(self):
        q = {"limit": "500"}
        if self.after:
            q["after"] = self.after
        j = self.get("records", "/v1/usage/records?" + urllib.parse.urlencode(q))
        if j is None:
            self.after = None
            return
        # ordered by (at_ms, id): only at_ms is checked here, since the
        # order of ids is the database's collation (PostgreSQL's may not
        # be byte order); a repeated id shows a tie broken inconsistently
        for r in j["records"]:
            if self.last_at is not None and r["at_ms"] < self.last_at:
                self.problem("listing out of order: %s at %d after %d" %
                             (r["id"], r["at_ms"], self.last_at))
            if r["id"] in self.seen:
                self.problem("listing repeats %s within one walk" % r["id"])
            self.seen.add(r["id"])
            self.last_at = r["at_ms"]
        self.after = j["next"]
        if not self.after:
            self.walks += 1
            self.last_at = None
            self.seen = set()

    def round(self):
        self.packs()
        self.get("details", "/v1/usage/details")
        self.records_page()
        self.totals()
        body = self.get("metrics", "/metrics", want_json=False)
        if body is not None and b"ffmeter_ledger_requests_total" not in body:
            self.problem("/metrics: no ffmeter_ledger_requests_total")
        self.rounds += 1


def reader(stop_file, out):
    r = Reader()
    while not os.path.exists(stop_file):
        r.round()
    r.round()
    with open(out, "w") as f:
        json.dump({"times": r.times, "rounds": r.rounds, "walks": r.walks,
                   "problems": r.problems}, f)
    return 0


def buy_packs(nodes):
    day_ago = int(time.time() * 1000) - 86400000
    bad = []
    for n in nodes:
        for p in ({"id": "pk-%s-small" % n, "type": "general", "minutes": 200,
                   "start_ms": day_ago},
                  {"id": "pk-%s-big" % n, "type": "general", "minutes": 10000000},
                  {"id": "pk-%s-tsc" % n, "type": "tsc", "minutes": 50}):
            p["node"] = n
            status, body, _ = request("/v1/packs", p)
            if status != 201:
                bad.append("%s: HTTP %d %s" % (p["id"], status, body[:200]))
    print("\n".join(bad))
    return 1 if bad else 0


# ---------------------------------------------------------------- figures --

def pct(sorted_v, p):
    """Nearest-rank percentile (as bench/bench_record.c)."""
    if not sorted_v:
        return 0.0
    i = (len(sorted_v) * p + 99) // 100
    return sorted_v[max(i, 1) - 1]


def ms(s):
    return "%.1f ms" % (s * 1000)


def dist(v):
    v = sorted(v)
    return "n=%d p50 %s p99 %s max %s" % (len(v), ms(pct(v, 50)), ms(pct(v, 99)),
                                          ms(v[-1] if v else 0))


def node_times(d):
    """node -> [(path, status, curlcode, seconds)]"""
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "times-*.txt"))):
        node = os.path.basename(f)[len("times-"):-len(".txt")]
        rows = []
        with open(f) as fh:
            for line in fh:
                p, st, cc, s = line.split()
                rows.append((p, int(st), int(cc), float(s)))
        out[node] = rows
    return out


def reports(d):
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "sync-*.json"))):
        node = os.path.basename(f)[len("sync-"):-len(".json")]
        with open(f) as fh:
            out[node] = json.load(fh)
    return out


def figures(d, wall):
    wall = float(wall)
    reps = reports(d)
    times = node_times(d)
    accepted = sum(r["accepted"] for r in reps.values())
    retries = sum(r["retries"] for r in reps.values())
    print("# ingest: %d records from %d nodes in %.2f s = %.0f records/s "
          "(wall time from the first sync's start to the last one's end)" %
          (accepted, len(reps), wall, accepted / wall if wall > 0 else 0))
    posts = [s for rows in times.values() for (p, st, cc, s) in rows
             if p.startswith("/v1/usage/batch")]
    print("# batches: %d requests, of which %d failed and were retried" % (len(posts), retries))
    print("# node batch request (POST /v1/usage/batch, client-side in meterctl sync, "
          "connect to answer): %s" % dist(posts))
    per = []
    for node in sorted(reps):
        r = reps[node]
        ps = [s for (p, st, cc, s) in times.get(node, []) if p.startswith("/v1/usage/batch")]
        per.append("%s %d in %.1f s" % (node, len(ps), sum(ps)))
    print("# per node (batches, time in requests): " + "; ".join(per))
    with open(os.path.join(d, "reader.json")) as fh:
        rd = json.load(fh)
    every = [s for v in rd["times"].values() for s in v]
    print("# admin reads (client-side, %d rounds, %d full listing walks): all %s" %
          (rd["rounds"], rd["walks"], dist(every)))
    for name in ("packs", "details", "records", "totals", "metrics"):
        print("#   %-8s %s" % (name, dist(rd["times"].get(name, []))))
    return 0


def check_times(d):
    """meterctl does not report its batch count: the shim's requests are
    checked against what it does report (records sent, retries)."""
    reps = reports(d)
    times = node_times(d)
    bad = []
    for node, r in sorted(reps.items()):
        rows = times.get(node, [])
        ok = [row for row in rows if row[1] == 200 and row[2] == 0]
        posts = sum(1 for row in ok if row[0].startswith("/v1/usage/batch"))
        gets = sum(1 for row in ok if row[0].startswith("/v1/nodes/"))
        least = -(-r["sent"] // 1000)      # at most 1000 records a batch
        if len(rows) - len(ok) != r["retries"] or posts < least or gets != 1:
            bad.append("%s: the shim saw %d requests, %d batch POSTs and %d pack GETs "
                       "answered 200; the sync sent %d records with %d retries and pulled "
                       "once" % (node, len(rows), posts, gets, r["sent"], r["retries"]))
    if not reps:
        bad.append("no sync reports in %s" % d)
    if bad:
        print("\n".join(bad))
        return 1
    print("%d nodes: every request timed" % len(reps))
    return 0


def main():
    a = sys.argv[1:]
    if len(a) == 3 and a[0] == "reader":
        return reader(a[1], a[2])
    if len(a) >= 2 and a[0] == "buy-packs":
        return buy_packs(a[1:])
    if len(a) == 3 and a[0] == "figures":
        return figures(a[1], a[2])
    if len(a) == 2 and a[0] == "check-times":
        return check_times(a[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
