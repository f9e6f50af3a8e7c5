#!/usr/bin/env bash
# Resource packs through meterctl: add (given and generated ids), show, list
# and its filters, every status, freeze/unfreeze, and the refund rule (day
# 5 yes, day 6 no, used no), with the clock set by METER_NOW.
# shellcheck source=tests/cli/tap.inc
. "$(dirname "$0")/tap.inc"

mkdir "$TMP/d"
export METER_DB=$TMP/d/meter.db
export METER_NOW=2026-03-01T12:00:00Z
succeeds "init" init

# field ID EXPR: a field of `pack show ID` in JSON.
field() {
    mc --format json pack show "$1"
    jq_py "$2"
}

# --- add with a generated id
succeeds "pack add without --id" --format json pack add --type tsc --minutes 50
gen=$(jq_py 'd["id"]')
check "generated id looks like pk-YYYYMMDD-xxxxxxxx, dated today ($gen)" \
    grep -qE '^pk-20260301-[0-9A-Za-z]{8}$' <<<"$gen"
is "generated pack: type" "$(jq_py 'd["type"]')" tsc
is "generated pack: total in µs" "$(jq_py 'd["total_us"]')" $((50 * MIN_US))
is "generated pack: total for display" "$(jq_py 'd["total_min"]')" 50.000
is "generated pack: remaining = total" "$(jq_py 'd["remaining_us"]')" $((50 * MIN_US))
is "generated pack: starts now" "$(jq_py 'd["start"]')" 2026-03-01T12:00:00Z
is "generated pack: ends a year later" "$(jq_py 'd["end"]')" 2027-03-01T12:00:00Z
is "generated pack: valid" "$(jq_py 'd["status"]')" valid
is "generated pack: not frozen, not refunded, unused" \
    "$(jq_py '[d["frozen"], d["refunded_at"], d["deductions"]]')" "[false, null, 0]"
succeeds "a second generated pack" --format json pack add --type tsc --minutes 50
gen2=$(jq_py 'd["id"]')
check "generated ids differ" [ "$gen" != "$gen2" ]

# --- add with an id and a start; the pack as show prints it
succeeds "pack add --id --start" pack add --type general --minutes 100 --id G-old --start 2025-06-01T00:00:00Z
check "add prints the pack (table)" grep -qE '^Pack ID: +G-old$' <<<"$OUT"
is "show: start as given" "$(field G-old 'd["start"]')" 2025-06-01T00:00:00Z
is "show: end one year on" "$(field G-old 'd["end"]')" 2026-06-01T00:00:00Z
succeeds "a start with an offset" pack add --type general --minutes 7 --id G-tz --start 2026-02-01T08:00:00+08:00
is "offset start stored as the same instant" "$(field G-tz 'd["start"]')" 2026-02-01T00:00:00Z
succeeds "a bare date start" pack add --type general --minutes 1 --id G-date --start 2026-01-15
is "bare date is midnight UTC" "$(field G-date 'd["start"]')" 2026-01-15T00:00:00Z

# --- statuses
succeeds "a pack starting next month" pack add --type general --minutes 5 --id G-future --start 2026-04-01T00:00:00Z
is "future start: pending" "$(field G-future 'd["status"]')" pending
succeeds "a pack bought two years ago" pack add --type general --minutes 5 --id G-expired --start 2024-01-01T00:00:00Z
is "past its end: expired" "$(field G-expired 'd["status"]')" expired
succeeds "a 1-minute pack" pack add --type general --minutes 1 --id G-small --start 2025-05-01T00:00:00Z
# G-small ends first of the valid general packs, so it pays first
succeeds "usage of 30 s at H.264 SD" record --job j1 --output sd --class general --codec h264 --width 640 --height 360 --duration-ms 30000
succeeds "usage of another 30 s" record --job j1 --output sd2 --class general --codec h264 --width 640 --height 360 --duration-ms 30000
is "used up: exhausted" "$(field G-small '[d["status"], d["remaining_us"], d["deductions"]]')" '["exhausted", 0, 2]'
is "the other packs untouched" "$(field G-old 'd["remaining_us"]')" $((100 * MIN_US))

# --- list and its filters
mc --format json pack list
is "list: every pack" "$(jq_py 'len(d)')" 8
is "list: deduction order (end, start, id)" "$(jq_py '[p["id"] for p in d if p["type"] == "general"]')" \
    '["G-expired", "G-small", "G-old", "G-date", "G-tz", "G-future"]'
mc --format json pack list --type tsc
is "list --type tsc" "$(jq_py 'sorted(p["id"] for p in d)')" "$(python3 -c 'import sys; print(__import__("json").dumps(sorted(sys.argv[1:])))' "$gen" "$gen2")"
mc --format json pack list --id G-
is "list --id substring" "$(jq_py 'len(d)')" 6
mc --format json pack list --id -o
is "list --id matches inside the id" "$(jq_py '[p["id"] for p in d]')" '["G-old"]'
mc --format json pack list --status pending
is "list --status pending" "$(jq_py '[p["id"] for p in d]')" '["G-future"]'
mc --format json pack list --status exhausted --type general
is "list --status exhausted --type general" "$(jq_py '[p["id"] for p in d]')" '["G-small"]'
mc --format json pack list --id nothing-like-this
is "list with no match: empty array" "$OUT" "[]"

# --- freeze and unfreeze
succeeds "freeze" pack freeze G-old
check "freeze prints the frozen pack" grep -qE '^Status: +frozen$' <<<"$OUT"
is "frozen: status and flag" "$(field G-old '[d["status"], d["frozen"]]')" '["frozen", true]'
fails "freeze twice refused" 4 "already frozen" pack freeze G-old
succeeds "usage while G-old is frozen" --format json record --job j2 --output a --class general --codec h264 --width 1280 --height 720 --duration-ms 60000
is "frozen pack skipped: the next pack paid" "$(field G-date 'd["remaining_us"]')" 0
is "frozen pack untouched" "$(field G-old 'd["remaining_us"]')" $((100 * MIN_US))
succeeds "unfreeze" pack unfreeze G-old
is "unfrozen: valid again" "$(field G-old '[d["status"], d["frozen"]]')" '["valid", false]'
fails "unfreeze twice refused" 4 "not frozen" pack unfreeze G-old
fails "freeze of an unknown pack" 3 "'nope'" pack freeze nope

# --- refunds, in a database of their own
mkdir "$TMP/r"
export METER_DB=$TMP/r/meter.db
succeeds "refund db: init" init
for id in R5 R6 Redge Rlate Rused; do
    mc pack add --type tsc --minutes 10 --id "$id" --start 2026-01-01T10:00:00Z
done
check "refund db: five packs" [ "$RC" -eq 0 ]

METER_NOW=2026-01-05T23:59:59Z
succeeds "refund on day 5" --format json pack refund R5
is "refunded: status and time" "$(jq_py '[d["status"], d["refunded_at"]]')" '["refunded", "2026-01-05T23:59:59Z"]'
fails "refund twice refused" 4 "refund" pack refund R5
fails "freeze of a refunded pack refused" 4 "refund" pack freeze R5

METER_NOW=2026-01-06T23:00:00Z
fails "refund on day 6 refused, with the reason" 4 "5 days|five days|window" pack refund R6
is "refused refund changes nothing" "$(field R6 '[d["status"], d["refunded_at"]]')" '["valid", null]'

METER_NOW=2026-01-06T10:00:00Z
succeeds "refund at exactly start + 5 days" pack refund Redge
METER_NOW=2026-01-06T10:00:00.001Z
fails "refund 1 ms after start + 5 days refused" 4 "5 days|five days|window" pack refund Rlate

METER_NOW=2026-01-02T00:00:00Z
succeeds "a TSC usage on day 2" --format json record --job j3 --output o --class tsc --codec h264 --width 640 --height 480 --duration-ms 1000
covered=$(jq_py 'd["covered_us"]')
check "the usage was covered by a pack ($covered µs)" [ "${covered:-0}" -gt 0 ]
used=$(mc --format json pack list --type tsc; jq_py '[p["id"] for p in d if p["deductions"] > 0]')
# same end and start: by id, and R5 is refunded
is "it was deducted from R6, the first unrefunded pack by id" "$used" '["R6"]'
fails "refund of a used pack refused, with the reason" 4 "used" pack refund R6
succeeds "refund of an unused pack the same day" pack refund Rused
export METER_NOW=2026-03-01T12:00:00Z

succeeds "verify after all of it" verify
finish
