/*
 * schema.c — the database schema and its forward migrations.
 *
 * PRAGMA user_version holds the schema version.  migrations[v-1] takes a
 * database from version v-1 to v; all pending steps run in one transaction,
 * so a migration either completes or leaves the old schema untouched.
 */
#include <stdio.h>

#include "internal.h"

/* Version 1.  Times are epoch milliseconds, amounts pack-µs, classes 0/1. */
static const char schema_v1[] =
    "CREATE TABLE meta("
    "  key   TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL);"

    "CREATE TABLE packs("
    "  id           TEXT PRIMARY KEY,"
    "  type         INTEGER NOT NULL CHECK (type IN (0, 1)),"
    "  total_us     INTEGER NOT NULL CHECK (total_us > 0),"
    "  remaining_us INTEGER NOT NULL CHECK (remaining_us BETWEEN 0 AND total_us),"
    "  start_at     INTEGER NOT NULL,"
    "  end_at       INTEGER NOT NULL CHECK (end_at > start_at),"
    "  frozen       INTEGER NOT NULL DEFAULT 0 CHECK (frozen IN (0, 1)),"
    "  refunded_at  INTEGER,"
    "  created_at   INTEGER NOT NULL);"
    "CREATE INDEX packs_order ON packs(type, end_at, start_at, id);"

    /* purchase, freeze, unfreeze, refund: the audit trail of every pack. */
    "CREATE TABLE pack_events("
    "  seq     INTEGER PRIMARY KEY,"
    "  id      TEXT NOT NULL UNIQUE,"
    "  pack_id TEXT NOT NULL REFERENCES packs(id),"
    "  action  TEXT NOT NULL,"
    "  at      INTEGER NOT NULL);"
    "CREATE INDEX pack_events_pack ON pack_events(pack_id, seq);"

    "CREATE TABLE usage("
    "  seq         INTEGER PRIMARY KEY,"
    "  id          TEXT NOT NULL UNIQUE,"
    "  job         TEXT NOT NULL,"
    "  output      TEXT NOT NULL,"
    "  node        TEXT NOT NULL,"
    "  session_id  TEXT,"
    "  class       INTEGER NOT NULL,"
    "  ttype       TEXT NOT NULL,"
    "  codec       TEXT NOT NULL,"
    "  width       INTEGER NOT NULL,"
    "  height      INTEGER NOT NULL,"
    "  duration_us INTEGER NOT NULL CHECK (duration_us > 0),"
    "  billed_us   INTEGER NOT NULL CHECK (billed_us >= 0),"
    "  deductible  INTEGER NOT NULL,"
    "  started_at  INTEGER NOT NULL,"
    "  recorded_at INTEGER NOT NULL,"
    "  day         TEXT NOT NULL,"
    "  state       TEXT NOT NULL,"
    "  daily       INTEGER NOT NULL);"   /* 1: charged by a daily settlement */
    "CREATE INDEX usage_job ON usage(job, output);"
    "CREATE INDEX usage_daily ON usage(daily, day, class, ttype, seq);"
    "CREATE INDEX usage_session ON usage(session_id);"

    /* A charge is a realtime usage id or a settlement id.  pack_id NULL is
     * overage: usage no pack covered (before/after NULL too). */
    "CREATE TABLE deductions("
    "  seq       INTEGER PRIMARY KEY,"
    "  id        TEXT NOT NULL UNIQUE,"
    "  charge_id TEXT NOT NULL,"
    "  pack_id   TEXT REFERENCES packs(id),"
    "  class     INTEGER NOT NULL,"
    "  ttype     TEXT NOT NULL,"
    "  at        INTEGER NOT NULL,"
    "  day       TEXT NOT NULL,"
    "  amount_us INTEGER NOT NULL CHECK (amount_us > 0),"
    "  before_us INTEGER,"
    "  after_us  INTEGER);"
    "CREATE INDEX deductions_charge ON deductions(charge_id);"
    "CREATE INDEX deductions_pack ON deductions(pack_id, seq);"
    "CREATE INDEX deductions_day ON deductions(day, pack_id, ttype);"

    /* A daily settlement charges the unsettled usage of one (day, class,
     * ttype, deductible) group; settled_usage maps each usage to it. */
    "CREATE TABLE settlements("
    "  seq        INTEGER PRIMARY KEY,"
    "  id         TEXT NOT NULL UNIQUE,"
    "  day        TEXT NOT NULL,"
    "  class      INTEGER NOT NULL,"
    "  ttype      TEXT NOT NULL,"
    "  deductible INTEGER NOT NULL,"
    "  billed_us  INTEGER NOT NULL,"
    "  at         INTEGER NOT NULL);"
    "CREATE TABLE settled_usage("
    "  usage_seq     INTEGER PRIMARY KEY REFERENCES usage(seq),"
    "  settlement_id TEXT NOT NULL REFERENCES settlements(id));"
    "CREATE INDEX settled_usage_settlement ON settled_usage(settlement_id);"

    /* Operator overrides of the built-in rate table; den 0 = not deductible. */
    "CREATE TABLE rates("
    "  class INTEGER NOT NULL,"
    "  ttype TEXT NOT NULL,"
    "  num   INTEGER NOT NULL CHECK (num >= 0),"
    "  den   INTEGER NOT NULL CHECK (den >= 0),"
    "  PRIMARY KEY (class, ttype));"

    /* Job sessions: mutable progress of running outputs (not money). */
    "CREATE TABLE sessions("
    "  id           TEXT PRIMARY KEY,"
    "  job          TEXT NOT NULL,"
    "  output       TEXT NOT NULL,"
    "  node         TEXT NOT NULL,"
    "  host         TEXT NOT NULL,"
    "  pid          INTEGER NOT NULL,"
    "  proc_start   INTEGER NOT NULL,"   /* with boot_id: tells pid reuse apart */
    "  boot_id      TEXT NOT NULL,"
    "  class        INTEGER NOT NULL,"
    "  codec        TEXT NOT NULL,"
    "  flags        INTEGER NOT NULL,"
    "  status       TEXT NOT NULL,"
    "  opened_at    INTEGER NOT NULL,"
    "  updated_at   INTEGER NOT NULL,"
    "  finalized_at INTEGER,"
    "  spool_dir    TEXT NOT NULL,"      /* where its spool file would be */
    "  error        TEXT);"              /* why it could not be billed */
    "CREATE INDEX sessions_status ON sessions(status, host);"
    "CREATE INDEX sessions_job ON sessions(job, output);"
    "CREATE TABLE session_segments("
    "  session_id  TEXT NOT NULL REFERENCES sessions(id),"
    "  idx         INTEGER NOT NULL,"
    "  width       INTEGER NOT NULL,"
    "  height      INTEGER NOT NULL,"
    "  duration_us INTEGER NOT NULL,"
    "  PRIMARY KEY (session_id, idx));"

    /* Records not yet acknowledged by the central ledger. */
    "CREATE TABLE outbox("
    "  seq            INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  kind           TEXT NOT NULL,"
    "  record_id      TEXT NOT NULL UNIQUE,"
    "  created_at     INTEGER NOT NULL,"
    "  quarantined_at INTEGER,"         /* rejected by the ledger for good */
    "  reason         TEXT);"
    "CREATE INDEX outbox_waiting ON outbox(quarantined_at, seq);"

    /* I4: the money records are append-only. */
    "CREATE TRIGGER usage_append_only_u BEFORE UPDATE ON usage"
    "  BEGIN SELECT RAISE(ABORT, 'usage records are append-only'); END;"
    "CREATE TRIGGER usage_append_only_d BEFORE DELETE ON usage"
    "  BEGIN SELECT RAISE(ABORT, 'usage records are append-only'); END;"
    "CREATE TRIGGER deductions_append_only_u BEFORE UPDATE ON deductions"
    "  BEGIN SELECT RAISE(ABORT, 'deductions are append-only'); END;"
    "CREATE TRIGGER deductions_append_only_d BEFORE DELETE ON deductions"
    "  BEGIN SELECT RAISE(ABORT, 'deductions are append-only'); END;"
    "CREATE TRIGGER settlements_append_only_u BEFORE UPDATE ON settlements"
    "  BEGIN SELECT RAISE(ABORT, 'settlements are append-only'); END;"
    "CREATE TRIGGER settlements_append_only_d BEFORE DELETE ON settlements"
    "  BEGIN SELECT RAISE(ABORT, 'settlements are append-only'); END;"
    "CREATE TRIGGER settled_usage_append_only_u BEFORE UPDATE ON settled_usage"
    "  BEGIN SELECT RAISE(ABORT, 'settlements are append-only'); END;"
    "CREATE TRIGGER settled_usage_append_only_d BEFORE DELETE ON settled_usage"
    "  BEGIN SELECT RAISE(ABORT, 'settlements are append-only'); END;"
    "CREATE TRIGGER pack_events_append_only_u BEFORE UPDATE ON pack_events"
    "  BEGIN SELECT RAISE(ABORT, 'pack events are append-only'); END;"
    "CREATE TRIGGER pack_events_append_only_d BEFORE DELETE ON pack_events"
    "  BEGIN SELECT RAISE(ABORT, 'pack events are append-only'); END;";

/* Version 2: accounts (every money row names the customer it belongs to;
 * a version-1 database is one customer's, "default") and lease slices
 * (farm mode: a pack row that is a part of one of the ledger's packs,
 * reserved for this node until expires_at).  ALTER TABLE … ADD COLUMN
 * fires no UPDATE trigger, so the append-only tables take their column. */
static const char schema_v2[] =
    "ALTER TABLE packs       ADD COLUMN account TEXT NOT NULL DEFAULT 'default';"
    "ALTER TABLE packs       ADD COLUMN lease_id TEXT;"     /* NULL: an own pack */
    "ALTER TABLE packs       ADD COLUMN source_id TEXT;"    /* a slice: the ledger's pack */
    "ALTER TABLE packs       ADD COLUMN expires_at INTEGER;"/* a slice: no deduction at or after */
    "ALTER TABLE pack_events ADD COLUMN account TEXT NOT NULL DEFAULT 'default';"
    "ALTER TABLE usage       ADD COLUMN account TEXT NOT NULL DEFAULT 'default';"
    "ALTER TABLE deductions  ADD COLUMN account TEXT NOT NULL DEFAULT 'default';"
    "ALTER TABLE settlements ADD COLUMN account TEXT NOT NULL DEFAULT 'default';"
    "ALTER TABLE sessions    ADD COLUMN account TEXT NOT NULL DEFAULT 'default';"

    /* Deduction order within one account; slices of a lease. */
    "CREATE INDEX packs_account_order ON packs(account, type, end_at, start_at, id);"
    "CREATE INDEX packs_lease ON packs(lease_id) WHERE lease_id IS NOT NULL;"
    /* Daily settlement groups by account; the burn rate reads recent usage. */
    "CREATE INDEX usage_daily_account ON usage(daily, day, account, class, ttype, seq);"
    "CREATE INDEX usage_burn ON usage(account, class, recorded_at);"
    "CREATE INDEX deductions_account ON deductions(account, day);"

    "CREATE TABLE leases("
    "  id                TEXT PRIMARY KEY,"   /* <node_id>-l<seq> */
    "  account           TEXT NOT NULL,"
    "  class             INTEGER NOT NULL CHECK (class IN (0, 1)),"
    "  state             TEXT NOT NULL CHECK (state IN ('requested', 'open', 'released',"
    "                    'expired', 'refused')),"
    "  requested_us      INTEGER NOT NULL CHECK (requested_us > 0),"
    "  granted_us        INTEGER NOT NULL DEFAULT 0 CHECK (granted_us >= 0),"
    "  requested_at      INTEGER NOT NULL,"   /* local clock, first send */
    "  expires_at        INTEGER,"            /* local: requested_at + ttl − margin */
    "  ledger_expires_ms INTEGER,"            /* the ledger's own expiry (its clock) */
    "  resolved_at       INTEGER,"
    "  reason            TEXT);"
    "CREATE INDEX leases_state ON leases(account, class, state);"

    "INSERT OR IGNORE INTO meta(key, value) VALUES ('account', 'default'),"
    " ('lease_accounts', ''), ('lease_policy', 'continue'), ('lease_minutes', '10');";

static const char *const migrations[] = {
    schema_v1,
    schema_v2,
};

int meter_schema_version(void)
{
    return (int)(sizeof migrations / sizeof migrations[0]);
}

/* Runs migrations from `from` to the current version in the caller's
 * transaction and stamps user_version. */
int meter_schema_migrate(meter_store *st, int from)
{
    for (int v = from; v < meter_schema_version(); v++) {
        int rc = meter_exec(st, migrations[v]);
        if (rc != METER_OK)
            return meter_fail(st, rc, "migrating schema to version %d: %s", v + 1, st->err);
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", meter_schema_version());
    return meter_exec(st, sql);
}
