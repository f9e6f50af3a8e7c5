/*
 * store_sqlite.c — the SQLite backend of the ledger store (the embedded
 * default, `--db PATH`).
 *
 * One sqlite3 connection per store; the pool opens one per worker thread.
 * WAL lets readers run beside the one writer; BEGIN IMMEDIATE takes the
 * write lock at the start of every write transaction, so a transaction
 * never has to upgrade a read lock (no SQLITE_BUSY deadlocks half-way) and
 * writers are serialised — which is what makes read-check-write sequences
 * (refund only if unused, …) safe without row locks.
 *
 * The file holds every node's secret in the clear (the ledger needs them
 * to check signatures), so it is its owner's alone: created 0600, and an
 * existing one that its group or others may read or write is refused (as
 * ssh refuses such a key) rather than served.  That is checked with the
 * schema, when the server starts and by every command.  SQLite gives the
 * -wal, -shm and -journal files it creates the database file's own mode,
 * whatever the umask (os_unix.c: findCreateFileMode, robust_open), so they
 * follow; left-over ones are checked too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store_impl.h"

#define BUSY_TIMEOUT_MS 10000
/* PRAGMA application_id of ledger files: "FMLG" (libmeter's node files
 * carry their own id, so a node database given as --db is refused). */
#define LEDGER_APP_ID 0x464d4c47

static sqlite3 *db_of(struct ledger_store *st) { return st->conn; }

/* Maps an SQLite result code to a METER_E code and sets the message. */
static int fail_sqlite(struct ledger_store *st, int rc, const char *what)
{
    int code;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    /* A full disk or an I/O error: nothing was stored (the transaction
     * rolls back), and it may well pass later — transient, like a lock:
     * store_tx retries it, and the request is answered 503 with
     * Retry-After, as the PostgreSQL driver answers disk_full (class 53). */
    case SQLITE_FULL:
    case SQLITE_IOERR:
        code = METER_EBUSY;
        break;
    case SQLITE_NOMEM:
        code = METER_ENOMEM;
        break;
    case SQLITE_CONSTRAINT:
        code = (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
                   ? METER_EEXIST : METER_EDB;
        break;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        code = METER_EFOREIGN;
        break;
    default:
        code = METER_EDB;
    }
    return store_fail(st, code, "%s: %s", what,
                      db_of(st) ? sqlite3_errmsg(db_of(st)) : sqlite3_errstr(rc));
}

/* "$12" → "?12": the store writes PostgreSQL-style parameters; SQLite's
 * ?NNN binds the same numbers.  No statement of ours has a '$' elsewhere. */
static char *sqlite_sql(const char *sql)
{
    char *out = strdup(sql);
    if (out)
        for (char *p = out; *p; p++)
            if (*p == '$')
                *p = '?';
    return out;
}

static int bind_all(struct ledger_store *st, sqlite3_stmt *s, const lparam *p, int np)
{
    for (int i = 0; i < np; i++) {
        int rc;
        switch (p[i].t) {
        case LP_INT:  rc = sqlite3_bind_int64(s, i + 1, p[i].i); break;
        case LP_TEXT: rc = sqlite3_bind_text(s, i + 1, p[i].s, -1, SQLITE_TRANSIENT); break;
        default:      rc = sqlite3_bind_null(s, i + 1);
        }
        if (rc != SQLITE_OK)
            return fail_sqlite(st, rc, "bind a parameter");
    }
    return METER_OK;
}

/* Appends the current row to res (text copies). */
static int take_row(struct ledger_store *st, sqlite3_stmt *s, lres *res, size_t *cap)
{
    int nc = sqlite3_column_count(s);
    if (res->ncols == 0)
        res->ncols = nc;
    size_t need = (size_t)(res->nrows + 1) * (size_t)nc;
    if (need > *cap) {
        size_t ncap = *cap ? *cap * 2 : (size_t)nc * 16;
        while (ncap < need)
            ncap *= 2;
        char **cells = realloc(res->cells, ncap * sizeof *cells);
        if (!cells)
            return store_fail(st, METER_ENOMEM, "out of memory reading rows");
        res->cells = cells;
        *cap = ncap;
    }
    char **row = res->cells + (size_t)res->nrows * (size_t)nc;
    for (int c = 0; c < nc; c++) {
        row[c] = NULL;
        if (sqlite3_column_type(s, c) == SQLITE_NULL)
            continue;
        const unsigned char *t = sqlite3_column_text(s, c);
        if (!t || !(row[c] = strdup((const char *)t))) {
            for (int k = 0; k < c; k++)
                free(row[k]);
            return store_fail(st, METER_ENOMEM, "out of memory reading rows");
        }
    }
    res->nrows++;
    return METER_OK;
}

static int sq_exec(struct ledger_store *st, const char *sql, const lparam *p, int np, lres *res)
{
    if (res)
        memset(res, 0, sizeof *res);
    char *q = sqlite_sql(sql);
    if (!q)
        return store_fail(st, METER_ENOMEM, "out of memory");
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db_of(st), q, -1, &s, NULL);
    free(q);
    if (rc != SQLITE_OK)
        return fail_sqlite(st, rc, "prepare a statement");
    int out = bind_all(st, s, p, np);
    size_t cap = 0;
    while (out == METER_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            out = fail_sqlite(st, rc, "run a statement");
            break;
        }
        if (res)
            out = take_row(st, s, res, &cap);
    }
    sqlite3_finalize(s);
    if (out != METER_OK) {
        lres_free(res);
        return out;
    }
    if (res)
        res->changes = sqlite3_changes(db_of(st));
    return METER_OK;
}

static int sq_script(struct ledger_store *st, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db_of(st), sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int code = fail_sqlite(st, rc, "run the schema script");
        if (msg)
            store_fail(st, code, "run the schema script: %s", msg);
        sqlite3_free(msg);
        return code;
    }
    return METER_OK;
}

static int sq_begin(struct ledger_store *st)
{
    int rc = sqlite3_exec(db_of(st), "BEGIN IMMEDIATE", NULL, NULL, NULL);
    return rc == SQLITE_OK ? METER_OK : fail_sqlite(st, rc, "begin a transaction");
}

static int sq_begin_snapshot(struct ledger_store *st)
{
    int rc = sqlite3_exec(db_of(st), "BEGIN DEFERRED", NULL, NULL, NULL);
    return rc == SQLITE_OK ? METER_OK : fail_sqlite(st, rc, "begin a read transaction");
}

static int sq_commit(struct ledger_store *st)
{
    int rc = sqlite3_exec(db_of(st), "COMMIT", NULL, NULL, NULL);
    return rc == SQLITE_OK ? METER_OK : fail_sqlite(st, rc, "commit");
}

static void sq_rollback(struct ledger_store *st)
{
    if (!sqlite3_get_autocommit(db_of(st)))
        sqlite3_exec(db_of(st), "ROLLBACK", NULL, NULL, NULL);
}

static int sq_lock_schema(struct ledger_store *st)
{
    (void)st;   /* BEGIN IMMEDIATE already holds the only write lock */
    return METER_OK;
}

/* Refuses the database when it, or a -wal/-shm/-journal file beside it,
 * is open to its group or to others. */
static int check_private(struct ledger_store *st, const char *path)
{
    static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
    size_t n = strlen(path);
    char *name = malloc(n + sizeof "-journal");
    if (!name)
        return store_fail(st, METER_ENOMEM, "out of memory");
    int rc = METER_OK;
    for (size_t i = 0; i < sizeof suffix / sizeof *suffix && rc == METER_OK; i++) {
        struct stat sb;
        memcpy(name, path, n);
        strcpy(name + n, suffix[i]);
        if (stat(name, &sb) != 0 || !(sb.st_mode & 077))
            continue;
        rc = store_fail(st, METER_EDB, "%s%smode %04o lets group or others at it, and it holds "
                        "the node secrets: refused (chmod 600 it)", i ? name : "", i ? ": " : "",
                        (unsigned)(sb.st_mode & 07777));
    }
    free(name);
    return rc;
}

/* Ours: application_id is ours, or the file is empty (a new database).
 * Ours must also be private (checked here, after the foreign check: a file
 * that is another program's is refused as such, not for its mode). */
static int sq_check_foreign(struct ledger_store *st)
{
    lres r;
    int rc = sq_exec(st, "PRAGMA application_id", NULL, 0, &r);
    if (rc != METER_OK)
        return rc;
    int64_t app = lres_int(&r, 0, 0);
    lres_free(&r);
    const char *path = sqlite3_db_filename(db_of(st), "main");
    if (app == LEDGER_APP_ID)
        return path && *path ? check_private(st, path) : METER_OK;
    if (app != 0)
        return store_fail(st, METER_EFOREIGN, "not a ledger database (application_id %lld)",
                          (long long)app);
    rc = sq_exec(st, "SELECT count(*) FROM sqlite_master", NULL, 0, &r);
    if (rc != METER_OK)
        return rc;
    int64_t objects = lres_int(&r, 0, 0);
    lres_free(&r);
    if (objects > 0)
        return store_fail(st, METER_EFOREIGN, "not a ledger database (it holds other tables)");
    if (path && *path && (rc = check_private(st, path)) != METER_OK)
        return rc;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA application_id = %d", LEDGER_APP_ID);
    return sq_script(st, sql);
}

static int sq_broken(const struct ledger_store *st)
{
    (void)st;
    return 0;
}

static void sq_close(struct ledger_store *st)
{
    sqlite3_close(db_of(st));
    st->conn = NULL;
}

/* Schema version 1.  The version itself lives in ledger_schema (both
 * backends alike), written by the migration runner (store.c). */
static const char sqlite_v1[] =
    "CREATE TABLE nodes ("
    "  name TEXT PRIMARY KEY,"
    "  secret TEXT NOT NULL,"
    "  secret_sha256 TEXT NOT NULL UNIQUE,"
    "  created_ms INTEGER NOT NULL,"
    "  last_seen_ms INTEGER);"
    "CREATE TABLE admins ("
    "  name TEXT PRIMARY KEY,"
    "  token_sha256 TEXT NOT NULL UNIQUE,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE nonces ("
    "  node TEXT NOT NULL,"
    "  nonce TEXT NOT NULL,"
    "  expires_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (node, nonce));"
    "CREATE INDEX nonces_expiry ON nonces (expires_ms);"
    "CREATE TABLE packs ("
    "  id TEXT PRIMARY KEY,"
    "  type TEXT NOT NULL CHECK (type IN ('general', 'tsc')),"
    "  total_us INTEGER NOT NULL CHECK (total_us > 0),"
    "  used_us INTEGER NOT NULL DEFAULT 0,"
    "  deductions INTEGER NOT NULL DEFAULT 0,"
    "  start_ms INTEGER NOT NULL,"
    "  end_ms INTEGER NOT NULL,"
    "  frozen INTEGER NOT NULL DEFAULT 0,"
    "  refunded_ms INTEGER,"
    "  node TEXT REFERENCES nodes (name),"
    "  created_ms INTEGER NOT NULL);"
    "CREATE INDEX packs_node ON packs (node);"
    "CREATE TABLE records ("
    "  id TEXT PRIMARY KEY,"
    "  kind TEXT NOT NULL CHECK (kind IN ('usage', 'deduction', 'settlement', 'pack_event')),"
    "  node TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL,"
    "  received_ms INTEGER NOT NULL,"
    "  job TEXT, output TEXT, session_id TEXT, codec TEXT,"
    "  width INTEGER, height INTEGER,"
    "  duration_us INTEGER CHECK (duration_us >= 0),"
    "  billed_us INTEGER CHECK (billed_us >= 0),"
    "  deductible INTEGER, daily INTEGER, started_ms INTEGER, state TEXT,"
    "  class TEXT, ttype TEXT, day TEXT,"
    "  charge_id TEXT, pack_id TEXT,"
    "  amount_us INTEGER CHECK (amount_us >= 0),"
    "  before_us INTEGER, after_us INTEGER,"
    "  action TEXT);"
    "CREATE INDEX records_kind_at ON records (kind, at_ms, id);"
    "CREATE INDEX records_node_kind ON records (node, kind);"
    "CREATE INDEX records_pack ON records (pack_id) WHERE pack_id IS NOT NULL;"
    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  at_ms INTEGER NOT NULL,"
    "  admin TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  target TEXT,"
    "  body TEXT);"
    "CREATE INDEX audit_at ON audit (at_ms);"
    /* The ledger is append-only: records and audit entries never change. */
    "CREATE TRIGGER records_no_update BEFORE UPDATE ON records"
    "  BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;"
    "CREATE TRIGGER records_no_delete BEFORE DELETE ON records"
    "  BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;"
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;";

/* Version 2: record ids are bound to nodes.  Each id prefix (a node
 * database's node_id) belongs to one node; existing prefixes go to the
 * node that sent the earliest record under them. */
static const char sqlite_v2[] =
    "CREATE TABLE node_ids ("
    "  prefix TEXT PRIMARY KEY,"
    "  node TEXT NOT NULL REFERENCES nodes (name),"
    "  bound_ms INTEGER NOT NULL,"
    "  how TEXT NOT NULL CHECK (how IN ('first-use', 'admin', 'migration')));"
    "CREATE INDEX node_ids_node ON node_ids (node);"
    "INSERT INTO node_ids (prefix, node, bound_ms, how)"
    "  SELECT prefix, node, received_ms, 'migration' FROM ("
    "    SELECT substr(id, 1, instr(id, '-') - 1) AS prefix, node, received_ms,"
    "           row_number() OVER (PARTITION BY substr(id, 1, instr(id, '-') - 1)"
    "                              ORDER BY received_ms, id) AS rn"
    "    FROM records WHERE instr(id, '-') > 1)"
    "  WHERE rn = 1;";

/* Version 3: accounts, pooled packs and leases (farm mode, issue 7).
 * Every existing pack and record belongs to account 'default'.  packs is
 * rebuilt to gain its account column: SQLite adds a column with a
 * REFERENCES clause only when its default is NULL (foreign keys are on),
 * and 'default' is the right default.  No table refers to packs in v2, so
 * the rebuild drops nothing else.  postings are append-only, like records. */
static const char sqlite_v3[] =
    "CREATE TABLE accounts ("
    "  name TEXT PRIMARY KEY,"
    "  created_ms INTEGER NOT NULL);"
    "INSERT INTO accounts (name, created_ms) VALUES ('default', 0);"
    "CREATE TABLE packs_v3 ("
    "  id TEXT PRIMARY KEY,"
    "  type TEXT NOT NULL CHECK (type IN ('general', 'tsc')),"
    "  total_us INTEGER NOT NULL CHECK (total_us > 0),"
    "  used_us INTEGER NOT NULL DEFAULT 0,"
    "  deductions INTEGER NOT NULL DEFAULT 0,"
    "  start_ms INTEGER NOT NULL,"
    "  end_ms INTEGER NOT NULL,"
    "  frozen INTEGER NOT NULL DEFAULT 0,"
    "  refunded_ms INTEGER,"
    "  node TEXT REFERENCES nodes (name),"
    "  created_ms INTEGER NOT NULL,"
    "  account TEXT NOT NULL DEFAULT 'default' REFERENCES accounts (name));"
    "INSERT INTO packs_v3 (id, type, total_us, used_us, deductions, start_ms, end_ms, frozen,"
    "  refunded_ms, node, created_ms, account)"
    "  SELECT id, type, total_us, used_us, deductions, start_ms, end_ms, frozen, refunded_ms,"
    "         node, created_ms, 'default' FROM packs;"
    "DROP TABLE packs;"
    "ALTER TABLE packs_v3 RENAME TO packs;"
    "CREATE INDEX packs_node ON packs (node);"
    "CREATE INDEX packs_pool ON packs (account, type) WHERE node IS NULL;"
    "ALTER TABLE records ADD COLUMN account TEXT NOT NULL DEFAULT 'default';"
    "ALTER TABLE records ADD COLUMN lease_id TEXT;"
    "CREATE INDEX records_charge ON records (charge_id) WHERE charge_id IS NOT NULL;"
    "CREATE TABLE leases ("
    "  id TEXT PRIMARY KEY,"
    "  node TEXT NOT NULL REFERENCES nodes (name),"
    "  account TEXT NOT NULL REFERENCES accounts (name),"
    "  class TEXT NOT NULL CHECK (class IN ('general', 'tsc')),"
    "  requested_us INTEGER NOT NULL CHECK (requested_us > 0),"
    "  granted_us INTEGER NOT NULL DEFAULT 0 CHECK (granted_us >= 0),"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('open', 'released', 'expired')),"
    "  resolved_ms INTEGER);"
    "CREATE INDEX leases_expiry ON leases (state, expires_ms);"
    "CREATE INDEX leases_node ON leases (node, state);"
    "CREATE TABLE lease_slices ("
    "  lease_id TEXT NOT NULL REFERENCES leases (id),"
    "  pack_id TEXT NOT NULL REFERENCES packs (id),"
    "  granted_us INTEGER NOT NULL CHECK (granted_us >= 0),"
    "  posted_us INTEGER NOT NULL DEFAULT 0 CHECK (posted_us >= 0),"
    "  voided INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (lease_id, pack_id));"
    "CREATE INDEX lease_slices_pack ON lease_slices (pack_id);"
    "CREATE TABLE postings ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  deduction_id TEXT NOT NULL REFERENCES records (id),"
    "  pack_id TEXT REFERENCES packs (id),"
    "  lease_id TEXT REFERENCES leases (id),"
    "  source TEXT NOT NULL CHECK (source IN ('lease', 'free', 'overage')),"
    "  amount_us INTEGER NOT NULL CHECK (amount_us > 0),"
    "  at_ms INTEGER NOT NULL);"
    "CREATE INDEX postings_deduction ON postings (deduction_id);"
    "CREATE INDEX postings_pack ON postings (pack_id) WHERE pack_id IS NOT NULL;"
    "CREATE TRIGGER postings_no_update BEFORE UPDATE ON postings"
    "  BEGIN SELECT RAISE(ABORT, 'postings are append-only'); END;"
    "CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings"
    "  BEGIN SELECT RAISE(ABORT, 'postings are append-only'); END;";

static const char *const sqlite_migrations[] = { sqlite_v1, sqlite_v2, sqlite_v3 };

static const struct store_driver sqlite_driver = {
    .name = "sqlite",
    .for_update = 0,
    .exec = sq_exec,
    .script = sq_script,
    .begin = sq_begin,
    .begin_snapshot = sq_begin_snapshot,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .lock_schema = sq_lock_schema,
    .check_foreign = sq_check_foreign,
    .broken = sq_broken,
    .close = sq_close,
    .migrations = sqlite_migrations,
    .n_migrations = (int)(sizeof sqlite_migrations / sizeof *sqlite_migrations),
};

/* Creates the database file, empty and 0600, unless it exists. */
static int create_private(struct ledger_store *st, const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        return METER_OK;
    }
    if (errno == EEXIST)
        return METER_OK;
    return store_fail(st, METER_EDB, "cannot create: %s", strerror(errno));
}

int store_sqlite_open(const char *path, int create, struct ledger_store *st)
{
    st->drv = &sqlite_driver;
    if (create && strcmp(path, ":memory:") != 0) {
        int rc = create_private(st, path);
        if (rc != METER_OK)
            return rc;
    }
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        store_fail(st, METER_EDB, "cannot open: %s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return METER_EDB;
    }
    st->conn = db;
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(db, 1);
    /* WAL: readers beside the writer; synchronous FULL: a commit the ledger
     * acknowledged survives a power cut (it is money).  The first statement
     * reads the file, so this is also where a non-database is found. */
    rc = sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                          " PRAGMA foreign_keys = ON;", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int code = fail_sqlite(st, rc, "cannot open");
        sq_close(st);
        return code;
    }
    return METER_OK;
}
