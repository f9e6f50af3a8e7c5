/*
 * lease.c — the node's side of farm-mode leases: requests, grants,
 * renewals and resolutions, the slices they make, the burn rate, and the
 * ENFORCE rule of farm mode.
 *
 * A lease is a row of `leases`; each slice the ledger granted is a row of
 * `packs` (id "<pack id>@<lease id>", lease_id, source_id, expires_at), so
 * the deduction engine (deduct.c) takes from slices as from own packs,
 * while at < expires_at.  Nothing here moves a balance: a slice starts
 * full (remaining = granted) and only deductions lower it.  Stopping a
 * slice is moving its expires_at to now at the latest.  Each function is
 * one transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define LEASE_SLICES_MAX 64

static const char lease_columns[] =
    "l.id, l.account, l.class, l.state, l.requested_us, l.granted_us,"
    " (SELECT coalesce(sum(p.remaining_us), 0) FROM packs p WHERE p.lease_id = l.id),"
    " (SELECT count(*) FROM outbox o JOIN deductions d ON d.id = o.record_id"
    "  JOIN packs p ON p.id = d.pack_id WHERE o.kind = 'deduction' AND p.lease_id = l.id),"
    " l.requested_at, coalesce(l.expires_at, 0), coalesce(l.resolved_at, 0),"
    " coalesce(l.reason, '')";

static void read_lease(sqlite3_stmt *q, void *row, void *ctx)
{
    (void)ctx;
    meter_lease *l = row;
    meter_col_text(q, 0, l->id, sizeof l->id);
    meter_col_text(q, 1, l->account, sizeof l->account);
    l->cls = (meter_class)sqlite3_column_int(q, 2);
    meter_col_text(q, 3, l->state, sizeof l->state);
    l->requested_us = sqlite3_column_int64(q, 4);
    l->granted_us = sqlite3_column_int64(q, 5);
    l->remaining_us = sqlite3_column_int64(q, 6);
    l->unsent = sqlite3_column_int64(q, 7);
    l->requested_at = sqlite3_column_int64(q, 8);
    l->expires_at = sqlite3_column_int64(q, 9);
    l->resolved_at = sqlite3_column_int64(q, 10);
    meter_col_text(q, 11, l->reason, sizeof l->reason);
}

/* One lease by id (METER_ENOTFOUND when there is none). */
static int lease_get(meter_store *st, const char *id, meter_lease *out)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT %s FROM leases l WHERE l.id = ?1", lease_columns);
    sqlite3_stmt *q = meter_prepare(st, sql);
    if (!q)
        return METER_EDB;
    sqlite3_bind_text(q, 1, id ? id : "", -1, SQLITE_STATIC);
    int step = sqlite3_step(q), rc = METER_OK;
    if (step == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        read_lease(q, out, NULL);
    } else if (step == SQLITE_DONE) {
        rc = meter_fail(st, METER_ENOTFOUND, "no lease '%s'", id ? id : "");
    } else {
        rc = meter_fail_db(st, "read lease");
    }
    sqlite3_finalize(q);
    return rc;
}

static int resolved(const char *state)
{
    return strcmp(state, "requested") != 0 && strcmp(state, "open") != 0;
}

/* The local expiry for a ttl that started at `from`: ttl less a margin of
 * a fifth of it, at most 30 s, so the node stops before the ledger does. */
static int local_expiry(meter_store *st, meter_time from, int64_t ttl_ms, meter_time *out)
{
    if (ttl_ms <= 0 || ttl_ms > METER_TIME_MAX_MS)
        return meter_fail(st, METER_EINVAL, "lease ttl of %lld ms is out of range",
                          (long long)ttl_ms);
    int64_t margin = ttl_ms / 5 < 30000 ? ttl_ms / 5 : 30000;
    *out = from + ttl_ms - margin;
    return METER_OK;
}

/* Slices as the ledger sends them: valid pack ids, sizes and validity,
 * each pack once, and a local id that fits. */
static int check_slices(meter_store *st, const char *lease_id, const meter_lease_slice *s,
                        size_t n)
{
    if (n > LEASE_SLICES_MAX || (n > 0 && !s))
        return meter_fail(st, METER_EINVAL, "lease %s: %zu slices (at most %d)", lease_id, n,
                          LEASE_SLICES_MAX);
    for (size_t i = 0; i < n; i++) {
        if (!meter_pack_id_valid(s[i].pack_id))
            return meter_fail(st, METER_EINVAL, "lease %s: slice of an invalid pack id "
                              "'%.80s'", lease_id, s[i].pack_id);
        if (s[i].granted_us <= 0 || s[i].granted_us > METER_PACK_TOTAL_MAX_US ||
            s[i].start < 0 || s[i].end <= s[i].start)
            return meter_fail(st, METER_EINVAL, "lease %s: slice of pack %s has an invalid "
                              "size or validity", lease_id, s[i].pack_id);
        if (strlen(s[i].pack_id) + 1 + strlen(lease_id) >= METER_NAME_MAX)
            return meter_fail(st, METER_EINVAL, "lease %s: slice id '%s@%s' would be longer "
                              "than %d bytes", lease_id, s[i].pack_id, lease_id,
                              METER_NAME_MAX - 1);
        for (size_t j = 0; j < i; j++)
            if (strcmp(s[i].pack_id, s[j].pack_id) == 0)
                return meter_fail(st, METER_EINVAL, "lease %s: pack %s sliced twice",
                                  lease_id, s[i].pack_id);
    }
    return METER_OK;
}

static void slice_id(char out[METER_NAME_MAX], const char *pack_id, const char *lease_id)
{
    snprintf(out, METER_NAME_MAX, "%s@%s", pack_id, lease_id);
}

int meter_lease_request(meter_store *st, const char *account_in, meter_class cls,
                        int64_t want_us, meter_lease *out)
{
    char account[METER_NAME_MAX], id[METER_ID_MAX] = "";
    int rc = meter_resolve_account(st, account_in, "account", account);
    if (rc != METER_OK)
        return rc;
    if (cls != METER_CLASS_GENERAL && cls != METER_CLASS_TSC)
        return meter_fail(st, METER_EINVAL, "unknown class (general or tsc)");
    if (want_us <= 0 || want_us > METER_PACK_TOTAL_MAX_US)
        return meter_fail(st, METER_EINVAL, "lease of %lld µs is out of range (1 µs to "
                          "%lld µs)", (long long)want_us, (long long)METER_PACK_TOTAL_MAX_US);
    if ((rc = meter_tx_begin(st)) != METER_OK)
        return rc;
    /* one unanswered request per (account, class): a retry after a crash
     * sends the same id, and the ledger reserves nothing more */
    sqlite3_stmt *q = meter_prepare(st, "SELECT id FROM leases WHERE account = ?1 AND"
                                        " class = ?2 AND state = 'requested'"
                                        " ORDER BY requested_at, id LIMIT 1");
    if (!q)
        return meter_tx_end(st, METER_EDB);
    sqlite3_bind_text(q, 1, account, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, (int)cls);
    int step = sqlite3_step(q);
    if (step == SQLITE_ROW)
        meter_col_text(q, 0, id, sizeof id);
    sqlite3_finalize(q);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return meter_tx_end(st, meter_fail_db(st, "read leases"));
    if (!id[0]) {
        if ((rc = meter_next_id(st, 'l', NULL, id)) != METER_OK)
            return meter_tx_end(st, rc);
        sqlite3_stmt *w = meter_prepare(st,
            "INSERT INTO leases(id, account, class, state, requested_us, requested_at)"
            " VALUES(?1, ?2, ?3, 'requested', ?4, ?5)");
        if (!w)
            return meter_tx_end(st, METER_EDB);
        sqlite3_bind_text(w, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(w, 2, account, -1, SQLITE_STATIC);
        sqlite3_bind_int(w, 3, (int)cls);
        sqlite3_bind_int64(w, 4, want_us);
        sqlite3_bind_int64(w, 5, meter_now());
        if ((rc = meter_exec_stmt(st, w, "request lease")) != METER_OK)
            return meter_tx_end(st, rc);
    }
    meter_lease l;
    rc = lease_get(st, id, &l);
    rc = meter_tx_end(st, rc);
    if (rc == METER_OK && out)
        *out = l;
    return rc;
}

/* Inserts one slice pack of an open lease. */
static int insert_slice(meter_store *st, const meter_lease *l, const meter_lease_slice *s,
                        meter_time expires_at, meter_time now)
{
    char id[METER_NAME_MAX];
    slice_id(id, s->pack_id, l->id);
    sqlite3_stmt *w = meter_prepare(st,
        "INSERT INTO packs(id, type, total_us, remaining_us, start_at, end_at, created_at,"
        " account, lease_id, source_id, expires_at) VALUES(?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8,"
        " ?9, ?10)");
    if (!w)
        return METER_EDB;
    sqlite3_bind_text(w, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(w, 2, (int)l->cls);
    sqlite3_bind_int64(w, 3, s->granted_us);
    sqlite3_bind_int64(w, 4, s->start);
    sqlite3_bind_int64(w, 5, s->end);
    sqlite3_bind_int64(w, 6, now);
    sqlite3_bind_text(w, 7, l->account, -1, SQLITE_STATIC);
    sqlite3_bind_text(w, 8, l->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(w, 9, s->pack_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(w, 10, s->voided && now < expires_at ? now : expires_at);
    int rc = meter_exec_stmt(st, w, "add lease slice");
    if (rc == METER_EEXIST)
        rc = meter_fail(st, METER_EEXIST, "pack '%s' already exists", id);
    return rc;
}

static int granted_tx(meter_store *st, const char *id, int64_t ttl_ms,
                      meter_time ledger_expires_ms, const meter_lease_slice *s, size_t n)
{
    meter_lease l;
    int rc = lease_get(st, id, &l);
    if (rc != METER_OK)
        return rc;
    if (strcmp(l.state, "open") == 0)
        return METER_OK;  /* granted before: the answer came twice */
    if (resolved(l.state))
        return meter_fail(st, METER_EREFUSED, "lease %s is %s, it cannot be granted now", id,
                          l.state);
    if (n == 0)
        return meter_fail(st, METER_EINVAL, "lease %s: a grant without slices", id);
    meter_time expires_at = 0, now = meter_now();
    if ((rc = check_slices(st, id, s, n)) != METER_OK ||
        (rc = local_expiry(st, l.requested_at, ttl_ms, &expires_at)) != METER_OK)
        return rc;
    int64_t granted = 0;
    for (size_t i = 0; i < n && rc == METER_OK; i++) {
        granted += s[i].granted_us;  /* ≤ 64 × 6 · 10^14: no overflow */
        rc = insert_slice(st, &l, &s[i], expires_at, now);
    }
    if (rc != METER_OK)
        return rc;
    sqlite3_stmt *w = meter_prepare(st,
        "UPDATE leases SET state = 'open', granted_us = ?2, expires_at = ?3,"
        " ledger_expires_ms = ?4 WHERE id = ?1");
    if (!w)
        return METER_EDB;
    sqlite3_bind_text(w, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(w, 2, granted);
    sqlite3_bind_int64(w, 3, expires_at);
    sqlite3_bind_int64(w, 4, ledger_expires_ms);
    return meter_exec_stmt(st, w, "open lease");
}

int meter_lease_granted(meter_store *st, const char *id, int64_t ttl_ms,
                        meter_time ledger_expires_ms, const meter_lease_slice *s, size_t n)
{
    int rc = meter_tx_begin(st);
    if (rc != METER_OK)
        return rc;
    return meter_tx_end(st, granted_tx(st, id, ttl_ms, ledger_expires_ms, s, n));
}

/* Sets expires_at of the lease's slices: `sql` binds ?1 lease, ?2 time,
 * ?3 a slice id or NULL for all. */
static int set_slice_expiry(meter_store *st, const char *sql, const char *lease_id,
                            meter_time t, const char *slice)
{
    sqlite3_stmt *w = meter_prepare(st, sql);
    if (!w)
        return METER_EDB;
    sqlite3_bind_text(w, 1, lease_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(w, 2, t);
    if (slice)
        sqlite3_bind_text(w, 3, slice, -1, SQLITE_TRANSIENT);
    return meter_exec_stmt(st, w, "set slice expiry");
}

static const char freeze_sql[] =
    "UPDATE packs SET expires_at = min(expires_at, ?2) WHERE lease_id = ?1"
    " AND (?3 IS NULL OR id = ?3)";

static int renewed_tx(meter_store *st, const char *id, meter_time sent_at, int64_t ttl_ms,
                      meter_time ledger_expires_ms, const meter_lease_slice *s, size_t n)
{
    meter_lease l;
    int rc = lease_get(st, id, &l);
    if (rc != METER_OK)
        return rc;
    if (strcmp(l.state, "open") != 0)
        return meter_fail(st, METER_EREFUSED, "lease %s is %s, not open: it cannot be renewed",
                          id, l.state);
    meter_time expires_at = 0, now = meter_now();
    if ((rc = check_slices(st, id, s, n)) != METER_OK ||
        (rc = local_expiry(st, sent_at, ttl_ms, &expires_at)) != METER_OK)
        return rc;
    /* every slice of the answer must be one of ours */
    char sid[METER_NAME_MAX];
    for (size_t i = 0; i < n; i++) {
        meter_pack p;
        slice_id(sid, s[i].pack_id, id);
        if ((rc = meter_pack_get(st, sid, &p)) == METER_ENOTFOUND || (rc == METER_OK &&
                                                                      strcmp(p.lease_id, id)))
            return meter_fail(st, METER_EREFUSED, "lease %s: the ledger renewed a slice of "
                              "pack %s this node was never granted", id, s[i].pack_id);
        if (rc != METER_OK)
            return rc;
    }
    /* slices the answer leaves out stop; the others move or freeze */
    if ((rc = set_slice_expiry(st, freeze_sql, id, now, NULL)) != METER_OK)
        return rc;
    for (size_t i = 0; i < n && rc == METER_OK; i++) {
        slice_id(sid, s[i].pack_id, id);
        if (!s[i].voided)
            rc = set_slice_expiry(st, "UPDATE packs SET expires_at = ?2 WHERE lease_id = ?1"
                                      " AND id = ?3", id, expires_at, sid);
    }
    if (rc != METER_OK)
        return rc;
    sqlite3_stmt *w = meter_prepare(st, "UPDATE leases SET expires_at = ?2,"
                                        " ledger_expires_ms = ?3 WHERE id = ?1");
    if (!w)
        return METER_EDB;
    sqlite3_bind_text(w, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(w, 2, expires_at);
    sqlite3_bind_int64(w, 3, ledger_expires_ms);
    return meter_exec_stmt(st, w, "renew lease");
}

int meter_lease_renewed(meter_store *st, const char *id, meter_time sent_at, int64_t ttl_ms,
                        meter_time ledger_expires_ms, const meter_lease_slice *s, size_t n)
{
    int rc = meter_tx_begin(st);
    if (rc != METER_OK)
        return rc;
    return meter_tx_end(st, renewed_tx(st, id, sent_at, ttl_ms, ledger_expires_ms, s, n));
}

static int resolved_tx(meter_store *st, const char *id, const char *state, const char *reason)
{
    meter_lease l;
    int rc = lease_get(st, id, &l);
    if (rc != METER_OK)
        return rc;
    if (resolved(l.state))
        return METER_OK;  /* a lease resolves once */
    meter_time now = meter_now();
    if ((rc = set_slice_expiry(st, freeze_sql, id, now, NULL)) != METER_OK)
        return rc;
    sqlite3_stmt *w = meter_prepare(st, "UPDATE leases SET state = ?2, resolved_at = ?3,"
                                        " reason = ?4 WHERE id = ?1");
    if (!w)
        return METER_EDB;
    sqlite3_bind_text(w, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(w, 2, state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(w, 3, now);
    if (reason) {
        char why[METER_ERRMAX];
        meter_copy(why, sizeof why, reason);  /* a long reason is cut */
        sqlite3_bind_text(w, 4, why, -1, SQLITE_TRANSIENT);
    }
    return meter_exec_stmt(st, w, "resolve lease");
}

int meter_lease_resolved(meter_store *st, const char *id, const char *state, const char *reason)
{
    if (!state || (strcmp(state, "released") && strcmp(state, "expired") &&
                   strcmp(state, "refused")))
        return meter_fail(st, METER_EINVAL, "a lease resolves as released, expired or "
                          "refused, not '%.40s'", state ? state : "");
    int rc = meter_tx_begin(st);
    if (rc != METER_OK)
        return rc;
    return meter_tx_end(st, resolved_tx(st, id, state, reason));
}

int meter_lease_list(meter_store *st, const char *account, int open_only, meter_lease **rows,
                     size_t *n)
{
    *rows = NULL;
    *n = 0;
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT %s FROM leases l WHERE (?1 IS NULL OR l.account = ?1)"
                              " AND (?2 = 0 OR l.state = 'open')"
                              " ORDER BY l.requested_at, l.id", lease_columns);
    sqlite3_stmt *q = meter_prepare(st, sql);
    if (!q)
        return METER_EDB;
    if (account)
        sqlite3_bind_text(q, 1, account, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, open_only != 0);
    return meter_collect(st, q, sizeof **rows, read_lease, NULL, (void **)rows, n);
}

int meter_burn(meter_store *st, const char *account_in, meter_class cls, meter_time window_ms,
               int64_t *billed_us)
{
    *billed_us = 0;
    char account[METER_NAME_MAX];
    int rc = meter_resolve_account(st, account_in, "account", account);
    if (rc != METER_OK)
        return rc;
    if (window_ms <= 0 || window_ms > METER_TIME_MAX_MS)
        return meter_fail(st, METER_EINVAL, "burn window of %lld ms is out of range",
                          (long long)window_ms);
    meter_time now = meter_now();
    /* (SQLite's sum() fails on int64 overflow rather than wrap) */
    sqlite3_stmt *q = meter_prepare(st,
        "SELECT coalesce(sum(billed_us), 0) FROM usage"
        " WHERE account = ?1 AND class = ?2 AND recorded_at >= ?3 AND recorded_at < ?4");
    if (!q)
        return METER_EDB;
    sqlite3_bind_text(q, 1, account, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, (int)cls);
    sqlite3_bind_int64(q, 3, now - window_ms);
    sqlite3_bind_int64(q, 4, now);
    int step = sqlite3_step(q);
    if (step == SQLITE_ROW) {
        *billed_us = sqlite3_column_int64(q, 0);
    } else {
        rc = meter_fail_db(st, "sum burn");
    }
    sqlite3_finalize(q);
    return rc;
}

/* ---------------------------------------------------- farm-mode ENFORCE -- */

int meter_enforce_rule(meter_store *st, int *farm, int *open_anyway)
{
    char accounts[8], policy[16];
    *farm = *open_anyway = 0;
    int rc = meter_get_setting_text(st, "lease_accounts", accounts, sizeof accounts);
    if (rc == METER_OK)
        rc = meter_get_setting_text(st, "lease_policy", policy, sizeof policy);
    if (rc != METER_OK)
        return rc;
    *farm = accounts[0] != '\0';
    if (!*farm || strcmp(policy, "continue") != 0)
        return METER_OK;
    /* unreachable: the sync client's last attempt failed */
    meter_sync_status ss;
    if ((rc = meter_sync_status_get(st, &ss)) != METER_OK)
        return rc;
    *open_anyway = ss.last_error[0] != '\0';
    return METER_OK;
}
