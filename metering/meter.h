/*
 * meter.h — the public contract of libmeter.
 *
 * libmeter classifies transcoding output (class × codec × resolution tier),
 * keeps prepaid resource packs and an append-only usage ledger in one SQLite
 * file, deducts usage from packs (earliest-expiring first) and meters running
 * jobs through sessions that checkpoint and finalize exactly once.
 *
 * Units (exact, integers only on every path that moves money):
 *   - durations and pack balances are int64 MICROSECONDS of media time
 *     ("pack-µs"); one pack minute is METER_US_PER_MIN;
 *   - times are int64 MILLISECONDS since the Unix epoch, UTC (meter_time);
 *   - ratios are rationals num/den taken from one rate table.
 *
 * Errors: every function returning int returns METER_OK (0) or a negative
 * METER_E* code.  Functions taking a store leave a one-line message naming
 * the problem in meter_errmsg(store); functions without a store write it to
 * an `err` buffer of METER_ERRMAX bytes when one is given.  A failed call
 * changes nothing in the database (each write is one transaction).
 *
 * Threads: a meter_store is used by one thread at a time.  Sessions each own
 * their own store, so different sessions may run on different threads.
 * Processes: any number of processes may share one database file.
 *
 * A NULL store is accepted only where a comment says so (meter_classify).
 *
 * Memory: arrays returned through `T **rows, size_t *n` are allocated by
 * libmeter and released with meter_free().
 */
#ifndef METER_H
#define METER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define METER_VERSION_STRING "0.1.0"

#define METER_US_PER_MIN  INT64_C(60000000)
#define METER_MS_PER_DAY  INT64_C(86400000)
#define METER_ERRMAX      256   /* size of every error buffer */
#define METER_NAME_MAX    128   /* longest job, output, node or pack id (bytes) */
#define METER_TTYPE_MAX   64    /* longest transcoding-type name */
#define METER_ID_MAX      96    /* longest record id */
#define METER_ACCOUNT_DEFAULT "default"  /* the account every store starts with */
#define METER_KEY_MAX     64    /* longest idempotency key of a manual record
                                   (bytes, without the NUL) */
#define METER_ACCOUNT_DEFAULT "default"  /* the account that always exists */

/* Largest duration accepted: 10^15 µs (about 31.7 years).  Billing
 * multiplies in 128 bits; a bill over METER_BILLED_MAX_US is refused. */
#define METER_DURATION_MAX_US INT64_C(1000000000000000)
#define METER_RATIO_NUM_MAX   1000000
/* Largest amount one record can bill or deduct: 10^18 µs (about 31,700
 * years of pack time), so one record always fits int64 with room to spare;
 * a bill beyond it is refused.  Sums over many records are the reader's
 * care (the ledger sums in 128 bits). */
#define METER_BILLED_MAX_US   INT64_C(1000000000000000000)
/* Largest pack: 10^7 minutes (about 19 years of one output). */
#define METER_PACK_MINUTES_MAX INT64_C(10000000)
#define METER_PACK_TOTAL_MAX_US (METER_PACK_MINUTES_MAX * METER_US_PER_MIN)

enum meter_error {
    METER_OK          =   0,
    METER_EINVAL      =  -1,  /* bad argument or input value                 */
    METER_ENOTFOUND   =  -2,  /* no such pack / session / record             */
    METER_EEXIST      =  -3,  /* id already taken                            */
    METER_EREFUSED    =  -4,  /* a billing rule refuses it (refund window…)  */
    METER_EDB         =  -5,  /* SQLite failed (I/O, full disk, read-only…)  */
    METER_EVERSION    =  -6,  /* database written by a newer ffmeter         */
    METER_EFOREIGN    =  -7,  /* not an ffmeter database, or corrupt         */
    METER_ENOMEM      =  -8,
    METER_EBUSY       =  -9,  /* locked longer than the busy timeout         */
    METER_EIO         = -10,  /* file I/O outside SQLite (spool files)       */
    METER_ENOMINUTES  = -11,  /* enforce: no pack minutes left for the class */
    METER_EFINALIZED  = -12,  /* session already finalized                   */
};

/* The store: one open database (see "store" below). */
typedef struct meter_store meter_store;

/* A static English name for a METER_E* code ("invalid argument", …). */
const char *meter_strerror(int code);

/* Releases any array or string libmeter returned. NULL is fine. */
void meter_free(void *p);

/* ---------------------------------------------------------------- time -- */

typedef int64_t meter_time;  /* milliseconds since 1970-01-01T00:00:00Z */

/* "Now": the env METER_NOW when set (ISO 8601 with a zone, or integer epoch
 * milliseconds) — the one documented test clock — else the wall clock.
 * A malformed METER_NOW is reported once on stderr and the wall clock used. */
meter_time meter_now(void);

/* Parses ISO 8601 with an explicit zone: "2026-11-26T09:30:00Z",
 * "2026-11-26T17:30:00+08:00", "2026-11-26 09:30:00.250+0000"; also a bare
 * date "2026-11-26" taken as midnight UTC.  Rejects anything else. */
int meter_parse_time(const char *s, meter_time *out, char err[METER_ERRMAX]);

/* Formats as "2026-11-26T09:30:00Z" (or with "+08:00" for a non-zero
 * offset in minutes); milliseconds appear only when non-zero. */
void meter_format_time(meter_time t, int offset_min, char buf[40]);

/* Formats pack-µs as minutes with 3 decimals, truncated ("12.345"). */
void meter_format_minutes(int64_t us, char buf[32]);

/* -------------------------------------------------------- config files -- */

/* Reads a settings file of "key = value" lines, as meter-ledgerd's
 * --config file and the sync client's sync.conf are: blanks around the
 * key, the '=' and the value are dropped; blank lines and lines starting
 * with '#' (after blanks) are skipped.  set(ctx, key, value, err) is called
 * for each setting in file order; it returns 0 to go on, or anything else
 * with a message in its err (METER_ERRMAX bytes) to stop.  A line longer
 * than line_max − 1 bytes (its newline counted) is refused.
 * METER_EIO when the file cannot be opened or read ("cannot read config
 * file PATH: …"); METER_EINVAL for a line too long, a line without '=' or a
 * setting set refused, the message starting "PATH:LINE: " (PATH cut at 100
 * bytes); METER_ENOMEM.  The line buffer is wiped before it is freed. */
int meter_conf_read(const char *path, size_t line_max,
                    int (*set)(void *ctx, const char *key, const char *value,
                               char err[METER_ERRMAX]),
                    void *ctx, char err[METER_ERRMAX]);

/* ---------------------------------------------------- classes and rates -- */

typedef enum meter_class {
    METER_CLASS_GENERAL = 0,
    METER_CLASS_TSC     = 1,
} meter_class;

/* "general" | "tsc" (case-insensitive). */
int meter_class_parse(const char *s, meter_class *out);
const char *meter_class_name(meter_class c);

enum meter_spec_flags {
    METER_SPEC_OVERSIZE = 1u << 0,  /* short edge > 4320: billed as 8K, flagged */
    METER_SPEC_AUDIO    = 1u << 1,
    METER_SPEC_REMUX    = 1u << 2,
};

/* What an output is, for billing. */
typedef struct meter_spec {
    char ttype[METER_TTYPE_MAX];  /* "Standard.H265.FHD", "TESHD-10.H264.HD",
                                     "Audio", "TESHD-20.Audio", "Remuxing" */
    char codec[16];               /* canonical: "H264", "H265", "AV1", … */
    char tier[8];                 /* "SD" … "8K"; "" for audio and remux  */
    unsigned flags;               /* METER_SPEC_* */
} meter_spec;

/* Maps (class, codec, width, height) to a transcoding type.
 * codec: h264|avc|libx264|h264_*, h265|hevc|libx265|hevc_*, av1|libsvtav1|
 * libaom-av1|librav1e|av1_*, mvhevc, an audio codec (aac, opus, mp3, ac3,
 * eac3, flac, vorbis, pcm, audio), or copy|remux; plus any codec the
 * store's rate table was extended with (pass st = NULL for built-ins only).
 * Video needs width, height > 0; the tier is decided by the short edge.
 * Audio and remux ignore width and height. */
int meter_classify(const meter_store *st, meter_class cls,
                   const char *codec, int width, int height,
                   meter_spec *out, char err[METER_ERRMAX]);

/* One row of the effective rate table. */
typedef struct meter_rate {
    meter_class cls;
    char ttype[METER_TTYPE_MAX];
    int64_t num, den;   /* one output minute consumes num/den pack minutes;
                           den == 0: no published ratio — not deductible,
                           all usage of this type is overage */
    int overridden;     /* 1 when the row comes from the database */
} meter_rate;

/* The built-in rate table (billing-rules.md §3) overlaid with the rows in
 * the store's `rates` table.  Sorted by class, then ttype. */
int meter_rates_list(meter_store *st, meter_rate **rows, size_t *n);

/* The effective rate for one (class, ttype); METER_ENOTFOUND if the type
 * has no row at all (then it is also not deductible). */
int meter_rate_lookup(meter_store *st, meter_class cls,
                      const char *ttype, meter_rate *out);

/* Overrides or adds a rate: ratio is "4", "0.25", "1/4" or "none".
 * ttype must be one the classifier can produce for the class: general
 * "Standard.<CODEC>.<TIER>", "Audio", "Remuxing"; tsc "TESHD-10.<CODEC>.<TIER>",
 * "TESHD-20.Audio", "Remuxing" (CODEC upper-case letters/digits, TIER one of
 * SD HD FHD 2K 4K 8K).  A new CODEC becomes classifiable; a built-in alias
 * the classifier renames (HEVC → H265, AAC → Audio) is refused. */
int meter_rate_set(meter_store *st, meter_class cls,
                   const char *ttype, const char *ratio);
/* Removes an override (back to the built-in row, or gone if none). */
int meter_rate_unset(meter_store *st, meter_class cls, const char *ttype);

typedef enum meter_rounding {
    METER_ROUND_EXACT       = 0,  /* billed = ceil(duration × ratio) in µs */
    METER_ROUND_CEIL_MINUTE = 1,  /* duration first rounded up to whole
                                     minutes, once per output: per
                                     meter_record() call, and per session
                                     (the round-up is billed with the
                                     session's longest segment) */
} meter_rounding;

/* Pack-µs a duration consumes under a rate and a rounding policy.
 * A non-deductible rate (den == 0) still yields the duration-based amount
 * at ratio 1, so overage keeps a size; *deductible says which it is. */
int meter_bill(const meter_rate *rate, meter_rounding rounding,
               int64_t duration_us, int64_t *billed_us, int *deductible);

/* --------------------------------------------------------------- store -- */

enum meter_open_flags {
    METER_OPEN_CREATE   = 1u << 0,  /* create and initialise a new database */
    METER_OPEN_READONLY = 1u << 1,
};

/* The database path: $METER_DB if set, else /var/lib/ffmeter/meter.db. */
const char *meter_default_db_path(void);

/* Opens (and with METER_OPEN_CREATE creates) a store.  Refuses — leaving
 * the file untouched — a file that is not SQLite, is corrupt, is another
 * application's database, or was written by a newer schema version; older
 * schemas are migrated forward in one transaction.  WAL, busy_timeout 10 s.
 * On failure *out is NULL and err holds the reason. */
int meter_open(const char *path, unsigned flags, meter_store **out,
               char err[METER_ERRMAX]);
void meter_close(meter_store *st);

/* The last error message of this store (never NULL). */
const char *meter_errmsg(const meter_store *st);

/* Settings kept in the database:
 *   node        this node's name in usage records (default: hostname)
 *   node_id     random id fixed at creation (read-only)
 *   rounding    exact | ceil-minute
 *   settlement  realtime | daily
 *   day_offset  the offset whose midnight starts a billing day, "+00:00"
 *   account     the account usage and packs belong to when none is given
 *               (default "default"; meter_account_valid)
 *   lease_accounts  farm mode: comma list of ACCOUNT or ACCOUNT:CLASS
 *               (class general or tsc; a part after the last ':' that is
 *               a class name is the class) this node leases minutes for
 *               from the ledger; "" (default) = standalone, no leases
 *   lease_policy    continue | stop: with ENFORCE in farm mode and no
 *               minutes, whether a job may run while the ledger is
 *               unreachable (default continue; see meter_session_open)
 *   lease_minutes   the smallest lease asked, whole minutes 1 … 10^7
 *               (default 10)
 * get returns a malloc'd string (meter_free); set validates the value. */
int meter_setting_get(meter_store *st, const char *key, char **value);
int meter_setting_set(meter_store *st, const char *key, const char *value);

/* Schema version of this libmeter (PRAGMA user_version of its databases).
 * Version 2 added accounts and lease slices; a version-1 database is
 * migrated when opened, every row of it in account "default". */
int meter_schema_version(void);

/* ------------------------------------------------------------ accounts -- */

/* Account names (the customer a pack, a usage, a deduction belongs to):
 * 1 … METER_NAME_MAX−1 bytes of [A-Za-z0-9._:-] — the syntax of node names
 * on the wire.  1 when s is one.  Pure: no store. */
int meter_account_valid(const char *s);

/* --------------------------------------------------------------- packs -- */

typedef struct meter_pack {
    char id[METER_NAME_MAX];  /* a lease slice: "<source_id>@<lease_id>" */
    char account[METER_NAME_MAX];
    char lease_id[METER_ID_MAX];    /* "" = an own pack; else the lease this
                                       slice belongs to (meter_lease_granted) */
    char source_id[METER_NAME_MAX]; /* a slice: the ledger's pack */
    meter_time expires_at;  /* a slice: no deduction at or after (local
                               clock); 0 = none (own packs) */
    meter_class type;
    int64_t total_us;       /* never changes */
    int64_t remaining_us;   /* total − Σ deductions */
    meter_time start;       /* purchase = start of validity */
    meter_time end;         /* start + 1 year (calendar year, UTC) */
    int frozen;
    meter_time refunded_at; /* 0 when not refunded */
    int64_t deductions;     /* number of deduction records against it */
    char status[12];        /* refunded > frozen > expired > exhausted >
                               pending (start in the future) > valid; a
                               slice past expires_at that would be valid or
                               pending is "expired" */
} meter_pack;

/* The rules of a pack, one copy for the node and the ledger (the ledger
 * links libmeter for them).  Pure functions: no store, no clock. */
typedef struct meter_pack_state {
    meter_time start, end;
    int64_t total_us, remaining_us;
    int64_t deductions;     /* deduction records against it */
    int frozen;
    meter_time refunded_at; /* 0 when not refunded */
} meter_pack_state;

#define METER_PACK_REFUND_WINDOW_MS (5 * METER_MS_PER_DAY)

/* The end of a pack's validity: start + 1 calendar year, UTC (a pack
 * bought on Feb 29 ends on Mar 1). */
meter_time meter_pack_end(meter_time start);
/* "refunded", "frozen", "expired", "exhausted" (remaining ≤ 0), "pending"
 * (not started) or "valid" — the first that applies, in that order. */
const char *meter_pack_status(const meter_pack_state *p, meter_time now);
/* The last instant a refund is accepted: start + 5 × 24 h (the whole 5th
 * day counts). */
meter_time meter_pack_refundable_until(meter_time start);
/* METER_OK when the pack may be refunded now: not refunded (else
 * METER_EEXIST), never deducted from and now ≤ refundable_until (else
 * METER_EREFUSED); err says why. */
int meter_pack_may_refund(const meter_pack_state *p, const char *id, meter_time now,
                          char err[METER_ERRMAX]);
/* METER_OK when the pack may be frozen (frozen 1) or unfrozen (0):
 * METER_EREFUSED for a refunded pack, METER_EEXIST when it already is. */
int meter_pack_may_freeze(const meter_pack_state *p, const char *id, int frozen,
                          char err[METER_ERRMAX]);
/* Pack ids: 1 … METER_NAME_MAX−1 bytes of [A-Za-z0-9._:-], not "-" (the
 * overage marker). */
int meter_pack_id_valid(const char *s);
/* A generated id, "pk-YYYYMMDD-xxxxxxxx": the start day (UTC), then 8 hex
 * characters of randomness the caller supplies. */
int meter_pack_id_make(meter_time start, const char *tail_hex, char out[METER_NAME_MAX]);

/* Buys a pack of `minutes` (1 … 10^7) whole minutes for `account` (NULL:
 * the store's `account` setting; else meter_account_valid).  id NULL:
 * generated ("pk-YYYYMMDD-xxxxxxxx").  start 0: now.  out may be NULL.
 * The pack and its purchase event are the account's. */
int meter_pack_add_account(meter_store *st, const char *account, const char *id,
                           meter_class type, int64_t minutes, meter_time start,
                           meter_pack *out);
/* meter_pack_add_account with the store's `account` setting. */
int meter_pack_add(meter_store *st, const char *id, meter_class type,
                   int64_t minutes, meter_time start, meter_pack *out);
int meter_pack_get(meter_store *st, const char *id, meter_pack *out);

typedef struct meter_pack_filter {
    const char *id_like;   /* substring of the id, or NULL */
    int type;              /* meter_class, or -1 for any */
    const char *status;    /* "valid", "expired", …, or NULL */
    const char *account;   /* exact account, or NULL for any */
} meter_pack_filter;
/* Packs in deduction order (end, start, id), lease slices included.
 * filter may be NULL. */
int meter_pack_list(meter_store *st, const meter_pack_filter *filter,
                    meter_pack **rows, size_t *n);

/* Freeze / unfreeze: METER_EREFUSED for refunded packs; freezing a frozen
 * pack or unfreezing an unfrozen one is METER_EEXIST, with the reason
 * (meter_pack_may_freeze). */
int meter_pack_freeze(meter_store *st, const char *id);
int meter_pack_unfreeze(meter_store *st, const char *id);
/* Refund: only within 5 × 24 h of purchase (now ≤ start + 120 h, so all of
 * the 5th day counts) and only if the pack was never deducted from; else
 * METER_EREFUSED with the reason (METER_EEXIST when already refunded;
 * meter_pack_may_refund). */
int meter_pack_refund(meter_store *st, const char *id);

/* Pack-µs usable right now by `cls` of `account` (NULL: the store's
 * `account` setting): its valid own packs and its lease slices not past
 * their expiry — what the deduction engine could take now. */
int meter_available_account(meter_store *st, const char *account, meter_class cls,
                            int64_t *us);
/* meter_available_account with the store's `account` setting. */
int meter_available(meter_store *st, meter_class cls, int64_t *us);

/* --------------------------------------------------------------- usage -- */

/* One measured output (or one segment of it at one resolution). */
typedef struct meter_usage_in {
    const char *job;        /* required, ≤ METER_NAME_MAX */
    const char *output;     /* required: the rendition's label */
    meter_class cls;
    const char *codec;      /* see meter_classify */
    int width, height;      /* video: > 0; audio/remux: ignored */
    int64_t duration_us;    /* 1 … METER_DURATION_MAX_US */
    meter_time at;          /* when it was recorded; 0 = now */
    const char *account;    /* NULL (or ""): the store's `account` setting */
} meter_usage_in;

typedef struct meter_usage_result {
    char id[METER_ID_MAX];          /* globally unique: "<node_id>-u<seq>" */
    char ttype[METER_TTYPE_MAX];
    int64_t billed_us;              /* pack-µs this usage consumes */
    int64_t covered_us;             /* of which deducted from packs */
    int64_t overage_us;             /* of which no pack covered */
    int settled;                    /* 0 in daily mode until `settle` */
} meter_usage_result;

/* Records one usage: classify, bill, deduct (realtime mode) from valid packs
 * of the same class and account earliest end first (then start, then id),
 * splitting across packs — a lease slice only while at < its expires_at;
 * the rest is overage.  Usage + deductions + outbox entries in
 * one transaction.  out may be NULL. */
int meter_record(meter_store *st, const meter_usage_in *in,
                 meter_usage_result *out);

/* meter_record() once per idempotency key, for callers that may repeat a
 * call (`meterctl record` from a scheduler that retries).
 *   key NULL: the key is the job and output, under the rule of
 *     METER_SESSION_IDEMPOTENT: when a usage of in->job and in->output was
 *     already billed in full — by an earlier record, or by a metered output
 *     that ended "done" (an interrupted run does not count) — nothing is
 *     billed, whatever the other values.
 *   key given (1 … METER_KEY_MAX letters, digits, '.', '_', '-', ':'): when
 *     a record with this key exists with the same job, output, class, codec
 *     (as given), width, height and duration, nothing is billed; a key
 *     already used for other values is refused (METER_EEXIST: one key, two
 *     usages, is the caller's mistake).  Records with distinct keys bill
 *     separately, even for one job and output.
 * in->at is never compared: the first record's time stands.  Keys are per
 * database (per node).
 * *already (may be NULL) is 1 when nothing was billed because the record
 * exists, 0 when it was billed now.  out (may be NULL) describes the
 * record either way: the id and transcoding type of its first usage
 * record, the amounts summed over all of them (a metered output has one
 * per picture size).
 * The record is a session of status "manual" (meter_sessions(), and the
 * job+output rule above), id "<node_id>-m:<key>" with a key; its usage
 * records have state "manual". */
int meter_record_once(meter_store *st, const meter_usage_in *in, const char *key,
                      meter_usage_result *out, int *already);

typedef struct meter_settle_result {
    int days;          /* (day, class, ttype) groups settled */
    int64_t billed_us;
    int64_t covered_us;
    int64_t overage_us;
} meter_settle_result;

/* Daily settlement: usage of every day before today (in day_offset) not yet
 * settled is deducted per (day, account, class, ttype), from that account's
 * packs valid now whose start is before that day's end (a pack bought on D+1 cannot pay day D).
 * Idempotent; a no-op in realtime mode except for usage recorded while the
 * store was in daily mode.  out may be NULL. */
int meter_settle(meter_store *st, meter_settle_result *out);

/* ------------------------------------------------------------- queries -- */

typedef struct meter_query {
    const char *pack_id;   /* exact, or NULL; "-" selects overage rows */
    int type;              /* meter_class, or -1 */
    const char *ttype;     /* exact transcoding type, or NULL */
    const char *job;       /* jobs query only: exact job id, or NULL */
    meter_time from, to;   /* [from, to); 0 = unbounded */
    const char *account;   /* exact account, or NULL for any */
} meter_query;

/* The console's usage details: one row per day × account × pack ×
 * transcoding type. */
typedef struct meter_usage_row {
    char account[METER_NAME_MAX];
    char day[11];                  /* "2026-11-26" in day_offset: the day of
                                      the deduction, or for daily settlement
                                      the day of the usage it settles */
    char pack_id[METER_NAME_MAX];  /* "" for overage */
    meter_class type;
    char ttype[METER_TTYPE_MAX];
    int64_t used_us;               /* Σ deducted that day */
    int64_t before_us;             /* pack balance before the day's first */
    int64_t after_us;              /* and after its last deduction */
    meter_time first_at, last_at;
    int64_t count;                 /* deduction records summed */
} meter_usage_row;
int meter_usage_details(meter_store *st, const meter_query *q,
                        meter_usage_row **rows, size_t *n);

/* The raw per-output records. */
typedef struct meter_job_row {
    char id[METER_ID_MAX];
    char job[METER_NAME_MAX];
    char output[METER_NAME_MAX];
    char node[METER_NAME_MAX];
    char account[METER_NAME_MAX];
    meter_class cls;
    char ttype[METER_TTYPE_MAX];
    char codec[16];
    int width, height;
    int64_t duration_us, billed_us, covered_us, overage_us;
    meter_time started_at, recorded_at;
    char state[12];                /* done | interrupted | manual */
    int settled;                   /* realtime: always 1; daily: 1 once its
                                      day and type were settled.  Daily usage
                                      is charged per (day, type) settlement,
                                      so its covered/overage stay 0 here: see
                                      meter_usage_details for the money. */
} meter_job_row;
int meter_jobs(meter_store *st, const meter_query *q,
               meter_job_row **rows, size_t *n);

/* Running and finished sessions, for `meterctl jobs --sessions`. */
typedef struct meter_session_row {
    char id[METER_ID_MAX];
    char job[METER_NAME_MAX];
    char output[METER_NAME_MAX];
    char account[METER_NAME_MAX];
    meter_class cls;
    char codec[16];
    char status[12];               /* running | done | interrupted |
                                      duplicate (IDEMPOTENT, billed before) |
                                      failed (could not be billed; verify
                                      reports it) | manual (a record entered
                                      by hand, meter_record_once) */
    int64_t duration_us;           /* as of the last checkpoint */
    int segments;
    int pid;
    meter_time opened_at, updated_at;
} meter_session_row;
int meter_sessions(meter_store *st, const meter_query *q,
                   meter_session_row **rows, size_t *n);

/* -------------------------------------------------------------- verify -- */

/* Checks every invariant and calls report() once per violation with a
 * one-line description:
 *   - per pack: total − remaining = Σ its deductions; 0 ≤ remaining ≤ total
 *   - no deduction outside its pack's validity, while frozen or refunded,
 *     or from a pack of another class or another account
 *   - a deduction, a settled usage, a pack event is of its charge's,
 *     settlement's, pack's account
 *   - a lease slice belongs to a lease of its account and class
 *   - per deduction: before − amount = after, chained per pack in time order
 *   - per charged usage: Σ its deductions + overage = billed
 *   - a refunded pack has no deductions
 * *violations gets the count (0 = all good).  report may be NULL. */
int meter_verify(meter_store *st,
                 void (*report)(void *ctx, const char *problem), void *ctx,
                 size_t *violations);

/* ------------------------------------------------------------ sessions -- */
/*
 * A session meters one output of one running job.  The filter calls
 * meter_session_segment() as frames pass (no I/O), meter_session_checkpoint()
 * every few seconds of output (persists progress), and exactly one of
 * meter_session_finalize() (EOF or downstream close) or
 * meter_session_detach() (uninit without EOF, e.g. a graph re-init).
 *
 * Re-init: a session opened in the same process with the same db, job,
 * output, class, codec and flags as a detached one resumes it, so the output
 * is billed once in full.  Two live sessions of one process with the same
 * job and output label are kept apart: the second is labelled "output#2".
 * Sessions still detached or open when the process exits are finalized by an
 * atexit handler (status interrupted if they never saw EOF).  A process that
 * dies without exiting (SIGKILL) leaves a "running" session with its last
 * checkpoint; meter_reap() — run by every session open and by `meterctl
 * reap` — finalizes it as interrupted once its process is gone, billed at
 * the time of that checkpoint.
 *
 * Database failures: with METER_SESSION_SPOOL a transient failure
 * (METER_EDB: I/O, read-only, full disk; METER_EBUSY; METER_EIO; METER_ENOMEM;
 * and at open METER_ENOTFOUND: no database there yet) does not stop the
 * session: it keeps measuring and writes its state to a
 * spool file (checkpoints and the final record) that meter_reap() or
 * meter_import_spool() bills later; nothing is lost.  Other errors (a
 * foreign or newer file, a bad codec) fail the open either way.  Without SPOOL the failing call returns the error.
 *
 * Nowhere to go: a session opens only when its usage can be kept.  When
 * the database fails at open and SPOOL is set, the spool directory must
 * exist or be creatable (its parent must exist) and take a probe file;
 * else the open fails with METER_EIO and one line naming the database's
 * problem and the spool directory's ("the usage could go nowhere: …, and
 * cannot create spool directory '…': Permission denied").
 */
typedef struct meter_session meter_session;

enum meter_session_flags {
    METER_SESSION_ENFORCE     = 1u << 0,  /* refuse to open when no minutes */
    METER_SESSION_SPOOL       = 1u << 1,  /* on DB failure, spool to a file */
    METER_SESSION_IDEMPOTENT  = 1u << 2,  /* a session of this job+output
                                             already finished "done", or a
                                             manual record of it exists
                                             (meter_record_once): bill
                                             nothing (status "duplicate");
                                             decided when billing, on every
                                             path (finalize, reap, import).
                                             An interrupted run does not
                                             count: a retry bills in full. */
};

typedef struct meter_session_opts {
    const char *db;         /* NULL: meter_default_db_path() */
    const char *job;        /* NULL: $METER_JOB, else meter_default_job() */
    const char *output;     /* required */
    meter_class cls;
    const char *codec;      /* see meter_classify */
    unsigned flags;         /* METER_SESSION_* */
    const char *spool_dir;  /* NULL: $METER_SPOOL, else "<db>.spool" */
    const char *account;    /* NULL: $METER_ACCOUNT, else the store's
                               `account` setting (read when billing, for a
                               session that opened spooled) */
} meter_session_opts;

/* A job id for this process, the same on every call: "<host>-<pid>-<t>". */
const char *meter_default_job(void);

/* Opens (or resumes, see above) a session.  Validates class, codec and
 * account; with ENFORCE refuses (METER_ENOMINUTES) when the account has no
 * minutes of the class (meter_available_account).  In farm mode (setting
 * lease_accounts not empty) a session without minutes opens anyway when
 * lease_policy is "continue" and the ledger is unreachable (the last sync
 * attempt failed: meter_sync_status_get's last_error is not empty); the
 * usage is then settled when the ledger hears of it.  With SPOOL a database that cannot be opened is not an
 * error when the spool directory can take the usage: the session runs
 * spooled (meter_session_spooled() says so); when it cannot, METER_EIO
 * (see "Nowhere to go" above). */
int meter_session_open(const meter_session_opts *o, meter_session **out,
                       char err[METER_ERRMAX]);

/* Reports progress: the output's current segment has this size and has
 * lasted duration_us so far (cumulative, not a delta — the caller keeps
 * exact time and converts once).  A smaller duration than before replaces
 * it (a frame dropped downstream is un-billed).  A different width×height
 * starts a new segment, and so does the first report after a resume;
 * audio passes 0×0.  No I/O.  Returns METER_ENOMINUTES (progress
 * still recorded) when, with ENFORCE, the minutes billed so far exceed what
 * the packs held at the last checkpoint — unless the farm-mode rule of
 * meter_session_open lets it run on (judged at open and each checkpoint). */
int meter_session_segment(meter_session *s, int width, int height,
                          int64_t duration_us);

/* Persists progress (one short transaction, or the spool file).  Returns a
 * database error without losing anything; the caller may go on.
 * METER_EFINALIZED when the session was finalized elsewhere (a reaper). */
int meter_session_checkpoint(meter_session *s);

typedef struct meter_session_summary {
    char job[METER_NAME_MAX];
    char output[METER_NAME_MAX];
    char ttype[METER_TTYPE_MAX];   /* of the longest segment */
    int segments;
    int64_t duration_us;           /* Σ segments */
    int64_t billed_us, covered_us, overage_us;
    char packs[256];               /* "pk-a,pk-b" (truncated with "...") */
    int spooled;                   /* 1: went to the spool file */
    int already_billed;            /* IDEMPOTENT and billed before */
} meter_session_summary;

/* Finalizes exactly once: usage records (one per segment), deductions and
 * outbox entries in one transaction, status done (or interrupted).  A
 * second call returns METER_EFINALIZED.  out may be NULL. */
int meter_session_finalize(meter_session *s, int interrupted,
                           meter_session_summary *out);

/* Uninit without EOF: checkpoint and leave the session for a resuming
 * instance or the exit handler.  s must not be used afterwards. */
void meter_session_detach(meter_session *s);

/* Frees a finalized session (a not-finalized one is detached instead). */
void meter_session_close(meter_session *s);

int meter_session_spooled(const meter_session *s);
const char *meter_session_id(const meter_session *s);
const char *meter_session_errmsg(const meter_session *s);

/* Finalizes, as interrupted, running sessions of this host whose process is
 * gone (judged by pid, its start time and the boot id; a process it cannot
 * see counts as alive).  A session that left a spool file is billed from
 * it.  A session that cannot be billed is marked "failed" with the reason
 * and the rest go on; the first such problem is returned.  *count (may be
 * NULL) gets how many were billed. */
int meter_reap(meter_store *st, int *count);

/* Imports every *.spool file of dir (finalized or checkpoint-only sessions
 * whose process is gone) into the store, each in one transaction at the
 * time of its last state, then removes the file; a session already billed
 * is skipped (and its file removed).  A bad file does not stop the others;
 * the first problem is returned. */
int meter_import_spool(meter_store *st, const char *dir, int *imported);

/* ---------------------------------------------------------------- sync -- */
/*
 * The outbox: every usage, deduction, settlement and pack event is queued
 * for the central ledger in the transaction that creates it.  The sync
 * client (sync/) fetches batches, and acknowledges what the ledger took;
 * a record leaves the outbox only when acknowledged.  Records the ledger
 * rejects for good are quarantined with the reason and skipped thereafter.
 */

/* One record as it travels (flat: fields a kind does not use are empty). */
typedef struct meter_sync_record {
    int64_t outbox_seq;             /* position in the outbox */
    char kind[16];                  /* usage | deduction | settlement | pack_event */
    char id[METER_ID_MAX];          /* globally unique: the idempotency key */
    char node[METER_NAME_MAX];
    char account[METER_NAME_MAX];   /* every kind: the customer it belongs to
                                       ("default" when none was given) */
    /* usage */
    char job[METER_NAME_MAX];
    char output[METER_NAME_MAX];
    char session_id[METER_ID_MAX];
    char codec[16];
    int width, height;
    int64_t duration_us;
    int64_t billed_us;
    int deductible;
    int daily;
    meter_time started_at;
    char state[12];
    /* usage, deduction, settlement */
    meter_class cls;
    char ttype[METER_TTYPE_MAX];
    char day[11];
    /* deduction */
    char charge_id[METER_ID_MAX];
    char pack_id[METER_NAME_MAX];   /* "" = overage; for a lease slice the
                                       ledger's pack (the slice's source) */
    char lease_id[METER_ID_MAX];    /* "" = not from a lease */
    int64_t amount_us;
    int64_t before_us, after_us;
    /* pack_event */
    char action[12];                /* purchase | freeze | unfreeze | refund
                                       (never for a lease slice) */
    /* every kind: when it happened (usage: recorded_at) */
    meter_time at;
} meter_sync_record;

/* Up to max records in outbox order, quarantined ones skipped. */
int meter_outbox_fetch(meter_store *st, size_t max, meter_sync_record **rows, size_t *n);
/* Removes acknowledged records from the outbox (ids not there are fine). */
int meter_outbox_ack(meter_store *st, const char *const *ids, size_t n);
/* Marks a record as rejected for good, with the ledger's reason. */
int meter_outbox_quarantine(meter_store *st, const char *id, const char *reason);
/* Puts quarantined records back in the queue (all when id is NULL). */
int meter_outbox_release(meter_store *st, const char *id, int *released);

typedef struct meter_quarantined {
    char id[METER_ID_MAX];
    char kind[16];
    char reason[METER_ERRMAX];
    meter_time at;
} meter_quarantined;
int meter_outbox_quarantined(meter_store *st, meter_quarantined **rows, size_t *n);

typedef struct meter_sync_status {
    int64_t depth;                  /* records waiting (not quarantined) */
    int64_t quarantined;
    meter_time oldest_at;           /* created_at of the oldest waiting; 0 if none */
    meter_time last_success_at;     /* 0 = never */
    meter_time last_attempt_at;
    char last_error[METER_ERRMAX];  /* "" after a success */
} meter_sync_status;
int meter_sync_status_get(meter_store *st, meter_sync_status *out);
/* The sync client notes each attempt: error NULL for success. */
int meter_sync_note(meter_store *st, const char *error);

/* A pack as the ledger assigns it to this node. */
typedef struct meter_remote_pack {
    char id[METER_NAME_MAX];
    meter_class type;
    int64_t total_us;
    meter_time start, end;
    int frozen;
    meter_time refunded_at;         /* 0 = not refunded */
    char account[METER_NAME_MAX];   /* "" = the store's `account` setting */
} meter_remote_pack;

/* Applies the ledger's view of a pack: adds it when new (balance = total),
 * applies freeze / unfreeze / refund (recorded as pack events).  A refund
 * of a pack this node has already used is refused (METER_EREFUSED) and
 * nothing changes; total, type, validity and account of a known pack must
 * match (else METER_EREFUSED: a conflict to report). */
int meter_pack_apply(meter_store *st, const meter_remote_pack *p);


/* -------------------------------------------------------------- leases -- */
/*
 * Farm mode: minutes of the ledger's pooled packs reserved for this node.
 * A granted lease becomes one local pack per slice of a real pack (id
 * "<pack id>@<lease id>", account and type of the lease, total = granted,
 * validity = the real pack's), which the deduction engine takes from like
 * any pack while at < its expires_at (local clock: requested_at + ttl −
 * margin, margin = min(ttl / 5, 30 s)).  Its deductions go to the ledger
 * with pack_id = the real pack and lease_id.  No pack event is written for
 * a slice.  The sync client (sync/) talks to the ledger; these functions
 * keep the node's side, each in one transaction.
 */
typedef struct meter_lease_slice {
    char pack_id[METER_NAME_MAX];   /* the ledger's pack */
    int64_t granted_us;             /* 1 … METER_PACK_TOTAL_MAX_US */
    meter_time start, end;          /* the pack's validity */
    int voided;                     /* the ledger took it back (frozen or
                                       refunded pack): no more deduction */
} meter_lease_slice;

typedef struct meter_lease {
    char id[METER_ID_MAX];          /* "<node_id>-l<seq>" */
    char account[METER_NAME_MAX];
    meter_class cls;
    char state[12];                 /* requested|open|released|expired|refused */
    int64_t requested_us, granted_us, remaining_us;   /* remaining: Σ slices' remaining */
    int64_t unsent;                 /* its deductions still in the outbox */
    meter_time requested_at, expires_at, resolved_at; /* 0 = not yet */
    char reason[METER_ERRMAX];      /* why it resolved, "" if not said */
} meter_lease;

/* A new lease request (state requested, want_us 1 … METER_PACK_TOTAL_MAX_US,
 * requested_at now) — or the one already requested for (account, cls) and
 * not answered yet, so a crash resends the same id.  account NULL: the
 * store's `account` setting.  out may be NULL. */
int meter_lease_request(meter_store *st, const char *account, meter_class cls,
                        int64_t want_us, meter_lease *out);
/* The ledger granted it: state open, one slice pack per slice (n 1 … 64),
 * local expiry = requested_at + ttl_ms − margin; a slice granted voided
 * takes nothing.  Idempotent: a lease already open is left as it is.
 * METER_ENOTFOUND for an unknown id, METER_EREFUSED for a resolved lease,
 * METER_EINVAL for a bad slice (or one whose local id would not fit
 * METER_NAME_MAX). */
int meter_lease_granted(meter_store *st, const char *id, int64_t ttl_ms,
                        meter_time ledger_expires_ms, const meter_lease_slice *s, size_t n);
/* Renewed at local time sent_at (when the renewal was sent): expires_at =
 * sent_at + ttl_ms − margin for the lease and its slices not voided;
 * voided slices, and slices the answer no longer lists, are frozen
 * locally (expires_at = min(expires_at, now)).  A slice the node does not
 * know is METER_EREFUSED (nothing changes).  Idempotent.  The lease must be
 * open (METER_EREFUSED when resolved). */
int meter_lease_renewed(meter_store *st, const char *id, meter_time sent_at, int64_t ttl_ms,
                        meter_time ledger_expires_ms, const meter_lease_slice *s, size_t n);
/* Resolved at the ledger (state released | expired | refused): its slices
 * take no more deductions (expires_at = min(expires_at, now)), resolved_at
 * now.  reason may be NULL.  A lease resolves once: resolving a resolved
 * lease again changes nothing and returns METER_OK. */
int meter_lease_resolved(meter_store *st, const char *id, const char *state, const char *reason);
/* Leases by request time (then id); account NULL: any; open_only: state
 * open. */
int meter_lease_list(meter_store *st, const char *account /* NULL any */, int open_only,
                     meter_lease **rows, size_t *n);
/* Σ billed_us of usage of (account, cls) recorded in [now − window_ms, now)
 * — the burn rate a renewal is sized by.  account NULL: the store's. */
int meter_burn(meter_store *st, const char *account, meter_class cls, meter_time window_ms,
               int64_t *billed_us);

#ifdef __cplusplus
}
#endif
#endif /* METER_H */
