#!/bin/bash
# tests/sync/lease.sh — the lease client of `meterctl sync` against the
# loopback fake ledger (tests/sync/fake_ledger.py, which grants from a
# pool of packs and ages leases on its own clock): a lease requested,
# granted, spent by a record, its deductions pushed, then released (in that
# order); sizing by the burn rate; a lost grant answer retried with the
# same id, within a run and across runs; 422 recorded as refused; renewal
# before expiry; 409 marking a lease resolved; a pair no longer leased for
# released; a slice voided by a renewal (frozen pack); --no-leases and
# leases = no; sync status showing the leases.
. "$(dirname "$0")/../cli/tap.inc"

SYNC_DIR=$(cd "$(dirname "$0")" && pwd)
LPID=''
stop_ledger() {
    if [ -n "$LPID" ]; then kill "$LPID" 2>/dev/null; wait "$LPID" 2>/dev/null; fi
    LPID=''
}
trap 'stop_ledger; chmod -R u+w "$TMP" 2>/dev/null; rm -rf "$TMP"' EXIT

L=$TMP/ledger
mkdir -p "$L"
printf 's3cr3t-node-a\n' >"$L/secret"
cp "$L/secret" "$TMP/node.secret"
chmod 600 "$L/secret" "$TMP/node.secret"
cat >"$TMP/sync.conf" <<CONF
secret_file = $TMP/node.secret
backoff_base_ms = 20
backoff_cap_ms = 200
timeout = 5
CONF
export METER_DB=$TMP/node.db METER_SYNC_CONF=$TMP/sync.conf
unset METER_SYNC_SECRET

# The test clock: the node's is METER_NOW, the fake's the real one plus
# $L/clock_ms.  Both start at the real now.
T0=$(python3 -c 'import time; print(int(time.time()) * 1000)')
at() { export METER_NOW=$((T0 + $1 * 1000)); }   # at SECONDS after T0
at 0

python3 - "$L/pool.json" "$T0" <<'PY'
import json, sys
now, day, m = int(sys.argv[2]), 86400000, 60000000
def pack(pid, account, cls, minutes):
    return {"id": pid, "account": account, "class": cls, "total_us": minutes * m,
            "start_ms": now - day, "end_ms": now + 365 * day}
json.dump({"ttl_ms": 300000, "packs": [
    pack("pk-acme-g1", "acme", "general", 400), pack("pk-acme-g2", "acme", "general", 600),
    pack("pk-acme-t1", "acme", "tsc", 100), pack("pk-beta-g1", "beta", "general", 100),
    pack("pk-gamma-t1", "gamma", "tsc", 100)]}, open(sys.argv[1], "w"))
PY
rm -f "$L/port"
python3 "$SYNC_DIR/fake_ledger.py" "$L" &
LPID=$!
for i in $(seq 100); do [ -s "$L/port" ] && break; sleep 0.1; done
[ -s "$L/port" ] || { echo "Bail out! the fake ledger did not start"; exit 1; }
URL=http://127.0.0.1:$(cat "$L/port")

# state PYEXPR: evaluates PYEXPR with s = the fake ledger's state.json.
state() {
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
        "$L/state.json" "$1"
}
# db SQL: one value from the node's database.
db() {
    python3 -c 'import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone(); print(r[0] if r else "")' \
        "$METER_DB" "$1"
}
sync() { mc --format json sync --ledger "$URL" "$@"; }
record() {  # record JOB MINUTES [CLASS]
    mc record --job "$1" --output out --class "${3:-general}" --codec h264 --width 1920 \
        --height 1080 --duration-ms $(($2 * 60000))
}
MIN=60000000

mc init --node node-a
mc config set account acme
mc config set lease_accounts acme:general
is "farm mode configured" "$RC" 0

# --- a lease is asked for and granted ------------------------------------
sync
is "first sync exits 0" "$RC" 0
is "one lease requested" "$(jq_py 'd["leases_requested"]')" 1
is "and granted" "$(jq_py 'd["leases_granted"]')" 1
is "no burn yet: lease_minutes (10) asked" \
    "$(state '[r["want_us"] for r in s["requests"] if r.get("path") == "/v1/leases"]')" \
    "[$((10 * MIN))]"
L1=$(state 'list(s["leases"])[0]')
is "the ledger reserved 10 minutes from the earliest pack" \
    "$(state "[(x['pack_id'], x['granted_us']) for x in s['leases']['$L1']['slices']]")" \
    "[('pk-acme-g1', $((10 * MIN)))]"
mc --format json sync status
is "status: the lease policy" "$(jq_py 'd["lease_policy"]')" continue
is "status: one live lease" "$(jq_py 'd["live_leases"]')" 1
is "status: the lease, open, 10 minutes, for acme/general" \
    "$(jq_py '[(l["id"], l["account"], l["class"], l["state"], l["granted_us"], l["remaining_us"]) for l in d["leases"]]')" \
    "[[\"$L1\", \"acme\", \"general\", \"open\", $((10 * MIN)), $((10 * MIN))]]"
is "status: it expires in ttl − margin (300 − 30 s) on the node's clock" \
    "$(jq_py 'd["leases"][0]["expires_in_s"]')" 270
mc --format csv sync status
check "status csv: the leases follow the figures after a blank line" \
    grep -q "^$L1,acme,general,open," <<<"$OUT"

sync
is "enough minutes, far expiry: nothing asked" "$(jq_py 'd["leases_requested"]')" 0

# --- spent, pushed, released; the next one sized by the burn rate ---------
at 60
record job-1 100
is "a 100-minute record" "$RC" 0
is "the lease slice took its 10 minutes" "$(db "SELECT remaining_us FROM packs WHERE lease_id = '$L1'")" 0
billed=$(db "SELECT sum(billed_us) FROM usage")
at 61
nreq=$(state 'len(s["requests"])')
sync
is "the sync after the record exits 0" "$RC" 0
is "the spent lease was released" "$(jq_py 'd["leases_released"]')" 1
is "and a new one asked for" "$(jq_py 'd["leases_requested"]')" 1
is "the ledger has the lease released" "$(state "s['leases']['$L1']['state']")" released
is "its deduction reached the ledger with the lease and the real pack" \
    "$(state "sorted((r['pack_id'], r['amount_us']) for r in s['records'].values() if r.get('lease_id') == '$L1')")" \
    "[('pk-acme-g1', $((10 * MIN)))]"
is "order: the batch with the lease's deduction, then its release, then the new request" \
    "$(state "[(r['path'], r.get('lease', '')) for r in s['requests'][$nreq:] if r['method'] == 'POST' and (r['path'] != '/v1/usage/batch' or any(s['records'].get(i, {}).get('lease_id') == '$L1' for i in r.get('ids', [])))]")" \
    "[('/v1/usage/batch', ''), ('/v1/leases/$L1/release', '$L1'), ('/v1/leases', '$(state 'list(s["leases"])[-1]')')]"
want=$(( (billed * 2 * 60000 + 600000 - 1) / 600000 ))
check "the burn asks for more than lease_minutes (the test is not vacuous)" \
    [ "$want" -gt $((10 * MIN)) ]
is "the new lease is sized by the burn rate: billed in 10 min × two 60 s periods" \
    "$(state 's["requests"][-1]["want_us"]')" "$want"
L2=$(state 'list(s["leases"])[-1]')
is "node: the first lease is released" "$(db "SELECT state FROM leases WHERE id = '$L1'")" released
is "node: the second is open" "$(db "SELECT state FROM leases WHERE id = '$L2'")" open

# --- no answer at all: the request stays, nothing is stored ----------------
mc config set lease_accounts acme:general,beta:general
printf 'drop\n' >"$L/lease_script"   # beta's request gets no answer at all
sync --retries 0
is "a request without an answer fails the run" "$RC" 1
LB=$(db "SELECT id FROM leases WHERE account = 'beta'")
is "node: beta's lease stays requested" "$(db "SELECT state FROM leases WHERE id = '$LB'")" requested
is "the ledger stored nothing for it" "$(state "'$LB' in s['leases']")" False

# --- a lost grant answer: the same id again, one lease --------------------
printf 'lose\n' >"$L/lease_script"   # granted and stored, the answer lost
nreq=$(state 'len(s["requests"])')
sync --retries 0
is "granted, answer lost, no retry: the run fails" "$RC" 1
is "the ledger holds beta's lease" "$(state "s['leases']['$LB']['state']")" open
is "node: still requested" "$(db "SELECT state FROM leases WHERE id = '$LB'")" requested
sync
is "the next sync resends the same id" "$(state "[r.get('lease') for r in s['requests'] if r.get('path') == '/v1/leases'][-1]")" "$LB"
is "and gets the stored lease (200): granted" "$(jq_py 'd["leases_granted"]')" 1
is "node: beta's lease open" "$(db "SELECT state FROM leases WHERE id = '$LB'")" open
is "one lease for beta at the ledger" "$(state "sum(1 for l in s['leases'].values() if l['account'] == 'beta')")" 1
is "one lease for beta on the node" "$(db "SELECT count(*) FROM leases WHERE account = 'beta'")" 1

mc config set lease_accounts acme:general,beta:general,acme:tsc
printf 'lose\n' >"$L/lease_script"
sync
is "a lost answer within a run is retried and the run succeeds" "$RC" 0
is "the retry counted" "$(jq_py 'd["retries"] >= 1')" true
LT=$(db "SELECT id FROM leases WHERE account = 'acme' AND class = 1")
is "retried with the same id: one acme/tsc lease at the ledger" \
    "$(state "sum(1 for l in s['leases'].values() if l['account'] == 'acme' and l['class'] == 'tsc')")" 1
is "and on the node, open" "$(db "SELECT group_concat(state) FROM leases WHERE account = 'acme' AND class = 1")" open
is "both requests carried that id" \
    "$(state "sum(1 for r in s['requests'] if r.get('path') == '/v1/leases' and r.get('lease') == '$LT')")" 2

# --- 422: nothing to reserve ----------------------------------------------
mc config set lease_accounts acme:general,beta:general,acme:tsc,gamma:general
sync
is "a refusal does not fail the run" "$RC" 0
is "one lease refused" "$(jq_py 'd["leases_refused"]')" 1
is "node: gamma's lease refused" "$(db "SELECT state FROM leases WHERE account = 'gamma'")" refused
check "with the ledger's reason" grep -q "no general minutes" \
    <<<"$(db "SELECT reason FROM leases WHERE account = 'gamma'")"
mc --format json sync status
is "status: the last error stays empty (a refusal is an answer)" "$(jq_py 'd["last_error"]')" null
# refused again and again: the pair asks less and less often
gamma_asks() { state "sum(1 for r in s['requests'] if r.get('path') == '/v1/leases' and r.get('account') == 'gamma')"; }
asked=$(gamma_asks)
at 121; sync
is "one period after one refusal: asked again" "$(( $(gamma_asks) - asked ))" 1
at 181; sync
is "the next period, after two refusals in a row: not asked" "$(( $(gamma_asks) - asked ))" 1
is "…so no new refused row on the node" "$(db "SELECT count(*) FROM leases WHERE account = 'gamma'")" 2
# (when it asks again is test_sync_client's: a later sync here would renew the leases above)
mc config set lease_accounts acme:general,beta:general,acme:tsc

# --- renewal before expiry -------------------------------------------------
open_ids=$(db "SELECT group_concat(id) FROM leases WHERE state = 'open'")
at 220   # every lease expires at T0 + 61 + 270 s: within two periods (120 s)
sync
is "the renewal sync exits 0" "$RC" 0
is "three leases renewed" "$(jq_py 'd["leases_renewed"]')" 3
is "nothing new asked" "$(jq_py 'd["leases_requested"]')" 0
is "the ledger renewed each once" \
    "$(state "sorted(l.get('renewals', 0) for l in s['leases'].values() if l['state'] == 'open')")" "[1, 1, 1]"
mc --format json sync status
is "status: they expire 270 s after the renewal was sent" \
    "$(jq_py 'sorted({l["expires_in_s"] for l in d["leases"]})')" "[270]"

# --- 409: resolved at the ledger -------------------------------------------
echo 400000 >"$L/clock_ms"   # the ledger's clock runs ahead: its leases expired
at 420
sync
is "the sync after the ledger expired the leases exits 0" "$RC" 0
is "three leases found resolved" "$(jq_py 'd["leases_resolved"]')" 3
is "node: the old leases are expired" \
    "$(db "SELECT group_concat(DISTINCT state) FROM leases WHERE id IN ('${open_ids//,/\',\'}')")" expired
check "with the ledger's message" grep -q "is expired" \
    <<<"$(db "SELECT reason FROM leases WHERE id = '$LB'")"
is "and three new leases asked for and granted" "$(jq_py '[d["leases_requested"], d["leases_granted"]]')" "[3, 3]"
is "node: three open leases" "$(db "SELECT count(*) FROM leases WHERE state = 'open'")" 3

# --- a pair no longer leased for is released --------------------------------
mc config set lease_accounts acme:general,beta:general
LT2=$(db "SELECT id FROM leases WHERE account = 'acme' AND class = 1 AND state = 'open'")
sync
is "acme/tsc is no longer leased for: released" "$(jq_py 'd["leases_released"]')" 1
is "the ledger has it released" "$(state "s['leases']['$LT2']['state']")" released
is "node: released" "$(db "SELECT state FROM leases WHERE id = '$LT2'")" released

# --- a running session's pair is leased for --------------------------------
# (usage in the last 10 minutes of a pair not in lease_accounts)
mc record --job job-t --output out --class tsc --codec h264 --width 1920 --height 1080 \
    --duration-ms 60000
at 421
sync
is "usage of acme/tsc in the last 10 minutes: a lease for it" \
    "$(db "SELECT count(*) FROM leases WHERE account = 'acme' AND class = 1 AND state = 'open'")" 1

# --- a pack frozen at the ledger: the renewal voids its slice ----------------
LB2=$(db "SELECT id FROM leases WHERE account = 'beta' AND state = 'open'")
python3 - "$L/pool.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for p in d["packs"]:
    p["frozen"] = p["id"] == "pk-beta-g1"
json.dump(d, open(sys.argv[1], "w"))
PY
at 600   # the leases of T0 + 420 expire at T0 + 690: renewals due
sync
is "the renewals go through" "$(jq_py 'd["leases_renewed"]')" 3
is "beta's slice voided by the renewal no longer takes deductions here" \
    "$(db "SELECT expires_at <= $METER_NOW FROM packs WHERE lease_id = '$LB2'")" 1
is "beta then has nothing usable: asked again, refused (its only pack is frozen)" \
    "$(jq_py '[d["leases_requested"], d["leases_refused"]]')" "[1, 1]"
at 601
sync
is "beta's lease with nothing usable left is released" "$(jq_py 'd["leases_released"]')" 1
is "the ledger has it released" "$(state "s['leases']['$LB2']['state']")" released
check "node: released, saying why" grep -q "nothing usable" \
    <<<"$(db "SELECT reason FROM leases WHERE id = '$LB2'")"

# --- switched off ------------------------------------------------------------
mc config set lease_accounts acme:general,beta:general,gamma:general
nreq=$(state 'len(s["requests"])')
sync --no-leases
is "--no-leases: no lease request" \
    "$(state "sum(1 for r in s['requests'][$nreq:] if r.get('path', '').startswith('/v1/leases'))")" 0
printf 'leases = no\n' >>"$TMP/sync.conf"
sync
is "leases = no: no lease request" \
    "$(state "sum(1 for r in s['requests'][$nreq:] if r.get('path', '').startswith('/v1/leases'))")" 0
sed -i '/^leases = no$/d' "$TMP/sync.conf"
printf 'leases = maybe\n' >>"$TMP/sync.conf"
fails "leases takes yes or no" 2 "leases: 'maybe' is not yes or no" sync --ledger "$URL"
sed -i '/^leases = maybe$/d' "$TMP/sync.conf"
mc config set lease_accounts ''
nreq=$(state 'len(s["requests"])')
sync
is "standalone (lease_accounts empty): no lease request by default" \
    "$(state "sum(1 for r in s['requests'][$nreq:] if r.get('path', '').startswith('/v1/leases'))")" 0

finish
