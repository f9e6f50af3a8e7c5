#!/usr/bin/env bash
# meterctl record is billed once per idempotency key, so a scheduler may
# retry it: without --id the job and output are the key (a second record
# bills nothing, exits 0, prints the first with duplicate = true and says
# "already recorded as ID" on stderr); with --id KEY the same values bill
# nothing and other values under the KEY are refused (exit 4); bad input is
# refused even on a repeat; records racing with one key bill once.
# shellcheck source=tests/cli/tap.inc
. "$(dirname "$0")/tap.inc"

mkdir "$TMP/d"
export METER_DB=$TMP/d/meter.db
export METER_NOW=2026-03-01T12:00:00Z
succeeds "init" init
succeeds "a 100-minute pack" pack add --type general --minutes 100 --id G --start 2026-01-01T00:00:00Z

remaining() { mc --format json pack show G; jq_py 'd["remaining_us"]'; }
records() { mc --format json jobs; jq_py 'len(d)'; }
depth() { mc --format json sync status; jq_py 'd["depth"]'; }
# The one stderr line of the last mc, exactly.
stderr_is() {
    local name=$1 want=$2
    if [ "$(wc -l <"$TMP/.err")" -eq 1 ] && [ "$ERR" = "$want" ]; then
        ok "$name"
    else
        not_ok "$name" "want stderr: $want" "$(mc_diag)"
    fi
}

hd=(--class general --codec h264 --width 1280 --height 720)   # H.264 HD, 1:2

# --- without --id: the job and output are the key
succeeds "first record of J1/720p: 60 s of HD" --format json record --job J1 --output 720p "${hd[@]}" --duration-ms 60000
first=$(jq_py 'd["id"]')
is "first record: billed 2 minutes, not a duplicate" "$(jq_py '[d["billed_us"], d["covered_us"], d["duplicate"]]')" \
    "[$((2 * MIN_US)), $((2 * MIN_US)), false]"
is "the pack paid 2 minutes" "$(remaining)" $((98 * MIN_US))
d0=$(depth)

mc --format json record --job J1 --output 720p "${hd[@]}" --duration-ms 60000
is "the same record again: exit 0" "$RC" 0
is "…prints the first record, duplicate = true" "$(jq_py '[d["id"], d["billed_us"], d["duplicate"]]')" \
    "[\"$first\", $((2 * MIN_US)), true]"
stderr_is "…says so on stderr, in one line" "meterctl: record: already recorded as $first; nothing billed"
is "…the pack is not charged again" "$(remaining)" $((98 * MIN_US))
is "…one usage record" "$(records)" 1
is "…nothing more for the ledger (outbox depth unchanged)" "$(depth)" "$d0"

mc --format json record --job J1 --output 720p "${hd[@]}" --duration-ms 90000 --at 2026-03-01T11:00:00Z
is "J1/720p with another duration and time: still the same record (job+output is the key)" \
    "$RC $(jq_py '[d["id"], d["duplicate"]]')" "0 [\"$first\", true]"
is "…nothing billed" "$(remaining)" $((98 * MIN_US))

mc record --job J1 --output 720p "${hd[@]}" --duration-ms 60000
check "a repeat in a table says Duplicate: yes" grep -qE '^Duplicate: +yes$' <<<"$OUT"
mc --format csv record --job J1 --output 720p "${hd[@]}" --duration-ms 60000
is "a repeat in CSV: duplicate true" "$(tail -n 1 <<<"$OUT" | awk -F, '{print $1, $NF}')" "$first true"

succeeds "another output of the job is another record" --format json record --job J1 --output 480p "${hd[@]}" --width 854 --height 480 --duration-ms 60000
is "…billed (1 minute of SD), not a duplicate" "$(jq_py '[d["billed_us"], d["duplicate"]]')" "[$MIN_US, false]"
is "the pack paid 3 minutes in all" "$(remaining)" $((97 * MIN_US))

# --- bad input is refused, even when the job and output were recorded
fails "a repeat with an unknown codec is refused, not a duplicate" 2 "codec.*'vp9'" \
    record --job J1 --output 720p --class general --codec vp9 --width 1280 --height 720 --duration-ms 60000
fails "a repeat in the future is refused" 2 "future" \
    record --job J1 --output 720p "${hd[@]}" --duration-ms 60000 --at 2026-03-02T12:00:00Z
fails "a repeat of video without a size is refused" 2 "size|width|height" \
    record --job J1 --output 720p --class general --codec h264 --duration-ms 60000

# --- --id KEY
succeeds "--id k1: a second usage of J1/720p under its own key" --format json record --id k1 --job J1 --output 720p "${hd[@]}" --duration-ms 30000
k1=$(jq_py 'd["id"]')
is "…billed 1 minute, not a duplicate" "$(jq_py '[d["billed_us"], d["duplicate"]]')" "[$MIN_US, false]"
check "…a usage id of its own" [ "$k1" != "$first" ]
is "the pack paid 4 minutes in all" "$(remaining)" $((96 * MIN_US))

mc --format json record --id k1 --job J1 --output 720p "${hd[@]}" --duration-ms 30000 --at 2026-03-01T11:30:00Z
is "--id k1 again, same values, another --at: exit 0, the first record" "$RC $(jq_py '[d["id"], d["duplicate"]]')" "0 [\"$k1\", true]"
stderr_is "…says so on stderr" "meterctl: record: already recorded as $k1; nothing billed"
is "…nothing billed" "$(remaining)" $((96 * MIN_US))

fails "--id k1 with another duration: refused (exit 4), naming the key" 4 "key 'k1' is taken by another usage" \
    record --id k1 --job J1 --output 720p "${hd[@]}" --duration-ms 31000
fails "--id k1 for another job: refused" 4 "key 'k1'" \
    record --id k1 --job J9 --output 720p "${hd[@]}" --duration-ms 30000
fails "--id k1 with another codec: refused" 4 "key 'k1'" \
    record --id k1 --job J1 --output 720p --class general --codec h265 --width 1280 --height 720 --duration-ms 30000
is "…nothing billed by the refusals" "$(remaining)" $((96 * MIN_US))

succeeds "--id for a new job and output" --format json record --id sched:J2.out_1 --job J2 --output o "${hd[@]}" --duration-ms 60000
is "…billed" "$(jq_py 'd["duplicate"]')" false
mc --format json record --job J2 --output o "${hd[@]}" --duration-ms 60000
is "then J2/o without --id: already billed by the keyed record" "$RC $(jq_py 'd["duplicate"]')" "0 true"

fails "--id with a space" 2 "key 'bad key' may hold only" record --id 'bad key' --job J3 --output o "${hd[@]}" --duration-ms 1000
fails "--id empty" 2 "key '' must be 1 to 64" record --id '' --job J3 --output o "${hd[@]}" --duration-ms 1000
fails "--id of 65 characters" 2 "must be 1 to 64" record --id "$(printf 'k%.0s' {1..65})" --job J3 --output o "${hd[@]}" --duration-ms 1000
succeeds "--id of 64 characters" record --id "$(printf 'k%.0s' {1..64})" --job J3 --output o "${hd[@]}" --duration-ms 1000

# --- many schedulers at once: one key, eight processes, one charge
before=$(remaining)
for i in 1 2 3 4 5 6 7 8; do
    "$METERCTL" --format json record --id race --job R --output o "${hd[@]}" --duration-ms 60000 \
        >"$TMP/race$i.out" 2>"$TMP/race$i.err" &
done
wait
race_ok=0 race_dup=0
for i in 1 2 3 4 5 6 7 8; do
    if python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$TMP/race$i.out" 2>/dev/null; then
        race_ok=$((race_ok + 1))
        grep -q '"duplicate": true' "$TMP/race$i.out" && race_dup=$((race_dup + 1))
    fi
done
is "racing records with one key: every call succeeds" "$race_ok" 8
is "…seven are duplicates" "$race_dup" 7
is "…the pack paid once (2 minutes)" "$(remaining)" $((before - 2 * MIN_US))
mc --format json jobs --job R
is "…one usage record" "$(jq_py 'len(d)')" 1

succeeds "verify after all of it" verify
finish
