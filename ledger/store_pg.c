/*
 * store_pg.c — the PostgreSQL backend of the ledger store (`--pg CONNINFO`),
 * through libpq, so several ledger instances can serve one farm.
 *
 * Concurrency between instances rests on three things, all in the
 * database: the records' primary key (INSERT … ON CONFLICT DO NOTHING waits
 * for a concurrent insert of the same id and then sees it, so an id is
 * stored once, by whichever transaction commits); row locks (SELECT … FOR
 * UPDATE / FOR SHARE on a pack) for the read-check-write rules (refund only
 * if unused, deductions only from the node's own pack); and transactions at
 * READ COMMITTED, retried by store_tx() on deadlock or serialization
 * failure.  Nonces live in a table too, so a replay is caught whichever
 * instance sees it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "store_impl.h"

/* pg_advisory_xact_lock key serialising schema migrations ("FMLG"). */
#define MIGRATE_LOCK_KEY "1179472967"

static PGconn *conn_of(struct ledger_store *st) { return st->conn; }

static void one_line(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r') {
            /* keep "ERROR:  x" tidy: stop at the first line break */
            *p = '\0';
            break;
        }
}

/* Maps a failed result (or a NULL one) to a METER_E code. */
static int fail_pg(struct ledger_store *st, PGresult *r, const char *what)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg || !*msg)
        msg = PQerrorMessage(conn_of(st));
    int code = METER_EDB;
    if (PQstatus(conn_of(st)) != CONNECTION_OK)
        code = METER_EBUSY;               /* connection lost: transient */
    else if (state) {
        if (!strcmp(state, "40001") || !strcmp(state, "40P01") ||   /* serialization, deadlock */
            !strncmp(state, "08", 2) || !strncmp(state, "53", 2) ||   /* connection, resources */
            !strcmp(state, "55P03") || !strcmp(state, "57P01") ||     /* lock, admin shutdown */
            !strcmp(state, "57014"))                                   /* statement timeout */
            code = METER_EBUSY;
        else if (!strcmp(state, "23505"))
            code = METER_EEXIST;
    }
    store_fail(st, code, "%s: %s%s%s", what, msg ? msg : "unknown error",
               state ? " (SQLSTATE " : "", state ? state : "");
    if (state) {
        size_t len = strlen(st->err);
        one_line(st->err);
        if (strlen(st->err) == len && len + 1 < sizeof st->err)
            strcat(st->err, ")");
    } else
        one_line(st->err);
    return code;
}

/* Makes sure the connection is up before a new transaction; a lost
 * connection is re-established once (transient, so the caller retries). */
static int ensure_conn(struct ledger_store *st)
{
    if (PQstatus(conn_of(st)) == CONNECTION_OK)
        return METER_OK;
    PQreset(conn_of(st));
    if (PQstatus(conn_of(st)) == CONNECTION_OK)
        return METER_OK;
    store_fail(st, METER_EBUSY, "database unreachable: %s", PQerrorMessage(conn_of(st)));
    one_line(st->err);
    return METER_EBUSY;
}

static int take_rows(struct ledger_store *st, PGresult *r, lres *res)
{
    int nr = PQntuples(r), nc = PQnfields(r);
    res->nrows = 0;
    res->ncols = nc;
    if (nr > 0 && nc > 0) {
        res->cells = calloc((size_t)nr * (size_t)nc, sizeof *res->cells);
        if (!res->cells)
            return store_fail(st, METER_ENOMEM, "out of memory reading rows");
    }
    for (int i = 0; i < nr; i++) {
        for (int c = 0; c < nc; c++) {
            if (PQgetisnull(r, i, c))
                continue;
            char *v = strdup(PQgetvalue(r, i, c));
            if (!v) {
                res->nrows = i + 1;   /* so lres_free releases what was copied */
                return store_fail(st, METER_ENOMEM, "out of memory reading rows");
            }
            res->cells[(size_t)i * (size_t)nc + (size_t)c] = v;
        }
        res->nrows = i + 1;
    }
    const char *ct = PQcmdTuples(r);
    res->changes = ct && *ct ? strtoll(ct, NULL, 10) : 0;
    return METER_OK;
}

static int pg_exec(struct ledger_store *st, const char *sql, const lparam *p, int np, lres *res)
{
    if (res)
        memset(res, 0, sizeof *res);
    if (!st->in_tx) {
        int rc = ensure_conn(st);
        if (rc != METER_OK)
            return rc;
    }
    enum { MAXP = 32 };
    if (np > MAXP)
        return store_fail(st, METER_EINVAL, "too many statement parameters");
    char ints[MAXP][24];
    const char *vals[MAXP];
    for (int i = 0; i < np; i++) {
        switch (p[i].t) {
        case LP_INT:
            snprintf(ints[i], sizeof ints[i], "%" PRId64, p[i].i);
            vals[i] = ints[i];
            break;
        case LP_TEXT:
            vals[i] = p[i].s;
            break;
        default:
            vals[i] = NULL;
        }
    }
    PGresult *r = PQexecParams(conn_of(st), sql, np, NULL, vals, NULL, NULL, 0);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && !st->in_tx &&
        PQstatus(conn_of(st)) != CONNECTION_OK) {
        /* The server closed an idle pooled connection (restart, failover,
         * pg_terminate_backend): libpq only notices on use.  Outside a
         * transaction one statement is safe to run again on a new one. */
        PQclear(r);
        r = NULL;
        if (ensure_conn(st) == METER_OK)
            r = PQexecParams(conn_of(st), sql, np, NULL, vals, NULL, NULL, 0);
        s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    }
    int rc;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        rc = fail_pg(st, r, "query");
    else if (res) {
        rc = take_rows(st, r, res);
        if (rc != METER_OK)
            lres_free(res);
    } else
        rc = METER_OK;
    PQclear(r);
    return rc;
}

static int pg_simple(struct ledger_store *st, const char *sql, const char *what)
{
    PGresult *r = PQexec(conn_of(st), sql);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) ? METER_OK : fail_pg(st, r, what);
    PQclear(r);
    return rc;
}

static int pg_script(struct ledger_store *st, const char *sql)
{
    return pg_simple(st, sql, "run the schema script");
}

static int pg_begin(struct ledger_store *st)
{
    int rc = ensure_conn(st);
    if (rc == METER_OK)
        rc = pg_simple(st, "BEGIN ISOLATION LEVEL READ COMMITTED", "begin a transaction");
    return rc;
}

static int pg_begin_snapshot(struct ledger_store *st)
{
    int rc = ensure_conn(st);
    if (rc == METER_OK)
        rc = pg_simple(st, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                       "begin a read transaction");
    return rc;
}

static int pg_commit(struct ledger_store *st)
{
    /* A COMMIT whose answer is lost leaves the outcome unknown: reported as
     * transient, the retry then sees its own records as duplicates. */
    return pg_simple(st, "COMMIT", "commit");
}

static void pg_rollback(struct ledger_store *st)
{
    if (PQstatus(conn_of(st)) == CONNECTION_OK &&
        PQtransactionStatus(conn_of(st)) != PQTRANS_IDLE) {
        PGresult *r = PQexec(conn_of(st), "ROLLBACK");
        PQclear(r);
    }
}

static int pg_lock_schema(struct ledger_store *st)
{
    return pg_simple(st, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")",
                     "lock the schema for migration");
}

static int pg_check_foreign(struct ledger_store *st)
{
    (void)st;   /* a PostgreSQL database may hold other tables: ours are named */
    return METER_OK;
}

static int pg_broken(const struct ledger_store *st)
{
    return PQstatus(st->conn) != CONNECTION_OK;
}

static void pg_close(struct ledger_store *st)
{
    PQfinish(conn_of(st));
    st->conn = NULL;
}

/* Text columns use the "C" collation: byte order, as SQLite's BINARY, so
 * both backends sort ids, days and names the same way. */
static const char pg_v1[] =
    "CREATE TABLE nodes ("
    "  name TEXT COLLATE \"C\" PRIMARY KEY,"
    "  secret TEXT COLLATE \"C\" NOT NULL,"
    "  secret_sha256 TEXT COLLATE \"C\" NOT NULL UNIQUE,"
    "  created_ms BIGINT NOT NULL,"
    "  last_seen_ms BIGINT);"
    "CREATE TABLE admins ("
    "  name TEXT COLLATE \"C\" PRIMARY KEY,"
    "  token_sha256 TEXT COLLATE \"C\" NOT NULL UNIQUE,"
    "  created_ms BIGINT NOT NULL);"
    "CREATE TABLE nonces ("
    "  node TEXT COLLATE \"C\" NOT NULL,"
    "  nonce TEXT COLLATE \"C\" NOT NULL,"
    "  expires_ms BIGINT NOT NULL,"
    "  PRIMARY KEY (node, nonce));"
    "CREATE INDEX nonces_expiry ON nonces (expires_ms);"
    "CREATE TABLE packs ("
    "  id TEXT COLLATE \"C\" PRIMARY KEY,"
    "  type TEXT COLLATE \"C\" NOT NULL CHECK (type IN ('general', 'tsc')),"
    "  total_us BIGINT NOT NULL CHECK (total_us > 0),"
    "  used_us BIGINT NOT NULL DEFAULT 0,"
    "  deductions BIGINT NOT NULL DEFAULT 0,"
    "  start_ms BIGINT NOT NULL,"
    "  end_ms BIGINT NOT NULL,"
    "  frozen INTEGER NOT NULL DEFAULT 0,"
    "  refunded_ms BIGINT,"
    "  node TEXT COLLATE \"C\" REFERENCES nodes (name),"
    "  created_ms BIGINT NOT NULL);"
    "CREATE INDEX packs_node ON packs (node);"
    "CREATE TABLE records ("
    "  id TEXT COLLATE \"C\" PRIMARY KEY,"
    "  kind TEXT COLLATE \"C\" NOT NULL CHECK (kind IN ('usage', 'deduction', 'settlement', 'pack_event')),"
    "  node TEXT COLLATE \"C\" NOT NULL,"
    "  at_ms BIGINT NOT NULL,"
    "  received_ms BIGINT NOT NULL,"
    "  job TEXT COLLATE \"C\", output TEXT COLLATE \"C\", session_id TEXT COLLATE \"C\", codec TEXT COLLATE \"C\","
    "  width INTEGER, height INTEGER,"
    "  duration_us BIGINT CHECK (duration_us >= 0),"
    "  billed_us BIGINT CHECK (billed_us >= 0),"
    "  deductible INTEGER, daily INTEGER, started_ms BIGINT, state TEXT COLLATE \"C\","
    "  class TEXT COLLATE \"C\", ttype TEXT COLLATE \"C\", day TEXT COLLATE \"C\","
    "  charge_id TEXT COLLATE \"C\", pack_id TEXT COLLATE \"C\","
    "  amount_us BIGINT CHECK (amount_us >= 0),"
    "  before_us BIGINT, after_us BIGINT,"
    "  action TEXT COLLATE \"C\");"
    "CREATE INDEX records_kind_at ON records (kind, at_ms, id);"
    "CREATE INDEX records_node_kind ON records (node, kind);"
    "CREATE INDEX records_pack ON records (pack_id) WHERE pack_id IS NOT NULL;"
    "CREATE TABLE audit ("
    "  seq BIGSERIAL PRIMARY KEY,"
    "  at_ms BIGINT NOT NULL,"
    "  admin TEXT COLLATE \"C\" NOT NULL,"
    "  action TEXT COLLATE \"C\" NOT NULL,"
    "  target TEXT COLLATE \"C\","
    "  body TEXT COLLATE \"C\");"
    "CREATE INDEX audit_at ON audit (at_ms);"
    /* The ledger is append-only: records and audit entries never change. */
    "CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS"
    "  $$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$;"
    "CREATE TRIGGER records_append_only BEFORE UPDATE OR DELETE ON records"
    "  FOR EACH ROW EXECUTE FUNCTION ledger_append_only();"
    "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit"
    "  FOR EACH ROW EXECUTE FUNCTION ledger_append_only();";

/* Version 2: record ids bound to nodes (see store_sqlite.c). */
static const char pg_v2[] =
    "CREATE TABLE node_ids ("
    "  prefix TEXT COLLATE \"C\" PRIMARY KEY,"
    "  node TEXT COLLATE \"C\" NOT NULL REFERENCES nodes (name),"
    "  bound_ms BIGINT NOT NULL,"
    "  how TEXT COLLATE \"C\" NOT NULL CHECK (how IN ('first-use', 'admin', 'migration')));"
    "CREATE INDEX node_ids_node ON node_ids (node);"
    "INSERT INTO node_ids (prefix, node, bound_ms, how)"
    "  SELECT DISTINCT ON (split_part(id, '-', 1)) split_part(id, '-', 1), node,"
    "         received_ms, 'migration'"
    "  FROM records WHERE position('-' in id) > 1"
    "  ORDER BY split_part(id, '-', 1), received_ms, id;";

/* Version 3: accounts, pooled packs and leases (see store_sqlite.c).
 * PostgreSQL adds the referencing column in place. */
static const char pg_v3[] =
    "CREATE TABLE accounts ("
    "  name TEXT COLLATE \"C\" PRIMARY KEY,"
    "  created_ms BIGINT NOT NULL);"
    "INSERT INTO accounts (name, created_ms) VALUES ('default', 0);"
    "ALTER TABLE packs ADD COLUMN account TEXT COLLATE \"C\" NOT NULL DEFAULT 'default'"
    "  REFERENCES accounts (name);"
    "CREATE INDEX packs_pool ON packs (account, type) WHERE node IS NULL;"
    "ALTER TABLE records ADD COLUMN account TEXT COLLATE \"C\" NOT NULL DEFAULT 'default';"
    "ALTER TABLE records ADD COLUMN lease_id TEXT COLLATE \"C\";"
    "CREATE INDEX records_charge ON records (charge_id) WHERE charge_id IS NOT NULL;"
    "CREATE TABLE leases ("
    "  id TEXT COLLATE \"C\" PRIMARY KEY,"
    "  node TEXT COLLATE \"C\" NOT NULL REFERENCES nodes (name),"
    "  account TEXT COLLATE \"C\" NOT NULL REFERENCES accounts (name),"
    "  class TEXT COLLATE \"C\" NOT NULL CHECK (class IN ('general', 'tsc')),"
    "  requested_us BIGINT NOT NULL CHECK (requested_us > 0),"
    "  granted_us BIGINT NOT NULL DEFAULT 0 CHECK (granted_us >= 0),"
    "  created_ms BIGINT NOT NULL,"
    "  expires_ms BIGINT NOT NULL,"
    "  state TEXT COLLATE \"C\" NOT NULL CHECK (state IN ('open', 'released', 'expired')),"
    "  resolved_ms BIGINT);"
    "CREATE INDEX leases_expiry ON leases (state, expires_ms);"
    "CREATE INDEX leases_node ON leases (node, state);"
    "CREATE TABLE lease_slices ("
    "  lease_id TEXT COLLATE \"C\" NOT NULL REFERENCES leases (id),"
    "  pack_id TEXT COLLATE \"C\" NOT NULL REFERENCES packs (id),"
    "  granted_us BIGINT NOT NULL CHECK (granted_us >= 0),"
    "  posted_us BIGINT NOT NULL DEFAULT 0 CHECK (posted_us >= 0),"
    "  voided INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (lease_id, pack_id));"
    "CREATE INDEX lease_slices_pack ON lease_slices (pack_id);"
    "CREATE TABLE postings ("
    "  seq BIGSERIAL PRIMARY KEY,"
    "  deduction_id TEXT COLLATE \"C\" NOT NULL REFERENCES records (id),"
    "  pack_id TEXT COLLATE \"C\" REFERENCES packs (id),"
    "  lease_id TEXT COLLATE \"C\" REFERENCES leases (id),"
    "  source TEXT COLLATE \"C\" NOT NULL CHECK (source IN ('lease', 'free', 'overage')),"
    "  amount_us BIGINT NOT NULL CHECK (amount_us > 0),"
    "  at_ms BIGINT NOT NULL);"
    "CREATE INDEX postings_deduction ON postings (deduction_id);"
    "CREATE INDEX postings_pack ON postings (pack_id) WHERE pack_id IS NOT NULL;"
    "CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings"
    "  FOR EACH ROW EXECUTE FUNCTION ledger_append_only();";

static const char *const pg_migrations[] = { pg_v1, pg_v2, pg_v3 };

static const struct store_driver pg_driver = {
    .name = "postgresql",
    .for_update = 1,
    .exec = pg_exec,
    .script = pg_script,
    .begin = pg_begin,
    .begin_snapshot = pg_begin_snapshot,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .lock_schema = pg_lock_schema,
    .check_foreign = pg_check_foreign,
    .broken = pg_broken,
    .close = pg_close,
    .migrations = pg_migrations,
    .n_migrations = (int)(sizeof pg_migrations / sizeof *pg_migrations),
};

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;   /* "relation already exists, skipping" and the like */
    (void)message;
}

int store_pg_open(const char *conninfo, struct ledger_store *st)
{
    st->drv = &pg_driver;
    /* Defaults first: values in the caller's conninfo, expanded from
     * "dbname" after them, take precedence. */
    const char *const keys[] = { "connect_timeout", "application_name", "dbname", NULL };
    const char *const vals[] = { "10", "meter-ledgerd", conninfo, NULL };
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c)
        return store_fail(st, METER_ENOMEM, "out of memory connecting to PostgreSQL");
    st->conn = c;
    if (PQstatus(c) != CONNECTION_OK) {
        store_fail(st, METER_EDB, "cannot connect to PostgreSQL: %s", PQerrorMessage(c));
        one_line(st->err);
        pg_close(st);
        return METER_EDB;
    }
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    /* No statement may hang a request thread for ever. */
    int rc = pg_simple(st, "SET statement_timeout = 30000; SET lock_timeout = 15000",
                       "configure the session");
    if (rc != METER_OK) {
        pg_close(st);
        return rc;
    }
    return METER_OK;
}
