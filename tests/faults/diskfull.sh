#!/usr/bin/env bash
# diskfull.sh — the node database failing under real metered ffmpeg jobs
# (the `meter` filter with on_error=spool): every job still exits 0, the
# spool keeps what was metered, and importing it later bills exactly that,
# once.  Two ways to fail:
#
#   * faultvfs.so (tests/faults/faultvfs.c) preloaded into ffmpeg: the Nth
#     write, sync or truncate of the database fails.  Once with SQLITE_FULL,
#     for every N a job makes (counted in a run without faults); then from
#     the Nth on with SQLITE_IOERR (a disk that stays broken), for N at
#     every transaction's first write, its last (the commit frame) and its
#     sync (a later N inside one transaction fails it the same way).  Each
#     run starts from a copy of one database, so its writes are the same.
#   * a real full filesystem (root only: a small tmpfs): full before the
#     job, filling up in the middle of the job, and freed in the middle.
#
# After each run, with the fault gone: `meterctl import-spool` and
# `meterctl reap` bill what the spool holds; each output is billed once and
# exactly what a run without faults bills (which is ffprobe's duration of
# the file); nothing is left running; a second import bills nothing;
# `meterctl verify` and PRAGMA integrity_check pass.  Figures are printed
# as "# figures: …" diagnostics.
# shellcheck source=tests/filter/filter.inc
. "$(dirname "$0")/../filter/filter.inc"

# shellcheck source=tests/faults/faults.inc
. "$(dirname "$0")/faults.inc"

# shellcheck disable=SC2317  # run by the EXIT trap
fault_cleanup() {
    tmpfs_cleanup
    cleanup
}
trap fault_cleanup EXIT

# A database with packs to copy for each run (no WAL beside it: meterctl
# closed it).
TEMPLATE=$TMP/template.db
cp "$METER_DB" "$TEMPLATE"

CLIP_US=1000000
clip=(-f lavfi -i "testsrc=size=160x120:rate=25:duration=1")
# graph JOB [OPTS]: two outputs, 160x120 and 96x72, checkpoints every 0.4 s
# (2 of them an output: each is a few database operations to fail)
graph() {
    local m="codec=h264:checkpoint=0.4:on_error=spool${2:+:$2}"
    printf '%s' "[0:v]split=2[a][b];[a]meter=job=$1:output=hi:${m}[o1];[b]scale=96:72,meter=job=$1:output=lo:${m}[o2]"
}
# job NAME JOB [OPTS]: a two-output job into $TMP/NAME.{hi,lo}.mp4
job() {
    ff "$1" "${clip[@]}" -filter_complex "$(graph "$2" "${3:-}")" \
        -map '[o1]' "${X264[@]}" "$TMP/$1.hi.mp4" -map '[o2]' "${X264[@]}" "$TMP/$1.lo.mp4"
}

# billing JOB: "hi=US/ROWS lo=US/ROWS" of the job's usage records ($METER_DB)
billing() { "$METERCTL" --format csv jobs --job "$1" | csv_sum duration_us output; }
# statuses: the sessions of the whole database by status, "done=2 running=1"
statuses() { "$METERCTL" --format csv jobs --sessions | csv_count status; }
# session_check: "hi=1 lo=1 other=0 K" when each output has one session
# done, K sessions are interrupted with nothing measured, and no other
# session exists.  Those come from a commit whose
# sync failed: the session's row was written to the WAL before the sync
# failed, so it is committed once the WAL is recovered, while the filter,
# told the commit failed, spooled the output under a spool id of its own.
# It is reaped as interrupted and bills nothing.
PHANTOMS=0
session_check() {
    local out
    out=$("$METERCTL" --format csv jobs --sessions | awk -F, '
        NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        $c["status"] == "done" { done[$c["output"]]++; next }
        $c["status"] == "interrupted" && $c["duration_us"] == 0 { ph++; next }
        { other++ }
        END { printf "hi=%d lo=%d other=%d %d\n", done["hi"], done["lo"], other, ph }')
    printf '%s\n' "$out"
}
# summary_check LOG: every "(spooled)" summary line of the filter shows the
# output's duration once and no deduction (the transaction that had
# deducted was rolled back)
summary_check() {
    local bad
    bad=$(grep '(spooled)' "$1" | grep -v "duration=${CLIP_US:0:1}\.000000s .*deducted=0\.000min overage=0\.000min packs=- ")
    [ -z "$bad" ] || { printf '%s\n' "$bad" | head -n 2; return 1; }
}

# ---------------------------------------------------------------- reference
# A run without faults, through the shim (logging only) to count the
# database operations a job makes.
export METER_DB=$TMP/run.db
cp "$TEMPLATE" "$METER_DB"
LD_PRELOAD=$SHIM FAULTVFS_MATCH=$METER_DB FAULTVFS_OPS=write,sync,truncate \
    FAULTVFS_LOG=$TMP/ref.vfs job ref ref
is "reference job (no fault) exits 0" "$FF_RC" 0
meter_vs_probe "reference: output hi billed = ffprobe" ref hi "$TMP/ref.hi.mp4"
meter_vs_probe "reference: output lo billed = ffprobe" ref lo "$TMP/ref.lo.mp4"
REF=$(billing ref)
is "reference: each output billed its whole clip, once" "$REF" "hi=$CLIP_US/1 lo=$CLIP_US/1"
OPS=$(opcount "$TMP/ref.vfs" begin)
WRITES=$(grep -c ' write .* begin$' "$TMP/ref.vfs")
SYNCS=$(grep -c ' sync .* begin$' "$TMP/ref.vfs")
check "reference: the job writes its database (faultvfs counted $OPS operations)" [ "$OPS" -gt 10 ]

# The transactions' boundaries in the reference run: for each group of
# operations up to a sync, the numbers of its first operation, its last
# write and the sync; and the first and last of what follows the last sync.
BOUNDARIES=$(awk '$NF == "begin" {
        n = $2
        if (!first) first = n
        if ($3 == "sync") { print first; if (last) print last; print n; first = last = 0 }
        else last = n
    }
    END { if (first) print first; if (last) print last }' "$TMP/ref.vfs" | sort -nu | paste -sd' ' -)

# ------------------------------------------------------- the Nth op fails
# fault_loop ERROR FAILS ORDER N...: ORDER is "import" (import-spool, then
# reap) or "reap" (reap first: it bills from the spool file a dead session
# left).
RUNS=0 INJECTED=0 SPOOLED_RUNS=0 SPOOL_FILES=0 SPOOL_BYTES=0 RECORDS=0
fault_loop() {
    local err=$1 fails=$2 order=$3 n injected bytes files got st a b imp again integ verify
    local bad_rc=() bad_reached=() bad_bill=() bad_state=() bad_again=() bad_db=() bad_summary=()
    shift 3
    for n in "$@"; do
        RUNS=$((RUNS + 1))
        cp "$TEMPLATE" "$METER_DB"
        rm -rf "$METER_DB.spool" "$TMP/f.vfs"
        mkdir "$METER_DB.spool"
        LD_PRELOAD=$SHIM FAULTVFS_MATCH=$METER_DB FAULTVFS_OPS=write,sync,truncate \
            FAULTVFS_FAIL_AT=$n FAULTVFS_FAILS=$fails FAULTVFS_ERROR=$err \
            FAULTVFS_LOG=$TMP/f.vfs job f "f$n"
        [ "$FF_RC" -eq 0 ] || bad_rc+=("N=$n: exit $FF_RC: $(grep -v '^frame=' "$TMP/f.log" | tail -n 3 | tr '\n' ' ')")
        injected=$(opcount "$TMP/f.vfs" FAIL)
        [ "$injected" -gt 0 ] || bad_reached+=("N=$n")
        INJECTED=$((INJECTED + injected))
        files=$(spool_files "$METER_DB.spool")
        bytes=$(spool_bytes "$METER_DB.spool")
        [ "$files" -gt 0 ] && SPOOLED_RUNS=$((SPOOLED_RUNS + 1))
        SPOOL_FILES=$((SPOOL_FILES + files)) SPOOL_BYTES=$((SPOOL_BYTES + bytes))
        if [ "$order" = import ]; then
            a=$("$METERCTL" import-spool 2>&1) && b=$("$METERCTL" reap 2>&1)
        else
            a=$("$METERCTL" reap 2>&1) && b=$("$METERCTL" import-spool 2>&1)
        fi || bad_db+=("N=$n: $a $b")
        got=$(billing "f$n")
        RECORDS=$((RECORDS + 2))
        [ "$got" = "$REF" ] || bad_bill+=("N=$n: $got (no fault: $REF; $files spool files)")
        st=$(session_check)
        PHANTOMS=$((PHANTOMS + ${st##* }))
        [ "${st% *}" = "hi=1 lo=1 other=0" ] || bad_state+=("N=$n: sessions $(statuses)")
        summary_check "$TMP/f.log" >"$TMP/summary.bad" ||
            bad_summary+=("N=$n: $(cat "$TMP/summary.bad")")
        [ "$(spool_files "$METER_DB.spool")" -eq 0 ] || bad_state+=("N=$n: spool files left after import")
        imp=$("$METERCTL" --format csv import-spool 2>&1 | csv_get imported)
        again=$(billing "f$n")
        [ "$imp" = 0 ] && [ "$again" = "$got" ] ||
            bad_again+=("N=$n: second import: $imp, billing $again")
        verify=$("$METERCTL" verify 2>&1) || bad_db+=("N=$n: verify: $verify")
        integ=$(integrity "$METER_DB")
        [ "$integ" = ok ] || bad_db+=("N=$n: integrity_check: $integ")
    done
    local what="op N of $OPS fails ($err, ${fails/all/every op from N on}; $# runs)"
    if [ ${#bad_rc[@]} -eq 0 ]; then ok "$what: ffmpeg exits 0 for every N"
    else not_ok "$what: ffmpeg exits 0 for every N" "${bad_rc[@]:0:5}"; fi
    if [ ${#bad_reached[@]} -eq 0 ]; then ok "$what: every run met its fault"
    else not_ok "$what: every run met its fault" "not reached: ${bad_reached[*]:0:20}"; fi
    if [ ${#bad_bill[@]} -eq 0 ]; then ok "$what: after $order, each output billed once, as without the fault"
    else not_ok "$what: after $order, each output billed once, as without the fault" "${bad_bill[@]:0:8}"; fi
    if [ ${#bad_state[@]} -eq 0 ]; then ok "$what: one session done an output, the spool emptied"
    else not_ok "$what: one session done an output, the spool emptied" "${bad_state[@]:0:8}"; fi
    if [ ${#bad_summary[@]} -eq 0 ]; then ok "$what: the filter's summary of a spooled output shows no deduction"
    else not_ok "$what: the filter's summary of a spooled output shows no deduction" "${bad_summary[@]:0:4}"; fi
    if [ ${#bad_again[@]} -eq 0 ]; then ok "$what: a second import bills nothing"
    else not_ok "$what: a second import bills nothing" "${bad_again[@]:0:5}"; fi
    if [ ${#bad_db[@]} -eq 0 ]; then ok "$what: import, reap, verify and integrity_check pass"
    else not_ok "$what: import, reap, verify and integrity_check pass" "${bad_db[@]:0:5}"; fi
}
fault_loop full 1 import $(seq 1 "$OPS")
# shellcheck disable=SC2086  # a list of numbers
fault_loop ioerr all reap $BOUNDARIES
echo "# figures: faultvfs: $RUNS runs ($OPS ops a job: $WRITES writes, $SYNCS syncs; each op failing once, then from each of $(wc -w <<<"$BOUNDARIES") transaction boundaries on), $INJECTED faults injected, $SPOOLED_RUNS runs spooled, $PHANTOMS sessions committed by a failed sync (billed nothing), $SPOOL_FILES spool files ($SPOOL_BYTES bytes) imported, $RECORDS output records checked"

# ------------------------------------------------------------ a full tmpfs
if [ "$(id -u)" -ne 0 ]; then
    for c in "full before the job" "fills mid-job" "freed mid-job"; do
        echo "ok $((TAP_N += 1)) - tmpfs: $c # SKIP not root (mount -t tmpfs needs root; the faultvfs runs above cover the same paths)"
    done
    finish
fi
MNT=$TMP/small
if ! tmpfs_mount "$MNT" 1m 2>"$TMP/mount.err"; then
    # root without the right to mount (a container): said, not hidden
    echo "ok $((TAP_N += 1)) - tmpfs: a full file system # SKIP cannot mount a tmpfs here: $(head -n 1 "$TMP/mount.err")"
    finish
fi
SPOOL=$TMP/spool      # on another file system: the spool must have room
export METER_DB=$MNT/meter.db
cp "$TEMPLATE" "$METER_DB"
TMPFS_BYTES=0 TMPFS_FILES=0
counted_spool() {
    TMPFS_FILES=$((TMPFS_FILES + $(spool_files "$SPOOL")))
    TMPFS_BYTES=$((TMPFS_BYTES + $(spool_bytes "$SPOOL")))
}
# session_us JOB: the least checkpointed duration of the job's sessions
session_us() {
    "$METERCTL" --format csv jobs --sessions --job "$1" 2>/dev/null |
        awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "duration_us") c = i; next }
                 { if (m == "" || $c < m) m = $c } END { print m == "" ? -1 : m }'
}
finish_bg() { wait "$FF_PID"; FF_RC=$?; FF_PID=; }
# exact JOB WHAT: both outputs billed once, as ffprobe sees the files
exact() {
    meter_vs_probe "tmpfs $2: output hi billed once = ffprobe" "$1" hi "$TMP/$1.hi.mp4"
    meter_vs_probe "tmpfs $2: output lo billed once = ffprobe" "$1" lo "$TMP/$1.lo.mp4"
    is "tmpfs $2: one record per output, the whole clip" "$(billing "$1")" "${3:-$LIVE_REF}"
}
db_checks() {
    local out
    if out=$("$METERCTL" verify 2>&1); then ok "tmpfs $1: meterctl verify passes"
    else not_ok "tmpfs $1: meterctl verify passes" "$out"; fi
    is "tmpfs $1: PRAGMA integrity_check" "$(integrity "$METER_DB")" ok
    is "tmpfs $1: no session left running" "$(statuses | grep -c 'running=')" 0
}
csv() { "$METERCTL" --format csv "$@" 2>&1; }
# 2 s at the input's own pace: time to fill or free the disk mid-job
live=(-re -f lavfi -i "testsrc=size=160x120:rate=25:duration=2")
LIVE_US=2000000
LIVE_REF="hi=$LIVE_US/1 lo=$LIVE_US/1"
# bg NAME: the two-output job at the input's own pace, in the background
bg() {
    ffbg "$1" "${live[@]}" -filter_complex "$(graph "$1" "spool=$SPOOL")" \
        -map '[o1]' "${X264[@]}" "$TMP/$1.hi.mp4" -map '[o2]' "${X264[@]}" "$TMP/$1.lo.mp4"
}

# 1. full before the job starts: the sessions cannot even open
fill "$MNT"
job full1 full1 "spool=$SPOOL"
is "tmpfs full before the job: ffmpeg exits 0" "$FF_RC" 0
check "tmpfs full before the job: the filter says the database is unavailable" \
    grep -q 'metering database unavailable' "$TMP/full1.log"
is "tmpfs full before the job: the spool holds both outputs' final state" "$(spool_files "$SPOOL")" 2
counted_spool
unfill "$MNT"
is "tmpfs full before the job: nothing billed in the database meanwhile" "$(billing full1)" ""
is "tmpfs full before the job: import-spool after space is freed imports 2 sessions" \
    "$(csv import-spool "$SPOOL" | csv_get imported)" 2
exact full1 "full before the job" "$REF"
is "tmpfs full before the job: a second import bills nothing" \
    "$(csv import-spool "$SPOOL" | csv_get imported) $(billing full1)" "0 $REF"
db_checks "full before the job"

# 2. the disk fills up mid-job: the sessions are in the database, running;
# later checkpoints and the end go to the spool; reap bills from the spool
bg full2
for _ in $(seq 100); do [ "$(session_us full2)" -ge 500000 ] && break; sleep 0.05; done
before=$(session_us full2)
fill "$MNT"
finish_bg
is "tmpfs fills mid-job: ffmpeg exits 0" "$FF_RC" 0
check "tmpfs fills mid-job: checkpoints were in the database before ($before µs)" [ "$before" -ge 500000 ]
is "tmpfs fills mid-job: the spool holds both outputs' final state" "$(spool_files "$SPOOL")" 2
counted_spool
unfill "$MNT"
is "tmpfs fills mid-job: the sessions wait, running, at their last checkpoint" "$(statuses)" "done=2 running=2"
after=$(session_us full2)
check "tmpfs fills mid-job: no checkpoint reached the database once it was full ($before → $after µs)" \
    [ "$after" -lt "$LIVE_US" ]
is "tmpfs fills mid-job: meterctl reap bills both from their spool files" \
    "$(csv reap | csv_get reaped) $(spool_files "$SPOOL")" "2 0"
exact full2 "fills mid-job"
is "tmpfs fills mid-job: import-spool afterwards bills nothing" \
    "$(csv import-spool "$SPOOL" | csv_get imported) $(billing full2)" "0 $LIVE_REF"
db_checks "fills mid-job"

# 3. full at the start, freed mid-job: the spooled sessions are billed in
# the database at their end, and their spool files go
fill "$MNT"
bg full3
for _ in $(seq 100); do [ "$(spool_files "$SPOOL")" -ge 2 ] && break; sleep 0.05; done
spooled=$(spool_files "$SPOOL")
counted_spool
unfill "$MNT"
finish_bg
is "tmpfs freed mid-job: ffmpeg exits 0" "$FF_RC" 0
is "tmpfs freed mid-job: checkpoints went to the spool while it was full" "$spooled" 2
is "tmpfs freed mid-job: the end was billed in the database, the spool files removed" "$(spool_files "$SPOOL")" 0
exact full3 "freed mid-job"
db_checks "freed mid-job"

echo "# figures: tmpfs (1 MiB): 3 jobs, the disk filled $FILLS times, $TMPFS_FILES spool files ($TMPFS_BYTES bytes) written while full and imported"
finish
