#!/usr/bin/env bash
# Running jobs: checkpoints persist progress while ffmpeg runs; a job
# stopped with SIGINT ends normally (EOF reaches the filter) and is billed
# in full; a job killed with SIGKILL is billed up to its last checkpoint
# once `meterctl reap` finds its process gone.
# shellcheck source=tests/filter/filter.inc
. "$(dirname "$0")/filter.inc"

# session FIELD JOB: a field of the job's (first) metering session
session() {
    "$METERCTL" --format json jobs --sessions --job "$2" 2>/dev/null | python3 -c '
import json, sys
rows = json.load(sys.stdin)
rows = [rows] if isinstance(rows, dict) else rows
print(rows[0][sys.argv[1]] if rows else "")
' "$1"
}

# wait_progress JOB US: until the running session has checkpointed at least
# US of output (bounded: a stuck ffmpeg fails the test, it does not hang it)
wait_progress() {
    local d
    for _ in $(seq 600); do
        d=$(session duration_us "$1")
        if [ -n "$d" ] && [ "$d" -ge "$2" ]; then return 0; fi
        kill -0 "$FF_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# -re: read the input at its own pace, so the job runs long enough
live=(-re -f lavfi -i "testsrc=size=160x120:rate=25:duration=60")

# ---- SIGINT
ffbg sigint "${live[@]}" -vf "meter=job=sigint:output=o:codec=h264:checkpoint=0.5" \
    "${X264[@]}" "$TMP/sigint.mp4"
if wait_progress sigint 1000000; then
    ok "SIGINT job: checkpoints persist progress while it runs"
else
    not_ok "SIGINT job: checkpoints persist progress while it runs" "$(ff_diag sigint)"
fi
is "SIGINT job: the session is running meanwhile" "$(session status sigint)" running
kill -INT "$FF_PID"
wait "$FF_PID"
FF_PID=
meter_vs_probe "SIGINT: billed in full (= ffprobe of the finished file)" sigint o "$TMP/sigint.mp4"
is "SIGINT: record done, session done" "$(field sigint o state) $(session status sigint)" "done done"
check "SIGINT: the one-line summary was logged" grep -q 'job=sigint output=o spec=Standard.H264.SD' "$TMP/sigint.log"

# ---- SIGKILL: nothing runs in the process any more; the last checkpoint
# is what is billed.  MPEG-TS flushed per packet stays readable.
ckpt_us=500000
ffbg sigkill "${live[@]}" -vf "meter=job=sigkill:output=o:codec=h264:checkpoint=0.5" \
    "${X264[@]}" -flush_packets 1 "$TMP/sigkill.ts"
if ! wait_progress sigkill 1500000; then
    not_ok "SIGKILL job: checkpoints while it runs" "$(ff_diag sigkill)"
fi
{ kill -KILL "$FF_PID"; wait "$FF_PID"; } 2>/dev/null
FF_PID=
is "SIGKILL: the session is left running" "$(session status sigkill)" running
billed sigkill
is "SIGKILL: nothing billed before reap" "$ROWS" 0
ckpt=$(session duration_us sigkill)
out=$("$METERCTL" --format json reap)
is "SIGKILL: meterctl reap finalizes it" "$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reaped"])')" 1
billed sigkill
is "SIGKILL: billed = the last checkpoint, interrupted" \
    "$BILLED_US $(field sigkill o state) $(session status sigkill)" "$ckpt interrupted interrupted"
probe "$TMP/sigkill.ts"
if [ -z "$PROBE_US" ]; then
    not_ok "SIGKILL: ffprobe reads the cut file" "$(cat "$TMP/.probe.err")"
else
    # at most one checkpoint interval (+ a frame) lost, never more billed
    # than the filter passed (the file lags it by the frames in flight)
    check "SIGKILL: loses at most one checkpoint interval ($BILLED_US vs file $PROBE_US µs)" \
        [ "$BILLED_US" -ge $((PROBE_US - ckpt_us - FRAME_US)) ]
    check "SIGKILL: bills no more than was produced (+ frames in flight)" \
        [ "$BILLED_US" -le $((PROBE_US + 1000000)) ]
fi
out=$("$METERCTL" --format json reap)
is "SIGKILL: a second reap finds nothing" "$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reaped"])')" 0

finish
