/*
 * internal.h — what libmeter's files share and nobody else sees.
 *
 * Money invariants kept by this library (checked by meter_verify):
 *   I1  per pack: total_us − remaining_us = Σ amount_us of its deductions,
 *       and 0 ≤ remaining_us ≤ total_us (also a CHECK constraint);
 *   I2  a deduction only takes from a pack of its class that, at the
 *       deduction's time, has started, not ended, is not frozen and is not
 *       refunded;
 *   I3  every charge (a realtime usage record or a daily settlement) is
 *       fully accounted for: Σ its deductions (overage rows included) =
 *       its billed_us;
 *   I4  usage, deductions, settlements and pack events are append-only
 *       (triggers refuse UPDATE and DELETE);
 *   I5  accounts never mix: a deduction is of its charge's account and
 *       takes only from packs of that account; a lease slice (a pack row
 *       with lease_id) is of its lease's account and class, and is taken
 *       from only while the deduction's time is before its expires_at.
 * All of one fact (usage + deductions + outbox entries) is written in one
 * BEGIN IMMEDIATE transaction, so a crash leaves all of it or none.
 */
#ifndef METER_INTERNAL_H
#define METER_INTERNAL_H

#include <sqlite3.h>
#include <stdarg.h>

#include "meter.h"

#define METER_SCHEMA_VERSION 2
#define METER_APP_ID "ffmeter"
#define METER_APP_ID_INT "0x464D5452"  /* PRAGMA application_id: "FMTR" */
#define METER_BUSY_TIMEOUT_MS 10000
/* The last millisecond a time may name: 9999-12-31T23:59:59.999Z (what
 * meter_parse_time reads and the wire carries). */
#define METER_TIME_MAX_MS INT64_C(253402300799999)

struct meter_store {
    sqlite3 *db;
    char path[4096];
    char err[METER_ERRMAX];
    int readonly;
};

/* Sets st->err from a printf format and returns code (for `return err(...)`). */
int meter_fail(meter_store *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same, for a failed SQLite call: maps the SQLite error to a METER_E code and
 * appends sqlite3_errmsg.  `what` names the operation. */
int meter_fail_db(meter_store *st, const char *what);
/* Writes a one-line message into an err buffer (NULL allowed). */
int meter_fail_buf(char *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Transactions: BEGIN IMMEDIATE (waits up to the busy timeout), COMMIT,
 * ROLLBACK.  tx_end commits when rc == METER_OK, else rolls back, and
 * returns the final code. */
int meter_tx_begin(meter_store *st);
int meter_tx_end(meter_store *st, int rc);

/* Prepares sql; on failure sets the error and returns NULL. */
sqlite3_stmt *meter_prepare(meter_store *st, const char *sql);
/* Steps a statement expected to finish (no rows); finalizes it. */
int meter_exec_stmt(meter_store *st, sqlite3_stmt *s, const char *what);
/* Runs one statement with no parameters. */
int meter_exec(meter_store *st, const char *sql);

/* Text column as a bounded copy ("" for NULL). */
void meter_col_text(sqlite3_stmt *s, int col, char *dst, size_t cap);
/* Makes room for element n of a malloc'd array (*arrp, capacity *cap,
 * elements of `elem` bytes), doubling; METER_ENOMEM leaves it as it was. */
int meter_grow(void *arrp, size_t *cap, size_t n, size_t elem);
/* Steps s (and finalizes it), calling read(s, row, ctx) for each result
 * row into a growing malloc'd array of elem-byte rows (zeroed first).  On
 * failure the array is freed and the error set. */
int meter_collect(meter_store *st, sqlite3_stmt *s, size_t elem,
                  void (*read)(sqlite3_stmt *, void *row, void *ctx), void *ctx,
                  void **rows, size_t *n);
/* Bounded copy; returns -1 when src does not fit. */
int meter_copy(char *dst, size_t cap, const char *src);

/* The next global sequence number of this database (meta 'seq'); must be
 * called inside a write transaction.  Every record id is
 * "<node_id>-<kind><seq>", and seq orders all records of a database. */
int meter_next_id(meter_store *st, char kind, int64_t *seq, char id[METER_ID_MAX]);

/* Applies schema migrations from version `from` (schema.c). */
int meter_schema_migrate(meter_store *st, int from);

/* Settings read inside libmeter. */
int meter_get_rounding(meter_store *st, meter_rounding *out);
int meter_get_daily(meter_store *st, int *daily);
int meter_get_day_offset(meter_store *st, int *offset_min);
int meter_get_node(meter_store *st, char node[METER_NAME_MAX]);
/* A setting's text into buf (METER_ENOTFOUND when absent). */
int meter_get_setting_text(meter_store *st, const char *key, char *buf, size_t cap);
/* One item of lease_accounts, "ACCOUNT" or "ACCOUNT:CLASS": 1 with a
 * class (*cls set), 0 without, -1 when it is neither. */
int meter_lease_item(const char *item, char account[METER_NAME_MAX], meter_class *cls);
/* The account to use: `given` when not NULL or "" (it must be valid:
 * METER_EINVAL naming `what`), else the store's `account` setting. */
int meter_resolve_account(meter_store *st, const char *given, const char *what,
                          char account[METER_NAME_MAX]);
/* Farm mode (lease_accounts not empty): *farm = 1, and *open_anyway = 1
 * when lease_policy is continue and the last sync attempt failed — an
 * ENFORCE job without minutes may then run (lease.c). */
int meter_enforce_rule(meter_store *st, int *farm, int *open_anyway);

/* "YYYY-MM-DD" of a time shifted by offset minutes. */
void meter_day_of(meter_time t, int offset_min, char day[11]);
/* The first millisecond after that day (the end of day `day`). */
meter_time meter_day_end(const char day[11], int offset_min);
/* t + n calendar years (UTC), Feb 29 → Mar 1. */
meter_time meter_add_years(meter_time t, int n);
/* Parses "+08:00" / "-05:30" / "Z" into minutes. */
int meter_parse_offset(const char *s, int *minutes);

/* Names checked everywhere: non-empty, ≤ METER_NAME_MAX-1 bytes, printable,
 * no control characters, valid UTF-8 (they go to the ledger in JSON).
 * `what` names the field in the error. */
int meter_check_name(char *err, const char *what, const char *s);
/* 1 when s is valid UTF-8 (no overlong forms, surrogates, or code points
 * beyond U+10FFFF: what JSON, and so the ledger, takes). */
int meter_utf8_valid(const char *s);
/* 1 when s can be a record id on the wire (sync/PROTOCOL.md): 1 to
 * METER_ID_MAX-1 bytes of letters, digits, '.', '_', '-', ':'. */
int meter_check_record_id(const char *s);

/* One charge for meter_charge: what to charge, and where the result goes. */
struct meter_charge_req {
    const char *charge_id;     /* the usage record or settlement it pays for */
    const char *account;       /* every row is in this account */
    meter_class cls;
    const char *ttype;
    int64_t billed_us;
    int deductible;            /* 0 sends everything to overage */
    meter_time at;             /* the deductions' time */
    meter_time start_before;   /* only packs with start_at < start_before (0 = any started) */
    const char *day;           /* the billing day the rows count under (NULL: the day of at) */
    /* outputs, each may be NULL / 0: */
    int64_t *covered, *overage;
    char *packs_csv;           /* the ids used, comma separated */
    size_t packs_cap;
};

/* Charges r->billed_us pack-µs of (cls, ttype) at time r->at against valid
 * packs of r->account (earliest end, then start, then id; a lease slice
 * only while at < its expires_at), splitting, and writes the rest as an
 * overage row; every row in r->account.  Must run inside a write
 * transaction.  *covered and *overage get what packs paid and what went
 * to overage. */
int meter_charge(meter_store *st, const struct meter_charge_req *r);

/* Whether a usage may be recorded: job and output names, duration range,
 * time (not before 1970, not in the future beyond a minute of skew), and
 * the classification (spec gets it).  METER_EINVAL with the reason. */
int meter_usage_check(meter_store *st, const meter_usage_in *in, meter_spec *spec);

/* One usage record inside an open transaction: classify, bill, insert,
 * deduct (realtime) and enqueue for sync.  state: "manual", "done",
 * "interrupted".  session_id may be NULL.  bill_us 0 bills in->duration_us
 * under the store's rounding policy; > 0 bills exactly bill_us (a session
 * that already rounded its whole output). */
int meter_record_tx(meter_store *st, const meter_usage_in *in,
                    const char *session_id, const char *state,
                    meter_time started_at, int64_t bill_us,
                    meter_usage_result *out, char *packs_csv, size_t packs_cap);

/* Appends to the sync outbox. */
int meter_outbox_add(meter_store *st, const char *kind, const char *record_id,
                     meter_time at);

/* Host name, this boot's id, and a process's start time in ticks since
 * boot (-1 when unreadable): together they tell a pid's reuse apart. */
void meter_hostname(char buf[METER_NAME_MAX]);
void meter_boot_id(char buf[40]);
int64_t meter_proc_start(int pid);
/* 0 when the process (pid, proc_start) of this host and boot is gone,
 * 1 when alive — or when it cannot tell (no /proc, EPERM): a live job must
 * never be billed as interrupted. */
int meter_process_alive(const char *boot_id, int pid, int64_t proc_start);

/* Errors worth spooling for (the database may come back); the rest —
 * a wrong path, a foreign or newer file, bad input — fail loudly. */
int meter_error_transient(int code);

/* ------------------------------------------------------------ sessions -- */

struct meter_seg {
    int width, height;        /* 0×0 for audio */
    int64_t duration_us;
    int64_t rate_num, rate_den;  /* cached for ENFORCE estimates; den 0 = none */
};

/* Everything needed to bill a session: held in memory by a running
 * session, stored in the sessions tables at checkpoints, written to spool
 * files, and read back by the reaper and the spool importer. */
struct meter_session_state {
    char id[METER_ID_MAX];
    char job[METER_NAME_MAX];
    char output[METER_NAME_MAX];
    char node[METER_NAME_MAX];
    char host[METER_NAME_MAX];
    char account[METER_NAME_MAX];  /* "": the store's setting, when billed */
    meter_class cls;
    char codec[32];
    unsigned flags;
    char boot_id[40];
    char spool_dir[4096];
    int pid;
    int64_t proc_start;
    meter_time opened_at, updated_at;
    int final;          /* spool files: 1 finalized, 0 a checkpoint */
    int interrupted;
    int nseg;
    size_t capseg;
    struct meter_seg *seg;
};

/* Appends a segment (no merge); METER_ENOMEM on failure. */
int meter_state_push(struct meter_session_state *s, int width, int height, int64_t dur);

/* Inside a write transaction: marks the session finalized with `status`
 * (inserting its row if the database never saw it, as for spooled
 * sessions), stores its segments, and records one usage per run of equal
 * size at time `at`, each in state `status` ("done", "interrupted", or
 * "manual" for meter_record_once).  With METER_SESSION_IDEMPOTENT in
 * s->flags and the job and output billed before
 * (meter_session_billed_before), it bills nothing and the status becomes
 * "duplicate".  METER_EFINALIZED if the row is already
 * final.  sum may be NULL. */
int meter_session_bill_tx(meter_store *st, const struct meter_session_state *s,
                          const char *status, meter_time at, meter_session_summary *sum);

/* The idempotency rule (METER_SESSION_IDEMPOTENT, meter_record_once):
 * the first session other than exclude_id that billed this job and output
 * in full — status "done" (a metered output that reached its end) or
 * "manual" (a record entered by hand); an interrupted run does not count.
 * found gets its id, or "" when there is none. */
int meter_session_billed_before(meter_store *st, const char *job, const char *output,
                                const char *exclude_id, char found[METER_ID_MAX]);

/* Reads a spool file; METER_EINVAL (message in st) when malformed. */
int meter_spool_read(meter_store *st, const char *path, struct meter_session_state *s);

/* Stores a session's segments as they are now (checkpoints). */
int meter_session_save_segments(meter_store *st, const struct meter_session_state *s);

/* Spool files (spool.c): "<dir>/<session id>.spool", written atomically. */
int meter_spool_write(const char *dir, const struct meter_session_state *s,
                      char err[METER_ERRMAX]);
void meter_spool_remove(const char *dir, const char *session_id);
/* Whether dir can take spool files now: creates it when missing (its parent
 * must exist, as for meter_spool_write), then creates and removes a probe
 * file.  METER_EIO with "cannot create spool directory '…': <cause>" or
 * "cannot write in spool directory '…': <cause>" when it cannot. */
int meter_spool_probe(const char *dir, char err[METER_ERRMAX]);

#endif /* METER_INTERNAL_H */
