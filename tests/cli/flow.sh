#!/usr/bin/env bash
# End to end through meterctl: three general packs with different starts
# and a TSC pack, usage that splits across packs and runs into overage,
# then the usage details, the pack balances and the raw records read back
# in JSON, CSV and table form.
# shellcheck source=tests/cli/tap.inc
. "$(dirname "$0")/tap.inc"

mkdir "$TMP/d"
export METER_DB=$TMP/d/meter.db
export METER_NOW=2026-03-05T00:00:00Z

succeeds "init --node" --format json init --node flow-node
is "init reports the new database" "$(jq_py '[d["path"], d["created"], d["node"]]')" \
    "[\"$METER_DB\", true, \"flow-node\"]"
succeeds "init again is harmless" --format json init
is "init again: not created, node kept" "$(jq_py '[d["created"], d["node"]]')" '[false, "flow-node"]'

# Added out of order: deduction follows the end time, not the insertion.
succeeds "pack C (starts 2026-01-01)" pack add --type general --minutes 100 --id C --start 2026-01-01T00:00:00Z
succeeds "pack A (starts 2025-06-01)" pack add --type general --minutes 10 --id A --start 2025-06-01T00:00:00Z
succeeds "pack B (starts 2025-09-01)" pack add --type general --minutes 20 --id B --start 2025-09-01T00:00:00Z
succeeds "pack T (TSC)" pack add --type tsc --minutes 30 --id T --start 2026-02-01T00:00:00Z

# rec NAME EXPECT ARGS...: records, checks [ttype, billed, covered, overage]
# (minutes) and that the JSON result is one object.
rec() {
    local name=$1 want=$2
    shift 2
    succeeds "$name" --format json record "$@"
    is "$name: type and billed/covered/overage minutes" \
        "$(jq_py '[d["ttype"], d["billed_us"] / 60000000, d["covered_us"] / 60000000, d["overage_us"] / 60000000]')" \
        "$want"
}
rec "12 min of 1280x720 H.264 (x2): A pays 10, B 14" '["Standard.H264.HD", 24.0, 24.0, 0.0]' \
    --job J1 --output 720p --class general --codec h264 --width 1280 --height 720 --duration-ms 720000 --at 2026-03-01T09:00:00Z
id1=$(jq_py 'd["id"]')
rec "1 min of 1920x1080 HEVC (x20): B pays 6, C 14" '["Standard.H265.FHD", 20.0, 20.0, 0.0]' \
    --job J1 --output 1080p --class general --codec hevc --width 1920 --height 1080 --duration-ms 60000 --at 2026-03-01T10:00:00Z
rec "4 min of AAC (x0.25): C pays 1" '["Audio", 1.0, 1.0, 0.0]' \
    --job J2 --output audio --class general --codec aac --duration-ms 240000 --at 2026-03-02T08:00:00Z
rec "2 min of TSC H.264 SD: T pays 2" '["TESHD-10.H264.SD", 2.0, 2.0, 0.0]' \
    --job J2 --output sd --class tsc --codec libx264 --width 640 --height 480 --duration-ms 120000 --at 2026-03-02T09:00:00Z
rec "1 min of 4K AV1 (x160): C pays 85, 75 overage" '["Standard.AV1.4K", 160.0, 85.0, 75.0]' \
    --job J3 --output 4k --class general --codec av1 --width 3840 --height 2160 --duration-ms 60000 --at 2026-03-03T00:00:00Z
rec "1 min of 8K H.264: no ratio, all overage" '["Standard.H264.8K", 1.0, 0.0, 1.0]' \
    --job J3 --output 8k --class general --codec h264 --width 7680 --height 4320 --duration-ms 60000 --at 2026-03-03T00:30:00Z

# --- balances
mc --format json pack list
check "pack list is a JSON array" [ "$(jq_py 'type(d).__name__')" = list ]
is "pack list: deduction order" "$(jq_py '[p["id"] for p in d]')" '["A", "B", "C", "T"]'
is "pack list: remaining (µs)" "$(jq_py '[p["remaining_us"] for p in d]')" "[0, 0, 0, $((28 * MIN_US))]"
is "pack list: remaining (display)" "$(jq_py '[p["remaining_min"] for p in d]')" '["0.000", "0.000", "0.000", "28.000"]'
is "pack list: statuses" "$(jq_py '[p["status"] for p in d]')" '["exhausted", "exhausted", "exhausted", "valid"]'
is "pack list: deductions per pack" "$(jq_py '[p["deductions"] for p in d]')" '[1, 2, 3, 1]'

# --- usage details: one row per day x pack x type
mc --format json usage
rows=$(jq_py 'sorted([r["day"], r["pack_id"] or "-", r["type"], r["ttype"], r["used_us"] // 60000000,
                      None if r["before_us"] is None else r["before_us"] // 60000000,
                      None if r["after_us"] is None else r["after_us"] // 60000000] for r in d)')
want='[["2026-03-01", "A", "general", "Standard.H264.HD", 10, 10, 0], ["2026-03-01", "B", "general", "Standard.H264.HD", 14, 20, 6], ["2026-03-01", "B", "general", "Standard.H265.FHD", 6, 6, 0], ["2026-03-01", "C", "general", "Standard.H265.FHD", 14, 100, 86], ["2026-03-02", "C", "general", "Audio", 1, 86, 85], ["2026-03-02", "T", "tsc", "TESHD-10.H264.SD", 2, 30, 28], ["2026-03-03", "-", "general", "Standard.AV1.4K", 75, null, null], ["2026-03-03", "-", "general", "Standard.H264.8K", 1, null, null], ["2026-03-03", "C", "general", "Standard.AV1.4K", 85, 85, 0]]'
is "usage: every day x pack x type row, with before and after" "$rows" "$want"
is "usage: exact amounts are whole µs, display has 3 decimals" \
    "$(jq_py 'all(isinstance(r["used_us"], int) and len(r["used_min"].split(".")[1]) == 3 for r in d)')" true
total_used=$(jq_py 'sum(r["used_us"] for r in d)')

mc --format json usage --pack B
is "usage --pack B" "$(jq_py 'sorted([r["ttype"], r["used_us"] // 60000000] for r in d)')" \
    '[["Standard.H264.HD", 14], ["Standard.H265.FHD", 6]]'
mc --format json usage --pack -
is "usage --pack - (overage rows)" "$(jq_py 'sorted([r["ttype"], r["used_us"] // 60000000, r["pack_id"]] for r in d)')" \
    '[["Standard.AV1.4K", 75, null], ["Standard.H264.8K", 1, null]]'
mc --format json usage --type tsc
is "usage --type tsc" "$(jq_py '[[r["pack_id"], r["ttype"]] for r in d]')" '[["T", "TESHD-10.H264.SD"]]'
mc --format json usage --ttype Standard.H265.FHD
is "usage --ttype" "$(jq_py 'sorted(r["pack_id"] for r in d)')" '["B", "C"]'
mc --format json usage --from 2026-03-02 --to 2026-03-03
is "usage --from --to (one day)" "$(jq_py 'sorted(set(r["day"] for r in d))')" '["2026-03-02"]'
mc --format json usage --from 2026-03-02T08:30:00+00:00
is "usage --from a time of day" "$(jq_py 'sorted(set(r["ttype"] for r in d))')" \
    '["Standard.AV1.4K", "Standard.H264.8K", "TESHD-10.H264.SD"]'

# --- raw records
mc --format json jobs --job J1
is "jobs --job J1: its two outputs" "$(jq_py '[r["output"] for r in d]')" '["720p", "1080p"]'
keys='["billed_us", "class", "codec", "covered_us", "duration_us", "height", "id", "job", "node", "output", "overage_us", "recorded_at", "settled", "started_at", "state", "ttype", "width"]'
is "jobs JSON has every field other tools read" "$(jq_py "sorted(k for k in d[0] if k in $keys)")" "$keys"
is "jobs: the first record in full" \
    "$(jq_py '[d[0][k] for k in ("id", "job", "output", "node", "class", "ttype", "codec", "width", "height", "duration_us", "billed_us", "covered_us", "overage_us", "recorded_at", "state", "settled")]')" \
    "[\"$id1\", \"J1\", \"720p\", \"flow-node\", \"general\", \"Standard.H264.HD\", \"H264\", 1280, 720, 720000000, 1440000000, 1440000000, 0, \"2026-03-01T09:00:00Z\", \"manual\", true]"
check "jobs: started_at is an ISO time" grep -qE '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T' <<<"$(jq_py 'd[0]["started_at"]')"
mc --format json jobs --job J3
is "jobs: overage recorded on the record" "$(jq_py '[[r["output"], r["covered_us"], r["overage_us"]] for r in d]')" \
    "[[\"4k\", $((85 * MIN_US)), $((75 * MIN_US))], [\"8k\", 0, $MIN_US]]"
mc --format json jobs --type tsc
is "jobs --type tsc" "$(jq_py '[[r["job"], r["ttype"]] for r in d]')" '[["J2", "TESHD-10.H264.SD"]]'
mc --format json jobs --from 2026-03-02 --to 2026-03-03
is "jobs --from --to" "$(jq_py '[r["output"] for r in d]')" '["audio", "sd"]'
mc --format json jobs --job nobody
is "jobs for an unknown job: empty array" "$OUT" "[]"
mc --format json jobs
is "every minute billed is in the usage details (deducted or overage)" "$(jq_py 'sum(r["billed_us"] for r in d)')" "$total_used"
is "covered + overage = billed on every record" "$(jq_py 'all(r["covered_us"] + r["overage_us"] == r["billed_us"] for r in d)')" true
mc --format json jobs --sessions
is "jobs --sessions: each record by hand is a session of status manual" \
    "$(jq_py 'sorted([s["job"], s["output"], s["status"]] for s in d)')" \
    "$(mc --format json jobs; jq_py 'sorted([r["job"], r["output"], "manual"] for r in d)')"

# --- the same data as CSV and as a table
# same_as_json CMD...: CSV rows carry exactly the JSON values.
same_as_json() {
    local name=$1
    shift
    mc --format json "$@"
    printf '%s' "$OUT" >"$TMP/.json"
    mc --format csv "$@"
    printf '%s\n' "$OUT" >"$TMP/.csv"
    if python3 - "$TMP/.json" "$TMP/.csv" <<'PY'
import csv, json, sys
rows = json.load(open(sys.argv[1]))
recs = list(csv.DictReader(open(sys.argv[2], newline="")))
def text(v):
    if v is None: return ""
    if isinstance(v, bool): return "true" if v else "false"
    return str(v)
assert len(rows) == len(recs), (len(rows), len(recs))
for j, c in zip(rows, recs):
    assert list(j.keys()) == list(c.keys()), (list(j.keys()), list(c.keys()))
    for k in j:
        assert text(j[k]) == c[k], (k, j[k], c[k])
PY
    then ok "$name: CSV parses and equals JSON"; else not_ok "$name: CSV parses and equals JSON"; fi
}
same_as_json "pack list" pack list
same_as_json "usage" usage
same_as_json "jobs" jobs
same_as_json "rates" rates

# A job name that needs quoting in CSV.
succeeds "a job id with a comma and quotes" record --job 'J5, "quoted"' --output o --class general --codec copy --duration-ms 60000 --at 2026-03-03T02:00:00Z
same_as_json "jobs with a quoted field" jobs --job 'J5, "quoted"'

mc pack list
printf '%s\n' "$OUT" >"$TMP/.table"
mc --format json pack list
printf '%s' "$OUT" >"$TMP/.json"
if python3 - "$TMP/.table" "$TMP/.json" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().rstrip("\n").split("\n")
packs = json.load(open(sys.argv[2]))
head = lines[0]
titles = ["Pack ID", "Status", "Type", "Total minutes", "Remaining minutes", "Start time", "End time"]
starts = [head.index(t) for t in titles]
assert starts == sorted(starts), starts
assert len(lines) == len(packs) + 1
keys = ["id", "status", "type", "total_min", "remaining_min", "start", "end"]
for line, p in zip(lines[1:], packs):
    assert not line.endswith(" "), "trailing blank"
    for i, (t, s, k) in enumerate(zip(titles, starts, keys)):
        if k.endswith("_min"):
            # right-aligned: the value ends where the title ends
            end = s + len(t)
            assert line[end - len(p[k]):end] == p[k], (t, line)
            assert end == len(line) or line[end] == " ", (t, line)
        else:
            # left-aligned: the value starts where the title starts
            assert line[s:s + len(p[k])] == p[k], (t, line)
            assert s == 0 or line[s - 1] == " ", (t, line)
PY
then ok "pack list table: aligned columns carrying the JSON values"; else not_ok "pack list table: aligned columns carrying the JSON values" "$(cat "$TMP/.table")"; fi

mc usage --pack -
check "usage table shows overage rows with pack -" grep -qE '^2026-03-03 +default +- +general +Standard.AV1.4K +75.000 +- +-$' <<<"$OUT"
mc pack show T
check "pack show table: one 'Title: value' line per field" grep -qE '^Remaining minutes: +28.000$' <<<"$OUT"
mc --format csv pack show T
is "pack show CSV: header and one row" "$(wc -l <<<"$OUT")" 2

succeeds "verify: the ledger holds" verify
is "verify (table) says so" "$OUT" "verify: 0 violations"
succeeds "verify --format json" --format json verify
is "verify JSON: no problems" "$OUT" "[]"

finish
