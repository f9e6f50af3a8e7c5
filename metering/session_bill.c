/*
 * session_bill.c — turning a session's measured segments into usage
 * records, exactly once, and reaping sessions whose process died.
 *
 * Exactly once: the session row's status moves from running to a final
 * status in the same transaction that writes the usage; a second attempt
 * (a retry, the reaper, a spool import) finds it final and bills nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int meter_state_push(struct meter_session_state *s, int width, int height, int64_t dur)
{
    if (meter_grow(&s->seg, &s->capseg, (size_t)s->nseg, sizeof *s->seg) != METER_OK)
        return METER_ENOMEM;
    struct meter_seg *g = &s->seg[s->nseg++];
    memset(g, 0, sizeof *g);
    g->width = width;
    g->height = height;
    g->duration_us = dur;
    return METER_OK;
}

/* Inserts the session row as final, or moves a running row to final. */
static int close_row(meter_store *st, const struct meter_session_state *s, const char *status,
                     meter_time now)
{
    sqlite3_stmt *q = meter_prepare(st, "SELECT status FROM sessions WHERE id = ?1");
    if (!q)
        return METER_EDB;
    sqlite3_bind_text(q, 1, s->id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    char cur[16] = "";
    if (rc == SQLITE_ROW)
        meter_col_text(q, 0, cur, sizeof cur);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meter_fail_db(st, "read session");
    if (rc == SQLITE_ROW && strcmp(cur, "running") != 0)
        return meter_fail(st, METER_EFINALIZED, "session %s is already %s", s->id, cur);

    sqlite3_stmt *w;
    if (rc == SQLITE_ROW) {
        w = meter_prepare(st, "UPDATE sessions SET status = ?2, updated_at = ?3,"
                              " finalized_at = ?3 WHERE id = ?1 AND status = 'running'");
        if (!w)
            return METER_EDB;
    } else {
        w = meter_prepare(st,
            "INSERT INTO sessions(id, status, updated_at, finalized_at, job, output, node, host,"
            " pid, proc_start, class, codec, flags, opened_at)"
            " VALUES(?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
        if (!w)
            return METER_EDB;
        sqlite3_bind_text(w, 4, s->job, -1, SQLITE_STATIC);
        sqlite3_bind_text(w, 5, s->output, -1, SQLITE_STATIC);
        sqlite3_bind_text(w, 6, s->node, -1, SQLITE_STATIC);
        sqlite3_bind_text(w, 7, s->host, -1, SQLITE_STATIC);
        sqlite3_bind_int(w, 8, s->pid);
        sqlite3_bind_int64(w, 9, s->proc_start);
        sqlite3_bind_int(w, 10, (int)s->cls);
        sqlite3_bind_text(w, 11, s->codec, -1, SQLITE_STATIC);
        sqlite3_bind_int(w, 12, (int)s->flags);
        sqlite3_bind_int64(w, 13, s->opened_at);
    }
    sqlite3_bind_text(w, 1, s->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(w, 2, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(w, 3, now);
    return meter_exec_stmt(st, w, "finalize session");
}

/* Stores the segments as they are now (checkpoints and finalization). */
int meter_session_save_segments(meter_store *st, const struct meter_session_state *s)
{
    sqlite3_stmt *w = meter_prepare(st,
        "INSERT INTO session_segments(session_id, idx, width, height, duration_us)"
        " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(session_id, idx) DO UPDATE SET"
        " width = excluded.width, height = excluded.height, duration_us = excluded.duration_us");
    if (!w)
        return METER_EDB;
    int rc = METER_OK;
    for (int i = 0; i < s->nseg && rc == METER_OK; i++) {
        sqlite3_reset(w);
        sqlite3_bind_text(w, 1, s->id, -1, SQLITE_STATIC);
        sqlite3_bind_int(w, 2, i);
        sqlite3_bind_int(w, 3, s->seg[i].width);
        sqlite3_bind_int(w, 4, s->seg[i].height);
        sqlite3_bind_int64(w, 5, s->seg[i].duration_us);
        if (sqlite3_step(w) != SQLITE_DONE)
            rc = meter_fail_db(st, "save segments");
    }
    sqlite3_finalize(w);
    return rc;
}

int meter_session_bill_tx(meter_store *st, const struct meter_session_state *s,
                          const char *status, meter_session_summary *sum)
{
    meter_time now = meter_now();
    int rc = close_row(st, s, status, now);
    if (rc == METER_OK)
        rc = meter_session_save_segments(st, s);
    if (rc != METER_OK)
        return rc;

    meter_session_summary local;
    if (!sum)
        sum = &local;
    memset(sum, 0, sizeof *sum);
    meter_copy(sum->job, sizeof sum->job, s->job);
    meter_copy(sum->output, sizeof sum->output, s->output);
    int64_t longest = -1;
    /* One usage per run of equal size: a re-init that resumes at the same
     * size continues the run instead of starting a new record. */
    for (int i = 0; i < s->nseg && rc == METER_OK;) {
        int64_t dur = 0;
        int j = i;
        for (; j < s->nseg && s->seg[j].width == s->seg[i].width &&
               s->seg[j].height == s->seg[i].height; j++)
            dur += s->seg[j].duration_us;
        if (dur > 0) {
            meter_usage_in in = {
                .job = s->job, .output = s->output, .cls = s->cls, .codec = s->codec,
                .width = s->seg[i].width, .height = s->seg[i].height,
                .duration_us = dur, .at = now,
            };
            meter_usage_result r;
            rc = meter_record_tx(st, &in, s->id, status, s->opened_at, &r, sum->packs,
                                 sizeof sum->packs);
            if (rc == METER_OK) {
                sum->segments++;
                sum->duration_us += dur;
                sum->billed_us += r.billed_us;
                sum->covered_us += r.covered_us;
                sum->overage_us += r.overage_us;
                if (dur > longest) {
                    longest = dur;
                    meter_copy(sum->ttype, sizeof sum->ttype, r.ttype);
                }
            }
        }
        i = j;
    }
    return rc;
}

/* ---------------------------------------------------------------- reap -- */

/* Loads a stored session and its checkpointed segments. */
static int load_state(meter_store *st, const char *id, struct meter_session_state *s)
{
    memset(s, 0, sizeof *s);
    sqlite3_stmt *q = meter_prepare(st,
        "SELECT id, job, output, node, host, class, codec, flags, pid, proc_start, opened_at"
        " FROM sessions WHERE id = ?1");
    if (!q)
        return METER_EDB;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_finalize(q);
        return meter_fail(st, METER_ENOTFOUND, "no session %s", id);
    }
    meter_col_text(q, 0, s->id, sizeof s->id);
    meter_col_text(q, 1, s->job, sizeof s->job);
    meter_col_text(q, 2, s->output, sizeof s->output);
    meter_col_text(q, 3, s->node, sizeof s->node);
    meter_col_text(q, 4, s->host, sizeof s->host);
    s->cls = (meter_class)sqlite3_column_int(q, 5);
    meter_col_text(q, 6, s->codec, sizeof s->codec);
    s->flags = (unsigned)sqlite3_column_int(q, 7);
    s->pid = sqlite3_column_int(q, 8);
    s->proc_start = sqlite3_column_int64(q, 9);
    s->opened_at = sqlite3_column_int64(q, 10);
    sqlite3_finalize(q);

    q = meter_prepare(st, "SELECT width, height, duration_us FROM session_segments"
                          " WHERE session_id = ?1 ORDER BY idx");
    if (!q)
        return METER_EDB;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int rc = METER_OK;
    while (rc == METER_OK && sqlite3_step(q) == SQLITE_ROW)
        rc = meter_state_push(s, sqlite3_column_int(q, 0), sqlite3_column_int(q, 1),
                              sqlite3_column_int64(q, 2));
    sqlite3_finalize(q);
    return rc == METER_OK ? METER_OK : meter_fail(st, rc, "out of memory");
}

/* Running sessions of this host whose process is gone (or is another
 * process with a reused pid). */
static int dead_sessions(meter_store *st, char (**ids)[METER_ID_MAX], size_t *n)
{
    char host[METER_NAME_MAX];
    meter_hostname(host);
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *q = meter_prepare(st, "SELECT id, pid, proc_start FROM sessions"
                                        " WHERE status = 'running' AND host = ?1");
    if (!q)
        return METER_EDB;
    sqlite3_bind_text(q, 1, host, -1, SQLITE_STATIC);
    size_t cap = 0;
    int rc = METER_OK;
    while (rc == METER_OK && sqlite3_step(q) == SQLITE_ROW) {
        int64_t started = meter_proc_start(sqlite3_column_int(q, 1));
        if (started >= 0 && started == sqlite3_column_int64(q, 2))
            continue;  /* still alive */
        if ((rc = meter_grow(ids, &cap, *n, sizeof **ids)) == METER_OK)
            meter_col_text(q, 0, (*ids)[(*n)++], METER_ID_MAX);
    }
    sqlite3_finalize(q);
    return rc;
}

int meter_reap(meter_store *st, int *count)
{
    if (count)
        *count = 0;
    char (*ids)[METER_ID_MAX];
    size_t n;
    int rc = dead_sessions(st, &ids, &n);
    for (size_t i = 0; i < n && rc == METER_OK; i++) {
        struct meter_session_state s;
        if ((rc = meter_tx_begin(st)) != METER_OK)
            break;
        rc = load_state(st, ids[i], &s);
        if (rc == METER_OK)
            rc = meter_session_bill_tx(st, &s, "interrupted", NULL);
        free(s.seg);
        if (rc == METER_EFINALIZED) {
            /* Another process reaped it first: nothing to do. */
            meter_tx_end(st, METER_EFINALIZED);
            rc = METER_OK;
            continue;
        }
        rc = meter_tx_end(st, rc);
        if (rc == METER_OK && count)
            (*count)++;
    }
    free(ids);
    return rc;
}
