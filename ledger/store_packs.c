/*
 * store_packs.c — packs at the ledger: bought here, assigned to one node,
 * frozen, unfrozen and refunded here; the node pulls them.
 *
 * Every pack belongs to an account.  An assigned pack (node set) is spent
 * by its node directly: its used amount is the sum of the deductions the
 * node reported.  A pooled pack (node NULL) is spent through leases: its
 * used amount is the sum of its postings (store_ingest.c).  Either way
 * packs.used_us is kept by ledger_ingest in the transaction that stores
 * each deduction record, so remaining = total − used, and what a new lease
 * may take is free = total − used − reserved (store_leases.c).  Rules, as
 * on the node (billing-rules.md §2):
 *   - refund only while now ≤ start + 5 days (the whole 5th day included)
 *     and only if unused (no deduction reported) and nothing reserved;
 *   - assign (or reassign) only while unused, not refunded, never leased;
 *   - freeze / unfreeze refused for a refunded pack (a frozen pack gives no
 *     new lease minutes; renewals void the slices leases hold of it).
 * Each check reads the pack under a row lock (PostgreSQL: FOR UPDATE;
 * SQLite: BEGIN IMMEDIATE already serialises writers), so a deduction
 * arriving at the same time cannot slip between the check and the change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "protocol.h"
#include "store_impl.h"

/* $1 is always now: what open leases reserve is derived from it. */
#define PACK_COLS "id, type, total_us, used_us, deductions, start_ms, end_ms, frozen," \
                  " refunded_ms, node, created_ms, account, " RESERVED_OF("packs.id", "$1")

/* The pack rules are libmeter's (meter.h), the same copy the node runs. */
static meter_pack_state state_of(const ledger_pack *p)
{
    return (meter_pack_state){ .start = p->start, .end = p->end, .total_us = p->total_us,
                               .remaining_us = p->remaining_us, .deductions = p->deductions,
                               .frozen = p->frozen, .refunded_at = p->refunded_at };
}

static void pack_status(ledger_pack *p, meter_time now)
{
    meter_pack_state ps = state_of(p);
    store_copy(p->status, sizeof p->status, meter_pack_status(&ps, now));
}

static void read_pack(const lres *r, int i, meter_time now, ledger_pack *p)
{
    memset(p, 0, sizeof *p);
    lres_text(r, i, 0, p->id, sizeof p->id);
    const char *t = lres_get(r, i, 1);
    p->type = t && !strcmp(t, "tsc") ? METER_CLASS_TSC : METER_CLASS_GENERAL;
    p->total_us = lres_int(r, i, 2);
    p->used_us = lres_int(r, i, 3);
    p->remaining_us = p->total_us - p->used_us;
    p->deductions = lres_int(r, i, 4);
    p->start = lres_int(r, i, 5);
    p->end = lres_int(r, i, 6);
    p->frozen = lres_int(r, i, 7) != 0;
    p->refunded_at = lres_int(r, i, 8);
    lres_text(r, i, 9, p->node, sizeof p->node);
    p->created_at = lres_int(r, i, 10);
    lres_text(r, i, 11, p->account, sizeof p->account);
    p->reserved_us = lres_int(r, i, 12);
    p->free_us = p->remaining_us - p->reserved_us;
    pack_status(p, now);
}

/* Reads one pack; lock: take its row lock for the rest of the transaction. */
static int get_pack(ledger_store *st, const char *id, int lock, meter_time now, ledger_pack *out)
{
    lparam p[] = { P_INT(now), P_TEXT(id) };
    lres r;
    int rc = METER_OK;
    if (lock && st->drv->for_update)
        rc = store_exec(st, "SELECT 1 FROM packs WHERE id = $1 FOR UPDATE", p + 1, 1, NULL);
    if (rc == METER_OK)
        rc = store_exec(st, "SELECT " PACK_COLS " FROM packs WHERE id = $2", p, 2, &r);
    if (rc != METER_OK)
        return rc;
    if (r.nrows == 0)
        rc = store_fail(st, METER_ENOTFOUND, "no pack '%s'", id);
    else
        read_pack(&r, 0, now, out);
    lres_free(&r);
    return rc;
}

static int node_exists(ledger_store *st, const char *node)
{
    lparam p[] = { P_TEXT(node) };
    lres r;
    int rc = store_exec(st, "SELECT 1 FROM nodes WHERE name = $1", p, 1, &r);
    if (rc == METER_OK && r.nrows == 0)
        rc = store_fail(st, METER_ENOTFOUND, "no node '%s' (create it first: POST /v1/nodes)",
                        node);
    lres_free(&r);
    return rc;
}

static int check_id(ledger_store *st, const char *id)
{
    if (!meter_pack_id_valid(id))
        return store_fail(st, METER_EINVAL, "invalid pack id '%.60s' (1 to %d letters, digits, "
                          "'.', '_', '-', ':'; not '-')", id ? id : "", METER_NAME_MAX - 1);
    return METER_OK;
}

/* ----------------------------------------------------------- purchase -- */

struct add_ctx {
    const char *id, *node, *account;
    meter_class type;
    int64_t minutes;
    meter_time start, now;
    const ledger_actor *who;
    ledger_pack *out;
};

static int add_tx(ledger_store *st, void *vctx)
{
    struct add_ctx *c = vctx;
    char gen[METER_NAME_MAX];
    const char *id = c->id;
    int rc;
    if (!id) {
        char tail[9];
        if ((rc = store_random_hex(st, tail, 4)) != METER_OK)
            return rc;
        meter_pack_id_make(c->start ? c->start : c->now, tail, gen);
        id = gen;
    }
    if (c->node && (rc = node_exists(st, c->node)) != METER_OK)
        return rc;
    if ((rc = ledger_account_exists(st, c->account)) != METER_OK)
        return rc;
    meter_time start = c->start ? c->start : c->now;
    lparam p[] = { P_TEXT(id), P_TEXT(meter_class_name(c->type)),
                   P_INT(c->minutes * METER_US_PER_MIN), P_INT(start),
                   P_INT(meter_pack_end(start)), c->node ? P_TEXT(c->node) : P_NULL,
                   P_INT(c->now), P_TEXT(c->account) };
    rc = store_exec(st, "INSERT INTO packs (id, type, total_us, start_ms, end_ms, node, created_ms,"
                        " account) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", p, 8, NULL);
    if (rc == METER_EEXIST)
        return store_fail(st, rc, "pack '%s' already exists", id);
    if (rc == METER_OK)
        rc = store_audit(st, c->who, c->now, "pack.purchase", id);
    if (rc == METER_OK && c->node)
        rc = store_audit(st, c->who, c->now, "pack.assign", id);
    if (rc == METER_OK && c->out)
        rc = get_pack(st, id, 0, c->now, c->out);
    return rc;
}

int ledger_pack_add(ledger_store *st, const char *id, meter_class type, int64_t minutes,
                    meter_time start, const char *node, const char *account, meter_time now,
                    const ledger_actor *who, ledger_pack *out)
{
    int rc;
    if (id && (rc = check_id(st, id)) != METER_OK)
        return rc;
    if (type != METER_CLASS_GENERAL && type != METER_CLASS_TSC)
        return store_fail(st, METER_EINVAL, "a pack type is general or tsc");
    if (minutes < 1 || minutes > METER_PACK_MINUTES_MAX)
        return store_fail(st, METER_EINVAL, "minutes must be 1 to %lld, not %lld",
                          (long long)METER_PACK_MINUTES_MAX, (long long)minutes);
    if (start < 0)
        return store_fail(st, METER_EINVAL, "a start time cannot be before 1970");
    if (account && *account && !proto_valid_node(account))
        return store_fail(st, METER_EINVAL, "invalid account name '%.60s'", account);
    struct add_ctx c = { id, node && *node ? node : NULL,
                         account && *account ? account : METER_ACCOUNT_DEFAULT, type, minutes,
                         start, now, who, out };
    return store_tx(st, add_tx, &c);
}

int ledger_pack_get(ledger_store *st, const char *id, meter_time now, ledger_pack *out)
{
    int rc = check_id(st, id);
    return rc == METER_OK ? get_pack(st, id, 0, now, out) : rc;
}

/* --------------------------------------------------------------- list -- */

/* Deduction order: end, start, id (byte order on both backends). */
static int cmp_pack(const void *a, const void *b)
{
    const ledger_pack *x = a, *y = b;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return strcmp(x->id, y->id);
}

static const char *const statuses[] = {
    "valid", "frozen", "expired", "exhausted", "pending", "refunded",
};

int ledger_pack_list(ledger_store *st, const ledger_pack_filter *f, meter_time now,
                     ledger_pack **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    if (f && f->status) {
        int known = 0;
        for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++)
            known |= !strcmp(f->status, statuses[i]);
        if (!known)
            return store_fail(st, METER_EINVAL, "unknown status '%s' (valid, frozen, expired, "
                              "exhausted, pending, refunded)", f->status);
    }
    /* Type and node narrow the query; id substring and status (computed
     * from now) are applied here, the same way on both backends. */
    char sql[1024];
    lparam p[4] = { P_INT(now) };
    int np = 1;
    int len = snprintf(sql, sizeof sql, "SELECT " PACK_COLS " FROM packs WHERE 1 = 1");
    if (f && f->type >= 0) {
        p[np++] = P_TEXT(meter_class_name((meter_class)f->type));
        len += snprintf(sql + len, sizeof sql - (size_t)len, " AND type = $%d", np);
    }
    if (f && f->node) {
        p[np++] = P_TEXT(f->node);
        len += snprintf(sql + len, sizeof sql - (size_t)len, " AND node = $%d", np);
    }
    if (f && f->account) {
        p[np++] = P_TEXT(f->account);
        snprintf(sql + len, sizeof sql - (size_t)len, " AND account = $%d", np);
    }
    lres r;
    int rc = store_exec(st, sql, p, np, &r);
    if (rc != METER_OK)
        return rc;
    ledger_pack *out = r.nrows ? calloc((size_t)r.nrows, sizeof *out) : NULL;
    if (r.nrows && !out) {
        lres_free(&r);
        return store_fail(st, METER_ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (int i = 0; i < r.nrows; i++) {
        read_pack(&r, i, now, &out[k]);
        if (f && f->id_like && *f->id_like && !strcasestr(out[k].id, f->id_like))
            continue;
        if (f && f->status && strcmp(out[k].status, f->status))
            continue;
        k++;
    }
    lres_free(&r);
    if (k > 1)
        qsort(out, k, sizeof *out, cmp_pack);
    if (k == 0) {
        free(out);
        out = NULL;
    }
    *rows = out;
    *n = k;
    return METER_OK;
}

/* ------------------------------------------------------------- assign -- */

struct change_ctx {
    const char *id, *node;
    int frozen;
    meter_time now;
    const ledger_actor *who;
    ledger_pack *out;
};

static int assign_tx(ledger_store *st, void *vctx)
{
    struct change_ctx *c = vctx;
    ledger_pack p;
    int rc = get_pack(st, c->id, 1, c->now, &p);
    if (rc == METER_OK)
        rc = node_exists(st, c->node);
    if (rc != METER_OK)
        return rc;
    if (p.refunded_at)
        return store_fail(st, METER_EREFUSED, "pack '%s' is refunded", c->id);
    if (strcmp(p.node, c->node) != 0) {
        if (p.deductions > 0 || p.used_us != 0)
            return store_fail(st, METER_EREFUSED, "pack '%s' cannot be reassigned: %s%s%s "
                              "used it", c->id, p.node[0] ? "node '" : "leases have",
                              p.node, p.node[0] ? "' has" : "");
        lparam l[] = { P_TEXT(c->id) };
        lres leased;
        if ((rc = store_exec(st, "SELECT 1 FROM lease_slices WHERE pack_id = $1 LIMIT 1", l, 1,
                             &leased)) != METER_OK)
            return rc;
        int ever = leased.nrows > 0;
        lres_free(&leased);
        if (ever)
            return store_fail(st, METER_EREFUSED, "pack '%s' cannot be assigned: it is pooled and "
                              "leases have held it (late usage may still post to it)", c->id);
        /* Once its node has pulled the pack (it reports the pack's events
         * right after pulling), the node may spend it offline: moving it
         * would let two nodes spend the same minutes. */
        if (p.node[0]) {
            lparam e[] = { P_TEXT(c->id), P_TEXT(p.node) };
            lres held;
            rc = store_exec(st, "SELECT 1 FROM records WHERE kind = 'pack_event' AND"
                                " pack_id = $1 AND node = $2 LIMIT 1", e, 2, &held);
            if (rc != METER_OK)
                return rc;
            int pulled = held.nrows > 0;
            lres_free(&held);
            if (pulled)
                return store_fail(st, METER_EREFUSED, "pack '%s' cannot be reassigned: node "
                                  "'%s' has already pulled it", c->id, p.node);
        }
        lparam q[] = { P_TEXT(c->id), P_TEXT(c->node) };
        rc = store_exec(st, "UPDATE packs SET node = $2 WHERE id = $1", q, 2, NULL);
        if (rc == METER_OK)
            rc = store_audit(st, c->who, c->now, "pack.assign", c->id);
    }
    /* assigning to the node it already has changes nothing */
    if (rc == METER_OK && c->out)
        rc = get_pack(st, c->id, 0, c->now, c->out);
    return rc;
}

int ledger_pack_assign(ledger_store *st, const char *id, const char *node, meter_time now,
                       const ledger_actor *who, ledger_pack *out)
{
    int rc = check_id(st, id);
    if (rc != METER_OK)
        return rc;
    if (!node || !*node)
        return store_fail(st, METER_EINVAL, "assign needs a node");
    struct change_ctx c = { id, node, 0, now, who, out };
    return store_tx(st, assign_tx, &c);
}

/* ------------------------------------------------------------- freeze -- */

static int freeze_tx(ledger_store *st, void *vctx)
{
    struct change_ctx *c = vctx;
    ledger_pack p;
    int rc = get_pack(st, c->id, 1, c->now, &p);
    if (rc != METER_OK)
        return rc;
    char why[METER_ERRMAX];
    meter_pack_state ps = state_of(&p);
    if ((rc = meter_pack_may_freeze(&ps, c->id, c->frozen, why)) != METER_OK)
        return store_fail(st, rc, "%s", why);
    lparam q[] = { P_TEXT(c->id), P_INT(c->frozen) };
    rc = store_exec(st, "UPDATE packs SET frozen = $2 WHERE id = $1", q, 2, NULL);
    if (rc == METER_OK)
        rc = store_audit(st, c->who, c->now, c->frozen ? "pack.freeze" : "pack.unfreeze", c->id);
    if (rc == METER_OK && c->out)
        rc = get_pack(st, c->id, 0, c->now, c->out);
    return rc;
}

int ledger_pack_freeze(ledger_store *st, const char *id, int frozen, meter_time now,
                       const ledger_actor *who, ledger_pack *out)
{
    int rc = check_id(st, id);
    if (rc != METER_OK)
        return rc;
    struct change_ctx c = { id, NULL, frozen != 0, now, who, out };
    return store_tx(st, freeze_tx, &c);
}

/* ------------------------------------------------------------- refund -- */

static int refund_tx(ledger_store *st, void *vctx)
{
    struct change_ctx *c = vctx;
    ledger_pack p;
    /* leases past their expiry resolved first: their state, not a clock,
     * says whether they still reserve (store_leases.c) */
    int rc = store_expire_leases(st, c->now);
    if (rc == METER_OK)
        rc = get_pack(st, c->id, 1, c->now, &p);
    if (rc != METER_OK)
        return rc;
    char why[METER_ERRMAX];
    meter_pack_state ps = state_of(&p);
    if ((rc = meter_pack_may_refund(&ps, c->id, c->now, why)) != METER_OK)
        return store_fail(st, rc, "%s", why);
    if (p.reserved_us > 0)
        return store_fail(st, METER_EREFUSED, "pack '%s' cannot be refunded: open leases hold "
                          "%lld µs of it (refund it after they are released or expire)", c->id,
                          (long long)p.reserved_us);
    lparam q[] = { P_TEXT(c->id), P_INT(c->now) };
    rc = store_exec(st, "UPDATE packs SET refunded_ms = $2 WHERE id = $1", q, 2, NULL);
    if (rc == METER_OK)
        rc = store_audit(st, c->who, c->now, "pack.refund", c->id);
    if (rc == METER_OK && c->out)
        rc = get_pack(st, c->id, 0, c->now, c->out);
    return rc;
}

int ledger_pack_refund(ledger_store *st, const char *id, meter_time now,
                       const ledger_actor *who, ledger_pack *out)
{
    int rc = check_id(st, id);
    if (rc != METER_OK)
        return rc;
    struct change_ctx c = { id, NULL, 0, now, who, out };
    return store_tx(st, refund_tx, &c);
}
