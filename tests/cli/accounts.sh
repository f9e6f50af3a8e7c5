#!/usr/bin/env bash
# Accounts and leases through meterctl: --account on pack add, pack list,
# record, usage and jobs (and their account column); the account settings
# validated; `lease list` with its filters; and the schema-1 database of the
# release before accounts (tests/unit/fixtures/v1.db) migrated on open,
# verify passing, every row in account default.
# shellcheck source=tests/cli/tap.inc
. "$(dirname "$0")/tap.inc"

mkdir "$TMP/d"
export METER_DB=$TMP/d/meter.db
export METER_NOW=2026-03-01T12:00:00Z
succeeds "init" init

# --- packs of two accounts
succeeds "pack add (default account)" pack add --type general --minutes 10 --id def-1 --start 2026-01-01
succeeds "pack add --account acme" --format json pack add --type general --minutes 10 --id acme-1 --account acme
is "the new pack is acme's" "$(jq_py 'd["account"]')" acme
fails "pack add --account with a bad name" 2 "invalid account" pack add --type general --minutes 1 --account "a b"
mc --format json pack list --account acme
is "pack list --account acme" "$(jq_py '[p["id"] for p in d]')" '["acme-1"]'
mc --format json pack list
is "pack list: every pack with its account" "$(jq_py '[(p["id"], p["account"], p["lease_id"]) for p in d]')" \
    '[["def-1", "default", null], ["acme-1", "acme", null]]'
mc pack list
check "pack list table has an Account column" grep -qE '^Pack ID +Account +Status' <<<"$OUT"

# --- record for acme: acme-1 pays, def-1 (ending first) does not
succeeds "record --account acme" --format json record --job j1 --output o --class general \
    --codec h264 --width 1280 --height 720 --duration-ms 30000 --account acme
is "record: acme's" "$(jq_py 'd["account"]')" acme
is "record: 60 s covered" "$(jq_py 'd["covered_us"]')" 60000000
mc --format json pack show acme-1
is "acme-1 paid" "$(jq_py 'd["remaining_us"]')" $((9 * MIN_US))
mc --format json pack show def-1
is "def-1 did not" "$(jq_py 'd["remaining_us"]')" $((10 * MIN_US))
succeeds "record without --account" --format json record --job j2 --output o --class general \
    --codec h264 --width 1280 --height 720 --duration-ms 15000
is "record: the account setting's (default)" "$(jq_py 'd["account"]')" default
fails "record --account with a bad name" 2 "invalid account" record --job j3 --output o \
    --class general --codec h264 --width 1280 --height 720 --duration-ms 1000 --account "x/y"

# --- jobs and usage
mc --format json jobs --account acme
is "jobs --account acme" "$(jq_py '[(r["job"], r["account"]) for r in d]')" '[["j1", "acme"]]'
mc --format json jobs
is "jobs: both, with their accounts" "$(jq_py '[r["account"] for r in d]')" '["acme", "default"]'
mc --format json jobs --sessions --account default
is "jobs --sessions --account default" "$(jq_py '[(r["job"], r["account"]) for r in d]')" '[["j2", "default"]]'
mc --format json usage --account acme
is "usage --account acme" "$(jq_py '[(r["account"], r["pack_id"], r["used_us"]) for r in d]')" \
    '[["acme", "acme-1", 60000000]]'
mc usage
check "usage table has an Account column" grep -qE '^Day +Account +Pack ID' <<<"$OUT"
mc --format csv usage --account nobody
is "usage of an account without usage: header only" "$(tail -n +2 <<<"$OUT")" ""

# --- settings
succeeds "config set account acme" config set account acme
succeeds "pack add follows the setting" --format json pack add --type tsc --minutes 1 --id acme-t
is "…acme's" "$(jq_py 'd["account"]')" acme
fails "config set account: a bad name" 2 "invalid account" config set account "no way"
succeeds "config set lease_accounts" config set lease_accounts "acme,beta:tsc"
mc config get lease_accounts
is "lease_accounts kept" "$OUT" "acme,beta:tsc"
fails "lease_accounts: a trailing comma" 2 "ends with a comma" config set lease_accounts "acme,"
succeeds "config set lease_policy stop" config set lease_policy stop
fails "lease_policy: unknown" 2 "continue or stop" config set lease_policy maybe
succeeds "config set lease_minutes 30" config set lease_minutes 30
fails "lease_minutes: not a number" 2 "lease_minutes" config set lease_minutes ten

# --- leases (made here as the sync client would, through libmeter's tables)
mc --format json lease list
is "lease list: none yet" "$OUT" '[]'
python3 - "$METER_DB" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
node = db.execute("SELECT value FROM meta WHERE key = 'node_id'").fetchone()[0]
t0 = 1772366400000  # 2026-03-01T12:00:00Z
db.execute("INSERT INTO leases(id, account, class, state, requested_us, granted_us, requested_at,"
           " expires_at) VALUES(?, 'acme', 0, 'open', 600000000, 600000000, ?, ?)",
           (node + "-l900", t0, t0 + 270000))
db.execute("INSERT INTO packs(id, type, total_us, remaining_us, start_at, end_at, created_at,"
           " account, lease_id, source_id, expires_at) VALUES(?, 0, 600000000, 600000000, ?, ?, ?,"
           " 'acme', ?, 'pk-pool', ?)",
           ("pk-pool@" + node + "-l900", t0 - 86400000, t0 + 300 * 86400000, t0, node + "-l900",
            t0 + 270000))
db.execute("INSERT INTO leases(id, account, class, state, requested_us, requested_at, resolved_at,"
           " reason) VALUES(?, 'beta', 1, 'refused', 60000000, ?, ?, 'no minutes')",
           (node + "-l901", t0, t0))
db.commit()
PY
mc --format json lease list
is "lease list: both" "$(jq_py '[(l["account"], l["state"], l["remaining_us"], l["unsent"]) for l in d]')" \
    '[["acme", "open", 600000000, 0], ["beta", "refused", 0, 0]]'
mc --format json lease list --open
is "lease list --open" "$(jq_py '[l["state"] for l in d]')" '["open"]'
mc --format json lease list --account beta
is "lease list --account beta" "$(jq_py '[(l["class"], l["reason"]) for l in d]')" '[["tsc", "no minutes"]]'
fails "lease list --account with a bad name" 2 "invalid account" lease list --account "a b"
mc lease list
check "lease list table" grep -qE '^Lease ID +Account +Class +State' <<<"$OUT"
mc --format json pack list --account acme
is "the slice is listed with its lease" \
    "$(jq_py '[(p["source_id"], p["status"]) for p in d if p["lease_id"]]')" '[["pk-pool", "valid"]]'
fails "a slice is not frozen here" 4 "slice of lease" pack freeze "$(jq_py '[p["id"] for p in d if p["lease_id"]][0]')"
succeeds "record for acme: the slice pays first (it ends first)" --format json record --job j4 \
    --output o --class general --codec h264 --width 1280 --height 720 --duration-ms 30000 --account acme
mc --format json lease list --open
is "…the lease has 60 s less, one deduction unsent" "$(jq_py '[(l["remaining_us"], l["unsent"]) for l in d]')" \
    '[[540000000, 1]]'
METER_NOW=2026-03-01T12:04:30Z mc --format json pack list --account acme
is "at the local expiry the slice shows expired" \
    "$(jq_py '[p["status"] for p in d if p["lease_id"]]')" '["expired"]'
succeeds "verify with accounts and a slice" verify

# --- the database of the release before accounts
cp "$SRCDIR/tests/unit/fixtures/v1.db" "$TMP/v1.db"
METER_NOW=2026-03-04T12:00:00Z mc --db "$TMP/v1.db" verify
is "v1 database: verify passes after the migration" "$RC" 0
mc --db "$TMP/v1.db" --format json pack list
is "v1 packs are all default's" "$(jq_py 'sorted(set(p["account"] for p in d))')" '["default"]'
mc --db "$TMP/v1.db" --format json jobs
is "v1 usage is all default's" "$(jq_py 'sorted(set(r["account"] for r in d))')" '["default"]'
mc --db "$TMP/v1.db" config get lease_policy
is "v1 database has the new settings" "$OUT" continue

finish
