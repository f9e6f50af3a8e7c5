#!/bin/bash
# starve_sqlite.sh — a busy node must still get (and keep) its lease.
#
# A regression test: `meterctl sync` used to push the whole outbox before it
# looked at leases, so a node whose jobs queue records faster than the
# ledger acknowledges them never reached the lease step — no request, no
# renewal — and metered everything as overage (the drain on PostgreSQL
# ended with no node ever granted a lease).  A round now pushes at most what
# the outbox held when it began (sync/push.c), then sees to the leases.
# The case in
# small, on SQLite, deterministic: one node, one pooled pack, the ledger's
# batch answers held 0.3 s by faultproxy.py, batches of one record, and a
# record loop queueing ~2 records (usage + deduction) every 0.2 s.  The
# farm's promise (doc/farm-mode.md, issue 7): "a running job never blocks on
# the network", leases are asked and renewed while jobs run.
#   1. without the record loop, `sync --watch 1` is granted a lease at once
#      (the control case);
#   2. with it, within 10 s of `sync --watch 1`, a lease is granted.
E2E_BACKEND=sqlite
# shellcheck source=../e2e/e2e.inc
. "$(dirname "$0")/../e2e/e2e.inc"

ledger_init
ledger_cli account add acme >/dev/null 2>&1
node_new busy
node_new idle
for n in busy idle; do
    "$METERCTL" --db "$NODES/$n/meter.db" config set lease_accounts acme:general >/dev/null
done
ledger_start --lease-ttl 30
admin POST /v1/packs '{"id": "pk-pool", "type": "general", "minutes": 100, "account": "acme"}'
is "a pooled pack of 100 minutes for account acme" "$ASTATUS" 201
proxy_start --match "POST /v1/usage/batch" --fault "delay 0.3"

conf() {
    cat >"$NODES/$1/sync.conf" <<CONF
ledger = $PURL
secret_file = $NODES/$1/secret
batch = 1
timeout = 10
CONF
}
granted() {
    "$METERCTL" --db "$NODES/$1/meter.db" --format json lease list 2>/dev/null |
        python3 -c 'import json,sys; sys.exit(0 if any(l["granted_us"] > 0 for l in json.load(sys.stdin)) else 1)'
}
watch_start() {
    METER_SYNC_CONF=$NODES/$1/sync.conf "$METERCTL" --db "$NODES/$1/meter.db" sync --watch 1 \
        >"$TMP/$1.watch" 2>&1 &
    WPID=$!
    BG_PIDS+=("$WPID")
}

# 1. the control case: nothing queued but a few records
conf idle
for i in 1 2 3; do
    "$METERCTL" --db "$NODES/idle/meter.db" record --account acme --job i$i --output o \
        --class general --codec h264 --width 1280 --height 720 --duration-ms 1000 >/dev/null
done
watch_start idle
if wait_for 10 granted idle; then ok "an idle node syncing with --watch 1 is granted a lease"
else not_ok "an idle node syncing with --watch 1 is granted a lease" "$(tail -n 5 "$TMP/idle.watch")"; fi
stop_pid "$WPID"

# 2. a busy node
conf busy
( i=0
  while [ ! -e "$TMP/stop" ]; do
      i=$((i + 1))
      "$METERCTL" --db "$NODES/busy/meter.db" record --account acme --job b$i --output o \
          --class general --codec h264 --width 1280 --height 720 --duration-ms 1000 >/dev/null 2>&1
      sleep 0.2
  done ) &
REC_PID=$!
BG_PIDS+=("$REC_PID")
sleep 1
watch_start busy
if wait_for 10 granted busy; then
    ok "a node whose jobs keep queueing records is granted a lease within 10 s of sync --watch 1"
else
    not_ok "a node whose jobs keep queueing records is granted a lease within 10 s of sync --watch 1" \
        "outbox depth now $(METER_DB=$NODES/busy/meter.db depth), leases: $("$METERCTL" --db "$NODES/busy/meter.db" lease list 2>&1 | tail -n +2 | head -n 3)" \
        "the push never ends while records keep coming, so the lease step is never reached (sync/client.c)"
fi
touch "$TMP/stop"
wait "$REC_PID" 2>/dev/null
stop_pid "$WPID"
e2e_finish
