/*
 * store_ingest.c — storing a batch of node records exactly once.
 *
 * The whole batch is one transaction.  Each record is inserted with
 * INSERT … ON CONFLICT (id) DO NOTHING: the id (primary key) is claimed by
 * the very statement that stores the record, and a deduction's effect on
 * its pack is applied in the same transaction, so
 *   - an id is taken only when the transaction commits, together with the
 *     record and its effect — a failed write (constraint, I/O, lost
 *     connection, crash) leaves no trace and the retry is accepted normally
 *     (the failure this avoids: a dedupe key claimed before the write and
 *     the retried event silently dropped as a "duplicate");
 *   - a record whose id is already stored changes nothing (duplicate);
 *   - two instances storing the same id at once: PostgreSQL makes the
 *     second INSERT wait for the first transaction and then see its row.
 * Packs that deductions touch are locked first, in id order (FOR UPDATE on
 * PostgreSQL), then the sending node's row, so concurrent batches and pack
 * administration queue up instead of deadlocking.
 *
 * What a node may write (the ledger trusts no node further than this):
 *   - ids of its own namespace only.  An id is "<prefix>-<k><seq>" and each
 *     prefix (a node database's node_id) is bound to one node in node_ids:
 *     a node's first batch binds the prefix it uses, later prefixes only an
 *     admin binds (`meter-ledgerd node bind`).  A foreign id is rejected
 *     before anything looks it up, so the answer never tells a node
 *     whether another node's id exists;
 *   - deductions only from packs assigned to it, of their class, each
 *     starting from the balance the ledger itself holds (before_us equal
 *     to total − used) and never taking a pack below zero, so used_us
 *     stays an exact integer between 0 and total.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "store_impl.h"

/* A pack touched by the batch, read under its lock; remaining_us follows
 * the batch's deductions as they are stored. */
struct bpack {
    const char *id;
    int found;
    char node[METER_NAME_MAX];
    meter_class type;
    int64_t remaining_us;
};

/* The id prefixes bound to the sending node (a node has one per database
 * it ever synced from; a handful at most). */
#define NODE_PREFIXES_MAX 64

struct ingest_ctx {
    const char *node;
    const meter_sync_record *recs;
    size_t n;
    meter_time now;
    ledger_ingest_result *out;
    struct bpack *packs;
    size_t npacks;
    char (*prefixes)[METER_ID_MAX];
    size_t nprefixes;
};

static int cmp_bpack(const void *a, const void *b)
{
    return strcmp(((const struct bpack *)a)->id, ((const struct bpack *)b)->id);
}

static const struct bpack *find_pack(const struct ingest_ctx *c, const char *id)
{
    struct bpack key = { .id = id };
    return bsearch(&key, c->packs, c->npacks, sizeof key, cmp_bpack);
}

static int is_kind(const char *k)
{
    return !strcmp(k, "usage") || !strcmp(k, "deduction") || !strcmp(k, "settlement") ||
           !strcmp(k, "pack_event");
}

static int lock_packs(ledger_store *st, struct ingest_ctx *c)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT node, type, total_us - used_us FROM packs"
             " WHERE id = $1%s", st->drv->for_update ? " FOR UPDATE" : "");
    for (size_t i = 0; i < c->npacks; i++) {
        lparam p[] = { P_TEXT(c->packs[i].id) };
        lres r;
        int rc = store_exec(st, sql, p, 1, &r);
        if (rc != METER_OK)
            return rc;
        c->packs[i].found = r.nrows > 0;
        if (r.nrows > 0) {
            lres_text(&r, 0, 0, c->packs[i].node, sizeof c->packs[i].node);
            const char *t = lres_get(&r, 0, 1);
            c->packs[i].type = t && !strcmp(t, "tsc") ? METER_CLASS_TSC : METER_CLASS_GENERAL;
            c->packs[i].remaining_us = lres_int(&r, 0, 2);
        }
        lres_free(&r);
    }
    return METER_OK;
}

/* Locks the sending node's row (its batches queue up, so two instances
 * cannot bind two first prefixes at once) and reads its bound prefixes. */
static int load_prefixes(ledger_store *st, struct ingest_ctx *c)
{
    lparam p[] = { P_TEXT(c->node) };
    int rc = METER_OK;
    if (st->drv->for_update)
        rc = store_exec(st, "SELECT 1 FROM nodes WHERE name = $1 FOR UPDATE", p, 1, NULL);
    lres r;
    if (rc == METER_OK)
        rc = store_exec(st, "SELECT prefix FROM node_ids WHERE node = $1 ORDER BY prefix",
                        p, 1, &r);
    if (rc != METER_OK)
        return rc;
    c->nprefixes = 0;
    for (int i = 0; i < r.nrows && c->nprefixes < NODE_PREFIXES_MAX; i++)
        lres_text(&r, i, 0, c->prefixes[c->nprefixes++], METER_ID_MAX);
    lres_free(&r);
    return METER_OK;
}

/* 1 when the record's id is in the sending node's namespace.  A node
 * without any prefix yet binds this one (first use), unless another node
 * holds it. */
static int own_id(ledger_store *st, struct ingest_ctx *c, const meter_sync_record *r,
                  int *rc)
{
    char prefix[METER_ID_MAX];
    *rc = METER_OK;
    if (!proto_record_id_prefix(r->id, r->kind, prefix))
        return 0;
    for (size_t i = 0; i < c->nprefixes; i++)
        if (strcmp(c->prefixes[i], prefix) == 0)
            return 1;
    if (c->nprefixes > 0)
        return 0;
    lparam p[] = { P_TEXT(prefix), P_TEXT(c->node), P_INT(c->now) };
    lres res;
    *rc = store_exec(st, "INSERT INTO node_ids (prefix, node, bound_ms, how)"
                         " VALUES ($1, $2, $3, 'first-use') ON CONFLICT (prefix) DO NOTHING",
                     p, 3, &res);
    if (*rc != METER_OK)
        return 0;
    int bound = res.changes > 0;
    lres_free(&res);
    if (bound)
        store_copy(c->prefixes[c->nprefixes++], METER_ID_MAX, prefix);
    return bound;
}

/* Why a record can never be stored, or NULL when it can. */
static const char *refusal(const struct ingest_ctx *c, const meter_sync_record *r,
                           char buf[METER_ERRMAX])
{
    if (strcmp(r->node, c->node) != 0) {
        snprintf(buf, METER_ERRMAX, "record of node '%s' sent by node '%s'", r->node, c->node);
        return buf;
    }
    if (!is_kind(r->kind)) {
        snprintf(buf, METER_ERRMAX, "unknown record kind '%s'", r->kind);
        return buf;
    }
    if (!r->id[0])
        return "record without an id";
    if (strcmp(r->kind, "deduction") == 0 && r->pack_id[0]) {
        const struct bpack *p = find_pack(c, r->pack_id);
        if (!p || !p->found)
            snprintf(buf, METER_ERRMAX, "deduction from pack '%s', which the ledger does not "
                     "know", r->pack_id);
        else if (strcmp(p->node, c->node) != 0)
            snprintf(buf, METER_ERRMAX, "deduction from pack '%s', which is not assigned to "
                     "node '%s'", r->pack_id, c->node);
        else if (p->type != r->cls)
            snprintf(buf, METER_ERRMAX, "deduction of class %s from pack '%s' of type %s",
                     meter_class_name(r->cls), r->pack_id, meter_class_name(p->type));
        else if (r->before_us != p->remaining_us)
            snprintf(buf, METER_ERRMAX, "deduction from pack '%s' starts from a balance of "
                     "%" PRId64 " µs; the ledger holds %" PRId64 " µs", r->pack_id,
                     r->before_us, p->remaining_us);
        else if (r->amount_us > p->remaining_us)
            snprintf(buf, METER_ERRMAX, "deduction of %" PRId64 " µs from pack '%s' exceeds "
                     "its remaining %" PRId64 " µs", r->amount_us, r->pack_id,
                     p->remaining_us);
        else
            return NULL;
        return buf;
    }
    return NULL;
}

static int exists(ledger_store *st, const char *id, int *found)
{
    lparam p[] = { P_TEXT(id) };
    lres r;
    int rc = store_exec(st, "SELECT 1 FROM records WHERE id = $1", p, 1, &r);
    *found = rc == METER_OK && r.nrows > 0;
    lres_free(&r);
    return rc;
}

/* Inserts one record unless its id is stored; *inserted says which. */
static int insert_record(ledger_store *st, const meter_sync_record *r, meter_time now,
                         int *inserted)
{
    const char *k = r->kind;
    int usage = !strcmp(k, "usage"), ded = !strcmp(k, "deduction");
    int settle = !strcmp(k, "settlement"), event = !strcmp(k, "pack_event");
    int overage = ded && !r->pack_id[0];
    const char *cls = meter_class_name(r->cls);
    lparam p[] = {
        P_TEXT(r->id), P_TEXT(k), P_TEXT(r->node), P_INT(r->at), P_INT(now),
        usage ? P_TEXT(r->job) : P_NULL,
        usage ? P_TEXT(r->output) : P_NULL,
        usage ? P_TEXT0(r->session_id) : P_NULL,
        usage ? P_TEXT(r->codec) : P_NULL,
        usage ? P_INT(r->width) : P_NULL,
        usage ? P_INT(r->height) : P_NULL,
        usage ? P_INT(r->duration_us) : P_NULL,
        usage || settle ? P_INT(r->billed_us) : P_NULL,
        usage || settle ? P_INT(r->deductible != 0) : P_NULL,
        usage ? P_INT(r->daily != 0) : P_NULL,
        usage ? P_INT(r->started_at) : P_NULL,
        usage ? P_TEXT(r->state) : P_NULL,
        usage || ded || settle ? P_TEXT(cls) : P_NULL,
        usage || ded || settle ? P_TEXT(r->ttype) : P_NULL,
        usage || ded || settle ? P_TEXT(r->day) : P_NULL,
        ded ? P_TEXT(r->charge_id) : P_NULL,
        ded || event ? P_TEXT0(r->pack_id) : P_NULL,
        ded ? P_INT(r->amount_us) : P_NULL,
        ded && !overage ? P_INT(r->before_us) : P_NULL,
        ded && !overage ? P_INT(r->after_us) : P_NULL,
        event ? P_TEXT(r->action) : P_NULL,
    };
    lres res;
    int rc = store_exec(st,
        "INSERT INTO records (id, kind, node, at_ms, received_ms, job, output, session_id,"
        " codec, width, height, duration_us, billed_us, deductible, daily, started_ms, state,"
        " class, ttype, day, charge_id, pack_id, amount_us, before_us, after_us, action)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
        " $18, $19, $20, $21, $22, $23, $24, $25, $26)"
        " ON CONFLICT (id) DO NOTHING",
        p, (int)(sizeof p / sizeof *p), &res);
    if (rc != METER_OK) {
        char why[METER_ERRMAX];
        memcpy(why, st->err, sizeof why);
        return store_fail(st, rc, "storing record '%s': %s", r->id, why);
    }
    *inserted = res.changes > 0;
    lres_free(&res);
    return METER_OK;
}

static int ingest_tx(ledger_store *st, void *vctx)
{
    struct ingest_ctx *c = vctx;
    int rc = lock_packs(st, c);
    if (rc == METER_OK)
        rc = load_prefixes(st, c);
    for (size_t i = 0; rc == METER_OK && i < c->n; i++) {
        const meter_sync_record *r = &c->recs[i];
        ledger_ingest_result *o = &c->out[i];
        memset(o, 0, sizeof *o);
        char buf[METER_ERRMAX];
        const char *why = refusal(c, r, buf);
        int own = !why && own_id(st, c, r, &rc);
        if (rc != METER_OK)
            break;
        if (!why && !own) {
            /* the same answer whether or not the id is stored */
            snprintf(buf, METER_ERRMAX, "record id '%s' is outside node '%s''s id namespace "
                     "(an admin binds a new node database's ids with meter-ledgerd node "
                     "bind)", r->id, c->node);
            o->outcome = LEDGER_REJECTED;
            store_copy(o->reason, sizeof o->reason, buf);
            continue;
        }
        if (why) {
            /* a record stored earlier stays acknowledged as such (own ids
             * only: whether a foreign id exists is never told) */
            int found = 0;
            if (strcmp(r->node, c->node) == 0 && own_id(st, c, r, &rc) &&
                (rc = exists(st, r->id, &found)))
                break;
            if (rc != METER_OK)
                break;
            o->outcome = found ? LEDGER_DUPLICATE : LEDGER_REJECTED;
            if (!found)
                store_copy(o->reason, sizeof o->reason, why);
            continue;
        }
        int inserted = 0;
        if ((rc = insert_record(st, r, c->now, &inserted)) != METER_OK)
            break;
        o->outcome = inserted ? LEDGER_ACCEPTED : LEDGER_DUPLICATE;
        if (inserted && !strcmp(r->kind, "deduction") && r->pack_id[0]) {
            /* the effect, in the same transaction as the record */
            lparam p[] = { P_TEXT(r->pack_id), P_INT(r->amount_us) };
            rc = store_exec(st, "UPDATE packs SET used_us = used_us + $2,"
                                " deductions = deductions + 1 WHERE id = $1", p, 2, NULL);
            ((struct bpack *)find_pack(c, r->pack_id))->remaining_us -= r->amount_us;
        }
    }
    return rc;
}

int ledger_ingest(ledger_store *st, const char *node, const meter_sync_record *recs,
                  size_t n, meter_time now, ledger_ingest_result *out)
{
    if (!node || !*node)
        return store_fail(st, METER_EINVAL, "ingest needs the sending node");
    if (n == 0)
        return METER_OK;
    struct ingest_ctx c = { node, recs, n, now, out, NULL, 0, NULL, 0 };
    /* the distinct packs deductions name, sorted: the lock order */
    c.packs = calloc(n, sizeof *c.packs);
    c.prefixes = calloc(NODE_PREFIXES_MAX, sizeof *c.prefixes);
    if (!c.packs || !c.prefixes) {
        free(c.packs);
        free(c.prefixes);
        return store_fail(st, METER_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        if (!strcmp(recs[i].kind, "deduction") && recs[i].pack_id[0])
            c.packs[c.npacks++].id = recs[i].pack_id;
    if (c.npacks > 1) {
        qsort(c.packs, c.npacks, sizeof *c.packs, cmp_bpack);
        size_t k = 1;
        for (size_t i = 1; i < c.npacks; i++)
            if (strcmp(c.packs[i].id, c.packs[k - 1].id) != 0)
                c.packs[k++] = c.packs[i];
        c.npacks = k;
    }
    int rc = store_tx(st, ingest_tx, &c);
    free(c.packs);
    free(c.prefixes);
    return rc;
}
