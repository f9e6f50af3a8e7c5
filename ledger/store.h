/*
 * store.h — the ledger's storage: one interface, two backends.
 *
 * A ledger_store is one open connection to the ledger database, either an
 * SQLite file (store_sqlite.c: the embedded default) or PostgreSQL through
 * libpq (store_pg.c: several ledger instances share one farm).  The
 * operations below are written once (store_*.c) in the SQL both backends
 * speak, so both behave the same and pass the same test suite
 * (tests/ledger/test_ledger_store.c).
 *
 * Errors: every int function returns METER_OK or a negative METER_E* code
 * (meter.h) and leaves a one-line message in ledger_store_errmsg():
 *   METER_EINVAL     bad argument
 *   METER_ENOTFOUND  no such pack / node
 *   METER_EEXIST     the name or id is taken, or the pack is already in the
 *                    state asked for (HTTP 409)
 *   METER_EREFUSED   a billing rule refuses (refund window, pack used) (422)
 *   METER_EBUSY      transient: locked, serialization failure, deadlock, or
 *                    the database is unreachable — retry later (503)
 *   METER_EDB        any other database failure (500)
 *   METER_EVERSION   the schema is newer than this program
 *   METER_EFOREIGN   not a ledger database
 * A failed call changes nothing: each write is one transaction, retried
 * internally a few times on METER_EBUSY.
 *
 * Time: functions that depend on "now" take it as an argument (epoch ms),
 * so the rules can be tested at exact boundaries.
 *
 * Threads: a store is used by one thread at a time (pool.h hands them out).
 * Memory: arrays returned through `T **rows, size_t *n` are malloc'd;
 * release them with free().
 */
#ifndef LEDGER_STORE_H
#define LEDGER_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "meter.h"

#define LEDGER_SCHEMA_VERSION 2
#define LEDGER_SECRET_HEX     64   /* node secrets and admin tokens: 32 random bytes */

typedef struct ledger_store ledger_store;

enum ledger_open_flags {
    /* Create the database if needed and migrate an older schema forward
     * (one transaction; PostgreSQL: under an advisory lock, so instances
     * starting together migrate once).  Without it the schema must already
     * be current. */
    LEDGER_OPEN_MIGRATE = 1u << 0,
};

/* Opens a store: exactly one of sqlite_path and pg_conninfo is non-NULL.
 * A schema newer than LEDGER_SCHEMA_VERSION is refused (METER_EVERSION),
 * as is an SQLite file that belongs to another program (METER_EFOREIGN).
 * On failure *out is NULL and err says why. */
int ledger_store_open(const char *sqlite_path, const char *pg_conninfo, unsigned flags,
                      ledger_store **out, char err[METER_ERRMAX]);
void ledger_store_close(ledger_store *st);
const char *ledger_store_errmsg(const ledger_store *st);
/* "sqlite" or "postgresql". */
const char *ledger_store_backend(const ledger_store *st);
/* The schema version found in the database. */
int ledger_store_schema(ledger_store *st, int *version);
/* A trivial query: METER_OK when the database answers (for /healthz). */
int ledger_store_ping(ledger_store *st);
/* 1 when the connection is known to be broken (the pool drops it). */
int ledger_store_broken(const ledger_store *st);

/* Who performs an admin action, for the audit log (written in the same
 * transaction as the action).  body: the request body or a description. */
typedef struct ledger_actor {
    const char *admin;   /* admin name, or "cli" for the command line */
    const char *body;    /* may be NULL */
} ledger_actor;

/* -------------------------------------------------------------- ingest -- */

typedef enum ledger_outcome {
    LEDGER_ACCEPTED = 0,
    LEDGER_DUPLICATE,
    LEDGER_REJECTED,
} ledger_outcome;

typedef struct ledger_ingest_result {
    ledger_outcome outcome;
    char reason[METER_ERRMAX];   /* for LEDGER_REJECTED */
} ledger_ingest_result;

/* Stores a batch of decoded records from `node` in ONE transaction: each
 * record is inserted under its id (the primary key) together with its
 * effects (a deduction adds to its pack's used amount), so an id is taken
 * only if the whole transaction commits.  Per record, out[i] says:
 *   accepted   stored now;
 *   duplicate  an equal id was already stored (earlier, or earlier in
 *              this batch) — nothing changes;
 *   rejected   never storable: its node is not `node`, an unknown kind,
 *              or a deduction from a pack not assigned to `node` or of
 *              another class.
 * If the transaction fails (a constraint, I/O, a lost connection) the call
 * returns the error, nothing of the batch is stored and out[] is
 * meaningless: a retry is accepted normally.  now: the arrival time kept
 * with each record. */
int ledger_ingest(ledger_store *st, const char *node, const meter_sync_record *recs,
                  size_t n, meter_time now, ledger_ingest_result *out);

/* ---------------------------------------------------------------- nodes -- */

typedef struct ledger_node {
    char name[METER_NAME_MAX];
    meter_time created_at;
    meter_time last_seen;     /* 0 = never */
} ledger_node;

/* Creates a node with a fresh random secret (hex, LEDGER_SECRET_HEX chars,
 * written to secret; shown once by the caller).  METER_EEXIST if taken. */
int ledger_node_add(ledger_store *st, const char *name, meter_time now,
                    const ledger_actor *who, char secret[LEDGER_SECRET_HEX + 1]);
int ledger_node_list(ledger_store *st, ledger_node **rows, size_t *n);
/* Record ids are "<prefix>-<k><seq>" (protocol.h) and each prefix belongs
 * to one node: a node's first batch binds the prefix it uses; any further
 * prefix (a node whose database was re-created) only an admin binds here.
 * METER_EEXIST when the prefix is bound already, METER_ENOTFOUND for an
 * unknown node.  Audited as node.bind. */
int ledger_node_bind(ledger_store *st, const char *node, const char *prefix, meter_time now,
                     const ledger_actor *who);
/* The node's bound prefixes, space-separated, oldest first (malloc'd). */
int ledger_node_prefixes(ledger_store *st, const char *node, char **list);
/* The node's secret (to check a signature); METER_ENOTFOUND if unknown. */
int ledger_node_secret(ledger_store *st, const char *name,
                       char secret[LEDGER_SECRET_HEX + 1]);
/* The node whose secret this is (bearer tokens); METER_ENOTFOUND if none. */
int ledger_node_by_secret(ledger_store *st, const char *secret, char name[METER_NAME_MAX]);
/* Notes an authenticated request: stores the nonce (NULL for bearer
 * requests) until expires, refusing one already stored for this node
 * (METER_EEXIST: a replay), forgets expired nonces, and sets last-seen. */
int ledger_node_seen(ledger_store *st, const char *name, const char *nonce,
                     meter_time now, meter_time expires);
/* Whether the node's nonce is still remembered (a read, storing nothing):
 * METER_EEXIST when it is (a replay), METER_OK when not.  Lets the server
 * refuse a replayed request before reading its body; ledger_node_seen
 * stays the check that counts. */
int ledger_nonce_used(ledger_store *st, const char *name, const char *nonce, meter_time now);

/* --------------------------------------------------------------- admins -- */

/* Creates an admin with a fresh random token (printed once by the caller;
 * only its SHA-256 is stored).  METER_EEXIST if the name is taken. */
int ledger_admin_add(ledger_store *st, const char *name, meter_time now,
                     char token[LEDGER_SECRET_HEX + 1]);
/* The admin holding this token; METER_ENOTFOUND if none. */
int ledger_admin_by_token(ledger_store *st, const char *token, char name[METER_NAME_MAX]);

typedef struct ledger_audit_row {
    int64_t seq;
    meter_time at;
    char admin[METER_NAME_MAX];
    char action[32];
    char target[METER_NAME_MAX];
    char *body;              /* malloc'd, may be NULL; see ledger_audit_free */
} ledger_audit_row;
/* Audit entries with from ≤ at < to (0 = unbounded), oldest first. */
int ledger_audit_list(ledger_store *st, meter_time from, meter_time to,
                      ledger_audit_row **rows, size_t *n);
void ledger_audit_free(ledger_audit_row *rows, size_t n);

/* ---------------------------------------------------------------- packs -- */

typedef struct ledger_pack {
    char id[METER_NAME_MAX];
    meter_class type;
    int64_t total_us;         /* never changes */
    int64_t used_us;          /* Σ deductions its node reported */
    int64_t remaining_us;     /* total − used */
    int64_t deductions;       /* how many deduction records */
    meter_time start, end;    /* end = start + 1 calendar year (UTC) */
    int frozen;
    meter_time refunded_at;   /* 0 = not refunded */
    char node[METER_NAME_MAX];/* "" = not assigned */
    meter_time created_at;
    char status[12];          /* refunded > frozen > expired > exhausted >
                                 pending > valid, as on the node */
} ledger_pack;

typedef struct ledger_pack_filter {
    const char *id_like;      /* substring of the id, or NULL */
    int type;                 /* meter_class, or -1 */
    const char *status;       /* or NULL */
    const char *node;         /* assigned to this node, or NULL */
} ledger_pack_filter;

/* Buys a pack of `minutes` (1 … METER_PACK_MINUTES_MAX).  id NULL: one is
 * generated ("pk-YYYYMMDD-xxxxxxxx").  start 0: now.  node: assign at once
 * (must exist), or NULL. */
int ledger_pack_add(ledger_store *st, const char *id, meter_class type, int64_t minutes,
                    meter_time start, const char *node, meter_time now,
                    const ledger_actor *who, ledger_pack *out);
int ledger_pack_get(ledger_store *st, const char *id, meter_time now, ledger_pack *out);
/* Ordered by end, start, id (the deduction order). */
int ledger_pack_list(ledger_store *st, const ledger_pack_filter *f, meter_time now,
                     ledger_pack **rows, size_t *n);
/* Assigns (or reassigns) a pack to a node: only while unused, not
 * refunded (METER_EREFUSED). */
int ledger_pack_assign(ledger_store *st, const char *id, const char *node, meter_time now,
                       const ledger_actor *who, ledger_pack *out);
/* Freezes (frozen = 1) or unfreezes: METER_EREFUSED for a refunded pack,
 * METER_EEXIST when already in that state. */
int ledger_pack_freeze(ledger_store *st, const char *id, int frozen, meter_time now,
                       const ledger_actor *who, ledger_pack *out);
/* Refunds: only while now ≤ start + 5 days and unused (METER_EREFUSED);
 * METER_EEXIST when already refunded. */
int ledger_pack_refund(ledger_store *st, const char *id, meter_time now,
                       const ledger_actor *who, ledger_pack *out);

/* ---------------------------------------------------------------- usage -- */

typedef struct ledger_query {
    const char *node;        /* exact, or NULL */
    const char *pack_id;     /* exact; "-" = overage rows; NULL = any */
    int type;                /* meter_class or -1 */
    const char *ttype;       /* exact, or NULL */
    const char *job;         /* records: exact job, or NULL */
    meter_time from, to;     /* [from, to) on the record's at; 0 = unbounded */
    const char *after;       /* records: the last id of the previous page */
    int limit;               /* records: 1 … 1000 (0 = 100) */
} ledger_query;

/* Usage details: one row per day × node × pack × transcoding type, from
 * the deduction records (overage rows have pack_id ""). */
typedef struct ledger_detail_row {
    char day[11];
    char node[METER_NAME_MAX];
    char pack_id[METER_NAME_MAX];
    meter_class type;
    char ttype[METER_TTYPE_MAX];
    int64_t used_us;
    int64_t before_us, after_us;   /* pack balance before the day's first and
                                      after its last deduction; -1 for overage */
    meter_time first_at, last_at;
    int64_t count;
    int overflow;                  /* used_us beyond int64: shown as INT64_MAX */
} ledger_detail_row;
/* Ordered by day, node, pack, ttype. */
int ledger_usage_details(ledger_store *st, const ledger_query *q,
                         ledger_detail_row **rows, size_t *n);

/* Raw usage records, oldest first (at, then id), at most q->limit, after
 * q->after.  received (may be NULL) gets each record's arrival time. */
int ledger_usage_records(ledger_store *st, const ledger_query *q,
                         meter_sync_record **rows, meter_time **received, size_t *n);

/* Reconciliation totals per node (all nodes, or q_node only). */
typedef struct ledger_total_row {
    char node[METER_NAME_MAX];
    int64_t usage_count;
    int64_t duration_us;     /* Σ usage duration */
    int64_t billed_us;       /* Σ usage billed */
    int64_t covered_us;      /* Σ deductions from packs */
    int64_t overage_us;      /* Σ overage deductions */
    int64_t records;         /* records of every kind */
    int overflow;            /* a sum beyond int64: shown as INT64_MAX */
} ledger_total_row;
int ledger_totals(ledger_store *st, const char *node, ledger_total_row **rows, size_t *n);

#endif /* LEDGER_STORE_H */
