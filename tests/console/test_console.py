#!/usr/bin/env python3
"""test_console.py — the ledger console in a headless browser (TAP).

Starts the real meter-ledgerd ($LEDGERD, SQLite) on 127.0.0.1, prepares
data through the real API: two accounts with pooled packs, an assigned
pack of the default account, a node (node-a) with an open lease of one
account (POST /v1/leases, signed as nodes sign, see tests/ledger), usage
posted through that lease and an overage settled from the other account's
pool.  Then tests/console/browser.js drives Debian's chromium through
playwright-core: pastes the admin token, reads the Accounts tab, the
Leases tab, clicks an account and reads the filtered packs; this file
checks what was shown against the prepared figures (computed here, in
integer µs) and that the page logged no error and fetched nothing from
outside the ledger.

Needs /usr/bin/chromium (scripts/install-deps) and playwright-core
(tests/console/package.json; `make check` / `make check-console` run npm ci
into $BUILD/tests/console/npm).  Without either the test FAILS: it never
skips.  Screenshots go to $TEST_ARTEFACTS (tests/run sets it: beside the
test's log), else to $BUILD/tests/logs/console/console_sqlite.artefacts/.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ledger"))
from ledgertest import BUILD, LEDGERD, MIN_US, Ledger, Tap, tmpdir  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
NODE = shutil.which("node") or "/usr/bin/node"
NODE_MODULES = os.environ.get("CONSOLE_NODE_MODULES") or os.path.join(
    BUILD, "tests", "console", "npm", "node_modules")
SHOTS = os.environ.get("TEST_ARTEFACTS") or os.path.join(
    BUILD, "tests", "logs", "console", "console_sqlite.artefacts")
LEASE_TTL_S = 1800

t = Tap()


def minutes(us):
    """The console's figure: 3 decimals, truncated, integer maths only."""
    sign = "-" if us < 0 else ""
    a = abs(us)
    return "%s%d.%03d" % (sign, a // MIN_US, (a % MIN_US) // 60_000)


# The prepared data.  Account figures: per (account, class) the pack
# count, total, used, reserved, remaining in µs, computed from what is
# created below (not read back from the ledger).
PACKS = [  # id, account, class, minutes, node (None: pooled)
    ("pk-acme-g1", "acme", "general", 100, None),
    ("pk-acme-g2", "acme", "general", 50, None),
    ("pk-acme-t1", "acme", "tsc", 20, None),
    ("pk-globex-g1", "globex", "general", 30, None),
    ("pk-def-a1", "default", "general", 10, "node-a"),
]
LEASE = {"id": "a-l1", "account": "acme", "class": "general", "want_us": 40 * MIN_US}
RELEASED = {"id": "a-l2", "account": "globex", "class": "general", "want_us": 5 * MIN_US}
LEASE_POSTED_US = 754_321_987          # usage posted through the lease: 12.572… min
GLOBEX_OVERAGE_US = 61_234_567         # an overage of globex, settled from its pool


# The console's minutes() on exact integers from JSON text, past 2^53 too.
MINUTES_CASES = [0, 59_999, 60_000, 754_321_987, -1, -60_000_001, 2 ** 53 + 1,
                 9_223_372_036_854_775_807, -9_223_372_036_854_775_807]


def expected_accounts():
    fig = {}
    for pid, acct, cls, mins, node in PACKS:
        f = fig.setdefault((acct, cls), {"packs": 0, "total": 0, "used": 0, "reserved": 0})
        f["packs"] += 1
        f["total"] += mins * MIN_US
    g = fig[("acme", "general")]
    g["used"] += LEASE_POSTED_US
    g["reserved"] += LEASE["want_us"] - LEASE_POSTED_US
    fig[("globex", "general")]["used"] += GLOBEX_OVERAGE_US
    for f in fig.values():
        f["remaining"] = f["total"] - f["used"] - f["reserved"]
    return fig


def deduction(rid, account, pack, amount, at, lease_id=None, before=None, cls="general"):
    """A deduction record (PROTOCOL.md); before/after the node's view of
    the pack (null for overage)."""
    day = time.strftime("%Y-%m-%d", time.gmtime(at / 1000))
    r = {"kind": "deduction", "id": rid, "node": "node-a", "at_ms": at,
         "charge_id": rid + "-c", "account": account, "pack_id": pack, "class": cls,
         "ttype": "Standard.H264.HD", "day": day, "amount_us": amount,
         "before_us": before, "after_us": None if before is None else before - amount}
    if lease_id:
        r["lease_id"] = lease_id
    return r


def prepare(lg):
    """Creates the data through the API; False (after saying why) on failure."""
    good = True
    for name in ("acme", "globex"):
        r = lg.admin("POST", "/v1/accounts", {"name": name})
        good &= t.ok(r.status == 201, "POST /v1/accounts %s: 201" % name, r)
    for pid, acct, cls, mins, node in PACKS:
        body = {"id": pid, "type": cls, "minutes": mins, "account": acct}
        if node:
            body["node"] = node
        r = lg.admin("POST", "/v1/packs", body)
        good &= t.ok(r.status == 201 and (r.json() or {}).get("account", acct) == acct,
                     "buy %s (%s, %s, %d min)" % (pid, acct, cls, mins), r)
    r = lg.node("POST", "/v1/leases", LEASE)
    lease = (r.json() or {}).get("lease", r.json() or {})
    good &= t.ok(r.status in (200, 201) and lease.get("granted_us") == LEASE["want_us"] and
                 lease.get("state") == "open",
                 "node-a's signed POST /v1/leases: 40 min of acme general granted", r)
    r = lg.node("POST", "/v1/leases", RELEASED)
    good &= t.ok(r.status == 201, "node-a's lease a-l2 of globex", r)
    r = lg.node("POST", "/v1/leases/%s/release" % RELEASED["id"])
    good &= t.ok(r.status == 200 and (r.json() or {}).get("lease", {}).get("state") == "released",
                 "…released at once (its minutes go back)", r)
    now = int(time.time() * 1000)
    recs = [deduction("a-d1", "acme", "pk-acme-g1", LEASE_POSTED_US, now, lease_id="a-l1",
                      before=LEASE["want_us"]),
            deduction("a-d2", "globex", None, GLOBEX_OVERAGE_US, now)]
    r = lg.batch(recs)
    j = r.json() or {}
    good &= t.ok(r.status == 200 and not j.get("rejected"),
                 "node-a's batch: a deduction through the lease, an overage of globex", r)
    return bool(good)


def check_api(lg, want):
    """The ledger agrees with the prepared figures (else a console check
    failing below would blame the console for the ledger)."""
    r = lg.admin("GET", "/v1/accounts")
    got = {}
    for a in (r.json() or {}).get("accounts", []):
        cl = a.get("classes", [])
        items = cl.items() if isinstance(cl, dict) else [(c.get("class"), c) for c in cl]
        for cls, c in items:
            got[(a.get("name"), cls)] = {k: c.get(k + "_us") for k in
                                         ("total", "used", "reserved", "remaining")}
            got[(a.get("name"), cls)]["packs"] = c.get("packs")
    got = {k: v for k, v in got.items() if not is_zero(v)}
    t.eq(got, want, "GET /v1/accounts has the prepared figures")


def is_zero(f):
    """A class row without packs (a ledger may list every class)."""
    return str(f.get("packs")) == "0" and all(
        f.get(k) in (0, "0.000") for k in ("total", "used", "reserved", "remaining"))


def run_browser(lg, tmp):
    cfg = {"url": "http://127.0.0.1:%d/" % lg.port, "token": lg.admin_token,
           "shots": SHOTS, "profile": os.path.join(tmp, "chromium-profile"),
           "chromium": CHROMIUM, "account": "acme", "pack_of_other": "pk-globex-g1",
           "other_node": "node-b", "buy_id": "pk-acme-t2", "released_lease": RELEASED["id"],
           "minutes_cases": ['{"us": %d}' % v for v in MINUTES_CASES]}
    path = os.path.join(tmp, "browser.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    env = dict(os.environ)
    env["NODE_PATH"] = NODE_MODULES
    start = time.time()
    r = subprocess.run([NODE, os.path.join(HERE, "browser.js"), path], capture_output=True,
                       text=True, env=env, timeout=120)
    t.diag("browser.js: exit %d in %.1f s" % (r.returncode, time.time() - start))
    for line in r.stderr.splitlines()[-40:]:
        t.diag("  " + line)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except Exception:
        t.ok(False, "browser.js printed its report", r.stdout[-2000:], r.stderr[-2000:])
        return None


def check_shown(seen, want):
    t.ok(not seen.get("fatal"), "the browser run finished", seen.get("fatal", ""),
         "steps done: %s" % seen.get("steps"))
    t.ok(seen.get("tabs") == ["Accounts", "Resource packs", "Usage details", "Leases"],
         "four tabs", seen.get("tabs"))
    t.eq(seen.get("minutes"), [minutes(v) for v in MINUTES_CASES],
         "minutes(): 3 decimals truncated, exact past 2^53 (BigInt from the JSON text)")
    all_ids = sorted(p["data"].get("pack") for p in seen.get("packs_all", []))
    t.eq(all_ids, sorted(p[0] for p in PACKS), "Resource packs lists every pack")
    g1 = [p for p in seen.get("packs_all", []) if p["data"].get("pack") == "pk-acme-g1"]
    t.eq([(p["total"], p["reserved"], p["remaining"]) for p in g1],
         [(minutes(100 * MIN_US), minutes(LEASE["want_us"] - LEASE_POSTED_US),
           minutes(100 * MIN_US - LEASE["want_us"]))],
         "Resource packs: the leased pack's total, reserved and remaining")

    # Accounts: one row per account and class; every figure as prepared
    shown = {}
    for a in seen.get("accounts", []):
        key = (a["data"].get("account"), a["data"].get("class"))
        shown[key] = {k: a[k] for k in ("packs", "total", "used", "reserved", "remaining")}
    expect = {k: {"packs": str(f["packs"]), "total": minutes(f["total"]),
                  "used": minutes(f["used"]), "reserved": minutes(f["reserved"]),
                  "remaining": minutes(f["remaining"])} for k, f in want.items()}
    shown = {k: v for k, v in shown.items() if not is_zero(v)}
    t.eq(sorted(shown), sorted(expect), "Accounts: a row per account and class with packs")
    for key in sorted(expect):
        t.eq(shown.get(key), expect[key],
             "Accounts %s/%s: packs, total, used, reserved, remaining" % key)
    t.eq(shown.get(("acme", "general"), {}).get("used"), "12.572",
         "minutes are truncated to 3 decimals (754321987 µs = 12.572 min)")

    # Leases: the open lease of node-a
    t.eq(seen.get("leases_state"), "open", "Leases: the state filter is 'open' by default")
    ls = seen.get("leases", [])
    t.eq([l["data"].get("lease") for l in ls], ["a-l1"], "Leases: the open lease is shown")
    if ls:
        l = ls[0]
        t.eq((l["node"], l["account"], l["cls"], l["granted"], l["posted"], l["state"]),
             ("node-a", "acme", "General", minutes(LEASE["want_us"]), minutes(LEASE_POSTED_US),
              "open"), "Leases: node, account, class, granted, posted, state")
        t.ok(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", l["expires"] or ""),
             "Leases: the absolute expiry (UTC)", l["expires"])
        m = re.fullmatch(r"in (\d+) min", l["relative"] or "")
        t.ok(m and LEASE_TTL_S // 60 - 2 <= int(m.group(1)) <= LEASE_TTL_S // 60,
             "Leases: 'in N min' from a %d s lease" % LEASE_TTL_S, l["relative"])
    rel = seen.get("leases_released", [])
    t.eq([(l["data"].get("lease"), l["account"], l["state"], l["relative"]) for l in rel],
         [("a-l2", "globex", "released", "released <1 min ago")],
         "Leases: state released shows the released lease only, and when")
    t.ok("No open lease" in seen.get("leases_other_node", ""),
         "Leases: the node filter (node-b has none)", seen.get("leases_other_node"))

    # The account filter
    acme = sorted(p[0] for p in PACKS if p[1] == "acme")
    t.eq(sorted(p["data"].get("pack") for p in seen.get("packs_filtered", [])), acme,
         "clicking acme: Resource packs shows acme's packs only")
    t.eq((seen.get("packs_filter_value"), seen.get("usage_filter_value"),
          seen.get("leases_filter_value")), ("acme",) * 3,
         "…and the Account filter of packs, usage and leases says acme")
    normal = [q["path"] for q in seen.get("api_requests", []) if q["phase"] == "normal"]
    t.ok(any(re.match(r"/v1/packs\?(.*&)?account=acme(&|$)", p) for p in normal),
         "the filter reaches the API as ?account=acme on /v1/packs", normal)
    t.ok(any(re.match(r"/v1/usage/details\?(.*&)?account=acme(&|$)", p) for p in normal),
         "…and on /v1/usage/details", normal)
    usage = seen.get("usage_filtered", [])
    t.ok(usage and all("acme" in r["cells"] and "globex" not in r["cells"] for r in usage),
         "Usage details filtered: acme's rows only", usage)

    # Buy with an account, then an API error on one line
    bm = seen.get("buy_message") or {}
    t.ok("pk-acme-t2" in bm.get("text", "") and "acme" in bm.get("text", "") and
         bm.get("cls") == "message ok", "Buy: a pack for acme from the form", bm)
    em = seen.get("error_message") or {}
    t.ok(em.get("cls") == "message error" and em.get("text") and "\n" not in em["text"] and
         em.get("height", 999) < 3 * em.get("lineHeight", 1),
         "an API error (a bad account filter) is shown on one line", em)

    errs = [e for e in seen.get("console_errors", []) + seen.get("page_errors", [])
            if e["phase"] == "normal"]
    t.eq(errs, [], "no console error and no script error")
    t.eq(seen.get("outside_requests"), [], "nothing fetched from outside the ledger")
    t.eq([f for f in seen.get("failed_requests", []) if f["phase"] == "normal"], [],
         "no failed request")
    shots = [s for s in seen.get("shots", []) if os.path.getsize(s) > 1000]
    t.ok(len(shots) == 7, "7 screenshots in %s" % SHOTS, seen.get("shots"))


def main():
    print("# %s, chromium %s, playwright-core from %s" % (LEDGERD, CHROMIUM, NODE_MODULES))
    if not os.access(LEDGERD, os.X_OK):
        print("Bail out! no meter-ledgerd at %s (make ledger)" % LEDGERD)
        sys.exit(1)
    have_chromium = t.ok(os.access(CHROMIUM, os.X_OK),
                         "chromium is installed (%s; scripts/install-deps)" % CHROMIUM)
    have_pw = t.ok(os.path.isfile(os.path.join(NODE_MODULES, "playwright-core", "package.json")),
                   "playwright-core is installed (%s; make check-console runs npm ci)" %
                   NODE_MODULES)
    if not (have_chromium and have_pw):
        t.done()
    shutil.rmtree(SHOTS, ignore_errors=True)
    os.makedirs(SHOTS, exist_ok=True)
    tmp = tmpdir("console.")
    lg = Ledger("sqlite", tmp)
    try:
        lg.setup(nodes=("node-a", "node-b"))
        lg.start("--lease-ttl", str(LEASE_TTL_S))
        want = expected_accounts()
        if prepare(lg):
            check_api(lg, want)
            seen = run_browser(lg, tmp)
            if seen is not None:
                check_shown(seen, want)
    finally:
        lg.close()
    t.done()


if __name__ == "__main__":
    main()
