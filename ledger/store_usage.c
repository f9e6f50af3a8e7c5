/*
 * store_usage.c — reading the ledger: the console's usage details, raw
 * usage records (paged), and per-node totals for reconciliation.
 *
 * Filters are appended as "AND col = $n" only when given (rather than
 * "$n IS NULL OR …", which PostgreSQL cannot type), and every amount is an
 * exact integer sum of *_us columns that cannot overflow (EXACT_SUM).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_impl.h"

#define MAXF 12

/* Sums that cannot overflow.  Each record's amount fits int64, but a sum
 * of many need not (and a ledger from before the wire bounds may hold
 * records of INT64_MAX µs): SQLite's SUM() then fails with "integer
 * overflow" — for every reader, forever, as records are append-only — and
 * PostgreSQL's numeric sum does not fit the reply.  So each sum is taken
 * in two parts, x / 2^30 and x % 2^30 (amounts are never negative), each
 * of which fits int64 for fewer than 2^33 records, joined here in 128
 * bits.  A total beyond int64 reads as INT64_MAX and sets *overflow. */
#define SPLIT_BITS 30
#define SPLIT_STR  "1073741824"
#define EXACT_SUM(x) "SUM((" x ") / " SPLIT_STR "), SUM((" x ") %% " SPLIT_STR ")"

static int64_t exact_sum(const lres *r, int row, int col, int *overflow)
{
    __int128 t = ((__int128)lres_int(r, row, col) << SPLIT_BITS) + lres_int(r, row, col + 1);
    if (t > INT64_MAX) {
        *overflow = 1;
        return INT64_MAX;
    }
    return (int64_t)t;
}

/* A WHERE clause under construction. */
struct where {
    char sql[1024];
    size_t len;
    lparam p[MAXF];
    int np;
};

static void add_cond(struct where *w, const char *fmt_with_n, lparam v)
{
    if (w->np >= MAXF)
        return;
    w->p[w->np++] = v;
    int k = snprintf(w->sql + w->len, sizeof w->sql - w->len, " AND ");
    w->len += (size_t)k;
    k = snprintf(w->sql + w->len, sizeof w->sql - w->len, fmt_with_n, w->np);
    w->len += (size_t)k;
}

static void add_raw(struct where *w, const char *text)
{
    int k = snprintf(w->sql + w->len, sizeof w->sql - w->len, " AND %s", text);
    w->len += (size_t)k;
}

static void common_filters(struct where *w, const ledger_query *q)
{
    if (q->node)
        add_cond(w, "node = $%d", P_TEXT(q->node));
    if (q->account)
        add_cond(w, "account = $%d", P_TEXT(q->account));
    if (q->type >= 0)
        add_cond(w, "class = $%d", P_TEXT(meter_class_name((meter_class)q->type)));
    if (q->ttype)
        add_cond(w, "ttype = $%d", P_TEXT(q->ttype));
    if (q->from)
        add_cond(w, "at_ms >= $%d", P_INT(q->from));
    if (q->to)
        add_cond(w, "at_ms < $%d", P_INT(q->to));
}

/* ------------------------------------------------------------ details -- */

int ledger_usage_details(ledger_store *st, const ledger_query *q,
                         ledger_detail_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    struct where w = { .len = 0 };
    common_filters(&w, q);
    if (q->pack_id && !strcmp(q->pack_id, "-"))
        add_raw(&w, "pack_id IS NULL");
    else if (q->pack_id)
        add_cond(&w, "pack_id = $%d", P_TEXT(q->pack_id));
    /* Within a day a pack's balance only falls, so the balance before the
     * day's first deduction is the largest before_us and the balance after
     * its last the smallest after_us — no reliance on timestamp ties. */
    char sql[2048];
    snprintf(sql, sizeof sql,
             "SELECT day, node, COALESCE(pack_id, ''), class, ttype, " EXACT_SUM("amount_us") ","
             " MAX(before_us), MIN(after_us), MIN(at_ms), MAX(at_ms), COUNT(*), account"
             " FROM records WHERE kind = 'deduction'%s"
             " GROUP BY day, node, account, pack_id, class, ttype"
             " ORDER BY day, node, account, COALESCE(pack_id, ''), class, ttype", w.sql);
    lres r;
    int rc = store_exec(st, sql, w.p, w.np, &r);
    if (rc != METER_OK)
        return rc;
    if (r.nrows > 0 && !(*rows = calloc((size_t)r.nrows, sizeof **rows))) {
        lres_free(&r);
        return store_fail(st, METER_ENOMEM, "out of memory");
    }
    for (int i = 0; i < r.nrows; i++) {
        ledger_detail_row *d = &(*rows)[i];
        lres_text(&r, i, 0, d->day, sizeof d->day);
        lres_text(&r, i, 1, d->node, sizeof d->node);
        lres_text(&r, i, 2, d->pack_id, sizeof d->pack_id);
        const char *c = lres_get(&r, i, 3);
        d->type = c && !strcmp(c, "tsc") ? METER_CLASS_TSC : METER_CLASS_GENERAL;
        lres_text(&r, i, 4, d->ttype, sizeof d->ttype);
        d->used_us = exact_sum(&r, i, 5, &d->overflow);
        d->before_us = lres_get(&r, i, 7) ? lres_int(&r, i, 7) : -1;
        d->after_us = lres_get(&r, i, 8) ? lres_int(&r, i, 8) : -1;
        d->first_at = lres_int(&r, i, 9);
        d->last_at = lres_int(&r, i, 10);
        d->count = lres_int(&r, i, 11);
        lres_text(&r, i, 12, d->account, sizeof d->account);
    }
    *n = (size_t)r.nrows;
    lres_free(&r);
    return METER_OK;
}

/* ------------------------------------------------------------ records -- */

#define RECORD_COLS "id, node, at_ms, received_ms, job, output, session_id, codec, width," \
                    " height, duration_us, billed_us, deductible, daily, started_ms, state," \
                    " class, ttype, day, account"

static void read_usage(const lres *r, int i, meter_sync_record *o)
{
    memset(o, 0, sizeof *o);
    strcpy(o->kind, "usage");
    lres_text(r, i, 0, o->id, sizeof o->id);
    lres_text(r, i, 1, o->node, sizeof o->node);
    o->at = lres_int(r, i, 2);
    lres_text(r, i, 4, o->job, sizeof o->job);
    lres_text(r, i, 5, o->output, sizeof o->output);
    lres_text(r, i, 6, o->session_id, sizeof o->session_id);
    lres_text(r, i, 7, o->codec, sizeof o->codec);
    o->width = (int)lres_int(r, i, 8);
    o->height = (int)lres_int(r, i, 9);
    o->duration_us = lres_int(r, i, 10);
    o->billed_us = lres_int(r, i, 11);
    o->deductible = lres_int(r, i, 12) != 0;
    o->daily = lres_int(r, i, 13) != 0;
    o->started_at = lres_int(r, i, 14);
    lres_text(r, i, 15, o->state, sizeof o->state);
    const char *c = lres_get(r, i, 16);
    o->cls = c && !strcmp(c, "tsc") ? METER_CLASS_TSC : METER_CLASS_GENERAL;
    lres_text(r, i, 17, o->ttype, sizeof o->ttype);
    lres_text(r, i, 18, o->day, sizeof o->day);
    lres_text(r, i, 19, o->account, sizeof o->account);
}

int ledger_usage_records(ledger_store *st, const ledger_query *q,
                         meter_sync_record **rows, meter_time **received, size_t *n)
{
    *rows = NULL;
    if (received)
        *received = NULL;
    *n = 0;
    int limit = q->limit ? q->limit : 100;
    if (limit < 1 || limit > 1000)
        return store_fail(st, METER_EINVAL, "limit must be 1 to 1000, not %d", q->limit);
    struct where w = { .len = 0 };
    common_filters(&w, q);
    if (q->job)
        add_cond(&w, "job = $%d", P_TEXT(q->job));
    if (q->after) {
        /* keyset paging on (at_ms, id), the order of the listing */
        lparam p[] = { P_TEXT(q->after) };
        lres r;
        int rc = store_exec(st, "SELECT at_ms FROM records WHERE id = $1 AND kind = 'usage'",
                            p, 1, &r);
        if (rc != METER_OK)
            return rc;
        int found = r.nrows > 0;
        int64_t at = lres_int(&r, 0, 0);
        lres_free(&r);
        if (!found)
            return store_fail(st, METER_EINVAL, "after: no usage record '%s'", q->after);
        if (w.np + 3 > MAXF)
            return store_fail(st, METER_EINVAL, "too many filters");
        w.p[w.np] = P_INT(at);
        w.p[w.np + 1] = P_INT(at);
        w.p[w.np + 2] = P_TEXT(q->after);
        int k = snprintf(w.sql + w.len, sizeof w.sql - w.len,
                         " AND (at_ms > $%d OR (at_ms = $%d AND id > $%d))",
                         w.np + 1, w.np + 2, w.np + 3);
        w.len += (size_t)k;
        w.np += 3;
    }
    if (w.np >= MAXF)
        return store_fail(st, METER_EINVAL, "too many filters");
    w.p[w.np++] = P_INT(limit);
    char sql[2048];
    snprintf(sql, sizeof sql, "SELECT " RECORD_COLS " FROM records WHERE kind = 'usage'%s"
             " ORDER BY at_ms, id LIMIT $%d", w.sql, w.np);
    lres r;
    int rc = store_exec(st, sql, w.p, w.np, &r);
    if (rc != METER_OK)
        return rc;
    if (r.nrows > 0) {
        *rows = calloc((size_t)r.nrows, sizeof **rows);
        if (received)
            *received = calloc((size_t)r.nrows, sizeof **received);
        if (!*rows || (received && !*received)) {
            free(*rows);
            *rows = NULL;
            if (received) {
                free(*received);
                *received = NULL;
            }
            lres_free(&r);
            return store_fail(st, METER_ENOMEM, "out of memory");
        }
    }
    for (int i = 0; i < r.nrows; i++) {
        read_usage(&r, i, &(*rows)[i]);
        if (received)
            (*received)[i] = lres_int(&r, i, 3);
    }
    *n = (size_t)r.nrows;
    lres_free(&r);
    return METER_OK;
}

/* ------------------------------------------------------------- totals -- */

int ledger_totals(ledger_store *st, const char *node, const char *account,
                  ledger_total_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    struct where w = { .len = 0 };
    if (node)
        add_cond(&w, "node = $%d", P_TEXT(node));
    if (account)
        add_cond(&w, "account = $%d", P_TEXT(account));
    char sql[2048];
    snprintf(sql, sizeof sql,
             "SELECT node,"
             " SUM(CASE WHEN kind = 'usage' THEN 1 ELSE 0 END),"
             " " EXACT_SUM("CASE WHEN kind = 'usage' THEN duration_us ELSE 0 END") ","
             " " EXACT_SUM("CASE WHEN kind = 'usage' THEN billed_us ELSE 0 END") ","
             " " EXACT_SUM("CASE WHEN kind = 'deduction' AND pack_id IS NOT NULL"
                           " THEN amount_us ELSE 0 END") ","
             " " EXACT_SUM("CASE WHEN kind = 'deduction' AND pack_id IS NULL"
                           " THEN amount_us ELSE 0 END") ","
             " COUNT(*)"
             " FROM records WHERE 1 = 1%s GROUP BY node ORDER BY node", w.sql);
    lres r;
    int rc = store_exec(st, sql, w.p, w.np, &r);
    if (rc != METER_OK)
        return rc;
    if (r.nrows > 0 && !(*rows = calloc((size_t)r.nrows, sizeof **rows))) {
        lres_free(&r);
        return store_fail(st, METER_ENOMEM, "out of memory");
    }
    for (int i = 0; i < r.nrows; i++) {
        ledger_total_row *t = &(*rows)[i];
        lres_text(&r, i, 0, t->node, sizeof t->node);
        t->usage_count = lres_int(&r, i, 1);
        t->duration_us = exact_sum(&r, i, 2, &t->overflow);
        t->billed_us = exact_sum(&r, i, 4, &t->overflow);
        t->covered_us = exact_sum(&r, i, 6, &t->overflow);
        t->overage_us = exact_sum(&r, i, 8, &t->overflow);
        t->records = lres_int(&r, i, 10);
    }
    *n = (size_t)r.nrows;
    lres_free(&r);
    return METER_OK;
}
