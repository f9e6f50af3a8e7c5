#!/usr/bin/env bash
# diskfull_ledger.sh — the ledger's SQLite file failing writes while a node
# syncs: the real meter-ledgerd (SQLite backend) on 127.0.0.1 and a real
# meterctl node.
#
#   * faultvfs.so (tests/faults/faultvfs.c) preloaded into the ledger, armed
#     through a control file: for every N up to the number of database
#     operations one sync makes at the ledger, operation N fails — from N on
#     (a disk that stays full or broken: SQLITE_FULL, SQLITE_IOERR in turn),
#     then only once (the ledger's own transaction retry may absorb it).
#   * a real full filesystem under the ledger's database (root only: a
#     small tmpfs).
#
# Every time: the ledger answers each request 200 or 503 (never another
# error); what left the node's outbox is exactly what the ledger stored (a
# failing write stores nothing); once the fault is gone the node's next
# `meterctl sync` is accepted whole, nothing a duplicate; PRAGMA
# integrity_check of the ledger's file passes; in the end the ledger equals
# the node (e2e.py reconcile).  Figures as "# figures: …" diagnostics.
E2E_BACKEND=sqlite
# shellcheck source=tests/e2e/e2e.inc
. "$(dirname "$0")/../e2e/e2e.inc"

# shellcheck source=tests/faults/faults.inc
. "$(dirname "$0")/faults.inc"

CTL=$TMP/fault.ctl
VFSLOG=$TMP/ledger.vfs
# shellcheck disable=SC2317  # run by the EXIT trap
fault_cleanup() {
    [ -n "$LEDGER_PID" ] && stop_pid "$LEDGER_PID"
    LEDGER_PID=''
    tmpfs_cleanup
    e2e_cleanup
}
trap fault_cleanup EXIT

# The ledger through the shim (and only the ledger: meterctl and the
# test's python run without it).  Disarmed while $CTL does not exist.
cat >"$TMP/ledgerd-faultvfs" <<EOF
#!/bin/sh
LD_PRELOAD=$SHIM FAULTVFS_CONTROL=$CTL FAULTVFS_MATCH=$TMP/ledger.db \\
FAULTVFS_OPS=write,sync,truncate FAULTVFS_LOG=$VFSLOG \\
ASAN_OPTIONS=\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}verify_asan_link_order=0 \\
exec "$LEDGERD" "\$@"
EOF
chmod +x "$TMP/ledgerd-faultvfs"

ledger_init
node_new n1
LEDGERD=$TMP/ledgerd-faultvfs ledger_start
admin POST /v1/packs '{"id": "pk-1", "type": "general", "minutes": 5000, "node": "n1"}'
is "buy a pack for n1" "$ASTATUS" 201
on n1

# ledger_count DB: records stored at the ledger, read from its file
ledger_count() { sql "$1" 'SELECT count(*) FROM records'; }
# statuses FILE: the HTTP statuses meterctl sync --verbose reported, "503×2 "
statuses() { grep -oE 'ledger answered [0-9]+' "$1" | awk '{print $3}' | sort | uniq -c | awk '{printf "%s×%s ", $2, $1}'; }
# the current node's outbox depth, and a field of the last CSV answer
depth() { "$METERCTL" --format csv sync status | csv_get depth; }
field() { printf '%s\n' "$OUT" | csv_get "$1"; }
ops() { opcount "$VFSLOG" begin; }
fails() { opcount "$VFSLOG" FAIL; }

# One sync of two usage records (with their deductions), without a fault:
# how many database operations it makes at the ledger.
rec base-1 general h264 1280 720 30000
rec base-2 general h264 1280 720 31000
mc --format csv sync
is "a sync without a fault: accepted, the outbox empty" "$RC/$(depth)" "0/0"
before=$(ops)
rec base-3 general h264 1280 720 32000
rec base-4 general h264 1280 720 33000
mc --format csv sync
W=$(($(ops) - before))
is "a second sync without a fault: accepted" "$RC/$(field accepted)/$(depth)" "0/4/0"
check "one sync makes database operations at the ledger ($W)" [ "$W" -gt 3 ]

LOOP_RUNS=0 INJECTED=0 ANSWERED_503=0 ABSORBED=0 RECORDS_CHECKED=0 NOT_REACHED=0
# fault_loop FAILS: for N in 1..W, op N (and with "all" every later one)
# fails during a sync of 2 usage records; then the fault is lifted and the
# node syncs again.
fault_loop() {
    local mode=$1 n err d0 l0 d1 l1 f0 f1 st i
    local bad_status=() bad_once=() bad_retry=() bad_integrity=()
    for n in $(seq 1 "$W"); do
        LOOP_RUNS=$((LOOP_RUNS + 1))
        err=full
        [ $((n % 2)) -eq 0 ] && err=ioerr
        rec "f$mode-$n-a" general h264 1280 720 $((40000 + n))
        rec "f$mode-$n-b" general h265 640 360 $((50000 + n))
        d0=$(depth) l0=$(ledger_count "$TMP/ledger.db") f0=$(fails)
        printf 'FAULTVFS_FAIL_AT=%d\nFAULTVFS_FAILS=%s\nFAULTVFS_ERROR=%s\n' "$n" "$mode" "$err" >"$CTL"
        mc --format csv sync --retries 0 --verbose
        rm -f "$CTL"
        f1=$(fails)
        INJECTED=$((INJECTED + f1 - f0))
        [ "$f1" -gt "$f0" ] || NOT_REACHED=$((NOT_REACHED + 1))
        st=$(statuses "$TMP/.err")
        for i in $st; do
            case $i in 503×*) ANSWERED_503=$((ANSWERED_503 + ${i#503×})) ;;
                *) bad_status+=("N=$n ($err): answered $i: $(grep -m1 'ledger answered' "$TMP/.err")") ;;
            esac
        done
        if [ "$RC" -eq 0 ] && [ "$f1" -gt "$f0" ]; then ABSORBED=$((ABSORBED + 1)); fi
        if [ "$RC" -ne 0 ] && [ -z "$st" ]; then
            bad_status+=("N=$n ($err): sync failed without an answer: $(head -c 300 "$TMP/.err")")
        fi
        d1=$(depth) l1=$(ledger_count "$TMP/ledger.db")
        [ $((l1 - l0)) -eq $((d0 - d1)) ] ||
            bad_once+=("N=$n ($err): the ledger stored $((l1 - l0)), $((d0 - d1)) left the outbox")
        mc --format csv sync
        [ "$RC" -eq 0 ] && [ "$(field accepted)" = "$d1" ] &&
            [ "$(field duplicates)" = 0 ] && [ "$(depth)" = 0 ] ||
            bad_retry+=("N=$n ($err): retry: exit $RC, $(printf '%s' "$OUT" | tr '\n' ' ') (depth was $d1) $ERR")
        RECORDS_CHECKED=$((RECORDS_CHECKED + d0))
        i=$(integrity "$TMP/ledger.db")
        [ "$i" = ok ] || bad_integrity+=("N=$n ($err): $i")
    done
    local what="ledger op N of $W fails (${mode/all/every op from N on}; full and ioerr)"
    if [ ${#bad_status[@]} -eq 0 ]; then ok "$what: every answer is 200 or 503"
    else not_ok "$what: every answer is 200 or 503" "${bad_status[@]:0:6}"; fi
    if [ ${#bad_once[@]} -eq 0 ]; then ok "$what: what left the outbox is what the ledger stored"
    else not_ok "$what: what left the outbox is what the ledger stored" "${bad_once[@]:0:6}"; fi
    if [ ${#bad_retry[@]} -eq 0 ]; then ok "$what: the node's next sync is accepted whole"
    else not_ok "$what: the node's next sync is accepted whole" "${bad_retry[@]:0:6}"; fi
    if [ ${#bad_integrity[@]} -eq 0 ]; then ok "$what: PRAGMA integrity_check ok after each"
    else not_ok "$what: PRAGMA integrity_check ok after each" "${bad_integrity[@]:0:6}"; fi
}
section "faultvfs in the ledger: op N fails from then on"
fault_loop all
persistent_503=$ANSWERED_503
check "a persistent fault is answered 503 ($persistent_503 times in $W runs)" [ "$persistent_503" -ge "$W" ]
section "faultvfs in the ledger: op N fails once"
fault_loop 1
reconcile n1
echo "# figures: faultvfs: $LOOP_RUNS syncs, $INJECTED faults injected (N = 1 … $W ops a sync), $NOT_REACHED runs the fault was not reached, $ANSWERED_503 answers 503 ($persistent_503 persistent), $ABSORBED one-off faults absorbed by the ledger's transaction retry, $RECORDS_CHECKED records checked"
check "the ledger logged no 500" [ "$(grep -c ': 500 ' "$LEDGER_LOG")" -eq 0 ]

# ---------------------------------------------------------- a full tmpfs
if [ "$(id -u)" -ne 0 ]; then
    echo "ok $((TAP_N += 1)) - tmpfs under the ledger's database # SKIP not root (mount -t tmpfs needs root; the faultvfs runs above cover the same paths)"
    e2e_finish
fi
section "the ledger's database on a full tmpfs"
ledger_stop TERM
is "the ledger stops cleanly (exit 0)" "$LEDGER_RC" 0
MNT=$TMP/small
if ! tmpfs_mount "$MNT" 2m 2>"$TMP/mount.err"; then
    # root without the right to mount (a container): said, not hidden
    echo "ok $((TAP_N += 1)) - tmpfs under the ledger's database # SKIP cannot mount a tmpfs here: $(head -n 1 "$TMP/mount.err")"
    e2e_finish
fi
cp "$TMP/ledger.db" "$MNT/ledger.db"
LDB=(--db "$MNT/ledger.db")
ledger_start
# a request first, so the ledger holds an open connection (with its -shm
# file) when the disk fills: then what fails is the writes, not the opening
# of a new connection (which fails too on a full disk, also answered 503)
admin GET /v1/packs
is "the ledger on tmpfs answers" "$ASTATUS" 200
check "fill the tmpfs" fill "$MNT"
n503=$(grep -c ': 503 ' "$LEDGER_LOG")
FULL_RUNS=0 FULL_QUEUED=0
bad=()
for i in 1 2 3; do
    rec "full-$i-a" general h264 1280 720 $((60000 + i))
    rec "full-$i-b" tsc h264 1920 1080 $((70000 + i))
    d0=$(depth) l0=$(ledger_count "$MNT/ledger.db")
    mc --format csv sync --retries 1 --verbose
    FULL_RUNS=$((FULL_RUNS + 1))
    st=$(statuses "$TMP/.err")
    d1=$(depth) l1=$(ledger_count "$MNT/ledger.db")
    [[ $st =~ ^503×[0-9]+\ $ ]] ||
        bad+=("sync $i: exit $RC, answers: ${st:-none}: $(head -c 300 "$TMP/.err")")
    [ "$RC" -ne 0 ] && [ "$d1" = "$d0" ] && [ "$l1" = "$l0" ] ||
        bad+=("sync $i: exit $RC, outbox $d0 → $d1, ledger records $l0 → $l1")
    FULL_QUEUED=$d1
done
if [ ${#bad[@]} -eq 0 ]; then ok "full disk: every sync answered 503 only, nothing stored, nothing left the outbox"
else not_ok "full disk: every sync answered 503 only, nothing stored, nothing left the outbox" "${bad[@]}"; fi
full503=$(($(grep -c ': 503 ' "$LEDGER_LOG") - n503))
check "full disk: the ledger logged its 503s ($full503)" [ "$full503" -ge "$FULL_RUNS" ]
check "full disk: the ledger's writes failed (SQLITE_FULL)" grep -q 'database or disk is full' "$LEDGER_LOG"
health=$(python3 "$E2E_PY" admin GET /healthz | head -n 1)
case $health in
    200|503) ok "full disk: /healthz answers 200 or 503 ($health)" ;;
    *) not_ok "full disk: /healthz answers 200 or 503" "got $health" ;;
esac
unfill "$MNT"
mc --format csv sync
is "space freed: the node's next sync is accepted whole" \
    "$RC/$(field accepted)/$(field duplicates)" "0/$FULL_QUEUED/0"
is "space freed: PRAGMA integrity_check" "$(integrity "$MNT/ledger.db")" ok
reconcile n1
echo "# figures: tmpfs (2 MiB) full: $FULL_RUNS syncs refused with $full503 answers 503, $FULL_QUEUED records kept in the outbox and accepted once space was freed"
check "the ledger logged no 500" [ "$(grep -c ': 500 ' "$LEDGER_LOG")" -eq 0 ]
e2e_finish
