/*
 * store_impl.h — what the store's files share: the backend driver
 * interface and small helpers.  Nothing outside ledger/store*.c sees it.
 *
 * The operations (store_*.c) are written once, in SQL both SQLite and
 * PostgreSQL accept: parameters are written $1, $2 … (the SQLite driver
 * turns them into ?1, ?2 …), integers are 64-bit, booleans are 0/1
 * integers, and results come back fully read into memory as text (NULL for
 * SQL NULL), which keeps the two drivers small and alike.
 */
#ifndef LEDGER_STORE_IMPL_H
#define LEDGER_STORE_IMPL_H

#include <stdarg.h>

#include "store.h"

/* One statement parameter. */
typedef struct lparam {
    enum { LP_NULL, LP_INT, LP_TEXT } t;
    int64_t i;
    const char *s;
} lparam;

#define P_INT(v)  ((lparam){ .t = LP_INT, .i = (int64_t)(v) })
#define P_TEXT(v) ((lparam){ .t = LP_TEXT, .s = (v) })
#define P_NULL    ((lparam){ .t = LP_NULL })
/* Text, or NULL when the string is NULL or empty. */
#define P_TEXT0(v) ((v) && *(v) ? P_TEXT(v) : P_NULL)

/* A result: rows × cols cells of malloc'd text, NULL for SQL NULL. */
typedef struct lres {
    int nrows, ncols;
    char **cells;
    int64_t changes;   /* rows inserted/updated/deleted by the statement */
} lres;

struct ledger_store;

/* A driver.  Every function returns METER_OK or a METER_E* code with the
 * message in st->err (set through store_fail). */
struct store_driver {
    const char *name;           /* "sqlite" | "postgresql" */
    int for_update;             /* 1: supports SELECT … FOR UPDATE row locks */
    /* Runs one statement; res (may be NULL) gets its rows. */
    int (*exec)(struct ledger_store *st, const char *sql, const lparam *p, int np, lres *res);
    /* Runs a script of statements without parameters (migrations). */
    int (*script)(struct ledger_store *st, const char *sql);
    /* A write transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: BEGIN). */
    int (*begin)(struct ledger_store *st);
    /* A read-only transaction on one snapshot (SQLite: BEGIN DEFERRED in
     * WAL; PostgreSQL: REPEATABLE READ READ ONLY): every statement sees
     * the same committed state. */
    int (*begin_snapshot)(struct ledger_store *st);
    int (*commit)(struct ledger_store *st);
    void (*rollback)(struct ledger_store *st);
    /* Inside the migration transaction: serialise migrating instances. */
    int (*lock_schema)(struct ledger_store *st);
    /* Checks that the database is ours (or empty) before migrating. */
    int (*check_foreign)(struct ledger_store *st);
    int (*broken)(const struct ledger_store *st);
    void (*close)(struct ledger_store *st);
    /* migrations[v] takes the schema from version v to v + 1. */
    const char *const *migrations;
    int n_migrations;
};

struct ledger_store {
    const struct store_driver *drv;
    void *conn;                 /* sqlite3 * or PGconn * */
    int in_tx;
    char err[METER_ERRMAX];
};

/* Drivers (store_sqlite.c, store_pg.c): open the connection only. */
int store_sqlite_open(const char *path, int create, struct ledger_store *st);
int store_pg_open(const char *conninfo, struct ledger_store *st);

/* Sets st->err from a format and returns code. */
int store_fail(ledger_store *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Runs a statement (see store_driver.exec).  Convenience wrappers. */
int store_exec(ledger_store *st, const char *sql, const lparam *p, int np, lres *res);
void lres_free(lres *r);
const char *lres_get(const lres *r, int row, int col);     /* NULL for SQL NULL */
int64_t lres_int(const lres *r, int row, int col);        /* 0 for NULL */
/* Bounded copy of a text cell ("" for NULL). */
void lres_text(const lres *r, int row, int col, char *dst, size_t cap);

/* Runs fn(st, ctx) inside one write transaction: commit when it returns
 * METER_OK, else roll back.  On METER_EBUSY (locks, serialization failure,
 * deadlock, a reconnected PostgreSQL) the whole transaction is retried a
 * few times, so fn must start from scratch each time. */
int store_tx(ledger_store *st, int (*fn)(ledger_store *st, void *ctx), void *ctx);

/* Runs fn(st, ctx) inside one read-only snapshot transaction (rolled
 * back afterwards; retried on METER_EBUSY like store_tx). */
int store_snapshot(ledger_store *st, int (*fn)(ledger_store *st, void *ctx), void *ctx);

/* Writes one audit entry (inside the caller's transaction). */
int store_audit(ledger_store *st, const ledger_actor *who, meter_time now,
                const char *action, const char *target);

/* Random lowercase hex of 2*nbytes chars (RAND_bytes). */
int store_random_hex(ledger_store *st, char *out, size_t nbytes);
/* hex(SHA-256(s)) into out[65]. */
void store_sha256_hex(const char *s, char out[65]);

/* A growing array: makes room for element n (elements of `elem` bytes). */
int store_grow(ledger_store *st, void *arrp, size_t *cap, size_t n, size_t elem);

/* Bounded copy; 0 when it fits, -1 when truncated. */
int store_copy(char *dst, size_t cap, const char *src);

/* "general" / "tsc" text → meter_class (anything else reads as general:
 * the schema's CHECK allows only those two). */
meter_class store_class(const char *text);

/* ------------------------------------------------------------ leases -- */

/* What open leases hold of the pack whose id is the SQL expression
 * pack_expr, as of the parameter now_param ("$2"): Σ (granted − posted) of
 * its slices not voided, of leases open with expires_ms > now. */
#define RESERVED_OF(pack_expr, now_param) \
    "COALESCE((SELECT SUM(rs.granted_us - rs.posted_us) FROM lease_slices rs" \
    " JOIN leases rl ON rl.id = rs.lease_id WHERE rs.pack_id = " pack_expr \
    " AND rs.voided = 0 AND rl.state = 'open' AND rl.expires_ms > " now_param "), 0)"

/* Resolves every lease open past its expiry: state 'expired', resolved_ms
 * = expires_ms (one UPDATE … WHERE state = 'open', so each resolves once).
 * The first statement of every transaction that grants, renews, releases,
 * ingests or refunds (store_leases.c explains why). */
int store_expire_leases(ledger_store *st, meter_time now);

/* Reads one lease (as of now: open past expiry reads as expired) with its
 * slices; lock: FOR UPDATE on its row.  METER_ENOTFOUND when unknown. */
int store_read_lease(ledger_store *st, const char *id, meter_time now, int lock,
                     ledger_lease *out);


#endif /* LEDGER_STORE_IMPL_H */
