#!/usr/bin/env bash
# meterctl --help: every command and subcommand explains itself (exit 0,
# usage on stdout, nothing on stderr), the top-level help lists exactly the
# commands that exist, and the man page covers each of them.
# shellcheck source=tests/cli/tap.inc
. "$(dirname "$0")/tap.inc"

# Every command meterctl has; the top-level help must list exactly these.
commands=(
    "init" "pack add" "pack list" "pack show" "pack freeze" "pack unfreeze"
    "pack refund" "record" "usage" "jobs" "settle" "verify" "rates"
    "rates set" "rates unset" "config get" "config set" "reap" "import-spool" "lease list"
    "sync" "sync status" "sync quarantine" "sync release"
)

for cmd in "${commands[@]}"; do
    # shellcheck disable=SC2086  # the command is two words on purpose
    mc $cmd --help
    if [ "$RC" -eq 0 ] && [ ! -s "$TMP/.err" ] && grep -q "^Usage: meterctl .*$cmd" "$TMP/.out"; then
        ok "$cmd --help"
    else
        not_ok "$cmd --help" "$(mc_diag)"
    fi
    # --help works among other options and with the db missing
    # shellcheck disable=SC2086
    mc --db "$TMP/none/meter.db" $cmd --help
    check "$cmd --help needs no database" [ "$RC" -eq 0 ]
    # shellcheck disable=SC2086
    mc help $cmd
    if [ "$RC" -eq 0 ] && grep -q "^Usage: meterctl .*$cmd" "$TMP/.out"; then
        ok "help $cmd"
    else
        not_ok "help $cmd" "$(mc_diag)"
    fi
done

for group in pack config; do
    mc "$group" --help
    if [ "$RC" -eq 0 ] && grep -q "^  $group " "$TMP/.out"; then
        ok "$group --help lists its subcommands"
    else
        not_ok "$group --help lists its subcommands" "$(mc_diag)"
    fi
done

succeeds "--help" --help
listed=$(sed -n '/^Commands:/,/^$/p' <<<"$OUT" | sed -n 's/^  \([a-z-]*\( [a-z]*\)\{0,1\}\)  .*/\1/p' |
         sed 's/ *$//')
want=$(printf '%s\n' "${commands[@]}")
is "--help lists every command, and only those" "$listed" "$want"
check "--help documents the exit codes" grep -q "Exit codes" <<<"$OUT"

succeeds "-h" -h
succeeds "--version" --version
check "--version names meterctl and its version" grep -qE '^meterctl [0-9]+\.[0-9]+\.[0-9]+' <<<"$OUT"
succeeds "help" help

fails "no command" 2 "missing command"
fails "help for an unknown command" 2 "unknown command 'bogus'" help bogus

# The man page covers every command, the environment and the exit codes.
man=$SRCDIR/doc/meterctl.1
if [ -f "$man" ]; then
    ok "doc/meterctl.1 exists"
    for cmd in "${commands[@]}"; do
        re=${cmd// /\\s+}          # words apart by blanks
        re=${re//-/\\\\?-}        # troff writes - as \-
        check "man page has a section for $cmd" \
            grep -qE "^\.SS (.*, )?$re( |\\\\|$)" "$man"
    done
    for word in METER_DB METER_NOW METER_JOB METER_SPOOL "EXIT STATUS" FILES; do
        check "man page documents $word" grep -q "$word" "$man"
    done
    if command -v groff >/dev/null 2>&1; then
        warnings=$(groff -man -ww -z "$man" 2>&1)
        is "man page formats without warnings" "$warnings" ""
    fi
else
    not_ok "doc/meterctl.1 exists"
fi

finish
