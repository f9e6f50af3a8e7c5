#!/bin/bash
# tests/sync/client.sh — `meterctl sync` against a loopback fake ledger
# (tests/sync/fake_ledger.py, which checks signatures independently and
# injects faults): exactly-once delivery through 500s, 429s, dropped
# connections, lost answers, malformed answers and timeouts; quarantine of
# rejected records; auth failures; batch caps and 413 halving; the pack
# pull and its conflicts; --watch ending on SIGTERM.
. "$(dirname "$0")/../cli/tap.inc"

SYNC_DIR=$(cd "$(dirname "$0")" && pwd)
LPID=''
stop_ledger() {
    if [ -n "$LPID" ]; then kill "$LPID" 2>/dev/null; wait "$LPID" 2>/dev/null; fi
    LPID=''
}
trap 'stop_ledger; chmod -R u+w "$TMP" 2>/dev/null; rm -rf "$TMP"' EXIT

# start_ledger DIR: runs a fresh fake ledger over DIR; sets URL.
start_ledger() {
    stop_ledger
    local d=$1 i
    rm -f "$d/port"
    python3 "$SYNC_DIR/fake_ledger.py" "$d" &
    LPID=$!
    for i in $(seq 100); do [ -s "$d/port" ] && break; sleep 0.1; done
    if [ ! -s "$d/port" ]; then echo "Bail out! the fake ledger did not start"; exit 1; fi
    URL=http://127.0.0.1:$(cat "$d/port")
}

# state PYEXPR: evaluates PYEXPR with s = the ledger's state.json.
state() {
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
        "$L/state.json" "$1"
}

# The outbox ids still waiting (empty when drained).
outbox_depth() { mc --format json sync status; jq_py 'd["depth"]'; }

L=$TMP/ledger
mkdir -p "$L"
printf 's3cr3t-node-a\n' >"$L/secret"
chmod 600 "$L/secret"
cp "$L/secret" "$TMP/node.secret"
cat >"$TMP/sync.conf" <<CONF
# test settings: short backoff so retries are quick
secret_file = $TMP/node.secret
backoff_base_ms = 20
backoff_cap_ms = 200
timeout = 5
CONF
export METER_DB=$TMP/node.db
export METER_SYNC_CONF=$TMP/sync.conf
unset METER_SYNC_SECRET
start_ledger "$L"

mc init --node node-a
record() {  # record JOB OUTPUT
    mc record --job "$1" --output "$2" --class general --codec h264 --width 1920 \
        --height 1080 --duration-ms 60000
}
for i in 1 2 3; do record job-$i out; done
n0=$(outbox_depth)
check "records are queued in the outbox" [ "$n0" -ge 3 ]

# --- happy path -----------------------------------------------------------
mc --format json sync --ledger "$URL"
is "sync exits 0" "$RC" 0
is "every queued record is accepted" "$(jq_py 'd["accepted"]')" "$n0"
is "no duplicates on a first sync" "$(jq_py 'd["duplicates"]')" 0
is "the outbox is empty afterwards" "$(outbox_depth)" 0
is "the ledger stored each id once" "$(state 'sorted(set(s["stores"].values()))')" "[1]"
is "the ledger holds as many records as were queued" "$(state 'len(s["records"])')" "$n0"
is "usage records carry the node and the kind" \
    "$(state 'sorted({(r["node"], r["kind"]) for r in s["records"].values() if r["kind"]=="usage"})')" \
    "[('node-a', 'usage')]"
mc --format json sync status
is "status: last error empty after success" "$(jq_py 'd["last_error"]')" "null"
is "status: last success is set" "$(jq_py 'd["last_success_at"] is not None')" true
is "status: nothing quarantined" "$(jq_py 'd["quarantined"]')" 0

mc --format json sync --ledger "$URL"
is "a second sync sends nothing" "$(jq_py 'd["sent"]')" 0

# --- faults: every record still arrives exactly once ----------------------
for i in 4 5 6 7 8; do record job-$i out; done
n1=$(outbox_depth)
nreq=$(state 'len(s["requests"])')
printf '500\n429 1\ndrop\ngarbage\nstore500\nbogus\n503\n' >"$L/script"
mc --format json sync --ledger "$URL" --retries 8 --batch 2
is "sync through 500/429/drop/garbage/lost answer/bogus/503 exits 0" "$RC" 0
is "the outbox drains" "$(outbox_depth)" 0
is "no record was stored twice" "$(state 'max(s["stores"].values())')" 1
is "the ledger holds every record" "$(state 'len(s["records"])')" "$((n0 + n1))"
check "the lost answer came back as duplicates" [ "$(jq_py 'd["duplicates"]')" -ge 1 ]
check "retries were counted" [ "$(jq_py 'd["retries"]')" -ge 7 ]
is "batches respect --batch" \
    "$(state "max(r.get('records', 0) for r in s['requests'][$nreq:])")" 2

# --- --max-bytes caps the body (one record always goes) ------------------
for i in 21 22 23 24 25 26; do record job-$i out; done
nreq=$(state 'len(s["requests"])')
mc --format json sync --ledger "$URL" --max-bytes 1500
is "--max-bytes: the outbox drains" "$(outbox_depth)" 0
is "--max-bytes: every body within the cap, or a single record" \
    "$(state "all(r['bytes'] <= 1500 or r['records'] == 1 for r in s['requests'][$nreq:] if r['method'] == 'POST')")" \
    True
check "--max-bytes: several records per body still" \
    [ "$(state "max(r.get('records', 0) for r in s['requests'][$nreq:])")" -ge 2 ]

# --- gives up: the error is clear, the outbox keeps everything ------------
record job-9 out
n2=$(outbox_depth)
printf '500\n500\n500\n' >"$L/script"
fails "500s beyond --retries fail with the last error" 1 "500.*gave up after 3 attempts" \
    sync --ledger "$URL" --retries 2
is "nothing left the outbox" "$(outbox_depth)" "$n2"
mc --format json sync status
check "status shows the last error" grep -q '500' <<<"$(jq_py 'd["last_error"]')"
printf 'delay 3\n' >"$L/script"
fails "a slow ledger times out" 1 "timed out|timeout" sync --ledger "$URL" --retries 0 --timeout 1
is "a timeout leaves the outbox as it was" "$(outbox_depth)" "$n2"
printf 'silent\n' >"$L/script"
fails "an answer that acknowledges nothing is an error" 1 "none of the" \
    sync --ledger "$URL" --retries 0
fails "connection refused is reported" 1 "127.0.0.1|connect" \
    sync --ledger "http://127.0.0.1:9" --retries 1
: >"$L/script"
mc --format json sync --ledger "$URL"
is "the next sync delivers what was left" "$(outbox_depth)" 0
is "still exactly once" "$(state 'max(s["stores"].values())')" 1

# --- authentication -------------------------------------------------------
printf 'wrong-secret\n' >"$TMP/wrong.secret"
chmod 600 "$TMP/wrong.secret"
record job-10 out
fails "a wrong secret is refused (401), not retried" 1 "401" \
    sync --ledger "$URL" --secret-file "$TMP/wrong.secret" --retries 5
is "the 401 was not retried" "$(state 'sum(1 for r in s["requests"] if r.get("status")==401)')" 1
METER_SYNC_SECRET=s3cr3t-node-a mc --format json sync --ledger "$URL" --config /dev/null
is "the secret may come from METER_SYNC_SECRET" "$RC" 0
fails "a node name other than the database's is refused" 2 "node-b" \
    sync --ledger "$URL" --node node-b
echo '{"bearer": true}' >"$L/config.json"
record job-11 out
fails "HMAC is refused by a bearer-only ledger" 1 "401" sync --ledger "$URL"
mc --format json sync --ledger "$URL" --bearer
is "--bearer sends the secret as a bearer token" "$RC" 0
is "bearer: the outbox drains" "$(outbox_depth)" 0
rm -f "$L/config.json"

# --- rejected records are quarantined, the rest flows ---------------------
echo '{"reject_job": "poison"}' >"$L/config.json"
record poison-1 out
record job-12 out
mc --format json sync --ledger "$URL"
is "a rejection does not fail the run" "$RC" 0
is "one record rejected" "$(jq_py 'd["rejected"]')" 1
check "the rejection is warned about" grep -q "quarantined" "$TMP/.err"
is "the other records flowed" "$(outbox_depth)" 0
mc --format json sync status
is "status counts the quarantined record" "$(jq_py 'd["quarantined"]')" 1
is "status lists the ledger's reason" "$(jq_py 'd["quarantine"][0]["reason"]')" \
    "usage.job: refused by test"
qid=$(jq_py 'd["quarantine"][0]["id"]')
mc --format csv sync quarantine
check "sync quarantine lists it" grep -q "$qid" <<<"$OUT"
posts=$(state 'sum(1 for r in s["requests"] if r["method"] == "POST")')
mc --format json sync --ledger "$URL"
is "a quarantined record is not resent" \
    "$(state 'sum(1 for r in s["requests"] if r["method"] == "POST")')" "$posts"
rm -f "$L/config.json"
fails "release of an unknown id is not found" 3 "not quarantined" sync release nope-1
mc --format json sync release "$qid"
is "release puts it back" "$(jq_py 'd["released"]')" 1
mc --format json sync --ledger "$URL"
is "a released record is delivered" "$(jq_py 'd["accepted"]')" 1
is "nothing quarantined any more" "$(mc --format json sync status; jq_py 'd["quarantined"]')" 0

# --- 413: the batch halves ------------------------------------------------
for i in 13 14 15 16 17; do record job-$i out; done
echo '{"max_records": 2}' >"$L/config.json"
mc --format json sync --ledger "$URL"
is "413 halves the batch until it fits" "$RC" 0
is "413: the outbox drains" "$(outbox_depth)" 0
rm -f "$L/config.json"

# --- pull: packs assigned at the ledger -----------------------------------
python3 - "$L/packs.json" <<'PY'
import json, sys, time
now = int(time.time() * 1000)
day = 86400000
json.dump({"packs": [
    {"id": "pk-central-1", "type": "general", "total_us": 600 * 60000000,
     "start_ms": now - day, "end_ms": now - day + 365 * day, "frozen": False,
     "refunded_ms": None},
    {"id": "pk-central-2", "type": "tsc", "total_us": 60 * 60000000,
     "start_ms": now - day, "end_ms": now - day + 365 * day, "frozen": True,
     "refunded_ms": None}]}, open(sys.argv[1], "w"))
PY
mc --format json sync --ledger "$URL"
is "pull: two packs listed" "$(jq_py 'd["packs"]')" 2
is "pull: both new here" "$(jq_py 'd["packs_changed"]')" 2
is "pull: the packs' purchase events go out in the same run" "$(outbox_depth)" 0
is "pull: the ledger got their purchase events" \
    "$(state 'sum(1 for r in s["records"].values() if r["kind"]=="pack_event" and r["action"]=="purchase" and r["pack_id"].startswith("pk-central"))')" 2
mc --format json pack show pk-central-2
is "pull: the frozen pack is frozen here" "$(jq_py 'd["frozen"]')" true
mc --format json pack show pk-central-1
is "pull: the pack has its total" "$(jq_py 'd["total_us"]')" $((600 * MIN_US))
record job-18 out
mc --format json sync --ledger "$URL"
is "pull: nothing changes on a second pull" "$(jq_py 'd["packs_changed"]')" 0
check "the deduction from the assigned pack was pushed" \
    [ "$(state 'sum(1 for r in s["records"].values() if r["kind"]=="deduction" and r["pack_id"]=="pk-central-1")')" -ge 1 ]
# the ledger now says pk-central-1 was refunded, but it has been used here
python3 - "$L/packs.json" <<'PY'
import json, sys, time
d = json.load(open(sys.argv[1]))
d["packs"][0]["refunded_ms"] = int(time.time() * 1000)
json.dump(d, open(sys.argv[1], "w"))
PY
mc --format json sync --ledger "$URL"
is "a refund of a used pack is a conflict, not a failure" "$RC" 0
is "one conflict reported" "$(jq_py 'd["conflicts"]')" 1
check "the conflict is warned about" grep -q "pack conflict" "$TMP/.err"
mc --format json pack show pk-central-1
is "the node keeps the used pack" "$(jq_py 'd["refunded_at"]')" null
mc --format json sync status
check "status shows the conflict" grep -q "conflict" <<<"$(jq_py 'd["last_error"]')"
echo '{"packs": [{"id": "pk-x", "type": "bogus"}]}' >"$L/packs.json"
fails "a malformed pack list fails after retries" 1 "packs\\[0\\]" \
    sync --ledger "$URL" --retries 1
echo '{"packs": []}' >"$L/packs.json"

# --- config and usage errors ----------------------------------------------
fails "a missing config file named by --config is an error" 2 "nope.conf" \
    sync --config "$TMP/nope.conf" --ledger "$URL"
printf 'ledger = %s\nbogus_key = 1\n' "$URL" >"$TMP/bad.conf"
fails "an unknown config key names the line" 2 "bad.conf:2.*bogus_key" sync --config "$TMP/bad.conf"
fails "a non-http ledger URL is refused" 2 "ledger" sync --ledger "ftp://x"
fails "--batch beyond 1000 is refused" 2 "batch" sync --ledger "$URL" --batch 1001
chmod 644 "$TMP/node.secret"
mc sync --ledger "$URL"
check "a world-readable secret file is warned about" grep -q "readable by other" "$TMP/.err"
chmod 600 "$TMP/node.secret"
mc sync --ledger "$URL" --insecure
check "--insecure warns" grep -q "verification is off" "$TMP/.err"

# --- TLS: verification on by default, a custom CA, --insecure -------------
T=$TMP/tls-ledger
mkdir -p "$T"
cp "$L/secret" "$T/secret"
if openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
       -addext subjectAltName=IP:127.0.0.1 -keyout "$T/key.pem" -out "$T/cert.pem" \
       >/dev/null 2>&1; then
    plain_url=$URL plain_pid=$LPID
    LPID=''
    start_ledger "$T"
    record job-tls out
    fails "https: an unknown CA is refused" 1 "certificate" \
        sync --ledger "${URL/http:/https:}" --retries 3
    is "https: a certificate failure is not retried" "$(grep -c "attempt" "$TMP/.err")" 0
    mc --format json sync --ledger "${URL/http:/https:}" --cacert "$T/cert.pem"
    is "https: --cacert trusts the ledger's CA" "$RC" 0
    is "https: delivered" "$(outbox_depth)" 0
    record job-tls2 out
    mc --format json sync --ledger "${URL/http:/https:}" --insecure
    is "https: --insecure connects (with a warning)" "$RC" 0
    check "https: --insecure warned" grep -q "verification is off" "$TMP/.err"
    fails "https: plain http to a TLS port fails clearly" 1 "POST|GET" \
        sync --ledger "$URL" --retries 0
    stop_ledger
    LPID=$plain_pid URL=$plain_url
else
    not_ok "openssl can make a test certificate"
fi

# --- --watch until SIGTERM ------------------------------------------------
record job-19 out
before=$(state 'len(s["records"])')
"$METERCTL" sync --ledger "$URL" --watch 1 >"$TMP/watch.out" 2>"$TMP/watch.err" &
wpid=$!
for i in $(seq 100); do
    [ "$(state 'len(s["records"])')" -gt "$before" ] && [ "$(outbox_depth)" = 0 ] && break
    sleep 0.1
done
is "--watch delivers new records" "$(outbox_depth)" 0
kill -TERM "$wpid"
wait "$wpid"
is "--watch exits 0 on SIGTERM" "$?" 0

stop_ledger
mc --format json sync --ledger "$URL" --retries 0
is "ledger gone: the run fails" "$RC" 1
record job-20 out
is "ledger gone: metering goes on, the outbox grows" "$(outbox_depth)" 2
finish
