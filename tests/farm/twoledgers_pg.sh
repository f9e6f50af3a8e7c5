#!/bin/bash
# twoledgers_pg.sh — issue 7's "two ledger instances on one PostgreSQL":
# the drain of drain.inc with a second meter-ledgerd on the same database,
# half the nodes on each instance and every other node alternating between
# them sync by sync (farm-1 A,B,A…; farm-2 A; farm-3 B,A,…; farm-4 A;
# farm-5 A,B…; farm-6..8 B), so lease requests, renewals, releases and
# ingests of one pack race on both.  The monitor checks at every sample
# (~0.1 s) that Σ (granted − posted) over open, unexpired leases ≤ the pack's
# free minutes (nothing reserved twice) and asks both instances' /v1/verify
# every 3 s; then every assertion of the drain, and both verify clean.
E2E_BACKEND=pg
# shellcheck source=farm.inc
. "$(dirname "$0")/farm.inc"

farm_setup
B_LOG=$TMP/ledger-b.log
"$LEDGERD" "${LDB[@]}" --listen 127.0.0.1:0 "${FARM_LEDGER_ARGS[@]}" >"$B_LOG" 2>&1 </dev/null &
B_PID=$!
BG_PIDS+=("$B_PID")
wait_for 20 grep -q 'listening on http://127.0.0.1:' "$B_LOG"
B_PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$B_LOG" | head -n 1)
if [ -n "$B_PORT" ]; then
    ok "a second meter-ledgerd on the same PostgreSQL database (port $B_PORT)"
else
    not_ok "a second meter-ledgerd on the same PostgreSQL database" "$(tail -n 5 "$B_LOG")"
    finish
fi
BURL=http://127.0.0.1:$B_PORT
for i in "${!FARM_NAMES[@]}"; do
    n=${FARM_NAMES[$i]}
    case $i in
        0|4) farm_set_ledgers "$n" "$LURL" "$BURL" ;;
        2)   farm_set_ledgers "$n" "$BURL" "$LURL" ;;
        1|3) farm_set_ledgers "$n" "$LURL" ;;
        *)   farm_set_ledgers "$n" "$BURL" ;;
    esac
done
farm_start "$LURL" "$BURL"
farm_wait_spent "$FARM_DRAIN_MAX"
sleep "$FARM_AFTER"
farm_stop
farm_final_sync "$BURL"
farm_checks
holds "GET /v1/verify on the second instance: ok" python3 "$FARM_PY" verify "$BURL"
# each instance's own request counters (in its memory): answers 2xx
served() { E2E_URL=$1 python3 "$E2E_PY" metric-sum ffmeter_ledger_requests_total 'code="2'; }
a=$(served "$LURL") b=$(served "$BURL")
if [ "${a:-0}" -gt 0 ] && [ "${b:-0}" -gt 0 ]; then
    ok "both instances served the nodes ($a and $b requests answered 2xx)"
else
    not_ok "both instances served the nodes" "A: $a, B: $b requests answered 2xx"
fi
kill -TERM "$B_PID"
wait "$B_PID"
is "the second instance exits 0 on SIGTERM" "$?" 0
e2e_finish
