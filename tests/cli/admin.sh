#!/usr/bin/env bash
# meterctl's housekeeping: the rate table (show, set, unset, and what it does
# to billing), settings (rounding, node, day_offset), daily settlement, verify
# finding a tampered ledger, reap and import-spool.
# shellcheck source=tests/cli/tap.inc
. "$(dirname "$0")/tap.inc"

mkdir "$TMP/d"
export METER_DB=$TMP/d/meter.db
export METER_NOW=2026-03-01T12:00:00Z
succeeds "init" init --node admin-node
succeeds "a big general pack" pack add --type general --minutes 100000 --id G --start 2026-01-01T00:00:00Z

# billed ARGS...: the billed µs of one recorded usage, each under an output
# label of its own (a second record of one job and output bills nothing).
# It runs in $(...): the count lives in a file.
echo 0 >"$TMP/n_billed"
billed() {
    local n=$(($(cat "$TMP/n_billed") + 1))
    echo "$n" >"$TMP/n_billed"
    mc --format json record --job jb --output "o$n" --class general "$@"
    if [ "$RC" -ne 0 ]; then echo "failed: $ERR"; return; fi
    jq_py 'd["billed_us"]'
}

# --- the rate table
succeeds "rates" --format json rates
# row CLASS TTYPE: [ratio, num, den, deductible, overridden] of one row
row() { jq_py "[[r['ratio'], r['ratio_num'], r['ratio_den'], r['deductible'], r['overridden']] for r in d if r['class'] == '$1' and r['ttype'] == '$2']"; }
is "H.264 HD is 1:2" "$(row general Standard.H264.HD)" '[["1:2", 2, 1, true, false]]'
is "AV1 4K is 1:160" "$(row general Standard.AV1.4K)" '[["1:160", 160, 1, true, false]]'
is "TSC H.265 FHD is 1:20" "$(row tsc TESHD-10.H265.FHD)" '[["1:20", 20, 1, true, false]]'
is "audio is 0.25" "$(jq_py "[r['ratio'] for r in d if r['class'] == 'general' and r['ttype'] == 'Audio']")" '["0.25"]'
is "remux is 0.5" "$(jq_py "[r['ratio'] for r in d if r['class'] == 'general' and r['ttype'] == 'Remuxing']")" '["0.5"]'
is "8K has no ratio: none, not deductible" "$(row general Standard.H264.8K)" '[["none", null, null, false, false]]'
is "no row is an override yet" "$(jq_py 'any(r["overridden"] for r in d)')" false
mc rates
check "rates table marks built-in rows" grep -qE '^general +Standard\.H264\.HD +1:2 +built-in$' <<<"$OUT"
mc --format json rates --class tsc
is "rates --class tsc: only TSC rows" "$(jq_py 'sorted(set(r["class"] for r in d))')" '["tsc"]'

is "8K before an override: billed at ratio 1" "$(billed --codec h264 --width 7680 --height 4320 --duration-ms 60000)" "$MIN_US"
succeeds "rates set 8K to 32" --format json rates set --class general --ttype Standard.H264.8K --ratio 32
is "set prints the new row" "$(jq_py '[d["ratio"], d["overridden"], d["deductible"]]')" '["1:32", true, true]'
mc rates
check "rates table marks the override" grep -qE '^general +Standard\.H264\.8K +1:32 +override$' <<<"$OUT"
mc --format json record --job jb --output 8k-override --class general --codec h264 --width 7680 --height 4320 --duration-ms 60000
is "8K after the override: 32 minutes, deducted" "$(jq_py '[d["billed_us"], d["covered_us"]]')" "[$((32 * MIN_US)), $((32 * MIN_US))]"

fails "recording an unknown codec" 2 "codec.*'vp9'" record --job jb --output o --class general --codec vp9 --width 1280 --height 720 --duration-ms 60000
succeeds "rates set a new codec, ratio 1/3" --format json rates set --class general --ttype Standard.VP9.HD --ratio 1/3
is "a ratio without a finite decimal prints as a fraction" "$(jq_py '[d["ratio"], d["ratio_num"], d["ratio_den"]]')" '["1/3", 1, 3]'
is "the new codec is classified and billed: 3 min at 1/3" \
    "$(billed --codec vp9 --width 1280 --height 720 --duration-ms 180000)" "$MIN_US"
succeeds "rates set 0.125" --format json rates set --class general --ttype Standard.VP9.HD --ratio 0.125
is "an exact decimal ratio prints as one" "$(jq_py 'd["ratio"]')" 0.125
succeeds "rates set 2/4 (not reduced by the caller)" --format json rates set --class general --ttype Standard.VP9.HD --ratio 2/4
is "2/4 displays as 0.5" "$(jq_py 'd["ratio"]')" 0.5
succeeds "rates set none" --format json rates set --class general --ttype Standard.VP9.HD --ratio none
is "ratio none: not deductible" "$(jq_py '[d["ratio"], d["deductible"]]')" '["none", false]'

succeeds "rates unset 8K" --format json rates unset --class general --ttype Standard.H264.8K
is "unset: back to the built-in row" "$(jq_py '[d["ratio"], d["overridden"]]')" '["none", false]'
succeeds "rates unset the new codec" --format json rates unset --class general --ttype Standard.VP9.HD
is "unset of an added row: no rate at all" "$(jq_py '[d["ratio"], d["ratio_num"], d["overridden"]]')" '["none", null, false]'
fails "the codec is unknown again" 2 "codec.*'vp9'" record --job jb --output o --class general --codec vp9 --width 1280 --height 720 --duration-ms 60000
mc --format json rates
is "no overrides left" "$(jq_py 'any(r["overridden"] for r in d)')" false

# --- settings
succeeds "config get (all)" --format json config get
is "config get lists every setting" "$(jq_py '[s["key"] for s in d]')" '["node", "node_id", "rounding", "settlement", "day_offset", "account", "lease_accounts", "lease_policy", "lease_minutes"]'
is "defaults" "$(jq_py '[s["value"] for s in d if s["key"] in ("node", "rounding", "settlement", "day_offset")]')" \
    '["admin-node", "exact", "realtime", "+00:00"]'
succeeds "config get node (table: the bare value)" config get node
is "bare value" "$OUT" admin-node

is "exact rounding: 61 s of H.264 SD is 61 s" "$(billed --codec h264 --width 640 --height 480 --duration-ms 61000)" 61000000
succeeds "config set rounding ceil-minute" --format json config set rounding ceil-minute
is "config set prints the setting" "$(jq_py '[d["key"], d["value"]]')" '["rounding", "ceil-minute"]'
is "ceil-minute: 61 s bills 2 minutes" "$(billed --codec h264 --width 640 --height 480 --duration-ms 61000)" $((2 * MIN_US))
succeeds "config set rounding exact" config set rounding exact
mc --format json record --job jb --output 61001ms --class general --codec h264 --width 640 --height 480 --duration-ms 61001
is "display minutes are truncated to 3 decimals" "$(jq_py '[d["billed_us"], d["billed_min"]]')" '[61001000, "1.016"]'

succeeds "config set node" config set node renamed-node
succeeds "a usage after the rename" record --job jnode --output o --class general --codec aac --duration-ms 1000
mc --format json jobs --job jnode
is "new records carry the new node name" "$(jq_py '[r["node"] for r in d]')" '["renamed-node"]'

succeeds "config set day_offset +08:00" config set day_offset +08:00
# (usage cannot come from the future: "now" is after it for this record)
METER_NOW=2026-03-01T21:00:00Z succeeds "a usage at 20:00 UTC" record --job jday --output o --class general --codec h264 --width 640 --height 480 --duration-ms 60000 --at 2026-03-01T20:00:00Z
mc --format json usage --ttype Standard.H264.SD --from 2026-03-01T19:00:00Z
is "usage days follow day_offset (20:00 UTC is the next day at +08:00)" "$(jq_py '[r["day"] for r in d]')" '["2026-03-02"]'
succeeds "config set day_offset back" config set day_offset +00:00

# --- daily settlement
mkdir "$TMP/daily"
export METER_DB=$TMP/daily/meter.db
export METER_NOW=2026-03-02T12:00:00Z
succeeds "daily db: init" init
succeeds "daily db: settlement daily" config set settlement daily
succeeds "daily db: a 5-minute pack bought before the day" pack add --type general --minutes 5 --id D1 --start 2026-03-01T00:00:00Z
succeeds "daily: 10 min of usage on day D" --format json record --job jd --output o --class general --codec h264 --width 640 --height 480 --duration-ms 600000 --at 2026-03-02T10:00:00Z
is "daily: recorded but not deducted yet" "$(jq_py '[d["billed_us"], d["covered_us"], d["settled"]]')" "[$((10 * MIN_US)), 0, false]"
succeeds "settle on day D" --format json settle
is "settle on day D: the day is not over, nothing settled" "$(jq_py '[d["groups"], d["billed_us"]]')" '[0, 0]'
export METER_NOW=2026-03-03T12:00:00Z
succeeds "a 100-minute pack bought on day D+1" pack add --type general --minutes 100 --id D2 --start 2026-03-03T01:00:00Z
succeeds "settle on day D+1" --format json settle
is "settle: D1 pays 5, D2 (bought D+1) cannot pay day D: 5 overage" \
    "$(jq_py '[d["groups"], d["billed_us"], d["covered_us"], d["overage_us"]]')" \
    "[1, $((10 * MIN_US)), $((5 * MIN_US)), $((5 * MIN_US))]"
succeeds "settle again" --format json settle
is "settle is idempotent" "$(jq_py '[d["groups"], d["billed_us"]]')" '[0, 0]'
mc --format json pack list
is "after settlement: D1 empty, D2 untouched" "$(jq_py '[[p["id"], p["remaining_us"]] for p in d]')" \
    "[[\"D1\", 0], [\"D2\", $((100 * MIN_US))]]"
mc --format json jobs --job jd
is "the record is now settled" "$(jq_py '[r["settled"] for r in d]')" '[true]'
mc --format json usage
# the deductions happen when settle runs, on day D+1, and count under day D,
# the day of the usage they settle
is "usage details of the settlement" "$(jq_py 'sorted([r["day"], r["pack_id"] or "-", r["ttype"], r["used_us"] // 60000000] for r in d)')" \
    '[["2026-03-02", "-", "Standard.H264.SD", 5], ["2026-03-02", "D1", "Standard.H264.SD", 5]]'
succeeds "settle table output" settle
check "settle table: one line per field" grep -qE '^Groups settled: +0$' <<<"$OUT"

# --- verify finds a tampered ledger
succeeds "verify before tampering" verify
# Tamper the way a bad manual fix would: change a balance behind libmeter's
# back (the schema's packs table; deductions themselves are append-only).
sqlite3 "$METER_DB" "UPDATE packs SET remaining_us = remaining_us - 60000000 WHERE id = 'D2';"
mc verify
if [ "$RC" -eq 1 ] && grep -q "D2" <<<"$OUT" && grep -qE '^verify: [1-9][0-9]* violations?$' <<<"$OUT" &&
   [ ! -s "$TMP/.err" ]; then
    ok "verify: exit 1, names the pack, counts the violations"
else
    not_ok "verify: exit 1, names the pack, counts the violations" "$(mc_diag)"
fi
mc --format json verify
if [ "$RC" -eq 1 ] && [ "$(jq_py 'all("problem" in p for p in d) and any("D2" in p["problem"] for p in d)')" = true ]; then
    ok "verify JSON: one object per problem"
else
    not_ok "verify JSON: one object per problem" "$(mc_diag)"
fi
mc --format csv verify
is "verify CSV: exit 1 and a problem column" "$RC $(head -n 1 <<<"$OUT")" "1 problem"

# --- reap and import-spool with nothing to do
succeeds "reap" --format json reap
is "reap: no dead sessions" "$(jq_py 'd["reaped"]')" 0
mkdir "$TMP/spool"
succeeds "import-spool DIR" --format json import-spool "$TMP/spool"
is "import-spool: nothing to import" "$(jq_py '[d["dir"], d["imported"]]')" "[\"$TMP/spool\", 0]"
METER_SPOOL=$TMP/spool
export METER_SPOOL
succeeds "import-spool from METER_SPOOL" --format json import-spool
is "import-spool: DIR defaults to METER_SPOOL" "$(jq_py 'd["dir"]')" "$TMP/spool"
unset METER_SPOOL
mc --format json jobs --sessions
is "jobs --sessions: only the records entered by hand, status manual" \
    "$(jq_py 'sorted(set(s["status"] for s in d))')" '["manual"]'
mc --format json jobs
n_records=$(jq_py 'len(d)')
mc --format json jobs --sessions
is "jobs --sessions: one session per record" "$(jq_py 'len(d)')" "$n_records"

finish
