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
 *   LEDGER_ELIMIT    a configured limit refuses it (a node holding its
 *                    maximum of open leases) (429)
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

#define LEDGER_SCHEMA_VERSION 3
#define LEDGER_SECRET_HEX     64   /* node secrets and admin tokens: 32 random bytes */
/* The ledger's own return code beside meter.h's METER_E*: a limit (429). */
#define LEDGER_ELIMIT         (-100)

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
 *              an unknown account, a deduction from a pack not assigned
 *              to `node` or of another class, or a lease deduction whose
 *              lease is not `node`'s, not of the record's account and
 *              class, or has no slice of the pack it names.
 * Deductions from pooled packs (through a lease, or an overage the
 * account's pooled packs can settle) are posted (ledger_posting) in the
 * same transaction as their record: see store_ingest.c.
 * If the transaction fails (a constraint, I/O, a lost connection) the call
 * returns the error, nothing of the batch is stored and out[] is
 * meaningless: a retry is accepted normally.  received: the arrival time
 * kept with each record (the real clock); now: the ledger's clock, which
 * decides lease expiry and pack validity for postings. */
int ledger_ingest_at(ledger_store *st, const char *node, const meter_sync_record *recs,
                     size_t n, meter_time received, meter_time now, ledger_ingest_result *out);
/* ledger_ingest_at with received = now. */
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
    char node[METER_NAME_MAX];/* "" = not assigned: pooled, spent through leases */
    char account[METER_NAME_MAX];
    int64_t reserved_us;      /* what open leases hold of it now (pooled) */
    int64_t free_us;          /* total − used − reserved: what a lease may take */
    meter_time created_at;
    char status[12];          /* refunded > frozen > expired > exhausted >
                                 pending > valid, as on the node */
} ledger_pack;

typedef struct ledger_pack_filter {
    const char *id_like;      /* substring of the id, or NULL */
    int type;                 /* meter_class, or -1 */
    const char *status;       /* or NULL */
    const char *node;         /* assigned to this node, or NULL */
    const char *account;      /* of this account, or NULL */
} ledger_pack_filter;

/* Buys a pack of `minutes` (1 … METER_PACK_MINUTES_MAX) for `account`
 * (NULL: "default"; it must exist, else METER_ENOTFOUND).  id NULL: one is
 * generated ("pk-YYYYMMDD-xxxxxxxx").  start 0: now.  node: assign at once
 * (must exist), or NULL: the pack is pooled (spent through leases). */
int ledger_pack_add(ledger_store *st, const char *id, meter_class type, int64_t minutes,
                    meter_time start, const char *node, const char *account, meter_time now,
                    const ledger_actor *who, ledger_pack *out);
int ledger_pack_get(ledger_store *st, const char *id, meter_time now, ledger_pack *out);
/* Ordered by end, start, id (the deduction order). */
int ledger_pack_list(ledger_store *st, const ledger_pack_filter *f, meter_time now,
                     ledger_pack **rows, size_t *n);
/* Assigns (or reassigns) a pack to a node: only while unused, not
 * refunded and never leased (a pooled pack that a lease has held stays
 * pooled: late usage may still post to it) (METER_EREFUSED). */
int ledger_pack_assign(ledger_store *st, const char *id, const char *node, meter_time now,
                       const ledger_actor *who, ledger_pack *out);
/* Freezes (frozen = 1) or unfreezes: METER_EREFUSED for a refunded pack,
 * METER_EEXIST when already in that state. */
int ledger_pack_freeze(ledger_store *st, const char *id, int frozen, meter_time now,
                       const ledger_actor *who, ledger_pack *out);
/* Refunds: only while now ≤ start + 5 days, unused and with nothing
 * reserved by an open lease (METER_EREFUSED); METER_EEXIST when already
 * refunded.  Resolves expired leases first (as every lease operation). */
int ledger_pack_refund(ledger_store *st, const char *id, meter_time now,
                       const ledger_actor *who, ledger_pack *out);

/* ---------------------------------------------------------------- usage -- */

typedef struct ledger_query {
    const char *node;        /* exact, or NULL */
    const char *account;     /* exact, or NULL */
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
    char account[METER_NAME_MAX];
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
/* Ordered by day, node, account, pack, ttype. */
int ledger_usage_details(ledger_store *st, const ledger_query *q,
                         ledger_detail_row **rows, size_t *n);

/* Raw usage records, oldest first (at, then id), at most q->limit, after
 * q->after.  received (may be NULL) gets each record's arrival time. */
int ledger_usage_records(ledger_store *st, const ledger_query *q,
                         meter_sync_record **rows, meter_time **received, size_t *n);

/* Reconciliation totals per node (all nodes, or `node` only), over the
 * records of `account` (NULL: every account). */
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
int ledger_totals(ledger_store *st, const char *node, const char *account,
                  ledger_total_row **rows, size_t *n);

/* ------------------------------------------------------------- accounts -- */
/*
 * An account is a customer of the farm: it owns packs, and every record
 * carries one.  Names have the syntax of node names (proto_valid_node);
 * "default" always exists (every pack and record of a schema-2 ledger is
 * its).  Accounts are never deleted.
 */

/* METER_EEXIST when taken, METER_EINVAL for a bad name.  Audited. */
int ledger_account_add(ledger_store *st, const char *name, meter_time now,
                       const ledger_actor *who);

/* One class of one account, over its packs usable now (started, not
 * ended, not frozen, not refunded; exhausted ones included). */
typedef struct ledger_account_class {
    int64_t total_us, used_us, reserved_us;
    int64_t remaining_us;     /* total − used − reserved */
    int64_t packs;            /* usable packs */
    int64_t open_leases;      /* leases open now */
} ledger_account_class;

typedef struct ledger_account {
    char name[METER_NAME_MAX];
    meter_time created_at;
    int64_t packs;            /* every pack of the account, whatever its state */
    ledger_account_class cls[2];   /* [METER_CLASS_GENERAL], [METER_CLASS_TSC] */
} ledger_account;

/* Ordered by name. */
int ledger_account_list(ledger_store *st, meter_time now, ledger_account **rows, size_t *n);
/* METER_ENOTFOUND ("no account 'x'") unless it exists. */
int ledger_account_exists(ledger_store *st, const char *name);

/* --------------------------------------------------------------- leases -- */
/*
 * A lease reserves minutes of an account's pooled packs of one class for
 * one node until it expires (ledger clock), is released, or — nothing else:
 * it resolves once (store_leases.c; PROTOCOL.md "Accounts and leases").
 *
 *   reserved(pack, now) = Σ (granted − posted) of its slices not voided of
 *                         leases open with expires_ms > now
 *   free(pack, now)     = total − used − reserved ≥ 0, always.
 *
 * Every lease operation (and ingest, and refund) first resolves the leases
 * open past their expiry: state 'expired', resolved_ms = expires_ms.
 */

#define LEDGER_LEASE_SLICES_MAX 64    /* == PROTO_LEASE_SLICES_MAX */

typedef struct ledger_lease_limits {
    int64_t ttl_ms;           /* a lease lives this long from grant or renewal */
    int64_t max_us;           /* larger requests are cut to this */
    int per_node;             /* open leases one node may hold (LEDGER_ELIMIT) */
} ledger_lease_limits;

typedef struct ledger_lease_slice {
    char pack_id[METER_NAME_MAX];
    int64_t granted_us, posted_us;
    meter_time start, end;    /* the pack's validity */
    int voided;
} ledger_lease_slice;

typedef struct ledger_lease {
    char id[METER_ID_MAX];
    char node[METER_NAME_MAX];
    char account[METER_NAME_MAX];
    meter_class cls;
    char state[12];           /* open | released | expired */
    int64_t requested_us, granted_us;
    meter_time created_at, expires_at, resolved_at;   /* resolved 0 while open */
    size_t nslices;
    ledger_lease_slice slices[LEDGER_LEASE_SLICES_MAX];
} ledger_lease;

/* Grants lease `id` (a lease id of `node`'s namespace, "<prefix>-l<seq>")
 * of `want_us` (1 …; cut to lim->max_us) of (account, cls): the account's
 * pooled packs of the class are locked in id order, then taken FIFO (end,
 * start, id) from those valid now, each up to its free minutes, at most
 * LEDGER_LEASE_SLICES_MAX of them.  *created is 1 for a new lease, 0 when
 * the id is node's already (the stored lease is returned: a retried
 * request reserves nothing more).  METER_ENOTFOUND: an unknown account, or
 * an id of another node (the same answer as for an unknown one);
 * METER_EREFUSED: nothing to reserve (nothing stored); LEDGER_ELIMIT: the
 * node holds lim->per_node open leases; METER_EINVAL: a bad id or amount. */
int ledger_lease_grant(ledger_store *st, const char *node, const char *id,
                       const char *account, meter_class cls, int64_t want_us,
                       const ledger_lease_limits *lim, meter_time now,
                       ledger_lease *out, int *created);
/* Moves the expiry of node's open lease to now + lim->ttl_ms and voids its
 * slices of packs now frozen or refunded (their unposted rest returns).
 * METER_ENOTFOUND: unknown or another node's; METER_EEXIST: resolved
 * already (the message names the state; out holds the lease). */
int ledger_lease_renew(ledger_store *st, const char *node, const char *id,
                       const ledger_lease_limits *lim, meter_time now, ledger_lease *out);
/* Resolves node's lease as released (the unposted rest returns to the
 * packs); a lease resolved already is returned as it is. */
int ledger_lease_release(ledger_store *st, const char *node, const char *id, meter_time now,
                         ledger_lease *out);
/* One lease, as of now (a lease open past its expiry reads as expired). */
int ledger_lease_get(ledger_store *st, const char *id, meter_time now, ledger_lease *out);

typedef struct ledger_lease_filter {
    const char *node, *account;   /* exact, or NULL */
    const char *state;            /* open | released | expired, or NULL */
    int limit;                    /* 1 … 1000 (0 = 100) */
} ledger_lease_filter;
/* Leases as of now, newest first (created, then id). */
int ledger_lease_list(ledger_store *st, const ledger_lease_filter *f, meter_time now,
                      ledger_lease **rows, size_t *n);

/* --------------------------------------------------------------- verify -- */

#define LEDGER_VERIFY_MAX 1000    /* violations reported at most */

/* Checks the ledger's invariants as of now, one line per violation
 * (malloc'd array of malloc'd lines; ledger_verify_free):
 *   - per pack: used = Σ its deduction records (assigned) or Σ its postings
 *     (pooled); 0 ≤ used and used + reserved ≤ total; a refunded pack has
 *     nothing reserved;
 *   - per slice: posted = Σ its 'lease' postings ≤ granted;
 *   - per lease: granted = Σ its slices' granted, Σ posted ≤ granted, and
 *     resolved_ms set exactly when it is resolved;
 *   - per deduction with a lease or with postings: Σ postings = amount;
 *   - per node and charge: Σ its deduction records = the charge's billed_us
 *     (once the charge and a deduction of it arrived; a batch cut between
 *     the deductions of one charge shows until the rest arrives).
 * METER_OK with *n = 0 means the ledger is consistent. */
int ledger_verify(ledger_store *st, meter_time now, char ***lines, size_t *n);
void ledger_verify_free(char **lines, size_t n);

#endif /* LEDGER_STORE_H */
