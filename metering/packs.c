/*
 * packs.c — resource packs: purchase, status, freeze, refund.
 *
 * A pack's balance only moves through deductions (deduct.c); this file
 * changes nothing but its flags, and records every administrative action as
 * an append-only pack event that also goes to the sync outbox.  Every pack
 * belongs to one account; lease slices (lease.c) are pack rows too, listed
 * and summed here, but bought and resolved there, without pack events.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char pack_columns[] =
    "id, type, total_us, remaining_us, start_at, end_at, frozen, refunded_at,"
    " (SELECT count(*) FROM deductions d WHERE d.pack_id = packs.id),"
    " account, lease_id, source_id, coalesce(expires_at, 0)";

static meter_pack_state state_of(const meter_pack *p)
{
    return (meter_pack_state){ .start = p->start, .end = p->end, .total_us = p->total_us,
                               .remaining_us = p->remaining_us, .deductions = p->deductions,
                               .frozen = p->frozen, .refunded_at = p->refunded_at };
}

static void pack_status(meter_pack *p, meter_time now)
{
    meter_pack_state ps = state_of(p);
    const char *status = meter_pack_status(&ps, now);
    /* a slice past its lease's expiry takes nothing more */
    if (p->lease_id[0] && now >= p->expires_at &&
        (!strcmp(status, "valid") || !strcmp(status, "pending")))
        status = "expired";
    meter_copy(p->status, sizeof p->status, status);
}

static void read_pack(sqlite3_stmt *s, meter_pack *p, meter_time now)
{
    memset(p, 0, sizeof *p);
    meter_col_text(s, 0, p->id, sizeof p->id);
    p->type = (meter_class)sqlite3_column_int(s, 1);
    p->total_us = sqlite3_column_int64(s, 2);
    p->remaining_us = sqlite3_column_int64(s, 3);
    p->start = sqlite3_column_int64(s, 4);
    p->end = sqlite3_column_int64(s, 5);
    p->frozen = sqlite3_column_int(s, 6);
    p->refunded_at = sqlite3_column_int64(s, 7);
    p->deductions = sqlite3_column_int64(s, 8);
    meter_col_text(s, 9, p->account, sizeof p->account);
    meter_col_text(s, 10, p->lease_id, sizeof p->lease_id);
    meter_col_text(s, 11, p->source_id, sizeof p->source_id);
    p->expires_at = sqlite3_column_int64(s, 12);
    pack_status(p, now);
}

int meter_pack_get(meter_store *st, const char *id, meter_pack *out)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT %s FROM packs WHERE id = ?1", pack_columns);
    sqlite3_stmt *s = meter_prepare(st, sql);
    if (!s)
        return METER_EDB;
    sqlite3_bind_text(s, 1, id ? id : "", -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int code = METER_OK;
    if (rc == SQLITE_ROW)
        read_pack(s, out, meter_now());
    else if (rc == SQLITE_DONE)
        code = meter_fail(st, METER_ENOTFOUND, "no pack '%s'", id ? id : "");
    else
        code = meter_fail_db(st, "read pack");
    sqlite3_finalize(s);
    return code;
}

/* Appends a pack event, in the pack's account, and queues it for sync. */
static int pack_event(meter_store *st, const char *pack_id, const char *action, meter_time at)
{
    int64_t seq;
    char eid[METER_ID_MAX];
    int rc = meter_next_id(st, 'e', &seq, eid);
    if (rc != METER_OK)
        return rc;
    sqlite3_stmt *s = meter_prepare(st,
        "INSERT INTO pack_events(seq, id, pack_id, action, at, account)"
        " SELECT ?1, ?2, ?3, ?4, ?5, account FROM packs WHERE id = ?3");
    if (!s)
        return METER_EDB;
    sqlite3_bind_int64(s, 1, seq);
    sqlite3_bind_text(s, 2, eid, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, pack_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, action, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, at);
    rc = meter_exec_stmt(st, s, "record pack event");
    if (rc == METER_OK && sqlite3_changes(st->db) != 1)
        rc = meter_fail(st, METER_ENOTFOUND, "no pack '%s' for its event", pack_id);
    return rc == METER_OK ? meter_outbox_add(st, "pack_event", eid, at) : rc;
}

int meter_pack_add(meter_store *st, const char *id, meter_class type, int64_t minutes,
                   meter_time start, meter_pack *out)
{
    return meter_pack_add_account(st, NULL, id, type, minutes, start, out);
}

int meter_pack_add_account(meter_store *st, const char *account_in, const char *id,
                           meter_class type, int64_t minutes, meter_time start,
                           meter_pack *out)
{
    char account[METER_NAME_MAX];
    int rc;
    if (account_in && !*account_in)
        return meter_fail(st, METER_EINVAL, "account is empty");
    if ((rc = meter_resolve_account(st, account_in, "account", account)) != METER_OK)
        return rc;
    if (type != METER_CLASS_GENERAL && type != METER_CLASS_TSC)
        return meter_fail(st, METER_EINVAL, "unknown pack type (general or tsc)");
    if (minutes <= 0 || minutes > METER_PACK_MINUTES_MAX)
        return meter_fail(st, METER_EINVAL, "pack minutes must be between 1 and %lld, not %lld",
                          (long long)METER_PACK_MINUTES_MAX, (long long)minutes);
    if (id && !meter_pack_id_valid(id))
        return meter_fail(st, METER_EINVAL, "invalid pack id '%s' (letters, digits, '.', "
                          "'_', '-', ':'; at most %d bytes)", id, METER_NAME_MAX - 1);
    if (start < 0)
        return meter_fail(st, METER_EINVAL, "pack start is before 1970");
    meter_time now = meter_now();
    if (start == 0)
        start = now;

    char gen[METER_NAME_MAX];
    if ((rc = meter_tx_begin(st)) != METER_OK)
        return rc;
    if (!id) {
        sqlite3_stmt *r = meter_prepare(st, "SELECT lower(hex(randomblob(4)))");
        if (!r || sqlite3_step(r) != SQLITE_ROW) {
            sqlite3_finalize(r);
            return meter_tx_end(st, meter_fail_db(st, "generate pack id"));
        }
        meter_pack_id_make(start, (const char *)sqlite3_column_text(r, 0), gen);
        sqlite3_finalize(r);
        id = gen;
    }
    sqlite3_stmt *s = meter_prepare(st,
        "INSERT INTO packs(id, type, total_us, remaining_us, start_at, end_at, created_at,"
        " account) VALUES(?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7)");
    if (!s)
        return meter_tx_end(st, METER_EDB);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, (int)type);
    sqlite3_bind_int64(s, 3, minutes * METER_US_PER_MIN);
    sqlite3_bind_int64(s, 4, start);
    sqlite3_bind_int64(s, 5, meter_pack_end(start));
    sqlite3_bind_int64(s, 6, now);
    sqlite3_bind_text(s, 7, account, -1, SQLITE_STATIC);
    rc = meter_exec_stmt(st, s, "add pack");
    if (rc == METER_EEXIST)
        rc = meter_fail(st, METER_EEXIST, "pack '%s' already exists", id);
    if (rc == METER_OK)
        rc = pack_event(st, id, "purchase", now);
    char keep[METER_NAME_MAX];
    meter_copy(keep, sizeof keep, id);
    rc = meter_tx_end(st, rc);
    if (rc == METER_OK && out)
        rc = meter_pack_get(st, keep, out);
    return rc;
}

int meter_pack_list(meter_store *st, const meter_pack_filter *f, meter_pack **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    static const char *const statuses[] = {
        "valid", "frozen", "expired", "exhausted", "refunded", "pending",
    };
    if (f && f->status) {
        int ok = 0;
        for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++)
            ok |= strcmp(f->status, statuses[i]) == 0;
        if (!ok)
            return meter_fail(st, METER_EINVAL, "unknown status '%s' (valid, frozen, expired, "
                              "exhausted, pending, refunded)", f->status);
    }
    char sql[768];
    snprintf(sql, sizeof sql,
             "SELECT %s FROM packs WHERE (?1 IS NULL OR instr(id, ?1) > 0)"
             " AND (?2 < 0 OR type = ?2) AND (?3 IS NULL OR account = ?3)"
             " ORDER BY end_at, start_at, id", pack_columns);
    sqlite3_stmt *s = meter_prepare(st, sql);
    if (!s)
        return METER_EDB;
    if (f && f->id_like)
        sqlite3_bind_text(s, 1, f->id_like, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, f ? f->type : -1);
    if (f && f->account)
        sqlite3_bind_text(s, 3, f->account, -1, SQLITE_STATIC);
    meter_time now = meter_now();
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        meter_pack p;
        read_pack(s, &p, now);
        if (f && f->status && strcmp(f->status, p.status) != 0)
            continue;
        if (meter_grow(rows, &cap, *n, sizeof **rows) != METER_OK) {
            sqlite3_finalize(s);
            free(*rows);
            *rows = NULL;
            *n = 0;
            return meter_fail(st, METER_ENOMEM, "out of memory");
        }
        (*rows)[(*n)++] = p;
    }
    int code = rc == SQLITE_DONE ? METER_OK : meter_fail_db(st, "list packs");
    sqlite3_finalize(s);
    if (code != METER_OK) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    return code;
}

/* Reads the pack inside the caller's transaction. */
static int pack_in_tx(meter_store *st, const char *id, meter_pack *p, meter_time now)
{
    int rc = meter_pack_get(st, id, p);
    if (rc == METER_OK)
        pack_status(p, now);
    return rc;
}

/* An own pack, for an administrative action: a lease slice is the
 * ledger's pack, frozen or refunded there. */
static int own_pack_in_tx(meter_store *st, const char *id, meter_pack *p, meter_time now)
{
    int rc = pack_in_tx(st, id, p, now);
    if (rc == METER_OK && p->lease_id[0])
        rc = meter_fail(st, METER_EREFUSED, "pack '%s' is a slice of lease %s: freeze or "
                        "refund pack '%s' at the ledger", id, p->lease_id, p->source_id);
    return rc;
}

static int set_frozen(meter_store *st, const char *id, int frozen)
{
    meter_time now = meter_now();
    meter_pack p;
    int rc = meter_tx_begin(st);
    if (rc != METER_OK)
        return rc;
    rc = own_pack_in_tx(st, id, &p, now);
    char why[METER_ERRMAX];
    meter_pack_state ps = state_of(&p);
    if (rc == METER_OK && (rc = meter_pack_may_freeze(&ps, id, frozen, why)) != METER_OK)
        meter_fail(st, rc, "%s", why);
    if (rc == METER_OK) {
        sqlite3_stmt *s = meter_prepare(st, "UPDATE packs SET frozen = ?2 WHERE id = ?1");
        if (!s)
            rc = METER_EDB;
        else {
            sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
            sqlite3_bind_int(s, 2, frozen);
            rc = meter_exec_stmt(st, s, frozen ? "freeze pack" : "unfreeze pack");
        }
    }
    if (rc == METER_OK)
        rc = pack_event(st, id, frozen ? "freeze" : "unfreeze", now);
    return meter_tx_end(st, rc);
}

int meter_pack_freeze(meter_store *st, const char *id)
{
    return set_frozen(st, id, 1);
}

int meter_pack_unfreeze(meter_store *st, const char *id)
{
    return set_frozen(st, id, 0);
}

int meter_pack_refund(meter_store *st, const char *id)
{
    meter_time now = meter_now();
    meter_pack p;
    int rc = meter_tx_begin(st);
    if (rc != METER_OK)
        return rc;
    rc = own_pack_in_tx(st, id, &p, now);
    char why[METER_ERRMAX];
    meter_pack_state ps = state_of(&p);
    if (rc == METER_OK && (rc = meter_pack_may_refund(&ps, id, now, why)) != METER_OK)
        meter_fail(st, rc, "%s", why);
    if (rc == METER_OK) {
        sqlite3_stmt *s = meter_prepare(st, "UPDATE packs SET refunded_at = ?2 WHERE id = ?1");
        if (!s)
            rc = METER_EDB;
        else {
            sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 2, now);
            rc = meter_exec_stmt(st, s, "refund pack");
        }
    }
    if (rc == METER_OK)
        rc = pack_event(st, id, "refund", now);
    return meter_tx_end(st, rc);
}

int meter_available(meter_store *st, meter_class cls, int64_t *us)
{
    return meter_available_account(st, NULL, cls, us);
}

int meter_available_account(meter_store *st, const char *account_in, meter_class cls,
                            int64_t *us)
{
    *us = 0;
    char account[METER_NAME_MAX];
    int rc = meter_resolve_account(st, account_in, "account", account);
    if (rc != METER_OK)
        return rc;
    /* what eligible_packs (deduct.c) would offer a charge now */
    sqlite3_stmt *s = meter_prepare(st,
        "SELECT coalesce(sum(remaining_us), 0) FROM packs WHERE account = ?3 AND type = ?1"
        " AND frozen = 0 AND refunded_at IS NULL AND start_at <= ?2 AND end_at > ?2"
        " AND (expires_at IS NULL OR ?2 < expires_at)");
    if (!s)
        return METER_EDB;
    sqlite3_bind_int(s, 1, (int)cls);
    sqlite3_bind_int64(s, 2, meter_now());
    sqlite3_bind_text(s, 3, account, -1, SQLITE_STATIC);
    int code = METER_OK;
    if (sqlite3_step(s) == SQLITE_ROW)
        *us = sqlite3_column_int64(s, 0);
    else
        code = meter_fail_db(st, "sum available minutes");
    sqlite3_finalize(s);
    return code;
}

static int insert_remote(meter_store *st, const meter_remote_pack *p, const char *account,
                         meter_time now)
{
    sqlite3_stmt *s = meter_prepare(st,
        "INSERT INTO packs(id, type, total_us, remaining_us, start_at, end_at, created_at,"
        " account) VALUES(?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7)");
    if (!s)
        return METER_EDB;
    sqlite3_bind_text(s, 1, p->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, (int)p->type);
    sqlite3_bind_int64(s, 3, p->total_us);
    sqlite3_bind_int64(s, 4, p->start);
    sqlite3_bind_int64(s, 5, p->end);
    sqlite3_bind_int64(s, 6, now);
    sqlite3_bind_text(s, 7, account, -1, SQLITE_STATIC);
    int rc = meter_exec_stmt(st, s, "add assigned pack");
    return rc == METER_OK ? pack_event(st, p->id, "purchase", now) : rc;
}

static int update_flag(meter_store *st, const char *id, const char *sql, int64_t value)
{
    sqlite3_stmt *s = meter_prepare(st, sql);
    if (!s)
        return METER_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, value);
    return meter_exec_stmt(st, s, "update pack");
}

int meter_pack_apply(meter_store *st, const meter_remote_pack *p)
{
    if (!p || !meter_pack_id_valid(p->id))
        return meter_fail(st, METER_EINVAL, "assigned pack has an invalid id '%s'",
                          p ? p->id : "");
    if ((p->type != METER_CLASS_GENERAL && p->type != METER_CLASS_TSC) || p->total_us <= 0 ||
        p->total_us > METER_PACK_TOTAL_MAX_US || p->start < 0 || p->end <= p->start)
        return meter_fail(st, METER_EINVAL, "assigned pack '%s' has an invalid type, size or "
                          "validity", p->id);
    char account[METER_NAME_MAX];
    int rc = meter_resolve_account(st, p->account, "account of assigned pack", account);
    if (rc != METER_OK)
        return rc;
    meter_time now = meter_now();
    meter_pack cur;
    if ((rc = meter_tx_begin(st)) != METER_OK)
        return rc;
    rc = pack_in_tx(st, p->id, &cur, now);
    if (rc == METER_ENOTFOUND) {
        rc = insert_remote(st, p, account, now);
        cur.frozen = 0;
        cur.refunded_at = 0;
        cur.deductions = 0;
    } else if (rc == METER_OK && (cur.type != p->type || cur.total_us != p->total_us ||
                                  cur.start != p->start || cur.end != p->end)) {
        rc = meter_fail(st, METER_EREFUSED, "pack '%s' differs between the ledger and this "
                        "node (type, size or validity)", p->id);
    } else if (rc == METER_OK && p->account[0] && strcmp(cur.account, account) != 0) {
        rc = meter_fail(st, METER_EREFUSED, "pack '%s' is of account '%s' on this node, not "
                        "'%s' as at the ledger", p->id, cur.account, account);
    }
    if (rc == METER_OK && !cur.refunded_at && cur.frozen != (p->frozen != 0)) {
        rc = update_flag(st, p->id, "UPDATE packs SET frozen = ?2 WHERE id = ?1", p->frozen != 0);
        if (rc == METER_OK)
            rc = pack_event(st, p->id, p->frozen ? "freeze" : "unfreeze", now);
    }
    if (rc == METER_OK && p->refunded_at && !cur.refunded_at) {
        if (cur.deductions > 0)
            rc = meter_fail(st, METER_EREFUSED, "pack '%s' was refunded at the ledger but this "
                            "node has already used it", p->id);
        else if ((rc = update_flag(st, p->id, "UPDATE packs SET refunded_at = ?2 WHERE id = ?1",
                                   p->refunded_at)) == METER_OK)
            rc = pack_event(st, p->id, "refund", now);
    }
    return meter_tx_end(st, rc);
}
