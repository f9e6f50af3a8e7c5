/*
 * deduct.c — the deduction engine: recording usage, charging packs, daily
 * settlement.
 *
 * Every charge is split across the valid packs of its class and account in
 * the order earliest end, then earliest start, then id (billing-rules.md
 * §2) — lease slices among them, each only while both the charge's time
 * and the local clock are before its expires_at; what no pack covers
 * becomes an overage row, so Σ deductions of a charge always
 * equals what it billed (invariant I3).  All of it runs inside the caller's
 * BEGIN IMMEDIATE transaction, so concurrent writers serialise here and a
 * balance read is never stale when it is written back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct pack_take {
    char id[METER_NAME_MAX];
    int64_t remaining;
};

static void append_csv(char *csv, size_t cap, const char *id)
{
    if (!csv || !cap)
        return;
    size_t used = strlen(csv);
    /* The same pack twice in one list says nothing new. */
    if (used) {
        char *hit = strstr(csv, id);
        size_t n = strlen(id);
        while (hit) {
            if ((hit == csv || hit[-1] == ',') && (hit[n] == ',' || hit[n] == '\0'))
                return;
            hit = strstr(hit + 1, id);
        }
    }
    int w = snprintf(csv + used, cap - used, "%s%s", used ? "," : "", id);
    if (w < 0 || (size_t)w >= cap - used) {
        /* Truncated: end the list with an ellipsis that fits. */
        if (cap >= 4)
            strcpy(csv + cap - 4, "...");
    }
}

static int insert_deduction(meter_store *st, const char *charge_id, const char *account,
                            const char *pack_id, meter_class cls, const char *ttype, meter_time at, const char *day,
                            int64_t amount, int64_t before, int64_t after)
{
    int64_t seq;
    char did[METER_ID_MAX];
    int rc = meter_next_id(st, 'd', &seq, did);
    if (rc != METER_OK)
        return rc;
    sqlite3_stmt *s = meter_prepare(st,
        "INSERT INTO deductions(seq, id, charge_id, pack_id, class, ttype, at, day, amount_us,"
        " before_us, after_us, account) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
    if (!s)
        return METER_EDB;
    sqlite3_bind_int64(s, 1, seq);
    sqlite3_bind_text(s, 2, did, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, charge_id, -1, SQLITE_STATIC);
    if (pack_id) {
        sqlite3_bind_text(s, 4, pack_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 10, before);
        sqlite3_bind_int64(s, 11, after);
    }
    sqlite3_bind_int(s, 5, (int)cls);
    sqlite3_bind_text(s, 6, ttype, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, at);
    sqlite3_bind_text(s, 8, day, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 9, amount);
    sqlite3_bind_text(s, 12, account, -1, SQLITE_STATIC);
    rc = meter_exec_stmt(st, s, "record deduction");
    return rc == METER_OK ? meter_outbox_add(st, "deduction", did, at) : rc;
}

/* The packs that may pay, in deduction order.  Read fully before any
 * balance is written, so no statement iterates a table being updated. */
static int eligible_packs(meter_store *st, const char *account, meter_class cls,
                          meter_time at, meter_time start_before, struct pack_take **out,
                          size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = meter_prepare(st,
        "SELECT id, remaining_us FROM packs WHERE account = ?4 AND type = ?1 AND frozen = 0"
        " AND refunded_at IS NULL AND remaining_us > 0 AND start_at <= ?2 AND end_at > ?2"
        " AND (?3 = 0 OR start_at < ?3)"
        " AND (expires_at IS NULL OR (?2 < expires_at AND ?5 < expires_at))"
        " ORDER BY end_at, start_at, id");
    if (!s)
        return METER_EDB;
    sqlite3_bind_int(s, 1, (int)cls);
    sqlite3_bind_int64(s, 2, at);
    sqlite3_bind_int64(s, 3, start_before);
    sqlite3_bind_text(s, 4, account, -1, SQLITE_STATIC);
    /* a lease slice also stops on the local clock: a usage dated back
     * (meterctl record --at) must not spend a slice whose lease has
     * resolved or expired since */
    sqlite3_bind_int64(s, 5, meter_now());
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (meter_grow(out, &cap, *n, sizeof **out) != METER_OK) {
            sqlite3_finalize(s);
            free(*out);
            *out = NULL;
            return meter_fail(st, METER_ENOMEM, "out of memory");
        }
        meter_col_text(s, 0, (*out)[*n].id, METER_NAME_MAX);
        (*out)[*n].remaining = sqlite3_column_int64(s, 1);
        (*n)++;
    }
    int code = rc == SQLITE_DONE ? METER_OK : meter_fail_db(st, "select packs");
    sqlite3_finalize(s);
    return code;
}

int meter_charge(meter_store *st, const struct meter_charge_req *r)
{
    int offset, rc;
    char day[11];
    if (r->day) {
        meter_copy(day, sizeof day, r->day);
    } else {
        if ((rc = meter_get_day_offset(st, &offset)) != METER_OK)
            return rc;
        meter_day_of(r->at, offset, day);
    }

    int64_t left = r->billed_us;
    if (r->deductible && left > 0) {
        struct pack_take *packs;
        size_t n;
        if ((rc = eligible_packs(st, r->account, r->cls, r->at, r->start_before, &packs,
                                 &n)) != METER_OK)
            return rc;
        sqlite3_stmt *upd = n ? meter_prepare(st,
            "UPDATE packs SET remaining_us = remaining_us - ?2 WHERE id = ?1") : NULL;
        if (n && !upd)
            rc = METER_EDB;
        for (size_t i = 0; i < n && left > 0 && rc == METER_OK; i++) {
            int64_t take = left < packs[i].remaining ? left : packs[i].remaining;
            sqlite3_reset(upd);
            sqlite3_bind_text(upd, 1, packs[i].id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(upd, 2, take);
            if (sqlite3_step(upd) != SQLITE_DONE) {
                rc = meter_fail_db(st, "deduct from pack");
                break;
            }
            rc = insert_deduction(st, r->charge_id, r->account, packs[i].id, r->cls, r->ttype,
                                  r->at, day, take, packs[i].remaining,
                                  packs[i].remaining - take);
            left -= take;
            append_csv(r->packs_csv, r->packs_cap, packs[i].id);
        }
        sqlite3_finalize(upd);
        free(packs);
        if (rc != METER_OK)
            return rc;
    }
    /* Overage: recorded, never dropped. */
    if (left > 0 && (rc = insert_deduction(st, r->charge_id, r->account, NULL, r->cls, r->ttype,
                                           r->at, day, left, 0, 0)) != METER_OK)
        return rc;
    if (r->covered)
        *r->covered = r->billed_us - left;
    if (r->overage)
        *r->overage = left;
    return METER_OK;
}

int meter_usage_check(meter_store *st, const meter_usage_in *in, meter_spec *spec)
{
    int rc;
    if ((rc = meter_check_name(st->err, "job", in->job)) != METER_OK ||
        (rc = meter_check_name(st->err, "output", in->output)) != METER_OK)
        return rc;
    if (in->duration_us <= 0 || in->duration_us > METER_DURATION_MAX_US)
        return meter_fail(st, METER_EINVAL, "duration %lld µs is out of range (1 µs to %lld µs)",
                          (long long)in->duration_us, (long long)METER_DURATION_MAX_US);
    if (in->at < 0)
        return meter_fail(st, METER_EINVAL, "usage time is before 1970");
    if (in->account && *in->account && !meter_account_valid(in->account))
        return meter_fail(st, METER_EINVAL, "invalid account '%.80s' (1 to %d letters, digits, "
                          "'.', '_', '-', ':')", in->account, METER_NAME_MAX - 1);
    /* Usage cannot come from the future: it would let a record drain a
     * pack that has not started yet.  A minute of clock skew is allowed. */
    if (in->at > meter_now() + 60000)
        return meter_fail(st, METER_EINVAL, "usage time is in the future");
    return meter_classify(st, in->cls, in->codec, in->width, in->height, spec, st->err);
}

int meter_record_tx(meter_store *st, const meter_usage_in *in, const char *session_id,
                    const char *state, meter_time started_at, int64_t bill_us,
                    meter_usage_result *out, char *packs_csv, size_t packs_cap)
{
    int rc;
    meter_spec spec;
    if ((rc = meter_usage_check(st, in, &spec)) != METER_OK)
        return rc;
    meter_rate rate;
    rc = meter_rate_lookup(st, in->cls, spec.ttype, &rate);
    if (rc == METER_ENOTFOUND) {
        /* A type without any rate row is not deductible: all overage. */
        rate.num = rate.den = 0;
    } else if (rc != METER_OK) {
        return rc;
    }
    meter_rounding rounding;
    int daily, deductible;
    int64_t billed;
    if ((rc = meter_get_rounding(st, &rounding)) != METER_OK ||
        (rc = meter_get_daily(st, &daily)) != METER_OK)
        return rc;
    if (bill_us > 0)
        rounding = METER_ROUND_EXACT;  /* the caller rounded the whole output */
    if (meter_bill(&rate, rounding, bill_us > 0 ? bill_us : in->duration_us, &billed,
                   &deductible) != METER_OK)
        return meter_fail(st, METER_EINVAL, "billed amount of %lld µs of %s overflows",
                          (long long)in->duration_us, spec.ttype);

    meter_time at = in->at ? in->at : meter_now();
    if (!started_at)
        started_at = at - in->duration_us / 1000;
    /* a start before 1970 or after the record (a bogus clock or spool
     * file) would make the record one the ledger refuses */
    if (started_at < 0)
        started_at = 0;
    if (started_at > at)
        started_at = at;
    char node[METER_NAME_MAX], account[METER_NAME_MAX], day[11];
    int offset;
    if ((rc = meter_resolve_account(st, in->account, "account", account)) != METER_OK ||
        (rc = meter_get_node(st, node)) != METER_OK ||
        (rc = meter_get_day_offset(st, &offset)) != METER_OK)
        return rc;
    meter_day_of(at, offset, day);

    int64_t seq;
    char uid[METER_ID_MAX];
    if ((rc = meter_next_id(st, 'u', &seq, uid)) != METER_OK)
        return rc;
    sqlite3_stmt *s = meter_prepare(st,
        "INSERT INTO usage(seq, id, job, output, node, session_id, class, ttype, codec, width,"
        " height, duration_us, billed_us, deductible, started_at, recorded_at, day, state,"
        " daily, account) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
        " ?15, ?16, ?17, ?18, ?19, ?20)");
    if (!s)
        return METER_EDB;
    int video = !(spec.flags & (METER_SPEC_AUDIO | METER_SPEC_REMUX));
    sqlite3_bind_int64(s, 1, seq);
    sqlite3_bind_text(s, 2, uid, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, in->job, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, in->output, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, node, -1, SQLITE_STATIC);
    if (session_id)
        sqlite3_bind_text(s, 6, session_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 7, (int)in->cls);
    sqlite3_bind_text(s, 8, spec.ttype, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 9, spec.codec, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 10, video ? in->width : 0);
    sqlite3_bind_int(s, 11, video ? in->height : 0);
    sqlite3_bind_int64(s, 12, in->duration_us);
    sqlite3_bind_int64(s, 13, billed);
    sqlite3_bind_int(s, 14, deductible);
    sqlite3_bind_int64(s, 15, started_at);
    sqlite3_bind_int64(s, 16, at);
    sqlite3_bind_text(s, 17, day, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 18, state, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 19, daily);
    sqlite3_bind_text(s, 20, account, -1, SQLITE_STATIC);
    if ((rc = meter_exec_stmt(st, s, "record usage")) != METER_OK)
        return rc;
    if ((rc = meter_outbox_add(st, "usage", uid, at)) != METER_OK)
        return rc;

    int64_t covered = 0, overage = 0;
    if (!daily) {
        struct meter_charge_req charge = {
            .charge_id = uid, .account = account, .cls = in->cls, .ttype = spec.ttype,
            .billed_us = billed, .deductible = deductible, .at = at,
            .covered = &covered, .overage = &overage,
            .packs_csv = packs_csv, .packs_cap = packs_cap,
        };
        if ((rc = meter_charge(st, &charge)) != METER_OK)
            return rc;
    }
    if (out) {
        memset(out, 0, sizeof *out);
        meter_copy(out->id, sizeof out->id, uid);
        meter_copy(out->ttype, sizeof out->ttype, spec.ttype);
        out->billed_us = billed;
        out->covered_us = covered;
        out->overage_us = overage;
        out->settled = !daily;
    }
    return METER_OK;
}

int meter_record(meter_store *st, const meter_usage_in *in, meter_usage_result *out)
{
    if (!in)
        return meter_fail(st, METER_EINVAL, "no usage given");
    int rc = meter_tx_begin(st);
    if (rc != METER_OK)
        return rc;
    return meter_tx_end(st, meter_record_tx(st, in, NULL, "manual", 0, 0, out, NULL, 0));
}

/* ---------------------------------------------------------- settlement -- */

struct settle_group {
    char day[11];
    char account[METER_NAME_MAX];
    meter_class cls;
    char ttype[METER_TTYPE_MAX];
    int deductible;
    int64_t billed;
};

static int unsettled_groups(meter_store *st, const char *today, struct settle_group **out,
                            size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = meter_prepare(st,
        "SELECT day, class, ttype, deductible, sum(billed_us), account FROM usage u"
        " WHERE daily = 1 AND day < ?1"
        " AND NOT EXISTS (SELECT 1 FROM settled_usage su WHERE su.usage_seq = u.seq)"
        " GROUP BY day, account, class, ttype, deductible"
        " ORDER BY day, account, class, ttype, deductible");
    if (!s)
        return METER_EDB;
    sqlite3_bind_text(s, 1, today, -1, SQLITE_STATIC);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (meter_grow(out, &cap, *n, sizeof **out) != METER_OK) {
            sqlite3_finalize(s);
            free(*out);
            *out = NULL;
            return meter_fail(st, METER_ENOMEM, "out of memory");
        }
        struct settle_group *g = &(*out)[(*n)++];
        meter_col_text(s, 0, g->day, sizeof g->day);
        g->cls = (meter_class)sqlite3_column_int(s, 1);
        meter_col_text(s, 2, g->ttype, sizeof g->ttype);
        g->deductible = sqlite3_column_int(s, 3);
        g->billed = sqlite3_column_int64(s, 4);
        meter_col_text(s, 5, g->account, sizeof g->account);
    }
    int code = rc == SQLITE_DONE ? METER_OK : meter_fail_db(st, "select unsettled usage");
    sqlite3_finalize(s);
    return code;
}

static int settle_group(meter_store *st, const struct settle_group *g, meter_time now,
                        int offset, meter_settle_result *res)
{
    int64_t seq;
    char sid[METER_ID_MAX];
    int rc = meter_next_id(st, 's', &seq, sid);
    if (rc != METER_OK)
        return rc;
    sqlite3_stmt *s = meter_prepare(st,
        "INSERT INTO settlements(seq, id, day, class, ttype, deductible, billed_us, at, account)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    if (!s)
        return METER_EDB;
    sqlite3_bind_int64(s, 1, seq);
    sqlite3_bind_text(s, 2, sid, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, g->day, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 4, (int)g->cls);
    sqlite3_bind_text(s, 5, g->ttype, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 6, g->deductible);
    sqlite3_bind_int64(s, 7, g->billed);
    sqlite3_bind_int64(s, 8, now);
    sqlite3_bind_text(s, 9, g->account, -1, SQLITE_STATIC);
    if ((rc = meter_exec_stmt(st, s, "record settlement")) != METER_OK)
        return rc;
    /* The same rows the group summed: nothing else can write meanwhile. */
    s = meter_prepare(st,
        "INSERT INTO settled_usage(usage_seq, settlement_id) SELECT seq, ?1 FROM usage u"
        " WHERE daily = 1 AND day = ?2 AND class = ?3 AND ttype = ?4 AND deductible = ?5"
        " AND account = ?6"
        " AND NOT EXISTS (SELECT 1 FROM settled_usage su WHERE su.usage_seq = u.seq)");
    if (!s)
        return METER_EDB;
    sqlite3_bind_text(s, 1, sid, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, g->day, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, (int)g->cls);
    sqlite3_bind_text(s, 4, g->ttype, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 5, g->deductible);
    sqlite3_bind_text(s, 6, g->account, -1, SQLITE_STATIC);
    if ((rc = meter_exec_stmt(st, s, "mark usage settled")) != METER_OK)
        return rc;
    if ((rc = meter_outbox_add(st, "settlement", sid, now)) != METER_OK)
        return rc;
    int64_t covered, overage;
    /* A pack bought after day D ended cannot pay for day D; the rows count
     * under day D, the day the usage happened. */
    struct meter_charge_req charge = {
        .charge_id = sid, .account = g->account, .cls = g->cls, .ttype = g->ttype,
        .billed_us = g->billed, .deductible = g->deductible, .at = now,
        .start_before = meter_day_end(g->day, offset), .day = g->day,
        .covered = &covered, .overage = &overage,
    };
    rc = meter_charge(st, &charge);
    if (rc == METER_OK) {
        res->days++;
        res->billed_us += g->billed;
        res->covered_us += covered;
        res->overage_us += overage;
    }
    return rc;
}

int meter_settle(meter_store *st, meter_settle_result *out)
{
    meter_settle_result res = {0};
    meter_time now = meter_now();
    int offset, rc;
    char today[11];
    if ((rc = meter_tx_begin(st)) != METER_OK)
        return rc;
    rc = meter_get_day_offset(st, &offset);
    meter_day_of(now, offset, today);
    struct settle_group *groups = NULL;
    size_t n = 0;
    if (rc == METER_OK)
        rc = unsettled_groups(st, today, &groups, &n);
    for (size_t i = 0; i < n && rc == METER_OK; i++)
        rc = settle_group(st, &groups[i], now, offset, &res);
    free(groups);
    rc = meter_tx_end(st, rc);
    if (rc == METER_OK && out)
        *out = res;
    return rc;
}
