#!/usr/bin/env bash
# Databases meterctl must refuse: a missing directory or file, a read-only
# file, a foreign SQLite file, a text file, a corrupt file, a database from
# a newer ffmeter.  Each command gives one clear line on stderr and the right
# exit status, and the file (and its directory) is byte for byte unchanged.
# shellcheck source=tests/cli/tap.inc
. "$(dirname "$0")/tap.inc"

export METER_NOW=2026-03-01T12:00:00Z

# A command of each kind: queries, writes, and init (which must not
# "repair" a file that is not ours).
cmds=(
    "pack list"
    "pack add --type general --minutes 5"
    "record --job j --output o --class general --codec h264 --width 640 --height 480 --duration-ms 1000"
    "usage"
    "jobs"
    "verify"
    "rates"
    "config get rounding"
    "init"
)

# refuses_all LABEL DB CODE PATTERN: every command refused, DB untouched.
refuses_all() {
    local label=$1 db=$2 code=$3 pattern=$4 cmd
    snapshot "$db"
    for cmd in "${cmds[@]}"; do
        # shellcheck disable=SC2086  # the command is several words
        fails "$label: $cmd" "$code" "$pattern" --db "$db" $cmd
        unchanged "$label: $cmd leaves the file untouched" "$db"
    done
}

# A real, used ffmeter database to start from.
real_db() {
    local db=$1
    mkdir -p "$(dirname "$db")"
    "$METERCTL" --db "$db" init >/dev/null &&
    "$METERCTL" --db "$db" pack add --type general --minutes 10 --id P1 \
        --start 2026-02-01T00:00:00Z >/dev/null &&
    "$METERCTL" --db "$db" record --job j --output o --class general \
        --codec h264 --width 640 --height 480 --duration-ms 60000 >/dev/null
}

# --- missing directory, missing file
fails "missing directory: pack list" 3 "no ffmeter database.*nodir" --db "$TMP/nodir/meter.db" pack list
fails "missing directory: pack add" 3 "no ffmeter database" --db "$TMP/nodir/meter.db" pack add --type general --minutes 5
fails "missing directory: init names the directory" 2 "directory.*nodir.*does not exist" --db "$TMP/nodir/meter.db" init
check "missing directory: nothing created" [ ! -e "$TMP/nodir" ]

mkdir "$TMP/empty"
fails "missing file: pack list" 3 "no ffmeter database.*meter\.db.*init" --db "$TMP/empty/meter.db" pack list
fails "missing file: record" 3 "no ffmeter database" --db "$TMP/empty/meter.db" record --job j --output o --class general --codec aac --duration-ms 1000
mc --db "$TMP/empty/meter.db" config set rounding exact
check "missing file: config set refused" [ "$RC" -eq 3 ]
fails "init with a bad --node" 2 "node" --db "$TMP/empty/meter.db" init --node $'two\nlines'
is "missing file: no file created by any of them" "$(ls -A "$TMP/empty")" ""

METER_DB=$TMP/empty/meter.db
export METER_DB
fails "missing file via METER_DB" 3 "no ffmeter database.*empty/meter\.db" pack list
unset METER_DB

# --- a foreign SQLite database
mkdir "$TMP/foreign"
sqlite3 "$TMP/foreign/app.db" "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);
                               INSERT INTO customers(name) VALUES ('x');"
refuses_all "foreign SQLite file" "$TMP/foreign/app.db" 5 "not an ffmeter database"

# an SQLite file with a table called packs is still not ours
mkdir "$TMP/foreign2"
sqlite3 "$TMP/foreign2/packs.db" "CREATE TABLE packs(id TEXT); CREATE TABLE meta(key, value);"
refuses_all "foreign file with look-alike tables" "$TMP/foreign2/packs.db" 5 "not an ffmeter database"

# --- not SQLite at all
mkdir "$TMP/text"
printf 'this is a shopping list, not a database\n%.0s' {1..200} >"$TMP/text/meter.db"
refuses_all "text file" "$TMP/text/meter.db" 5 "not an ffmeter database|not a database|corrupt"

# --- corrupt: a real database whose first page (the schema) is overwritten
mkdir "$TMP/corrupt"
real_db "$TMP/corrupt/meter.db"
check "corrupt: a real database to damage" [ -s "$TMP/corrupt/meter.db" ]
# keep the 100-byte header so it still looks like SQLite; garble the rest
# of page 1 (the schema table's b-tree)
head -c 3996 /dev/urandom | dd of="$TMP/corrupt/meter.db" bs=1 seek=100 conv=notrunc status=none
refuses_all "corrupt file" "$TMP/corrupt/meter.db" 5 "corrupt|malformed|not an ffmeter"

# --- a truncated database: half of it is gone
mkdir "$TMP/trunc"
real_db "$TMP/trunc/meter.db"
size=$(wc -c <"$TMP/trunc/meter.db")
truncate -s $((size / 2 + 123)) "$TMP/trunc/meter.db"
refuses_all "truncated file" "$TMP/trunc/meter.db" 5 "corrupt|malformed|not an ffmeter"

# --- a database from a newer ffmeter
mkdir "$TMP/newer"
real_db "$TMP/newer/meter.db"
schema=$(sqlite3 "$TMP/newer/meter.db" "PRAGMA user_version;")
check "newer: the real database has a schema version ($schema)" [ "${schema:-0}" -ge 1 ]
sqlite3 "$TMP/newer/meter.db" "PRAGMA user_version = $((schema + 1000));"
refuses_all "newer schema" "$TMP/newer/meter.db" 5 "newer"

# --- a read-only database file
# Root ignores file modes, so the commands run as an unprivileged user.
mkdir "$TMP/ro"
real_db "$TMP/ro/meter.db"
chmod 0444 "$TMP/ro/meter.db"
as_user=()
if [ "$(id -u)" -ne 0 ]; then
    as_user=()
elif command -v setpriv >/dev/null 2>&1; then
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
    # nobody must reach the file: let others through our scratch
    # directories (mktemp makes them 0700); nothing above them is touched
    chmod o+x "$TMP"
    if [ -n "${TESTS_TMP:-}" ] && [ "${TMP#"$TESTS_TMP"/}" != "$TMP" ]; then
        chmod o+x "$TESTS_TMP"
    fi
fi
if [ "$(id -u)" -eq 0 ] && [ ${#as_user[@]} -eq 0 ]; then
    not_ok "read-only: cannot drop root privileges (setpriv missing)"
elif ! "${as_user[@]}" test -r "$TMP/ro/meter.db"; then
    not_ok "read-only: the unprivileged user cannot reach $TMP/ro"
else
    ok "read-only: running as $("${as_user[@]}" id -un)"
    # (a) the directory is writable, only the file is read-only
    chmod 0777 "$TMP/ro"
    cp -p "$TMP/ro/meter.db" "$TMP/.ro-before"
    for cmd in "pack add --type general --minutes 5" \
               "record --job j2 --output o --class general --codec h264 --width 640 --height 480 --duration-ms 1000" \
               "pack freeze P1" "config set rounding ceil-minute" "rates set --class general --ttype Standard.H264.8K --ratio 32"; do
        # shellcheck disable=SC2086
        "${as_user[@]}" "$METERCTL" --db "$TMP/ro/meter.db" $cmd >"$TMP/.out" 2>"$TMP/.err"
        RC=$?
        if [ "$RC" -eq 5 ] && [ "$(wc -l <"$TMP/.err")" -eq 1 ] && [ ! -s "$TMP/.out" ] &&
           grep -qiE '^meterctl: .*(read-only|readonly|permission|cannot open|unable to open)' "$TMP/.err"; then
            ok "read-only file: $cmd refused with exit 5"
        else
            not_ok "read-only file: $cmd refused with exit 5" "$(mc_diag)"
        fi
        if cmp -s "$TMP/ro/meter.db" "$TMP/.ro-before"; then
            ok "read-only file: $cmd leaves the file untouched"
        else
            not_ok "read-only file: $cmd leaves the file untouched"
        fi
    done
    # (b) neither the file nor its directory may be written
    rm -f "$TMP/ro/meter.db-wal" "$TMP/ro/meter.db-shm"
    chmod 0755 "$TMP/ro"
    snapshot "$TMP/ro/meter.db"
    "${as_user[@]}" "$METERCTL" --db "$TMP/ro/meter.db" pack add --type general --minutes 5 >"$TMP/.out" 2>"$TMP/.err"
    RC=$?
    if [ "$RC" -eq 5 ] && [ "$(wc -l <"$TMP/.err")" -eq 1 ] && grep -q '^meterctl: ' "$TMP/.err"; then
        ok "read-only file and directory: pack add refused with exit 5"
    else
        not_ok "read-only file and directory: pack add refused with exit 5" "$(mc_diag)"
    fi
    unchanged "read-only file and directory: untouched" "$TMP/ro/meter.db"
    chmod 0644 "$TMP/ro/meter.db"
    succeeds "the same file, writable again, is a healthy database" --db "$TMP/ro/meter.db" verify
fi

finish
