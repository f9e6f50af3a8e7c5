#!/usr/bin/env bash
# Refusals and failures: enforce refuses to start without minutes (with a
# clear error), on_exhausted=stop ends the output where the minutes ran out
# and continue bills the rest as overage; a database that cannot be
# written keeps the transcode going and spools the usage (on_error=spool)
# for `meterctl import-spool`, or refuses to start (on_error=fail);
# re-running a job id bills again unless idempotent=1; the job id comes from
# the option, else $METER_JOB, else is generated.
# shellcheck source=tests/filter/filter.inc
. "$(dirname "$0")/filter.inc"

clip=(-f lavfi -i "testsrc=size=160x120:rate=25:duration=2")

# A database of its own, with the packs a case asks for.
newdb() {   # PATH [TYPE MINUTES]...
    local db=$1
    shift
    "$METERCTL" --db "$db" init >/dev/null || return 1
    while [ $# -ge 2 ]; do
        "$METERCTL" --db "$db" pack add --type "$1" --minutes "$2" >/dev/null || return 1
        shift 2
    done
}

# ---- enforce: no pack of the class has minutes
newdb "$TMP/none.db"
ff enforce-none "${clip[@]}" -vf "meter=job=enf1:output=o:codec=h264:enforce=1:db=$TMP/none.db" \
    "${X264[@]}" "$TMP/enf1.mp4"
check "enforce, no pack: ffmpeg fails" [ "$FF_RC" -ne 0 ]
check "enforce, no pack: one clear error" grep -q 'refusing to start (enforce=1): no valid general pack has minutes left' "$TMP/enforce-none.log"
is "enforce, no pack: nothing billed" "$("$METERCTL" --db "$TMP/none.db" --format csv jobs --job enf1 | tail -n +2)" ""

newdb "$TMP/tsconly.db" tsc 100
ff enforce-class "${clip[@]}" -vf "meter=job=enf2:output=o:codec=h264:enforce=1:db=$TMP/tsconly.db" \
    "${X264[@]}" "$TMP/enf2.mp4"
check "enforce: a TSC pack does not pay for general" [ "$FF_RC" -ne 0 ]
ff enforce-tsc "${clip[@]}" -vf "meter=job=enf3:output=o:class=tsc:codec=h264:enforce=1:db=$TMP/tsconly.db" \
    "${X264[@]}" "$TMP/enf3.mp4"
is "enforce: the TSC job starts" "$FF_RC" 0

# ---- minutes running out mid-job.  One pack minute at the H.265 SD ratio
# (1:5) pays for 12 s of output; the clip is 20 s.
run_exhaust() {   # NAME MODE
    newdb "$TMP/$1.db" general 1
    ff "$1" -f lavfi -i "testsrc=size=160x120:rate=10:duration=20" \
        -vf "meter=job=$1:output=o:codec=h265:enforce=1:on_exhausted=$2:checkpoint=1:db=$TMP/$1.db" \
        "${X265[@]}" "$TMP/$1.ts"
}
run_exhaust stop stop
is "on_exhausted=stop: the transcode ends normally" "$FF_RC" 0
probe "$TMP/stop.ts"
check "on_exhausted=stop: output ends once 12 s are paid ($PROBE_US µs)" \
    between "${PROBE_US:-0}" 12000000 $((12000000 + FRAME_US))
jobs_stop=$("$METERCTL" --db "$TMP/stop.db" --format json jobs --job stop)
read -r dur cov ovr state <<<"$(printf '%s' "$jobs_stop" | python3 -c '
import json, sys
r = json.load(sys.stdin)
r = r[0] if isinstance(r, list) else r
print(r["duration_us"], r["covered_us"], r["overage_us"], r["state"])')"
near "on_exhausted=stop: billed = ffprobe" "$dur" "$PROBE_US" "$FRAME_US"
is "on_exhausted=stop: the pack is used up, done" "$cov $state" "60000000 done"
check "on_exhausted=stop: overage at most one frame ($ovr pack-µs)" [ "$ovr" -le $((5 * FRAME_US)) ]
check "on_exhausted=stop: logged why" grep -q 'minutes exhausted: ending the output' "$TMP/stop.log"

run_exhaust cont continue
probe "$TMP/cont.ts"
near "on_exhausted=continue: the whole clip is transcoded" "$PROBE_US" 20000000 "$FRAME_US"
read -r dur ovr <<<"$("$METERCTL" --db "$TMP/cont.db" --format json jobs --job cont | python3 -c '
import json, sys
r = json.load(sys.stdin)
r = r[0] if isinstance(r, list) else r
print(r["duration_us"], r["overage_us"])')"
near "on_exhausted=continue: billed = ffprobe" "$dur" "$PROBE_US" "$FRAME_US"
is "on_exhausted=continue: the rest is overage" "$ovr" $((5 * dur - 60000000))
check "on_exhausted=continue: warned" grep -q 'billed as overage' "$TMP/cont.log"

# ---- a database that cannot be written (its directory is a file; the
# tests may run as root, for whom permission bits do not stop a write)
touch "$TMP/notadir"
ff spool "${clip[@]}" -vf "meter=job=spool:output=o:codec=h264:db=$TMP/notadir/meter.db:spool=$TMP/spool" \
    "${X264[@]}" "$TMP/spool.mp4"
is "on_error=spool (default): the transcode succeeds" "$FF_RC" 0
check "on_error=spool: the log says where the usage went" grep -q 'usage goes to the spool' "$TMP/spool.log"
is "on_error=spool: a spool file was written" "$(find "$TMP/spool" -name '*.spool' | wc -l)" 1
out=$("$METERCTL" --format json import-spool "$TMP/spool")
is "import-spool: one session imported" "$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("imported", d))')" 1
meter_vs_probe "import-spool: the spooled usage is billed in full" spool o "$TMP/spool.mp4"
is "import-spool: the spool is emptied" "$(find "$TMP/spool" -name '*.spool' | wc -l)" 0

ff fail "${clip[@]}" -vf "meter=job=fail:output=o:codec=h264:db=$TMP/notadir/meter.db:on_error=fail" \
    "${X264[@]}" "$TMP/fail.mp4"
check "on_error=fail: ffmpeg fails" [ "$FF_RC" -ne 0 ]
check "on_error=fail: names the problem" grep -q 'cannot open a metering session: .*notadir' "$TMP/fail.log"

# ---- re-running a job id
for i in 1 2; do
    ff "again$i" "${clip[@]}" -vf "meter=job=again:output=o:codec=h264" "${X264[@]}" "$TMP/again.mp4"
    ff "idem$i" "${clip[@]}" -vf "meter=job=idem:output=o:codec=h264:idempotent=1" "${X264[@]}" "$TMP/idem.mp4"
done
billed again
is "a re-run job id is billed again (a new job)" "$ROWS $BILLED_US" "2 4000000"
billed idem
is "idempotent=1: billed once" "$ROWS $BILLED_US" "1 2000000"
check "idempotent=1: the re-run says so" grep -q 'already billed' "$TMP/idem2.log"

# ---- where the job id comes from
METER_JOB=from-env ff jobenv "${clip[@]}" -vf "meter=output=o:codec=h264" "${X264[@]}" "$TMP/je.mp4"
billed from-env
is "no job option: \$METER_JOB" "$ROWS" 1
ff jobgen "${clip[@]}" -vf "meter=output=gen:codec=h264" "${X264[@]}" "$TMP/jg.mp4"
gen=$(sed -n 's/.*job=\([^ ]*\) output=gen .*/\1/p' "$TMP/jobgen.log")
check "no job at all: one is generated ($gen)" [ -n "$gen" ]
billed "$gen" gen
is "the generated job id is the one billed" "$ROWS" 1

finish
