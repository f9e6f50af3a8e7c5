/*
 * store.c — opening a ledger store, schema migrations, transactions and the
 * helpers the operations share (store_impl.h).
 *
 * Schema versions: the table ledger_schema holds one row, the version.  A
 * newer version than LEDGER_SCHEMA_VERSION is refused; an older one is
 * migrated forward, every step in the same transaction as the version
 * bump, so a failed migration leaves the previous schema intact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "store_impl.h"

int store_fail(ledger_store *st, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
    return code;
}

const char *ledger_store_errmsg(const ledger_store *st)
{
    return st ? st->err : "no store";
}

const char *ledger_store_backend(const ledger_store *st)
{
    return st->drv->name;
}

int ledger_store_broken(const ledger_store *st)
{
    return st->drv->broken(st);
}

/* ------------------------------------------------------------ results -- */

int store_exec(ledger_store *st, const char *sql, const lparam *p, int np, lres *res)
{
    return st->drv->exec(st, sql, p, np, res);
}

void lres_free(lres *r)
{
    if (!r)
        return;
    size_t n = (size_t)r->nrows * (size_t)r->ncols;
    for (size_t i = 0; r->cells && i < n; i++)
        free(r->cells[i]);
    free(r->cells);
    memset(r, 0, sizeof *r);
}

const char *lres_get(const lres *r, int row, int col)
{
    if (row < 0 || row >= r->nrows || col < 0 || col >= r->ncols)
        return NULL;
    return r->cells[(size_t)row * (size_t)r->ncols + (size_t)col];
}

int64_t lres_int(const lres *r, int row, int col)
{
    const char *v = lres_get(r, row, col);
    return v ? strtoll(v, NULL, 10) : 0;
}

void lres_text(const lres *r, int row, int col, char *dst, size_t cap)
{
    const char *v = lres_get(r, row, col);
    store_copy(dst, cap, v ? v : "");
}

/* ------------------------------------------------------- transactions -- */

int store_tx(ledger_store *st, int (*fn)(ledger_store *st, void *ctx), void *ctx)
{
    int rc = METER_EBUSY;
    /* Retries only transient failures; each attempt starts from scratch. */
    for (int attempt = 0; attempt < 5 && rc == METER_EBUSY; attempt++) {
        if (attempt > 0) {
            /* 20, 40, 80, 160 ms plus jitter: let the other writer finish */
            unsigned char j = 0;
            RAND_bytes(&j, 1);
            struct timespec ts = { 0, (long)((10 << attempt) + j % 20) * 1000000L };
            nanosleep(&ts, NULL);
        }
        rc = st->drv->begin(st);
        if (rc != METER_OK)
            continue;
        st->in_tx = 1;
        rc = fn(st, ctx);
        if (rc == METER_OK)
            rc = st->drv->commit(st);
        if (rc != METER_OK) {
            char keep[METER_ERRMAX];
            memcpy(keep, st->err, sizeof keep);   /* ROLLBACK must not mask why */
            st->drv->rollback(st);
            memcpy(st->err, keep, sizeof keep);
        }
        st->in_tx = 0;
    }
    return rc;
}

int store_snapshot(ledger_store *st, int (*fn)(ledger_store *st, void *ctx), void *ctx)
{
    int rc = METER_EBUSY;
    for (int attempt = 0; attempt < 5 && rc == METER_EBUSY; attempt++) {
        rc = st->drv->begin_snapshot(st);
        if (rc != METER_OK)
            continue;
        st->in_tx = 1;
        rc = fn(st, ctx);
        char keep[METER_ERRMAX];
        memcpy(keep, st->err, sizeof keep);   /* ROLLBACK must not mask why */
        st->drv->rollback(st);
        memcpy(st->err, keep, sizeof keep);
        st->in_tx = 0;
    }
    return rc;
}

/* --------------------------------------------------------------- open -- */

static int read_version(ledger_store *st, int *version)
{
    lres r;
    int rc = store_exec(st, "SELECT max(version) FROM ledger_schema", NULL, 0, &r);
    if (rc != METER_OK)
        return rc;
    *version = (int)lres_int(&r, 0, 0);
    lres_free(&r);
    return METER_OK;
}

int ledger_store_schema(ledger_store *st, int *version)
{
    return read_version(st, version);
}

static int migrate_tx(ledger_store *st, void *ctx)
{
    (void)ctx;
    int rc = st->drv->lock_schema(st);
    if (rc == METER_OK)
        rc = st->drv->check_foreign(st);
    if (rc == METER_OK)
        rc = st->drv->script(st, "CREATE TABLE IF NOT EXISTS ledger_schema (version INTEGER NOT NULL)");
    int v = 0;
    if (rc == METER_OK)
        rc = read_version(st, &v);
    if (rc != METER_OK)
        return rc;
    if (v > LEDGER_SCHEMA_VERSION)
        return store_fail(st, METER_EVERSION, "the ledger database has schema version %d, newer "
                          "than this meter-ledgerd (%d): upgrade meter-ledgerd", v,
                          LEDGER_SCHEMA_VERSION);
    for (; v < LEDGER_SCHEMA_VERSION; v++) {
        if (v >= st->drv->n_migrations)
            return store_fail(st, METER_EDB, "no migration from schema version %d", v);
        rc = st->drv->script(st, st->drv->migrations[v]);
        if (rc != METER_OK) {
            char why[METER_ERRMAX];
            memcpy(why, st->err, sizeof why);
            return store_fail(st, rc, "migrating to schema version %d: %s", v + 1, why);
        }
        lparam p[] = { P_INT(v + 1) };
        rc = store_exec(st, "DELETE FROM ledger_schema", NULL, 0, NULL);
        if (rc == METER_OK)
            rc = store_exec(st, "INSERT INTO ledger_schema (version) VALUES ($1)", p, 1, NULL);
        if (rc != METER_OK)
            return rc;
    }
    return METER_OK;
}

static int check_current(ledger_store *st)
{
    int v = 0;
    int rc = read_version(st, &v);
    if (rc != METER_OK) {
        char why[METER_ERRMAX];
        memcpy(why, st->err, sizeof why);
        return store_fail(st, rc == METER_EBUSY ? rc : METER_EFOREIGN,
                          "not a ledger database, or not initialised (run meter-ledgerd "
                          "migrate): %s", why);
    }
    if (v > LEDGER_SCHEMA_VERSION)
        return store_fail(st, METER_EVERSION, "the ledger database has schema version %d, newer "
                          "than this meter-ledgerd (%d): upgrade meter-ledgerd", v,
                          LEDGER_SCHEMA_VERSION);
    if (v < LEDGER_SCHEMA_VERSION)
        return store_fail(st, METER_EVERSION, "the ledger database has schema version %d, older "
                          "than this meter-ledgerd (%d): run meter-ledgerd migrate", v,
                          LEDGER_SCHEMA_VERSION);
    return METER_OK;
}

int ledger_store_open(const char *sqlite_path, const char *pg_conninfo, unsigned flags,
                      ledger_store **out, char err[METER_ERRMAX])
{
    *out = NULL;
    if ((sqlite_path == NULL) == (pg_conninfo == NULL)) {
        snprintf(err, METER_ERRMAX, "give either an SQLite path or a PostgreSQL conninfo");
        return METER_EINVAL;
    }
    if ((sqlite_path && !*sqlite_path) || (pg_conninfo && !*pg_conninfo)) {
        snprintf(err, METER_ERRMAX, "the database %s is empty",
                 sqlite_path ? "path" : "conninfo");
        return METER_EINVAL;
    }
    ledger_store *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, METER_ERRMAX, "out of memory");
        return METER_ENOMEM;
    }
    int migrate = (flags & LEDGER_OPEN_MIGRATE) != 0;
    int rc = sqlite_path ? store_sqlite_open(sqlite_path, migrate, st)
                         : store_pg_open(pg_conninfo, st);
    if (rc == METER_OK)
        rc = migrate ? store_tx(st, migrate_tx, NULL) : check_current(st);
    if (rc != METER_OK) {
        snprintf(err, METER_ERRMAX, "%s", st->err);
        if (st->conn)
            st->drv->close(st);
        free(st);
        return rc;
    }
    *out = st;
    return METER_OK;
}

void ledger_store_close(ledger_store *st)
{
    if (!st)
        return;
    if (st->conn)
        st->drv->close(st);
    free(st);
}

int ledger_store_ping(ledger_store *st)
{
    lres r;
    int rc = store_exec(st, "SELECT 1", NULL, 0, &r);
    if (rc == METER_OK && lres_int(&r, 0, 0) != 1)
        rc = store_fail(st, METER_EDB, "the database gave a wrong answer to SELECT 1");
    lres_free(&r);
    return rc;
}

/* ------------------------------------------------------------ helpers -- */

int store_audit(ledger_store *st, const ledger_actor *who, meter_time now,
                const char *action, const char *target)
{
    static const char cli[] = "cli";
    const char *body = who && who->body ? who->body : NULL;
    /* A request body can be up to the body limit; the audit keeps 64 KiB. */
    char *cut = NULL;
    if (body && strlen(body) > 65536) {
        cut = strndup(body, 65536);
        if (!cut)
            return store_fail(st, METER_ENOMEM, "out of memory");
        body = cut;
    }
    lparam p[] = { P_INT(now), P_TEXT(who && who->admin ? who->admin : cli), P_TEXT(action),
                   P_TEXT0(target), body ? P_TEXT(body) : P_NULL };
    int rc = store_exec(st, "INSERT INTO audit (at_ms, admin, action, target, body)"
                            " VALUES ($1, $2, $3, $4, $5)", p, 5, NULL);
    free(cut);
    return rc;
}

int store_random_hex(ledger_store *st, char *out, size_t nbytes)
{
    unsigned char buf[64];
    if (nbytes > sizeof buf || RAND_bytes(buf, (int)nbytes) != 1)
        return store_fail(st, METER_EDB, "no randomness (RAND_bytes failed)");
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", buf[i]);
    out[2 * nbytes] = '\0';
    return METER_OK;
}

void store_sha256_hex(const char *s, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) != 1 || n != 32) {
        out[0] = '\0';   /* never matches a stored hash */
        return;
    }
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int store_grow(ledger_store *st, void *arrp, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return METER_OK;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*(void **)arrp, ncap * elem);
    if (!p)
        return store_fail(st, METER_ENOMEM, "out of memory");
    *(void **)arrp = p;
    *cap = ncap;
    return METER_OK;
}

int store_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        memcpy(dst, src, cap - 1);
        dst[cap - 1] = '\0';
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

meter_class store_class(const char *text)
{
    return text && !strcmp(text, "tsc") ? METER_CLASS_TSC : METER_CLASS_GENERAL;
}
