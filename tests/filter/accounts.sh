#!/usr/bin/env bash
# Accounts in the filters: `account=acme` on meter and ameter bills the
# usage to acme, deducted from acme's pack and never from the default
# account's (whose pack ends first, so it would go first if accounts
# mixed); $METER_ACCOUNT when the option is not given; the database's
# `account` setting when neither is; a bad name refused before a frame.
# shellcheck source=tests/filter/filter.inc
. "$(dirname "$0")/filter.inc"

clip=(-f lavfi -i "testsrc=size=160x120:rate=25:duration=2")
aclip=(-f lavfi -i "sine=frequency=440:sample_rate=48000:duration=2")
db=$TMP/acc.db
mcdb() { "$METERCTL" --db "$db" "$@"; }
mcdb init >/dev/null
mcdb pack add --id def-1 --type general --minutes 100 --start 2025-01-01 >/dev/null
mcdb pack add --id acme-1 --account acme --type general --minutes 100 >/dev/null
mcdb pack add --id beta-1 --account beta --type general --minutes 100 >/dev/null

# remaining PACK: its remaining µs
remaining() { mcdb --format json pack show "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["remaining_us"])'; }
full=$((100 * 60000000))

# ---- meter, account=acme
ff acme "${clip[@]}" -vf "meter=job=acc1:output=o:codec=h264:account=acme:db=$db" \
    "${X264[@]}" "$TMP/acc1.mp4"
is "account=acme: ffmpeg succeeds" "$FF_RC" 0
job=$(mcdb --format json jobs --job acc1)
is "the usage is acme's" "$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(",".join(x["account"] for x in r))' "$job")" acme
used=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(sum(x["covered_us"] for x in r))' "$job")
check "acme's usage was covered ($used µs)" [ "${used:-0}" -gt 0 ]
is "acme-1 paid it" "$(remaining acme-1)" $((full - used))
is "default's pack did not" "$(remaining def-1)" "$full"
is "beta's pack did not" "$(remaining beta-1)" "$full"
is "jobs --account acme lists it" "$(mcdb --format csv jobs --account acme | tail -n +2 | wc -l)" 1
is "jobs --account default does not" "$(mcdb --format csv jobs --account default | tail -n +2 | wc -l)" 0

# ---- ameter, account=beta
ff beta "${aclip[@]}" -af "ameter=job=acc2:output=a:account=beta:db=$db" -c:a aac "$TMP/acc2.m4a"
is "ameter account=beta: ffmpeg succeeds" "$FF_RC" 0
is "the audio usage is beta's" "$(mcdb --format json jobs --job acc2 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["account"])')" beta
check "beta-1 paid it" [ "$(remaining beta-1)" -lt "$full" ]
is "default's pack still full" "$(remaining def-1)" "$full"

# ---- $METER_ACCOUNT, then the database's setting
METER_ACCOUNT=beta ff env "${clip[@]}" -vf "meter=job=acc3:output=o:codec=h264:db=$db" \
    "${X264[@]}" "$TMP/acc3.mp4"
is "\$METER_ACCOUNT: ffmpeg succeeds" "$FF_RC" 0
is "\$METER_ACCOUNT=beta: the usage is beta's" "$(mcdb --format json jobs --job acc3 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["account"])')" beta
ff setting "${clip[@]}" -vf "meter=job=acc4:output=o:codec=h264:db=$db" "${X264[@]}" "$TMP/acc4.mp4"
is "no option, no env: the database's account (default)" "$(mcdb --format json jobs --job acc4 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["account"])')" default
check "…paid by def-1" [ "$(remaining def-1)" -lt "$full" ]

# ---- a bad name is refused before a frame is billed
ff bad "${clip[@]}" -vf "meter=job=acc5:output=o:codec=h264:account=no/slash:db=$db" \
    "${X264[@]}" "$TMP/acc5.mp4"
check "account=no/slash: ffmpeg fails" [ "$FF_RC" -ne 0 ]
check "…with an error naming the option" grep -q "option 'account' must be" "$TMP/bad.log"
is "…and nothing billed" "$(mcdb --format csv jobs --job acc5 | tail -n +2)" ""

# ---- enforce with acme's minutes only
mcdb pack add --id gamma-none --account gamma --type tsc --minutes 1 >/dev/null
ff enf "${clip[@]}" -vf "meter=job=acc6:output=o:codec=h264:account=gamma:enforce=1:db=$db" \
    "${X264[@]}" "$TMP/acc6.mp4"
check "enforce: gamma has no general minutes (default's do not count)" [ "$FF_RC" -ne 0 ]
check "…refusing to start" grep -q 'refusing to start (enforce=1): no valid general pack has minutes left (account gamma' "$TMP/enf.log"

check "verify passes" mcdb verify
finish
