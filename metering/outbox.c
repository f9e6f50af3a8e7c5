/*
 * outbox.c — what the sync client reads and acknowledges, and the packs it
 * brings back from the ledger.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void read_record(sqlite3_stmt *q, void *row, void *node_name)
{
    meter_sync_record *r = row;
    const char *node = node_name;
    r->outbox_seq = sqlite3_column_int64(q, 0);
    meter_col_text(q, 1, r->kind, sizeof r->kind);
    meter_col_text(q, 2, r->id, sizeof r->id);
    meter_copy(r->node, sizeof r->node, node);
    if (strcmp(r->kind, "usage") == 0) {
        meter_col_text(q, 3, r->job, sizeof r->job);
        meter_col_text(q, 4, r->output, sizeof r->output);
        meter_col_text(q, 5, r->node, sizeof r->node);  /* as recorded */
        meter_col_text(q, 6, r->session_id, sizeof r->session_id);
        r->cls = (meter_class)sqlite3_column_int(q, 7);
        meter_col_text(q, 8, r->ttype, sizeof r->ttype);
        meter_col_text(q, 9, r->codec, sizeof r->codec);
        r->width = sqlite3_column_int(q, 10);
        r->height = sqlite3_column_int(q, 11);
        r->duration_us = sqlite3_column_int64(q, 12);
        r->billed_us = sqlite3_column_int64(q, 13);
        r->deductible = sqlite3_column_int(q, 14);
        r->daily = sqlite3_column_int(q, 15);
        r->started_at = sqlite3_column_int64(q, 16);
        r->at = sqlite3_column_int64(q, 17);
        meter_col_text(q, 18, r->day, sizeof r->day);
        meter_col_text(q, 19, r->state, sizeof r->state);
    } else if (strcmp(r->kind, "deduction") == 0) {
        meter_col_text(q, 20, r->charge_id, sizeof r->charge_id);
        meter_col_text(q, 21, r->pack_id, sizeof r->pack_id);
        /* a slice goes out as the ledger's pack and the lease */
        if (sqlite3_column_type(q, 40) != SQLITE_NULL) {
            meter_col_text(q, 39, r->pack_id, sizeof r->pack_id);
            meter_col_text(q, 40, r->lease_id, sizeof r->lease_id);
        }
        r->cls = (meter_class)sqlite3_column_int(q, 22);
        meter_col_text(q, 23, r->ttype, sizeof r->ttype);
        r->at = sqlite3_column_int64(q, 24);
        meter_col_text(q, 25, r->day, sizeof r->day);
        r->amount_us = sqlite3_column_int64(q, 26);
        r->before_us = sqlite3_column_int64(q, 27);
        r->after_us = sqlite3_column_int64(q, 28);
    } else if (strcmp(r->kind, "settlement") == 0) {
        meter_col_text(q, 29, r->day, sizeof r->day);
        r->cls = (meter_class)sqlite3_column_int(q, 30);
        meter_col_text(q, 31, r->ttype, sizeof r->ttype);
        r->deductible = sqlite3_column_int(q, 32);
        r->billed_us = sqlite3_column_int64(q, 33);
        r->at = sqlite3_column_int64(q, 34);
    } else {
        meter_col_text(q, 35, r->pack_id, sizeof r->pack_id);
        meter_col_text(q, 36, r->action, sizeof r->action);
        r->at = sqlite3_column_int64(q, 37);
    }
    meter_col_text(q, 38, r->account, sizeof r->account);
    if (!r->account[0])  /* (a record the outbox lost: never sent as such) */
        meter_copy(r->account, sizeof r->account, METER_ACCOUNT_DEFAULT);
}

int meter_outbox_fetch(meter_store *st, size_t max, meter_sync_record **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    char node[METER_NAME_MAX];
    int rc = meter_get_node(st, node);
    if (rc != METER_OK)
        return rc;
    sqlite3_stmt *q = meter_prepare(st,
        "SELECT o.seq, o.kind, o.record_id,"
        " u.job, u.output, u.node, u.session_id, u.class, u.ttype, u.codec, u.width,"
        " u.height, u.duration_us, u.billed_us, u.deductible, u.daily, u.started_at,"
        " u.recorded_at, u.day, u.state,"
        " d.charge_id, d.pack_id, d.class, d.ttype, d.at, d.day, d.amount_us, d.before_us,"
        " d.after_us,"
        " s.day, s.class, s.ttype, s.deductible, s.billed_us, s.at,"
        " e.pack_id, e.action, e.at,"
        " coalesce(u.account, d.account, s.account, e.account),"
        " p.source_id, p.lease_id"
        " FROM outbox o"
        " LEFT JOIN usage u ON o.kind = 'usage' AND u.id = o.record_id"
        " LEFT JOIN deductions d ON o.kind = 'deduction' AND d.id = o.record_id"
        " LEFT JOIN settlements s ON o.kind = 'settlement' AND s.id = o.record_id"
        " LEFT JOIN pack_events e ON o.kind = 'pack_event' AND e.id = o.record_id"
        " LEFT JOIN packs p ON p.id = d.pack_id AND p.lease_id IS NOT NULL"
        " WHERE o.quarantined_at IS NULL ORDER BY o.seq LIMIT ?1");
    if (!q)
        return METER_EDB;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)max);
    return meter_collect(st, q, sizeof **rows, read_record, node, (void **)rows, n);
}

int meter_outbox_ack(meter_store *st, const char *const *ids, size_t n)
{
    int rc = meter_tx_begin(st);
    if (rc != METER_OK)
        return rc;
    sqlite3_stmt *w = meter_prepare(st, "DELETE FROM outbox WHERE record_id = ?1");
    if (!w)
        return meter_tx_end(st, METER_EDB);
    for (size_t i = 0; i < n && rc == METER_OK; i++) {
        sqlite3_reset(w);
        sqlite3_bind_text(w, 1, ids[i], -1, SQLITE_STATIC);
        if (sqlite3_step(w) != SQLITE_DONE)
            rc = meter_fail_db(st, "acknowledge");
    }
    sqlite3_finalize(w);
    return meter_tx_end(st, rc);
}

int meter_outbox_quarantine(meter_store *st, const char *id, const char *reason)
{
    int rc = meter_tx_begin(st);
    if (rc != METER_OK)
        return rc;
    sqlite3_stmt *w = meter_prepare(st, "UPDATE outbox SET quarantined_at = ?2, reason = ?3"
                                        " WHERE record_id = ?1");
    if (!w)
        return meter_tx_end(st, METER_EDB);
    sqlite3_bind_text(w, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(w, 2, meter_now());
    sqlite3_bind_text(w, 3, reason ? reason : "rejected", -1, SQLITE_STATIC);
    rc = meter_exec_stmt(st, w, "quarantine");
    if (rc == METER_OK && sqlite3_changes(st->db) == 0)
        rc = meter_fail(st, METER_ENOTFOUND, "record %s is not in the outbox", id);
    return meter_tx_end(st, rc);
}

int meter_outbox_release(meter_store *st, const char *id, int *released)
{
    int rc = meter_tx_begin(st);
    if (rc != METER_OK)
        return rc;
    sqlite3_stmt *w = meter_prepare(st, "UPDATE outbox SET quarantined_at = NULL, reason = NULL"
                                        " WHERE quarantined_at IS NOT NULL"
                                        " AND (?1 IS NULL OR record_id = ?1)");
    if (!w)
        return meter_tx_end(st, METER_EDB);
    if (id)
        sqlite3_bind_text(w, 1, id, -1, SQLITE_STATIC);
    rc = meter_exec_stmt(st, w, "release quarantine");
    if (released)
        *released = rc == METER_OK ? sqlite3_changes(st->db) : 0;
    return meter_tx_end(st, rc);
}

static void read_quarantined(sqlite3_stmt *q, void *row, void *ctx)
{
    (void)ctx;
    meter_quarantined *r = row;
    meter_col_text(q, 0, r->id, sizeof r->id);
    meter_col_text(q, 1, r->kind, sizeof r->kind);
    meter_col_text(q, 2, r->reason, sizeof r->reason);
    r->at = sqlite3_column_int64(q, 3);
}

int meter_outbox_quarantined(meter_store *st, meter_quarantined **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *q = meter_prepare(st, "SELECT record_id, kind, reason, quarantined_at"
                                        " FROM outbox WHERE quarantined_at IS NOT NULL"
                                        " ORDER BY seq");
    if (!q)
        return METER_EDB;
    return meter_collect(st, q, sizeof **rows, read_quarantined, NULL, (void **)rows, n);
}

/* Sync bookkeeping lives in meta under sync_* keys (absent until used). */
static int64_t meta_int(meter_store *st, const char *key)
{
    sqlite3_stmt *q = meter_prepare(st, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1");
    int64_t v = 0;
    if (q) {
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW)
            v = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    return v;
}

int meter_sync_status_get(meter_store *st, meter_sync_status *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *q = meter_prepare(st,
        "SELECT count(*) FILTER (WHERE quarantined_at IS NULL),"
        " count(*) FILTER (WHERE quarantined_at IS NOT NULL),"
        " coalesce(min(created_at) FILTER (WHERE quarantined_at IS NULL), 0),"
        " (SELECT value FROM meta WHERE key = 'sync_last_error') FROM outbox");
    if (!q)
        return METER_EDB;
    int code = METER_OK;
    if (sqlite3_step(q) == SQLITE_ROW) {
        out->depth = sqlite3_column_int64(q, 0);
        out->quarantined = sqlite3_column_int64(q, 1);
        out->oldest_at = sqlite3_column_int64(q, 2);
        meter_col_text(q, 3, out->last_error, sizeof out->last_error);
    } else {
        code = meter_fail_db(st, "read sync status");
    }
    sqlite3_finalize(q);
    out->last_success_at = meta_int(st, "sync_last_success");
    out->last_attempt_at = meta_int(st, "sync_last_attempt");
    return code;
}

int meter_sync_note(meter_store *st, const char *error)
{
    int rc = meter_tx_begin(st);
    if (rc != METER_OK)
        return rc;
    sqlite3_stmt *w = meter_prepare(st,
        "INSERT INTO meta(key, value) VALUES ('sync_last_attempt', ?1), ('sync_last_error', ?2)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!w)
        return meter_tx_end(st, METER_EDB);
    meter_time now = meter_now();
    sqlite3_bind_int64(w, 1, now);
    sqlite3_bind_text(w, 2, error ? error : "", -1, SQLITE_STATIC);
    rc = meter_exec_stmt(st, w, "note sync");
    if (rc == METER_OK && !error) {
        w = meter_prepare(st, "INSERT INTO meta(key, value) VALUES ('sync_last_success', ?1)"
                              " ON CONFLICT(key) DO UPDATE SET value = excluded.value");
        if (!w)
            rc = METER_EDB;
        else {
            sqlite3_bind_int64(w, 1, now);
            rc = meter_exec_stmt(st, w, "note sync");
        }
    }
    return meter_tx_end(st, rc);
}
