/*
 * store_leases.c — leases: minutes of an account's pooled packs reserved
 * for one node until the lease is released or expires (store.h, "leases").
 *
 * Nothing about a lease lives in memory: its state, expiry and slices are
 * rows, and what a pack has reserved is derived from them whenever it is
 * needed —
 *     reserved(pack, now) = Σ (granted − posted) of its slices not voided
 *                           of leases open with expires_ms > now
 *     free(pack, now)     = total − used − reserved
 * — so a restarted ledger, or another instance on the same PostgreSQL,
 * sees exactly what this one saw.
 *
 * Expiry is decided by the ledger's clock and resolved lazily: the first
 * statement of every transaction that grants, renews, releases, ingests
 * or refunds is
 *     UPDATE leases SET state = 'expired', resolved_ms = expires_ms
 *      WHERE state = 'open' AND expires_ms <= now
 * which resolves a lease at most once (the WHERE re-checks the row it
 * waited for) and makes the state, not a clock comparison, what every later
 * decision reads: a transaction that counted a lease's minutes as free has
 * committed that lease's expiry, so a renewal arriving afterwards (at an
 * instance whose clock is behind) finds it 'expired' and gets 409, never
 * reviving minutes already handed out again.
 *
 * Never the same minute twice, with several instances on one PostgreSQL
 * (READ COMMITTED).  free ≥ 0 could only break where used or reserved
 * grows: a grant (new slices), an ingest (used += a posting) and nothing
 * else — a renewal only moves an expiry (see above) and voids slices, a
 * release and an expiry only shrink reserved.  Every path that grows used
 * or reserved of a pack holds that pack's row lock (FOR UPDATE) from before
 * it reads used and reserved until it commits:
 *   - grant: the account's pooled packs of the class, all of them, in id
 *     order (one SELECT … ORDER BY id FOR UPDATE: rows are locked in the
 *     sorted order), then reads reserved and takes;
 *   - ingest (store_ingest.c): every pack its batch may post to, in id
 *     order, before reading any balance — read once per batch and kept
 *     in memory while the batch posts, its rows written once at the end
 *     of the batch, before the commit that releases the locks.  A pooled
 *     pack that can never pay again (used = total, refunded, or ended
 *     before the batch's deductions) is not locked: its used and
 *     reserved do not grow, and none of those states reverts (used only
 *     grows, total and end are never written, a refund is never undone),
 *     so a plain read of any committed state is enough to leave it out;
 *   - refund (store_packs.c): the pack, before reading used and reserved.
 * Two grants on one account therefore run one after the other: the second
 * reads, in a new statement after the first committed, the first's slices,
 * and takes only what is left.  A posting from a lease's reservation turns
 * reserved into used (free unchanged); a posting from free minutes reads
 * reserved under the same lock.  So Σ granted of open leases + used ≤ total
 * per pack, at every commit.
 * Lock order, the same on every path so they queue rather than deadlock:
 * lease rows (the expiry UPDATE, then a lease the request names), then pack
 * rows in id order, then the node's row.  The one overlap left is the
 * expiry UPDATE of one transaction and the named lease of another at the
 * very instant the lease expires: PostgreSQL detects that deadlock, and
 * store_tx() retries the loser from scratch.  SQLite needs none of this:
 * BEGIN IMMEDIATE serialises writers.
 *
 * Idempotence: a lease id is the node's ("<prefix>-l<seq>", its namespace
 * as for records).  A request for an id the node holds returns the stored
 * lease and reserves nothing; an id of another node gets the same answer
 * as one outside the namespace.  The INSERT of the lease row claims the id
 * in the transaction that stores its slices.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "store_impl.h"

int store_expire_leases(ledger_store *st, meter_time now)
{
    lparam p[] = { P_INT(now) };
    return store_exec(st, "UPDATE leases SET state = 'expired', resolved_ms = expires_ms"
                          " WHERE state = 'open' AND expires_ms <= $1", p, 1, NULL);
}

/* ------------------------------------------------------------- reading -- */

#define LEASE_COLS(now) "id, node, account, class," \
    " CASE WHEN state = 'open' AND expires_ms <= " now " THEN 'expired' ELSE state END," \
    " requested_us, granted_us, created_ms, expires_ms," \
    " CASE WHEN state = 'open' AND expires_ms <= " now " THEN expires_ms ELSE resolved_ms END"

static void lease_row(const lres *r, int i, ledger_lease *l)
{
    memset(l, 0, sizeof *l);
    lres_text(r, i, 0, l->id, sizeof l->id);
    lres_text(r, i, 1, l->node, sizeof l->node);
    lres_text(r, i, 2, l->account, sizeof l->account);
    l->cls = store_class(lres_get(r, i, 3));
    lres_text(r, i, 4, l->state, sizeof l->state);
    l->requested_us = lres_int(r, i, 5);
    l->granted_us = lres_int(r, i, 6);
    l->created_at = lres_int(r, i, 7);
    l->expires_at = lres_int(r, i, 8);
    l->resolved_at = lres_int(r, i, 9);
}

/* The lease's slices, in the order they were taken (the packs' FIFO). */
static int read_slices(ledger_store *st, ledger_lease *l)
{
    lparam p[] = { P_TEXT(l->id) };
    lres r;
    int rc = store_exec(st, "SELECT s.pack_id, s.granted_us, s.posted_us, k.start_ms, k.end_ms,"
                            " s.voided FROM lease_slices s JOIN packs k ON k.id = s.pack_id"
                            " WHERE s.lease_id = $1 ORDER BY k.end_ms, k.start_ms, s.pack_id",
                        p, 1, &r);
    if (rc != METER_OK)
        return rc;
    l->nslices = 0;
    for (int i = 0; i < r.nrows && i < LEDGER_LEASE_SLICES_MAX; i++) {
        ledger_lease_slice *s = &l->slices[l->nslices++];
        lres_text(&r, i, 0, s->pack_id, sizeof s->pack_id);
        s->granted_us = lres_int(&r, i, 1);
        s->posted_us = lres_int(&r, i, 2);
        s->start = lres_int(&r, i, 3);
        s->end = lres_int(&r, i, 4);
        s->voided = lres_int(&r, i, 5) != 0;
    }
    lres_free(&r);
    return METER_OK;
}

int store_read_lease(ledger_store *st, const char *id, meter_time now, int lock,
                     ledger_lease *out)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT " LEASE_COLS("$2") " FROM leases WHERE id = $1%s",
             lock && st->drv->for_update ? " FOR UPDATE" : "");
    lparam p[] = { P_TEXT(id), P_INT(now) };
    lres r;
    int rc = store_exec(st, sql, p, 2, &r);
    if (rc != METER_OK)
        return rc;
    if (r.nrows == 0)
        rc = store_fail(st, METER_ENOTFOUND, "no lease '%s'", id);
    else
        lease_row(&r, 0, out);
    lres_free(&r);
    return rc == METER_OK ? read_slices(st, out) : rc;
}

int ledger_lease_get(ledger_store *st, const char *id, meter_time now, ledger_lease *out)
{
    if (!proto_record_id_prefix(id, "lease", NULL))
        return store_fail(st, METER_EINVAL, "'%.60s' is not a lease id (<node_id>-l<seq>)",
                          id ? id : "");
    return store_read_lease(st, id, now, 0, out);
}

int ledger_lease_list(ledger_store *st, const ledger_lease_filter *f, meter_time now,
                      ledger_lease **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    int limit = f && f->limit ? f->limit : 100;
    if (limit < 1 || limit > 1000)
        return store_fail(st, METER_EINVAL, "limit must be 1 to 1000, not %d", limit);
    if (f && f->state && strcmp(f->state, "open") && strcmp(f->state, "released") &&
        strcmp(f->state, "expired"))
        return store_fail(st, METER_EINVAL, "unknown lease state '%.40s' (open, released, "
                          "expired)", f->state);
    char sql[1024];
    lparam p[5] = { P_INT(now) };
    int np = 1;
    snprintf(sql, sizeof sql,
             "SELECT id, node, account, class, st, requested_us, granted_us, created_ms,"
             " expires_ms, res FROM (SELECT id, node, account, class,"
             " CASE WHEN state = 'open' AND expires_ms <= $1 THEN 'expired' ELSE state END AS st,"
             " requested_us, granted_us, created_ms, expires_ms,"
             " CASE WHEN state = 'open' AND expires_ms <= $1 THEN expires_ms ELSE resolved_ms END"
             " AS res FROM leases) x WHERE 1 = 1");
    int len = (int)strlen(sql);
    if (f && f->node) {
        p[np++] = P_TEXT(f->node);
        len += snprintf(sql + len, sizeof sql - (size_t)len, " AND node = $%d", np);
    }
    if (f && f->account) {
        p[np++] = P_TEXT(f->account);
        len += snprintf(sql + len, sizeof sql - (size_t)len, " AND account = $%d", np);
    }
    if (f && f->state) {
        p[np++] = P_TEXT(f->state);
        len += snprintf(sql + len, sizeof sql - (size_t)len, " AND st = $%d", np);
    }
    p[np++] = P_INT(limit);
    snprintf(sql + len, sizeof sql - (size_t)len, " ORDER BY created_ms DESC, id DESC LIMIT $%d",
             np);
    lres r;
    int rc = store_exec(st, sql, p, np, &r);
    if (rc != METER_OK)
        return rc;
    ledger_lease *out = r.nrows ? calloc((size_t)r.nrows, sizeof *out) : NULL;
    if (r.nrows && !out) {
        lres_free(&r);
        return store_fail(st, METER_ENOMEM, "out of memory");
    }
    for (int i = 0; i < r.nrows && rc == METER_OK; i++) {
        lease_row(&r, i, &out[i]);
        rc = read_slices(st, &out[i]);
    }
    int k = r.nrows;
    lres_free(&r);
    if (rc != METER_OK) {
        free(out);
        return rc;
    }
    *rows = out;
    *n = (size_t)k;
    return METER_OK;
}

/* ----------------------------------------------------------- namespace -- */

/* Takes the node's row lock (PostgreSQL: its lease requests and batches
 * queue up) and says whether the lease id is in its namespace; a node
 * without any prefix yet binds this one (first use), as ingest does. */
static int own_lease_id(ledger_store *st, const char *node, const char *id, meter_time now,
                        int *own)
{
    *own = 0;
    char prefix[METER_ID_MAX];
    if (!proto_record_id_prefix(id, "lease", prefix))
        return store_fail(st, METER_EINVAL, "'%.60s' is not a lease id (<node_id>-l<seq>)", id);
    lparam pn[] = { P_TEXT(node) };
    int rc = METER_OK;
    if (st->drv->for_update)
        rc = store_exec(st, "SELECT 1 FROM nodes WHERE name = $1 FOR UPDATE", pn, 1, NULL);
    lres r;
    if (rc == METER_OK)
        rc = store_exec(st, "SELECT prefix FROM node_ids WHERE node = $1", pn, 1, &r);
    if (rc != METER_OK)
        return rc;
    int any = r.nrows > 0;
    for (int i = 0; i < r.nrows; i++)
        if (strcmp(lres_get(&r, i, 0) ? lres_get(&r, i, 0) : "", prefix) == 0)
            *own = 1;
    lres_free(&r);
    if (*own || any)
        return METER_OK;
    lparam p[] = { P_TEXT(prefix), P_TEXT(node), P_INT(now) };
    rc = store_exec(st, "INSERT INTO node_ids (prefix, node, bound_ms, how)"
                        " VALUES ($1, $2, $3, 'first-use') ON CONFLICT (prefix) DO NOTHING",
                    p, 3, &r);
    if (rc != METER_OK)
        return rc;
    *own = r.changes > 0;
    lres_free(&r);
    return METER_OK;
}

/* The one answer for an id that is not the node's, stored or not. */
static int not_yours(ledger_store *st, const char *node, const char *id)
{
    return store_fail(st, METER_ENOTFOUND, "no lease '%s' of node '%s'", id, node);
}

/* --------------------------------------------------------------- grant -- */

struct cand {
    char id[METER_NAME_MAX];
    int64_t free_us;
    meter_time start, end;
};

static int cmp_fifo(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return strcmp(x->id, y->id);
}

struct grant_ctx {
    const char *node, *id, *account;
    meter_class cls;
    int64_t want_us;
    const ledger_lease_limits *lim;
    meter_time now;
    ledger_lease *out;
    int created;
};

/* The account's pooled packs of the class, locked in id order; those
 * valid now with free minutes become candidates, in FIFO order. */
static int lock_pool(ledger_store *st, struct grant_ctx *c, struct cand **cands, size_t *nc)
{
    *cands = NULL;
    *nc = 0;
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT id, total_us, used_us, start_ms, end_ms, frozen,"
             " refunded_ms, deductions FROM packs WHERE node IS NULL AND account = $1"
             " AND type = $2 ORDER BY id%s", st->drv->for_update ? " FOR UPDATE" : "");
    lparam p[] = { P_TEXT(c->account), P_TEXT(meter_class_name(c->cls)), P_INT(c->now) };
    lres r, res;
    int rc = store_exec(st, sql, p, 2, &r);
    if (rc != METER_OK)
        return rc;
    /* read under the locks just taken: a concurrent grant has committed */
    rc = store_exec(st, "SELECT s.pack_id, SUM(s.granted_us - s.posted_us) FROM lease_slices s"
                        " JOIN leases l ON l.id = s.lease_id JOIN packs k ON k.id = s.pack_id"
                        " WHERE k.node IS NULL AND k.account = $1 AND k.type = $2"
                        " AND s.voided = 0 AND l.state = 'open' AND l.expires_ms > $3"
                        " GROUP BY s.pack_id", p, 3, &res);
    if (rc != METER_OK) {
        lres_free(&r);
        return rc;
    }
    struct cand *out = r.nrows ? calloc((size_t)r.nrows, sizeof *out) : NULL;
    if (r.nrows && !out) {
        lres_free(&r);
        lres_free(&res);
        return store_fail(st, METER_ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (int i = 0; i < r.nrows; i++) {
        const char *id = lres_get(&r, i, 0);
        int64_t reserved = 0;
        for (int j = 0; j < res.nrows; j++)
            if (!strcmp(lres_get(&res, j, 0), id))
                reserved = lres_int(&res, j, 1);
        meter_pack_state ps = {
            .start = lres_int(&r, i, 3), .end = lres_int(&r, i, 4),
            .total_us = lres_int(&r, i, 1),
            .remaining_us = lres_int(&r, i, 1) - lres_int(&r, i, 2) - reserved,
            .deductions = lres_int(&r, i, 7), .frozen = lres_int(&r, i, 5) != 0,
            .refunded_at = lres_int(&r, i, 6),
        };
        /* libmeter's rule: valid = not refunded, not frozen, not ended,
         * something left (here: free), started */
        if (strcmp(meter_pack_status(&ps, c->now), "valid") != 0)
            continue;
        store_copy(out[k].id, sizeof out[k].id, id);
        out[k].free_us = ps.remaining_us;
        out[k].start = ps.start;
        out[k].end = ps.end;
        k++;
    }
    lres_free(&r);
    lres_free(&res);
    if (k > 1)
        qsort(out, k, sizeof *out, cmp_fifo);
    *cands = out;
    *nc = k;
    return METER_OK;
}

static int grant_tx(ledger_store *st, void *vctx)
{
    struct grant_ctx *c = vctx;
    c->created = 0;
    int rc = store_expire_leases(st, c->now);
    if (rc == METER_OK)
        rc = ledger_account_exists(st, c->account);
    struct cand *cands = NULL;
    size_t nc = 0;
    if (rc == METER_OK)
        rc = lock_pool(st, c, &cands, &nc);
    int own = 0;
    if (rc == METER_OK)
        rc = own_lease_id(st, c->node, c->id, c->now, &own);
    if (rc == METER_OK && !own)
        rc = not_yours(st, c->node, c->id);
    lres r;
    if (rc == METER_OK) {
        /* a retried request: the stored lease, nothing more reserved */
        lparam p[] = { P_TEXT(c->id) };
        if ((rc = store_exec(st, "SELECT node FROM leases WHERE id = $1", p, 1, &r)) == METER_OK) {
            int found = r.nrows > 0, mine = found && !strcmp(lres_get(&r, 0, 0), c->node);
            lres_free(&r);
            if (found) {
                free(cands);
                return mine ? store_read_lease(st, c->id, c->now, 0, c->out)
                            : not_yours(st, c->node, c->id);
            }
        }
    }
    if (rc == METER_OK) {
        lparam p[] = { P_TEXT(c->node) };
        if ((rc = store_exec(st, "SELECT count(*) FROM leases WHERE node = $1 AND state = 'open'",
                             p, 1, &r)) == METER_OK) {
            int64_t open = lres_int(&r, 0, 0);
            lres_free(&r);
            if (open >= c->lim->per_node)
                rc = store_fail(st, LEDGER_ELIMIT, "node '%s' holds %" PRId64 " open leases, "
                                "the most leases-per-node allows: release one first", c->node,
                                open);
        }
    }
    /* what the node holds of this account and class already: lease-max-
     * minutes bounds that, not only one lease (else one node could hold
     * leases-per-node × lease-max-minutes of one account and starve every
     * other node of it) */
    int64_t held = 0;
    if (rc == METER_OK) {
        lparam p[] = { P_TEXT(c->node), P_TEXT(c->account), P_TEXT(meter_class_name(c->cls)),
                       P_INT(c->now) };
        if ((rc = store_exec(st, "SELECT COALESCE(SUM(s.granted_us - s.posted_us), 0)"
                                 " FROM lease_slices s JOIN leases l ON l.id = s.lease_id"
                                 " WHERE l.node = $1 AND l.account = $2 AND l.class = $3"
                                 " AND l.state = 'open' AND l.expires_ms > $4 AND s.voided = 0",
                             p, 4, &r)) == METER_OK) {
            held = lres_int(&r, 0, 0);
            lres_free(&r);
            if (held >= c->lim->max_us)
                rc = store_fail(st, METER_EREFUSED, "node '%s' holds %" PRId64 " µs of %s/%s "
                                "in open leases, the most lease-max-minutes allows: spend or "
                                "release some first", c->node, held, c->account,
                                meter_class_name(c->cls));
        }
    }
    if (rc != METER_OK) {
        free(cands);
        return rc;
    }
    int64_t want = c->want_us < c->lim->max_us - held ? c->want_us : c->lim->max_us - held;
    int64_t left = want;
    size_t take = 0;
    for (; take < nc && take < LEDGER_LEASE_SLICES_MAX && left > 0; take++) {
        int64_t t = cands[take].free_us < left ? cands[take].free_us : left;
        cands[take].free_us = t;   /* from here: what this lease takes of it */
        left -= t;
    }
    if (take == 0) {
        free(cands);
        return store_fail(st, METER_EREFUSED, "account '%s' has no %s minutes to reserve",
                          c->account, meter_class_name(c->cls));
    }
    lparam lp[] = { P_TEXT(c->id), P_TEXT(c->node), P_TEXT(c->account),
                    P_TEXT(meter_class_name(c->cls)), P_INT(want), P_INT(want - left),
                    P_INT(c->now), P_INT(c->now + c->lim->ttl_ms) };
    rc = store_exec(st, "INSERT INTO leases (id, node, account, class, requested_us, granted_us,"
                        " created_ms, expires_ms, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
                        " 'open')", lp, 8, NULL);
    for (size_t i = 0; rc == METER_OK && i < take; i++) {
        lparam sp[] = { P_TEXT(c->id), P_TEXT(cands[i].id), P_INT(cands[i].free_us) };
        rc = store_exec(st, "INSERT INTO lease_slices (lease_id, pack_id, granted_us)"
                            " VALUES ($1, $2, $3)", sp, 3, NULL);
    }
    free(cands);
    if (rc == METER_EEXIST)   /* the node's row lock makes this unreachable */
        return store_fail(st, METER_EBUSY, "lease '%s' was stored meanwhile: retry", c->id);
    if (rc == METER_OK)
        rc = store_read_lease(st, c->id, c->now, 0, c->out);
    c->created = rc == METER_OK;
    return rc;
}

static int check_limits(ledger_store *st, const ledger_lease_limits *lim)
{
    if (!lim || lim->ttl_ms < 1 || lim->max_us < 1 || lim->per_node < 1)
        return store_fail(st, METER_EINVAL, "lease limits must be positive");
    return METER_OK;
}

int ledger_lease_grant(ledger_store *st, const char *node, const char *id,
                       const char *account, meter_class cls, int64_t want_us,
                       const ledger_lease_limits *lim, meter_time now,
                       ledger_lease *out, int *created)
{
    *created = 0;
    int rc = check_limits(st, lim);
    if (rc != METER_OK)
        return rc;
    if (!node || !*node)
        return store_fail(st, METER_EINVAL, "a lease needs the requesting node");
    if (!id || !proto_record_id_prefix(id, "lease", NULL))
        return store_fail(st, METER_EINVAL, "'%.60s' is not a lease id (<node_id>-l<seq>)",
                          id ? id : "");
    if (!account || !proto_valid_node(account))
        return store_fail(st, METER_EINVAL, "invalid account name '%.60s'",
                          account ? account : "");
    if (cls != METER_CLASS_GENERAL && cls != METER_CLASS_TSC)
        return store_fail(st, METER_EINVAL, "a lease's class is general or tsc");
    if (want_us < 1 || want_us > METER_PACK_TOTAL_MAX_US)
        return store_fail(st, METER_EINVAL, "want_us must be 1 to %" PRId64 ", not %" PRId64,
                          (int64_t)METER_PACK_TOTAL_MAX_US, want_us);
    struct grant_ctx c = { node, id, account, cls, want_us, lim, now, out, 0 };
    rc = store_tx(st, grant_tx, &c);
    *created = rc == METER_OK && c.created;
    return rc;
}

/* ------------------------------------------------------ renew, release -- */

struct change_ctx {
    const char *node, *id;
    const ledger_lease_limits *lim;   /* NULL: release */
    meter_time now;
    ledger_lease *out;
};

static int change_tx(ledger_store *st, void *vctx)
{
    struct change_ctx *c = vctx;
    int rc = store_expire_leases(st, c->now);
    if (rc == METER_OK)
        rc = store_read_lease(st, c->id, c->now, 1, c->out);
    if (rc == METER_ENOTFOUND || (rc == METER_OK && strcmp(c->out->node, c->node) != 0))
        return not_yours(st, c->node, c->id);
    if (rc != METER_OK)
        return rc;
    if (strcmp(c->out->state, "open") != 0) {
        if (!c->lim)
            return METER_OK;   /* release: resolved already, as it is */
        return store_fail(st, METER_EEXIST, "lease '%s' is %s: it cannot be renewed",
                          c->id, c->out->state);
    }
    lparam p[] = { P_TEXT(c->id), P_INT(c->now) };
    if (c->lim) {
        /* frozen or refunded packs give their unposted rest back */
        rc = store_exec(st, "UPDATE lease_slices SET voided = 1 WHERE lease_id = $1 AND voided = 0"
                            " AND pack_id IN (SELECT id FROM packs WHERE frozen <> 0 OR"
                            " refunded_ms IS NOT NULL)", p, 1, NULL);
        lparam q[] = { P_TEXT(c->id), P_INT(c->now + c->lim->ttl_ms) };
        if (rc == METER_OK)
            rc = store_exec(st, "UPDATE leases SET expires_ms = $2 WHERE id = $1", q, 2, NULL);
    } else
        rc = store_exec(st, "UPDATE leases SET state = 'released', resolved_ms = $2"
                            " WHERE id = $1 AND state = 'open'", p, 2, NULL);
    if (rc == METER_OK)
        rc = store_read_lease(st, c->id, c->now, 0, c->out);
    return rc;
}

static int lease_change(ledger_store *st, const char *node, const char *id,
                        const ledger_lease_limits *lim, meter_time now, ledger_lease *out)
{
    if (!node || !*node)
        return store_fail(st, METER_EINVAL, "a lease change needs the requesting node");
    if (!id || !proto_record_id_prefix(id, "lease", NULL))
        return store_fail(st, METER_EINVAL, "'%.60s' is not a lease id (<node_id>-l<seq>)",
                          id ? id : "");
    struct change_ctx c = { node, id, lim, now, out };
    return store_tx(st, change_tx, &c);
}

int ledger_lease_renew(ledger_store *st, const char *node, const char *id,
                       const ledger_lease_limits *lim, meter_time now, ledger_lease *out)
{
    int rc = check_limits(st, lim);
    return rc == METER_OK ? lease_change(st, node, id, lim, now, out) : rc;
}

int ledger_lease_release(ledger_store *st, const char *node, const char *id, meter_time now,
                         ledger_lease *out)
{
    return lease_change(st, node, id, NULL, now, out);
}
