/*
 * mtest.h — libmeter-specific helpers for the unit tests (header-only).
 *
 * Expected values in the tests come from billing-rules.md, written out here
 * by hand (the ratio table, tiers by short edge, µs arithmetic), never from
 * libmeter itself: a test that asked the library for its expectations could
 * not catch the library being wrong.
 */
#ifndef MTEST_H
#define MTEST_H

#include <dirent.h>
#include <sqlite3.h>

#include "meter.h"
#include "tap.h"

#define US_PER_S   INT64_C(1000000)
#define US_PER_MIN INT64_C(60000000)
#define MS_PER_DAY INT64_C(86400000)
#define MS_PER_H   INT64_C(3600000)

/* ------------------------------------------------------ return codes -- */

static inline int mt_rc_(const meter_store *st, const char *err, int got,
                         int exp, const char *expr, const char *file,
                         int line, const char *fmt, ...)
{
    va_list ap;
    int ok = got == exp;
    va_start(ap, fmt);
    tap_vresult(ok, file, line, fmt, ap);
    va_end(ap);
    if (!ok) {
        printf("#   %s\n", expr);
        printf("#        got: %d (%s)\n", got, meter_strerror(got));
        printf("#   expected: %d (%s)\n", exp, meter_strerror(exp));
        if (st)
            printf("#    message: %s\n", meter_errmsg(st));
        if (err)
            printf("#    message: %s\n", err);
    }
    return ok;
}

/* CHECK_RC(store, call, METER_E…, "name"): the call's return code, with the
 * store's message shown when it differs. */
#define CHECK_RC(st, call, exp, ...) \
    mt_rc_((st), NULL, (call), (exp), #call, __FILE__, __LINE__, __VA_ARGS__)
/* The same for calls that report into an err[METER_ERRMAX] buffer. */
#define CHECK_RC_ERR(err, call, exp, ...) \
    mt_rc_(NULL, (err), (call), (exp), #call, __FILE__, __LINE__, __VA_ARGS__)

/* The store's message is a non-empty line. */
#define CHECK_MSG(st, ...) \
    CHECK(meter_errmsg(st) && meter_errmsg(st)[0] != '\0' && \
          !strchr(meter_errmsg(st), '\n'), __VA_ARGS__)

/* ------------------------------------------------------------ stores -- */

/* Opens (creating) a store or bails out. */
static inline meter_store *mt_open(const char *path)
{
    meter_store *st = NULL;
    char err[METER_ERRMAX] = "";
    int rc = meter_open(path, METER_OPEN_CREATE, &st, err);
    if (rc != METER_OK || !st)
        BAIL("meter_open(%s): %d %s", path, rc, err);
    return st;
}

static inline void mt_report_(void *ctx, const char *problem)
{
    (void)ctx;
    printf("#   violation: %s\n", problem);
}

/* Runs meter_verify; prints each violation as a diagnostic.  Returns the
 * count, or (size_t)-1 when verify itself failed. */
static inline size_t mt_verify(meter_store *st)
{
    size_t v = 0;
    int rc = meter_verify(st, mt_report_, NULL, &v);
    if (rc != METER_OK) {
        tap_diag("meter_verify failed: %d %s", rc, meter_errmsg(st));
        return (size_t)-1;
    }
    return v;
}
#define CHECK_VERIFY(st, ...) CHECK_EQ_I64((int64_t)mt_verify(st), 0, __VA_ARGS__)

/* ------------------------------------------------------------- packs -- */

/* A pack by id; remaining_us = INT64_MIN when it cannot be read. */
static inline meter_pack mt_pack(meter_store *st, const char *id)
{
    meter_pack p;
    memset(&p, 0, sizeof p);
    if (meter_pack_get(st, id, &p) != METER_OK) {
        tap_diag("meter_pack_get(%s): %s", id, meter_errmsg(st));
        p.remaining_us = INT64_MIN;
        p.total_us = INT64_MIN;
    }
    return p;
}

static inline int64_t mt_remaining(meter_store *st, const char *id)
{
    return mt_pack(st, id).remaining_us;
}

/* Adds a pack or bails out. */
static inline void mt_add_pack(meter_store *st, const char *id,
                               meter_class type, int64_t minutes,
                               meter_time start)
{
    int rc = meter_pack_add(st, id, type, minutes, start, NULL);
    if (rc != METER_OK)
        BAIL("meter_pack_add(%s): %d %s", id ? id : "(gen)", rc,
             meter_errmsg(st));
}

static inline meter_usage_in mt_in(const char *job, const char *output,
                                   meter_class cls, const char *codec,
                                   int w, int h, int64_t dur_us)
{
    meter_usage_in in;
    memset(&in, 0, sizeof in);
    in.job = job;
    in.output = output;
    in.cls = cls;
    in.codec = codec;
    in.width = w;
    in.height = h;
    in.duration_us = dur_us;
    in.at = 0;
    return in;
}

/* Records one usage; returns the rc, fills *out (zeroed first). */
static inline int mt_record(meter_store *st, const char *job,
                            meter_class cls, const char *codec, int w, int h,
                            int64_t dur_us, meter_usage_result *out)
{
    meter_usage_in in = mt_in(job, "out0", cls, codec, w, h, dur_us);
    meter_usage_result r;
    memset(&r, 0, sizeof r);
    int rc = meter_record(st, &in, &r);
    if (out)
        *out = r;
    return rc;
}

/* --------------------------------------------------------- aggregates -- */

typedef struct mt_sums {
    int64_t n;
    int64_t billed, covered, overage, duration;
    int64_t unbalanced;   /* rows where covered + overage != billed */
    int64_t unsettled;
} mt_sums;

/* Sums of the raw per-output records matching q (NULL: all). */
static inline int mt_job_sums(meter_store *st, const meter_query *q,
                              mt_sums *s)
{
    meter_query all;
    meter_job_row *rows = NULL;
    size_t n = 0;
    memset(s, 0, sizeof *s);
    if (!q) {
        memset(&all, 0, sizeof all);
        all.type = -1;
        q = &all;
    }
    int rc = meter_jobs(st, q, &rows, &n);
    if (rc != METER_OK) {
        tap_diag("meter_jobs: %d %s", rc, meter_errmsg(st));
        return rc;
    }
    for (size_t i = 0; i < n; ++i) {
        s->n++;
        s->billed += rows[i].billed_us;
        s->covered += rows[i].covered_us;
        s->overage += rows[i].overage_us;
        s->duration += rows[i].duration_us;
        if (rows[i].covered_us + rows[i].overage_us != rows[i].billed_us)
            s->unbalanced++;
        if (!rows[i].settled)
            s->unsettled++;
    }
    meter_free(rows);
    return METER_OK;
}

static inline meter_query mt_query_all(void)
{
    meter_query q;
    memset(&q, 0, sizeof q);
    q.type = -1;
    return q;
}

/* Σ used_us of the usage-details rows of one pack ("" = overage rows) and
 * how many rows there were; -1 on error. */
static inline int64_t mt_details_used(meter_store *st, const char *pack,
                                      size_t *nrows)
{
    meter_query q = mt_query_all();
    meter_usage_row *rows = NULL;
    size_t n = 0;
    int64_t sum = 0;
    q.pack_id = pack[0] ? pack : "-";
    if (meter_usage_details(st, &q, &rows, &n) != METER_OK) {
        tap_diag("meter_usage_details: %s", meter_errmsg(st));
        return -1;
    }
    for (size_t i = 0; i < n; ++i)
        sum += rows[i].used_us;
    if (nrows)
        *nrows = n;
    meter_free(rows);
    return sum;
}

/* Σ used_us over every usage-details row: *packs of the rows of packs,
 * *overage of the overage rows.  These are the deduction records, so they
 * account for realtime and daily (settled per group) usage alike. */
static inline int mt_details_totals(meter_store *st, int64_t *packs,
                                    int64_t *overage)
{
    meter_query q = mt_query_all();
    meter_usage_row *rows = NULL;
    size_t n = 0;
    *packs = *overage = 0;
    int rc = meter_usage_details(st, &q, &rows, &n);
    if (rc != METER_OK) {
        tap_diag("meter_usage_details: %s", meter_errmsg(st));
        return rc;
    }
    for (size_t i = 0; i < n; ++i) {
        if (rows[i].pack_id[0])
            *packs += rows[i].used_us;
        else
            *overage += rows[i].used_us;
    }
    meter_free(rows);
    return METER_OK;
}

/* ---------------------------------------------------------- sessions -- */

/* meter_session_open with the options spelled out; *s and err are reset
 * first, so a refused open leaves *s NULL and err holding its message. */
static inline int mt_open_session(const char *db, const char *job,
                                  const char *output, meter_class c,
                                  const char *codec, unsigned flags,
                                  const char *spool, meter_session **s,
                                  char *err)
{
    meter_session_opts o;
    memset(&o, 0, sizeof o);
    o.db = db;
    o.job = job;
    o.output = output;
    o.cls = c;
    o.codec = codec;
    o.flags = flags;
    o.spool_dir = spool;
    *s = NULL;
    err[0] = '\0';
    return meter_session_open(&o, s, err);
}

/* The usage records of one job, in a malloc'd array (meter_free); NULL
 * and *n = 0 on error. */
static inline meter_job_row *mt_job_rows(meter_store *st, const char *job,
                                         size_t *n)
{
    meter_query q = mt_query_all();
    meter_job_row *rows = NULL;
    q.job = job;
    *n = 0;
    if (meter_jobs(st, &q, &rows, n) != METER_OK) {
        tap_diag("meter_jobs: %s", meter_errmsg(st));
        *n = 0;
        return NULL;
    }
    return rows;
}

/* The session rows of one job, the same way. */
static inline meter_session_row *mt_session_rows(meter_store *st,
                                                 const char *job, size_t *n)
{
    meter_query q = mt_query_all();
    meter_session_row *rows = NULL;
    q.job = job;
    *n = 0;
    if (meter_sessions(st, &q, &rows, n) != METER_OK) {
        tap_diag("meter_sessions: %s", meter_errmsg(st));
        *n = 0;
        return NULL;
    }
    return rows;
}

/* How many *.spool files dir holds; 0 when it cannot be read. */
static inline int mt_count_spool_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        n += l > 6 && !strcmp(e->d_name + l - 6, ".spool");
    }
    closedir(d);
    return n;
}

/* ------------------------------------------------- files and SQLite -- */

/* Reads a whole file into a malloc'd buffer; *len gets its size (0 when
 * the file cannot be read, and NULL is returned). */
static inline unsigned char *mt_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    *len = 0;
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

static inline int mt_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Runs SQL on a file with SQLite directly (no libmeter), or bails. */
static inline void mt_sql(const char *path, const char *stmt)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db, stmt, NULL, NULL, NULL) != SQLITE_OK)
        BAIL("sqlite %s: %s", path, db ? sqlite3_errmsg(db) : "open");
    sqlite3_close(db);
}

/* Runs SQL on an existing file with SQLite directly; returns the SQLite
 * code, and the message (or "") in err when err is not NULL. */
static inline int mt_sql_err(const char *path, const char *stmt, char *err,
                             size_t errlen)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, stmt, NULL, NULL, &msg);
    if (err)
        snprintf(err, errlen, "%s", msg ? msg : db ? sqlite3_errmsg(db) : "");
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc;
}

/* The first column of the first row of a query, read-only; INT64_MIN when
 * there is none or it failed. */
static inline int64_t mt_sql_int(const char *path, const char *query)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int64_t v = INT64_MIN;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, query, -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

/* ------------------------------------------------- the spec, by hand -- */

/* billing-rules.md §3, written out independently of libmeter's table.
 * Ratios "1 : N" as num/den pack minutes per output minute. */
static const char *const mt_tiers[6] = { "SD", "HD", "FHD", "2K", "4K", "8K" };
static const struct { const char *codec; int64_t r[5]; } mt_video_ratios[3] = {
    { "H264", { 1, 2, 4, 8, 16 } },
    { "H265", { 5, 10, 20, 40, 80 } },
    { "AV1",  { 10, 20, 40, 80, 160 } },
};

/* Tier index by short edge (billing-rules.md §1); 5 (8K) above 2160. */
static inline int mt_tier_of(int w, int h)
{
    int e = w < h ? w : h;
    if (e <= 480) return 0;
    if (e <= 720) return 1;
    if (e <= 1080) return 2;
    if (e <= 1440) return 3;
    if (e <= 2160) return 4;
    return 5;
}

/* ceil(a × num / den) for non-negative values that fit. */
static inline int64_t mt_ceil_mul(int64_t a, int64_t num, int64_t den)
{
    return (a * num + den - 1) / den;
}

/* Expected billed pack-µs for an exact/ceil-minute policy and a ratio
 * (den 0: not deductible, billed at ratio 1). */
static inline int64_t mt_expect_billed(int64_t dur_us, int64_t num,
                                       int64_t den, int ceil_minute)
{
    if (ceil_minute)
        dur_us = (dur_us + US_PER_MIN - 1) / US_PER_MIN * US_PER_MIN;
    if (den == 0)
        return dur_us;
    return mt_ceil_mul(dur_us, num, den);
}

#endif /* MTEST_H */
