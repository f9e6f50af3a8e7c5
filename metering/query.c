/*
 * query.c — read-only views: the console's usage details, raw per-output
 * records, and job sessions.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Binds the common filter parameters ?1 pack, ?2 class, ?3 ttype, ?4 job,
 * ?5 from, ?6 to, ?7 account (unset ones stay NULL / 0 / -1).  A query that does not
 * use one of them gets SQLITE_RANGE for that bind, which is harmless. */
static void bind_query(sqlite3_stmt *s, const meter_query *q)
{
    if (q && q->pack_id)
        sqlite3_bind_text(s, 1, q->pack_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, q ? q->type : -1);
    if (q && q->ttype)
        sqlite3_bind_text(s, 3, q->ttype, -1, SQLITE_STATIC);
    if (q && q->job)
        sqlite3_bind_text(s, 4, q->job, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, q ? q->from : 0);
    sqlite3_bind_int64(s, 6, q ? q->to : 0);
    if (q && q->account)
        sqlite3_bind_text(s, 7, q->account, -1, SQLITE_STATIC);
}

static int check_query(meter_store *st, const meter_query *q)
{
    if (q && q->from && q->to && q->to <= q->from)
        return meter_fail(st, METER_EINVAL, "empty time period: 'to' is not after 'from'");
    if (q && q->type != -1 && q->type != METER_CLASS_GENERAL && q->type != METER_CLASS_TSC)
        return meter_fail(st, METER_EINVAL, "unknown type %d (general or tsc)", q->type);
    return METER_OK;
}

static void read_usage_row(sqlite3_stmt *s, void *p, void *ctx)
{
    (void)ctx;
    meter_usage_row *r = p;
    meter_col_text(s, 0, r->day, sizeof r->day);
    meter_col_text(s, 1, r->pack_id, sizeof r->pack_id);
    r->type = (meter_class)sqlite3_column_int(s, 2);
    meter_col_text(s, 3, r->ttype, sizeof r->ttype);
    r->used_us = sqlite3_column_int64(s, 4);
    r->before_us = sqlite3_column_int64(s, 5);
    r->after_us = sqlite3_column_int64(s, 6);
    r->first_at = sqlite3_column_int64(s, 7);
    r->last_at = sqlite3_column_int64(s, 8);
    r->count = sqlite3_column_int64(s, 9);
    meter_col_text(s, 10, r->account, sizeof r->account);
}

int meter_usage_details(meter_store *st, const meter_query *q, meter_usage_row **rows,
                        size_t *n)
{
    *rows = NULL;
    *n = 0;
    int rc = check_query(st, q);
    if (rc != METER_OK)
        return rc;
    /* Before/after come from the day's first and last deduction of that
     * pack and type (by sequence).  Overage rows have no balance: 0/0. */
    sqlite3_stmt *s = meter_prepare(st,
        "WITH g AS (SELECT day, account, pack_id, class, ttype, sum(amount_us) AS used,"
        "  min(seq) AS first_seq, max(seq) AS last_seq, min(at) AS first_at,"
        "  max(at) AS last_at, count(*) AS n FROM deductions"
        "  WHERE (?1 IS NULL OR (?1 = '-' AND pack_id IS NULL) OR pack_id = ?1)"
        "  AND (?2 < 0 OR class = ?2) AND (?3 IS NULL OR ttype = ?3)"
        "  AND (?5 = 0 OR at >= ?5) AND (?6 = 0 OR at < ?6)"
        "  AND (?7 IS NULL OR account = ?7)"
        "  GROUP BY day, account, pack_id, class, ttype)"
        " SELECT g.day, coalesce(g.pack_id, ''), g.class, g.ttype, g.used,"
        " coalesce(f.before_us, 0), coalesce(l.after_us, 0), g.first_at, g.last_at, g.n,"
        " g.account"
        " FROM g JOIN deductions f ON f.seq = g.first_seq JOIN deductions l ON l.seq = g.last_seq"
        " ORDER BY g.day, g.first_seq");
    if (!s)
        return METER_EDB;
    bind_query(s, q);
    return meter_collect(st, s, sizeof **rows, read_usage_row, NULL, (void **)rows, n);
}

static void read_job_row(sqlite3_stmt *s, void *p, void *ctx)
{
    (void)ctx;
    meter_job_row *r = p;
    meter_col_text(s, 0, r->id, sizeof r->id);
    meter_col_text(s, 1, r->job, sizeof r->job);
    meter_col_text(s, 2, r->output, sizeof r->output);
    meter_col_text(s, 3, r->node, sizeof r->node);
    r->cls = (meter_class)sqlite3_column_int(s, 4);
    meter_col_text(s, 5, r->ttype, sizeof r->ttype);
    meter_col_text(s, 6, r->codec, sizeof r->codec);
    r->width = sqlite3_column_int(s, 7);
    r->height = sqlite3_column_int(s, 8);
    r->duration_us = sqlite3_column_int64(s, 9);
    r->billed_us = sqlite3_column_int64(s, 10);
    r->covered_us = sqlite3_column_int64(s, 11);
    r->overage_us = sqlite3_column_int64(s, 12);
    r->started_at = sqlite3_column_int64(s, 13);
    r->recorded_at = sqlite3_column_int64(s, 14);
    meter_col_text(s, 15, r->state, sizeof r->state);
    r->settled = sqlite3_column_int(s, 16);
    meter_col_text(s, 17, r->account, sizeof r->account);
}

int meter_jobs(meter_store *st, const meter_query *q, meter_job_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    int rc = check_query(st, q);
    if (rc != METER_OK)
        return rc;
    /* covered/overage are per usage in realtime mode; daily usage is
     * charged per day and type by a settlement (settled says whether). */
    sqlite3_stmt *s = meter_prepare(st,
        "SELECT u.id, u.job, u.output, u.node, u.class, u.ttype, u.codec, u.width, u.height,"
        " u.duration_us, u.billed_us,"
        " coalesce((SELECT sum(amount_us) FROM deductions d WHERE d.charge_id = u.id"
        "           AND d.pack_id IS NOT NULL), 0),"
        " coalesce((SELECT sum(amount_us) FROM deductions d WHERE d.charge_id = u.id"
        "           AND d.pack_id IS NULL), 0),"
        " u.started_at, u.recorded_at, u.state,"
        " CASE WHEN u.daily = 0 THEN 1 ELSE"
        "   EXISTS (SELECT 1 FROM settled_usage su WHERE su.usage_seq = u.seq) END,"
        " u.account"
        " FROM usage u"
        " WHERE (?1 IS NULL OR EXISTS (SELECT 1 FROM deductions d WHERE d.charge_id = u.id"
        "        AND ((?1 = '-' AND d.pack_id IS NULL) OR d.pack_id = ?1)))"
        " AND (?2 < 0 OR u.class = ?2) AND (?3 IS NULL OR u.ttype = ?3)"
        " AND (?4 IS NULL OR u.job = ?4)"
        " AND (?5 = 0 OR u.recorded_at >= ?5) AND (?6 = 0 OR u.recorded_at < ?6)"
        " AND (?7 IS NULL OR u.account = ?7)"
        " ORDER BY u.seq");
    if (!s)
        return METER_EDB;
    bind_query(s, q);
    return meter_collect(st, s, sizeof **rows, read_job_row, NULL, (void **)rows, n);
}

static void read_session_row(sqlite3_stmt *s, void *p, void *ctx)
{
    (void)ctx;
    meter_session_row *r = p;
    meter_col_text(s, 0, r->id, sizeof r->id);
    meter_col_text(s, 1, r->job, sizeof r->job);
    meter_col_text(s, 2, r->output, sizeof r->output);
    r->cls = (meter_class)sqlite3_column_int(s, 3);
    meter_col_text(s, 4, r->codec, sizeof r->codec);
    meter_col_text(s, 5, r->status, sizeof r->status);
    r->duration_us = sqlite3_column_int64(s, 6);
    r->segments = sqlite3_column_int(s, 7);
    r->pid = sqlite3_column_int(s, 8);
    r->opened_at = sqlite3_column_int64(s, 9);
    r->updated_at = sqlite3_column_int64(s, 10);
    meter_col_text(s, 11, r->account, sizeof r->account);
}

int meter_sessions(meter_store *st, const meter_query *q, meter_session_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    int rc = check_query(st, q);
    if (rc != METER_OK)
        return rc;
    sqlite3_stmt *s = meter_prepare(st,
        "SELECT s.id, s.job, s.output, s.class, s.codec, s.status,"
        " coalesce((SELECT sum(duration_us) FROM session_segments g WHERE g.session_id = s.id), 0),"
        " (SELECT count(*) FROM session_segments g WHERE g.session_id = s.id),"
        " s.pid, s.opened_at, s.updated_at, s.account FROM sessions s"
        " WHERE (?2 < 0 OR s.class = ?2) AND (?4 IS NULL OR s.job = ?4)"
        " AND (?5 = 0 OR s.opened_at >= ?5) AND (?6 = 0 OR s.opened_at < ?6)"
        " AND (?7 IS NULL OR s.account = ?7)"
        " ORDER BY s.opened_at, s.id");
    if (!s)
        return METER_EDB;
    bind_query(s, q);
    return meter_collect(st, s, sizeof **rows, read_session_row, NULL, (void **)rows, n);
}
