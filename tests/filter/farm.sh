#!/usr/bin/env bash
# The farm set-up (doc/farm-setup.md) with real users: ffmpeg runs as
# service users, meterctl as root, and they share one database.
#
#   - a transcode whose usage could go nowhere — the database cannot be
#     written (or is not there) and the spool directory cannot be created or
#     written — does not start: one error line naming both paths and the
#     cause, a non-zero exit (it used to transcode, exit 0, and lose the
#     usage at the end);
#   - the documented set-up (group-owned setgid directory 2770, database
#     0660, spool directory 2770): a service user's ffmpeg bills, root's
#     meterctl sees it; -wal/-shm made by a service user (under umask 077)
#     or by root get the database's mode and group, so writes by either side
#     never lock out the other.
#
# Users are numeric ids set with setpriv (util-linux): nothing is added to
# /etc/passwd or /etc/group.  Needs root (as CI runs); otherwise those cases
# are reported as skipped.
# shellcheck source=tests/filter/filter.inc
. "$(dirname "$0")/filter.inc"

clip=(-f lavfi -i "testsrc=size=160x120:rate=25:duration=2")

# nowhere_line LOG: the one line of the refusal (empty when there is none
# or more than one).
nowhere_line() {
    local n
    n=$(grep -c 'could go nowhere' "$1")
    [ "$n" -eq 1 ] && grep 'could go nowhere' "$1"
}

# ---- as anyone: no database, and the spool directory cannot be created
# (its parent does not exist)
ff nowhere "${clip[@]}" -vf "meter=job=nw:output=o:codec=h264:db=$TMP/absent/meter.db" \
    "${X264[@]}" "$TMP/nw.mp4"
check "no database, no spool possible: ffmpeg fails" [ "$FF_RC" -ne 0 ]
line=$(nowhere_line "$TMP/nowhere.log")
check "…with one error line naming the database, the spool directory and the cause" \
    grep -qF "cannot open a metering session: the usage could go nowhere: no database at '$TMP/absent/meter.db', and cannot create spool directory '$TMP/absent/meter.db.spool': No such file or directory" <<<"$line"
check "…and leaves nothing behind" test ! -e "$TMP/absent"

# ---- as service users
root_cases() {
    local why=$1
    for c in "database not writable, no spool: refused" "…with a spool directory: spooled, imported" \
             "no database at the default path: refused" "farm set-up: service users and root share the database"; do
        ok "$c # SKIP $why"
    done
}
if [ "$(id -u)" -ne 0 ]; then
    root_cases "needs root to run ffmpeg as service users (CI runs as root)"
    finish
fi
if ! command -v setpriv >/dev/null 2>&1; then
    root_cases "setpriv (util-linux) is missing"
    finish
fi

# Free numeric ids: the group ffmeter and its members.
free_id() {   # START: the first id from START with no user and no group
    local id=$1
    while getent passwd "$id" >/dev/null || getent group "$id" >/dev/null; do id=$((id + 1)); done
    echo "$id"
}
G=$(free_id 64100)
SVC1=$(free_id $((G + 1)))
SVC2=$(free_id $((SVC1 + 1)))
ADMIN=$(free_id $((SVC2 + 1)))   # a non-root admin in the group
# as UID|root CMD...: CMD as that user, with the group ffmeter, under the
# umask $AS_UMASK (default 022)
as() {
    local who=$1 run=()
    shift
    [ "$who" = root ] || run=(setpriv --reuid="$who" --regid="$who" --groups="$G" --)
    # shellcheck disable=SC2016  # (expanded by that sh)
    "${run[@]}" sh -c 'umask "$0" && exec "$@"' "${AS_UMASK:-022}" "$@"
}

# The service users must reach the test directory and the binaries.
chmod 0711 "$TMP"
[ -n "${TESTS_TMP:-}" ] && chmod o+x "$TESTS_TMP"
mkdir -m 1777 "$TMP/out"
mkdir "$TMP/bin"
for b in "$FFMPEG" "$METERCTL"; do
    if ! as "$SVC1" test -x "$b"; then cp "$b" "$TMP/bin/" && chmod 0755 "$TMP/bin/$(basename "$b")"; fi
done
SVC_FFMPEG=$FFMPEG SVC_METERCTL=$METERCTL
[ -x "$TMP/bin/ffmpeg" ] && SVC_FFMPEG=$TMP/bin/ffmpeg
[ -x "$TMP/bin/meterctl" ] && SVC_METERCTL=$TMP/bin/meterctl
if ! as "$SVC1" test -x "$SVC_FFMPEG" || ! as "$SVC1" test -w "$TMP/out"; then
    root_cases "a service user cannot reach $TMP"
    finish
fi

ff_as() {   # UID NAME ARGS...: ffmpeg as that user; sets FF_RC
    local uid=$1 name=$2
    shift 2
    as "$uid" "$SVC_FFMPEG" -hide_banner -nostdin -y "$@" >"$TMP/$name.log" 2>&1
    FF_RC=$?
}
perms() { stat -c '%u %g %a' "$1" 2>/dev/null; }
# shellcheck disable=SC2317  # (called through check)
quiet() { "$@" >/dev/null; }

# ---- (a) the usual mistake: a database made by root, with root's modes
mkdir -m 0755 "$TMP/plain"
export METER_DB=$TMP/plain/meter.db
(umask 022 && "$METERCTL" init >/dev/null && "$METERCTL" pack add --type general --minutes 1000 >/dev/null)
ff_as "$SVC1" ro "${clip[@]}" -vf "meter=job=ro:output=o:codec=h264" "${X264[@]}" "$TMP/out/ro.mp4"
check "database not writable, no spool: ffmpeg fails" [ "$FF_RC" -ne 0 ]
line=$(nowhere_line "$TMP/ro.log")
check "…one error line naming the database" grep -qF "'$TMP/plain/meter.db'" <<<"$line"
check "…and the spool directory, and why" \
    grep -qF "cannot create spool directory '$TMP/plain/meter.db.spool': Permission denied" <<<"$line"
billed ro
is "…nothing billed (and nothing transcoded unmetered)" "$ROWS" 0

# the same, with a spool directory the service user may write: spooled
mkdir -m 1777 "$TMP/plain-spool"
ff_as "$SVC1" rospool "${clip[@]}" -vf "meter=job=rospool:output=o:codec=h264:spool=$TMP/plain-spool" \
    "${X264[@]}" "$TMP/out/rospool.mp4"
is "…with a writable spool directory: the transcode runs" "$FF_RC" 0
check "…and says the usage goes to the spool" grep -q 'usage goes to the spool' "$TMP/rospool.log"
"$METERCTL" import-spool "$TMP/plain-spool" >/dev/null
meter_vs_probe "…root imports the spool: billed in full" rospool o "$TMP/out/rospool.mp4"

# no database at the default path (/var/lib/ffmeter/meter.db), as a service
# user (so nothing is created under /var/lib even when it is writable by root)
if [ -e /var/lib/ffmeter/meter.db ]; then
    ok "no database at the default path: refused # SKIP this machine has /var/lib/ffmeter/meter.db"
elif as "$SVC1" sh -c 'mkdir /var/lib/ffmeter/meter.db.spool 2>/dev/null && rmdir /var/lib/ffmeter/meter.db.spool'; then
    ok "no database at the default path: refused # SKIP a service user may write /var/lib/ffmeter"
else
    as "$SVC1" env -u METER_DB -u METER_SPOOL \
        "$SVC_FFMPEG" -hide_banner -nostdin -y "${clip[@]}" -vf "meter=job=dflt:output=o:codec=h264" \
        "${X264[@]}" "$TMP/out/dflt.mp4" >"$TMP/dflt.log" 2>&1
    FF_RC=$?
    line=$(nowhere_line "$TMP/dflt.log")
    if [ "$FF_RC" -ne 0 ] && grep -qF "no database at '/var/lib/ffmeter/meter.db', and cannot create spool directory '/var/lib/ffmeter/meter.db.spool'" <<<"$line"; then
        ok "no database at the default path: refused, naming it and its spool directory"
    else
        not_ok "no database at the default path: refused, naming it and its spool directory" \
            "$(ff_diag dflt)"
    fi
fi

# ---- (b) the farm set-up of doc/farm-setup.md
F=$TMP/farm
install -d -o root -g "$G" -m 2770 "$F"
export METER_DB=$F/meter.db
(umask 022 && "$METERCTL" init --node farm >/dev/null)
chmod 0660 "$F/meter.db"
install -d -o root -g "$G" -m 2770 "$F/meter.db.spool"
"$METERCTL" pack add --type general --minutes 100000 --id farm-pack >/dev/null
is "set-up: the database is root:ffmeter 0660 (group from the setgid directory)" "$(perms "$F/meter.db")" "0 $G 660"

# a service user's ffmpeg, with a strict umask, bills
AS_UMASK=077 ff_as "$SVC1" svc1 "${clip[@]}" -vf "meter=job=farm1:output=o:codec=h264" "${X264[@]}" "$TMP/out/farm1.mp4"
is "service user 1 (umask 077): ffmpeg succeeds" "$FF_RC" 0
check "…without spooling" sh -c "! grep -q 'spool' '$TMP/svc1.log'"
meter_vs_probe "…root's meterctl sees the usage, billed in full" farm1 o "$TMP/out/farm1.mp4"

# hold: a long ffmpeg (-re) keeps its connection open, so -wal/-shm stay.
# Nothing else has the database open meanwhile (the wait looks for the
# -wal file without opening the database), so the holder made them.
hold() {   # UID|root JOB: starts it in the background (FF_PID)
    local who=$1 job=$2
    AS_UMASK=077 as "$who" "$SVC_FFMPEG" -hide_banner -nostdin -y -re \
        -f lavfi -i "testsrc=size=160x120:rate=25:duration=120" \
        -vf "meter=job=$job:output=o:codec=h264" "${X264[@]}" "$TMP/out/$job.mp4" \
        >"$TMP/$job.log" 2>&1 &
    FF_PID=$!
    local _
    for _ in $(seq 1 300); do   # (bounded: 30 s at most, then the checks fail)
        [ -e "$F/meter.db-wal" ] && [ -e "$F/meter.db-shm" ] && break
        sleep 0.1
    done
}
unhold() {   # stops the holder as a user would (SIGINT: the output ends normally)
    kill -INT "$FF_PID" 2>/dev/null
    wait "$FF_PID" 2>/dev/null
    FF_PID=
}

hold "$SVC1" hold1
is "while service user 1 holds it: -wal is svc1:ffmeter 0660 (the database's mode, not the umask)" \
    "$(perms "$F/meter.db-wal")" "$SVC1 $G 660"
is "…-shm too" "$(perms "$F/meter.db-shm")" "$SVC1 $G 660"
check "root's meterctl writes meanwhile (pack add)" \
    quiet "$METERCTL" pack add --type general --minutes 10 --id root-pack
AS_UMASK=077 ff_as "$SVC2" svc2 "${clip[@]}" -vf "meter=job=farm2:output=o:codec=h264" "${X264[@]}" "$TMP/out/farm2.mp4"
is "service user 2 writes after them: ffmpeg succeeds" "$FF_RC" 0
meter_vs_probe "…billed in full" farm2 o "$TMP/out/farm2.mp4"
unhold
billed hold1
check "the held job is billed when it ends ($ROWS record, ${BILLED_US:-0} µs)" \
    test "$ROWS" -eq 1 -a "${BILLED_US:-0}" -gt 0

hold root hold2
is "while root holds it: -wal is root:ffmeter 0660 (SQLite gives root's files the database's owner)" \
    "$(perms "$F/meter.db-wal")" "0 $G 660"
is "…-shm too" "$(perms "$F/meter.db-shm")" "0 $G 660"
AS_UMASK=077 ff_as "$SVC1" svc1b "${clip[@]}" -vf "meter=job=farm3:output=o:codec=h264" "${X264[@]}" "$TMP/out/farm3.mp4"
is "a service user writes after root: ffmpeg succeeds" "$FF_RC" 0
meter_vs_probe "…billed in full" farm3 o "$TMP/out/farm3.mp4"
unhold

# a non-root admin in the group uses meterctl too
as "$ADMIN" "$SVC_METERCTL" --format json jobs >"$TMP/admin.json" 2>"$TMP/admin.err"
is "an admin in the group (not root) reads with meterctl" \
    "$(python3 -c 'import json,sys; print(sorted({r["job"] for r in json.load(open(sys.argv[1]))}))' "$TMP/admin.json" 2>&1)" \
    "['farm1', 'farm2', 'farm3', 'hold1', 'hold2']"
check "…and writes (config set)" quiet as "$ADMIN" "$SVC_METERCTL" config set node farm-a
is "the spool directory was never needed" "$(find "$F/meter.db.spool" -type f | wc -l)" 0
check "verify: every invariant holds" quiet "$METERCTL" verify
finish
