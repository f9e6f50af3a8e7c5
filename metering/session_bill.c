/*
 * session_bill.c — turning a session's measured segments into usage
 * records, exactly once, and reaping sessions whose process died.
 *
 * Exactly once: the session row's status moves from running to a final
 * status in the same transaction that writes the usage; a second attempt
 * (a retry, the reaper, a spool import) finds it final and bills nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
                     const char *account, meter_time now)
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
            " pid, proc_start, class, codec, flags, opened_at, boot_id, spool_dir, account)"
            " VALUES(?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)");
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
        sqlite3_bind_text(w, 14, s->boot_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(w, 15, s->spool_dir, -1, SQLITE_STATIC);
        sqlite3_bind_text(w, 16, account, -1, SQLITE_STATIC);
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

int meter_session_billed_before(meter_store *st, const char *job, const char *output,
                                const char *exclude_id, char found[METER_ID_MAX])
{
    found[0] = '\0';
    sqlite3_stmt *q = meter_prepare(st, "SELECT id FROM sessions WHERE job = ?1 AND output = ?2"
                                        " AND status IN ('done', 'manual') AND id <> ?3"
                                        " ORDER BY opened_at, id LIMIT 1");
    if (!q)
        return METER_EDB;
    sqlite3_bind_text(q, 1, job, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, output, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, exclude_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        meter_col_text(q, 0, found, METER_ID_MAX);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? METER_OK : meter_fail_db(st, "read sessions");
}

/* Whether an IDEMPOTENT session's job and output were billed in full
 * before. */
static int billed_before(meter_store *st, const struct meter_session_state *s, int *yes)
{
    *yes = 0;
    if (!(s->flags & METER_SESSION_IDEMPOTENT))
        return METER_OK;
    char found[METER_ID_MAX];
    int rc = meter_session_billed_before(st, s->job, s->output, s->id, found);
    *yes = found[0] != '\0';
    return rc;
}

/* A run: consecutive segments of one size, billed as one usage record. */
struct run {
    int first, end;
    int64_t duration;
};

static int next_run(const struct meter_session_state *s, int i, struct run *r)
{
    r->first = i;
    r->duration = 0;
    int j = i;
    for (; j < s->nseg && s->seg[j].width == s->seg[i].width &&
           s->seg[j].height == s->seg[i].height; j++)
        r->duration += s->seg[j].duration_us;
    r->end = j;
    return j;
}

int meter_session_bill_tx(meter_store *st, const struct meter_session_state *s,
                          const char *status, meter_time at, meter_session_summary *sum)
{
    int dup = 0;
    char account[METER_NAME_MAX];
    /* a session that opened spooled without an account learns the store's */
    int rc = meter_resolve_account(st, s->account, "account", account);
    if (rc == METER_OK)
        rc = billed_before(st, s, &dup);
    if (rc == METER_OK)
        rc = close_row(st, s, dup ? "duplicate" : status, account, meter_now());
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
    int64_t total = 0;
    for (int i = 0; i < s->nseg; i++) {
        /* each segment is 0 … METER_DURATION_MAX_US; so must their sum be,
         * or it overflows (thousands of maximal segments) */
        if (s->seg[i].duration_us > METER_DURATION_MAX_US - total)
            return meter_fail(st, METER_EINVAL, "session %s: its segments add up to more than "
                              "%lld µs", s->id, (long long)METER_DURATION_MAX_US);
        total += s->seg[i].duration_us;
    }
    if (dup) {
        sum->already_billed = 1;
        sum->duration_us = total;
        return METER_OK;
    }

    /* ceil-minute rounds the whole output once (billing-rules.md: per
     * output), not each resolution segment: the round-up is billed with
     * the longest run, at its rate. */
    meter_rounding rounding;
    if ((rc = meter_get_rounding(st, &rounding)) != METER_OK)
        return rc;
    int64_t extra = 0;
    if (rounding == METER_ROUND_CEIL_MINUTE && total > 0)
        extra = (total + METER_US_PER_MIN - 1) / METER_US_PER_MIN * METER_US_PER_MIN - total;
    struct run r, longest = {0, 0, -1};
    for (int i = 0; i < s->nseg;) {
        i = next_run(s, i, &r);
        if (r.duration > longest.duration)
            longest = r;
    }

    for (int i = 0; i < s->nseg && rc == METER_OK;) {
        i = next_run(s, i, &r);
        if (r.duration <= 0)
            continue;
        meter_usage_in in = {
            .job = s->job, .output = s->output, .cls = s->cls, .codec = s->codec,
            .width = s->seg[r.first].width, .height = s->seg[r.first].height,
            .duration_us = r.duration, .at = at, .account = account,
        };
        int64_t bill = r.duration + (r.first == longest.first ? extra : 0);
        meter_usage_result u;
        rc = meter_record_tx(st, &in, s->id, status, s->opened_at, bill, &u, sum->packs,
                             sizeof sum->packs);
        /* each record's bill fits int64 (meter_bill); their sum must too
         * (ratios up to METER_RATIO_NUM_MAX over weeks of output do not):
         * the caller's transaction then takes none of it */
        if (rc == METER_OK && u.billed_us > INT64_MAX - sum->billed_us)
            rc = meter_fail(st, METER_EINVAL, "session %s: its bill overflows (more than "
                            "%lld pack-µs)", s->id, (long long)INT64_MAX);
        if (rc == METER_OK) {
            sum->segments++;
            sum->duration_us += r.duration;
            sum->billed_us += u.billed_us;
            sum->covered_us += u.covered_us;
            sum->overage_us += u.overage_us;
            if (r.first == longest.first)
                meter_copy(sum->ttype, sizeof sum->ttype, u.ttype);
        }
    }
    return rc;
}

/* ---------------------------------------------------------------- reap -- */

/* Loads a stored session and its checkpointed segments. */
static int load_state(meter_store *st, const char *id, struct meter_session_state *s)
{
    memset(s, 0, sizeof *s);
    sqlite3_stmt *q = meter_prepare(st,
        "SELECT id, job, output, node, host, class, codec, flags, pid, proc_start, opened_at,"
        " updated_at, boot_id, spool_dir, account FROM sessions WHERE id = ?1");
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
    s->updated_at = sqlite3_column_int64(q, 11);
    meter_col_text(q, 12, s->boot_id, sizeof s->boot_id);
    meter_col_text(q, 13, s->spool_dir, sizeof s->spool_dir);
    meter_col_text(q, 14, s->account, sizeof s->account);
    sqlite3_finalize(q);

    q = meter_prepare(st, "SELECT width, height, duration_us FROM session_segments"
                          " WHERE session_id = ?1 ORDER BY idx");
    if (!q)
        return METER_EDB;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int rc = METER_OK, step;
    while (rc == METER_OK && (step = sqlite3_step(q)) == SQLITE_ROW)
        if ((rc = meter_state_push(s, sqlite3_column_int(q, 0), sqlite3_column_int(q, 1),
                                   sqlite3_column_int64(q, 2))) != METER_OK)
            rc = meter_fail(st, rc, "out of memory");
    if (rc == METER_OK && step != SQLITE_DONE)
        rc = meter_fail_db(st, "read session segments");
    sqlite3_finalize(q);
    return rc;
}

/* Running sessions of this host whose process is gone (or is another
 * process with a reused pid, or ran before a reboot). */
static int dead_sessions(meter_store *st, char (**ids)[METER_ID_MAX], size_t *n)
{
    char host[METER_NAME_MAX];
    meter_hostname(host);
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *q = meter_prepare(st, "SELECT id, pid, proc_start, boot_id FROM sessions"
                                        " WHERE status = 'running' AND host = ?1");
    if (!q)
        return METER_EDB;
    sqlite3_bind_text(q, 1, host, -1, SQLITE_STATIC);
    size_t cap = 0;
    int rc = METER_OK, step;
    while (rc == METER_OK && (step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *boot = (const char *)sqlite3_column_text(q, 3);
        if (meter_process_alive(boot ? boot : "", sqlite3_column_int(q, 1),
                                sqlite3_column_int64(q, 2)))
            continue;
        if ((rc = meter_grow(ids, &cap, *n, sizeof **ids)) == METER_OK)
            meter_col_text(q, 0, (*ids)[(*n)++], METER_ID_MAX);
        else
            rc = meter_fail(st, rc, "out of memory");
    }
    if (rc == METER_OK && step != SQLITE_DONE)
        rc = meter_fail_db(st, "read sessions");
    sqlite3_finalize(q);
    return rc;
}

/* A session that cannot be billed (e.g. its codec's rate was removed) is
 * marked failed with the reason, so it stops blocking the others and stays
 * visible to `meterctl jobs --sessions` and `verify`. */
static void mark_failed(meter_store *st, const char *id, const char *reason)
{
    if (meter_tx_begin(st) != METER_OK)
        return;
    sqlite3_stmt *w = meter_prepare(st, "UPDATE sessions SET status = 'failed', error = ?2"
                                        " WHERE id = ?1 AND status = 'running'");
    int rc = METER_EDB;
    if (w) {
        sqlite3_bind_text(w, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(w, 2, reason, -1, SQLITE_TRANSIENT);
        rc = meter_exec_stmt(st, w, "mark session failed");
    }
    meter_tx_end(st, rc);
}

/* Bills one dead session: from its spool file when it left one (the spool
 * is written only when the database failed, so it is the newer state),
 * else from its last checkpoint, at the time of that last state. */
static int reap_one(meter_store *st, const char *id)
{
    struct meter_session_state s, spooled;
    int rc = meter_tx_begin(st);
    if (rc != METER_OK)
        return rc;
    if ((rc = load_state(st, id, &s)) != METER_OK) {
        free(s.seg);
        return meter_tx_end(st, rc);
    }
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.spool", s.spool_dir, s.id);
    int from_spool = s.spool_dir[0] && access(path, F_OK) == 0 &&
                     meter_spool_read(st, path, &spooled) == METER_OK;
    const struct meter_session_state *use = from_spool ? &spooled : &s;
    const char *status = from_spool && spooled.final && !spooled.interrupted
                             ? "done" : "interrupted";
    rc = meter_session_bill_tx(st, use, status, use->updated_at ? use->updated_at : meter_now(),
                               NULL);
    free(s.seg);
    if (from_spool)
        free(spooled.seg);
    if (rc == METER_EFINALIZED) {
        meter_tx_end(st, rc);  /* another process reaped it first */
        return METER_OK;
    }
    rc = meter_tx_end(st, rc);
    if (rc == METER_OK && from_spool)
        unlink(path);
    return rc;
}

int meter_reap(meter_store *st, int *count)
{
    if (count)
        *count = 0;
    char (*ids)[METER_ID_MAX];
    size_t n;
    int rc = dead_sessions(st, &ids, &n);
    int first_error = METER_OK;
    char first_msg[2 * METER_ERRMAX] = "";
    for (size_t i = 0; i < n && rc == METER_OK; i++) {
        int one = reap_one(st, ids[i]);
        if (one == METER_OK) {
            if (count)
                (*count)++;
        } else if (meter_error_transient(one)) {
            rc = one;  /* the database itself is in trouble: stop here */
        } else {
            char reason[METER_ERRMAX];
            snprintf(reason, sizeof reason, "%s", meter_errmsg(st));
            mark_failed(st, ids[i], reason);
            if (first_error == METER_OK) {
                first_error = one;
                snprintf(first_msg, sizeof first_msg, "session %s: %s", ids[i], reason);
            }
        }
    }
    free(ids);
    if (rc == METER_OK && first_error != METER_OK)
        return meter_fail(st, first_error, "%s", first_msg);
    return rc;
}
