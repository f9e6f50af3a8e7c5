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
 *   - deductions only from packs assigned to it, of their class and
 *     account, each starting from the balance the ledger itself holds
 *     (before_us equal to total − used) and never taking a pack below
 *     zero, so used_us
 *     stays an exact integer between 0 and total;
 *   - records of accounts the ledger knows only, a deduction of its
 *     charge's account (when the charge is in the batch or stored);
 *   - a lease deduction (lease_id set) only against its own lease, of the
 *     record's account and class, naming a pack the lease has a slice of;
 *     the same answer for another node's lease as for an unknown one.
 *
 * Pooled packs and postings.  A deduction that spends a pooled pack (one
 * through a lease, or an overage the account's pooled packs can settle)
 * is split into postings, appended in the transaction that stores the
 * deduction record — the INSERT that claims the record's id — so a posting
 * exists exactly when its deduction does, and a resent deduction (a
 * duplicate) posts nothing.  Per deduction Σ postings = amount:
 *   - lease deduction: first from the lease's reservation while the lease
 *     is open and its slice not voided, at most granted − posted of the
 *     slice (source 'lease': reserved turns into used, free unchanged);
 *     the rest ("late" usage: the lease expired, was released, the slice
 *     voided, or the node spent more than it was granted) from the pack's
 *     free minutes if the pack is neither frozen nor refunded and `at` is
 *     within its validity (source 'free'); the rest as overage.
 *   - overage deduction of an account with pooled packs of its class:
 *     FIFO (end, start, id) from the free minutes of those valid at `at`
 *     and now neither frozen nor refunded ('free'), the rest overage.
 * Every posting to a pack adds to packs.used_us in the same transaction,
 * and each reads free = total − used − reserved under the pack's row lock
 * (taken, with every pack the batch may post to, before any balance is
 * read: store_leases.c has the whole argument), so no pack goes below
 * zero and no posting spends a minute another lease holds.  Expired
 * leases are resolved by the transaction's first statement, and the leases
 * the batch names are locked (FOR UPDATE) before the packs: a release or
 * renewal of the same lease waits for the batch, or the batch for it.
 *
 * Per batch, not per record.  Each locked pack's used and reserved (and
 * each named lease's slices) are read once, after the locks; the batch
 * then keeps the running balances in memory — remaining_us, reserved_us,
 * a slice's posted_us — as it posts, every record deciding from the
 * balance its predecessors left, exactly as if each had been written and
 * read back; and it writes each changed row once, at the end of the batch
 * (flush_packs: used_us += Σ, deductions += n; posted_us += Σ), still
 * under the locks and in the same transaction as the records and
 * postings, so they commit or roll back together and a record's effect
 * still exists exactly when the record does.  Nothing else can write
 * those rows meanwhile: every writer of used, reserved or posted waits for
 * the same locks (SQLite: BEGIN IMMEDIATE).  A retried transaction
 * (store_tx after a deadlock) re-reads everything and starts from zero.
 *
 * Which pooled packs an overage may post to, and so are locked: only
 * those that can still pay it.  An exhausted (used = total), refunded or
 * ended pack is left out by a plain read before the transaction (states
 * that never revert: want_pools has the argument), so once an account's
 * pool is spent its overage batches lock no pack row at all and no longer
 * queue behind one another; they still post their overage as such (the
 * account has pooled packs of the class).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "store_impl.h"

/* A pack touched by the batch, read under its lock once; remaining_us (and
 * for a pooled pack reserved_us) follow the batch's postings in memory as
 * they are stored, and what the batch adds to its row (add_us, add_n) is
 * written once, at the end of the batch (flush_packs). */
struct bpack {
    char id[METER_NAME_MAX];
    int found;
    char node[METER_NAME_MAX];   /* "" = pooled */
    char account[METER_NAME_MAX];
    meter_class type;
    int64_t remaining_us;        /* total − used */
    int64_t reserved_us;
    meter_time start, end;
    int frozen;
    meter_time refunded_at;
    int64_t add_us;              /* used_us the batch adds */
    int64_t add_n;               /* deductions the batch adds */
};

/* A lease the batch names, read (and locked) before the packs; its slices'
 * posted_us follow the batch in memory, add_us[i] being what the batch
 * adds to slice i's row (written once, at the end: flush_packs). */
struct blease {
    char id[METER_ID_MAX];
    int found;
    ledger_lease l;
    int64_t add_us[LEDGER_LEASE_SLICES_MAX];
};

/* An account and class whose overage deductions the batch carries, and
 * the pooled packs it has: any at all (then an overage deduction is
 * posted, its rest as an overage posting), and from which of them it may
 * still be paid (those are locked). */
struct bpool {
    char account[METER_NAME_MAX];
    meter_class cls;
    meter_time min_at;           /* the earliest `at` of those deductions */
    int any;                     /* the account has pooled packs of the class */
};

/* An account the batch names: known to the ledger or not. */
struct baccount {
    char name[METER_NAME_MAX];
    int known;
};

/* The id prefixes bound to the sending node (a node has one per database
 * it ever synced from; a handful at most). */
#define NODE_PREFIXES_MAX 64

struct ingest_ctx {
    const char *node;
    const meter_sync_record *recs;
    size_t n;
    meter_time received, now;
    ledger_ingest_result *out;
    struct bpack *packs;         /* sorted by id: the lock order */
    size_t npacks, cap_packs;
    struct blease *leases;       /* sorted by id */
    size_t nleases;
    struct baccount *accounts;
    size_t naccounts;
    struct bpool *pools;
    size_t npools;
    char (*prefixes)[METER_ID_MAX];
    size_t nprefixes;
};

static int cmp_bpack(const void *a, const void *b)
{
    return strcmp(((const struct bpack *)a)->id, ((const struct bpack *)b)->id);
}

static struct bpack *find_pack(const struct ingest_ctx *c, const char *id)
{
    struct bpack key;
    store_copy(key.id, sizeof key.id, id);
    return bsearch(&key, c->packs, c->npacks, sizeof key, cmp_bpack);
}

/* bsearch's comparator: the key is the id itself. */
static int cmp_id_blease(const void *key, const void *elem)
{
    return strcmp(key, ((const struct blease *)elem)->id);
}

static struct blease *find_lease(const struct ingest_ctx *c, const char *id)
{
    return c->nleases ? bsearch(id, c->leases, c->nleases, sizeof *c->leases, cmp_id_blease)
                      : NULL;
}

static ledger_lease_slice *find_slice(struct blease *b, const char *pack)
{
    for (size_t i = 0; b && b->found && i < b->l.nslices; i++)
        if (!strcmp(b->l.slices[i].pack_id, pack))
            return &b->l.slices[i];
    return NULL;
}

static int account_known(const struct ingest_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->naccounts; i++)
        if (!strcmp(c->accounts[i].name, name))
            return c->accounts[i].known;
    return 0;
}

static int is_kind(const char *k)
{
    return !strcmp(k, "usage") || !strcmp(k, "deduction") || !strcmp(k, "settlement") ||
           !strcmp(k, "pack_event");
}

/* Adds a pack id to the set the batch locks (kept unique; sorted later). */
static int want_pack(ledger_store *st, struct ingest_ctx *c, const char *id)
{
    for (size_t i = 0; i < c->npacks; i++)
        if (!strcmp(c->packs[i].id, id))
            return METER_OK;
    int rc = store_grow(st, &c->packs, &c->cap_packs, c->npacks, sizeof *c->packs);
    if (rc != METER_OK)
        return rc;
    memset(&c->packs[c->npacks], 0, sizeof *c->packs);
    store_copy(c->packs[c->npacks++].id, sizeof c->packs->id, id);
    return METER_OK;
}

/* The accounts the batch names: known or not (accounts are never
 * deleted, so no lock is needed). */
static int load_accounts(ledger_store *st, struct ingest_ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const char *a = c->recs[i].account[0] ? c->recs[i].account : METER_ACCOUNT_DEFAULT;
        size_t k = 0;
        while (k < c->naccounts && strcmp(c->accounts[k].name, a) != 0)
            k++;
        if (k < c->naccounts)
            continue;
        lparam p[] = { P_TEXT(a) };
        lres r;
        int rc = store_exec(st, "SELECT 1 FROM accounts WHERE name = $1", p, 1, &r);
        if (rc != METER_OK)
            return rc;
        store_copy(c->accounts[k].name, sizeof c->accounts[k].name, a);
        c->accounts[k].known = r.nrows > 0;
        c->naccounts++;
        lres_free(&r);
    }
    return METER_OK;
}

/* The leases the batch's deductions name, locked in id order, with their
 * slices; then the packs they post to are wanted. */
static int lock_leases(ledger_store *st, struct ingest_ctx *c)
{
    for (size_t i = 0; i < c->nleases; i++) {
        struct blease *b = &c->leases[i];
        b->found = 0;
        memset(b->add_us, 0, sizeof b->add_us);   /* a retried transaction starts afresh */
        int rc = store_read_lease(st, b->id, c->now, 1, &b->l);
        if (rc == METER_ENOTFOUND)
            continue;
        if (rc != METER_OK)
            return rc;
        b->found = 1;
    }
    return METER_OK;
}

static struct bpool *find_pool(const struct ingest_ctx *c, const char *account,
                               meter_class cls)
{
    for (size_t i = 0; i < c->npools; i++)
        if (c->pools[i].cls == cls && !strcmp(c->pools[i].account, account))
            return &c->pools[i];
    return NULL;
}

/* Overage deductions of an account with pooled packs of their class may
 * post to any of them that can still pay: those packs are wanted (locked)
 * too.  The rest are left out by a plain read, without a lock — a pack
 * that can never pay any overage deduction of the batch:
 *   - exhausted (used_us = total_us: no free minute, whatever reserved);
 *   - refunded (refunded_ms set);
 *   - ended (end_ms ≤ the earliest `at` of the batch's overage deductions
 *     of its account and class: it pays only deductions at < end).
 * The read is safe although nothing stops another transaction changing
 * the row after it, because none of these states ever reverts: used_us
 * only grows (its one writer, flush_packs, adds postings; a refund needs
 * used 0 and writes refunded_ms alone), total_us and end_ms are never
 * written after the INSERT, and refunded_ms is written once and never
 * cleared.  A pack seen in such a state at any committed
 * instant is in it at this batch's commit too, and post_free() would
 * take nothing from it.  A frozen pack is still locked (it may be thawed
 * before the batch takes its locks).  Whatever the plain read lets
 * through is read again under its lock, as before.  A pack bought after
 * this read is simply not posted to. */
static int want_pools(ledger_store *st, struct ingest_ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const meter_sync_record *r = &c->recs[i];
        if (strcmp(r->kind, "deduction") != 0 || r->pack_id[0])
            continue;
        const char *acct = r->account[0] ? r->account : METER_ACCOUNT_DEFAULT;
        struct bpool *g = find_pool(c, acct, r->cls);
        if (!g) {
            g = &c->pools[c->npools++];
            memset(g, 0, sizeof *g);
            store_copy(g->account, sizeof g->account, acct);
            g->cls = r->cls;
            g->min_at = r->at;
        } else if (r->at < g->min_at)
            g->min_at = r->at;
    }
    for (size_t i = 0; i < c->npools; i++) {
        struct bpool *g = &c->pools[i];
        lparam p[] = { P_TEXT(g->account), P_TEXT(meter_class_name(g->cls)), P_INT(g->min_at) };
        lres res;
        int rc = store_exec(st, "SELECT id, CASE WHEN used_us >= total_us"
                                " OR COALESCE(refunded_ms, 0) <> 0 OR end_ms <= $3"
                                " THEN 1 ELSE 0 END FROM packs"
                                " WHERE node IS NULL AND account = $1 AND type = $2",
                            p, 3, &res);
        for (int k = 0; rc == METER_OK && k < res.nrows; k++) {
            g->any = 1;
            if (lres_int(&res, k, 1) == 0)
                rc = want_pack(st, c, lres_get(&res, k, 0));
        }
        if (rc != METER_OK) {
            lres_free(&res);
            return rc;
        }
        lres_free(&res);
    }
    return METER_OK;
}

static int lock_packs(ledger_store *st, struct ingest_ctx *c)
{
    if (c->npacks > 1)
        qsort(c->packs, c->npacks, sizeof *c->packs, cmp_bpack);
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT node, type, total_us - used_us, account, start_ms, end_ms,"
             " frozen, refunded_ms FROM packs WHERE id = $1%s",
             st->drv->for_update ? " FOR UPDATE" : "");
    lparam q[] = { P_INT(c->now) };
    lres res;
    /* what open leases reserve, read under the locks */
    for (size_t i = 0; i < c->npacks; i++) {
        struct bpack *b = &c->packs[i];
        lparam p[] = { P_TEXT(b->id) };
        lres r;
        int rc = store_exec(st, sql, p, 1, &r);
        if (rc != METER_OK)
            return rc;
        b->found = r.nrows > 0;
        b->reserved_us = 0;
        b->add_us = b->add_n = 0;   /* a retried transaction starts afresh */
        if (r.nrows > 0) {
            lres_text(&r, 0, 0, b->node, sizeof b->node);
            b->type = store_class(lres_get(&r, 0, 1));
            b->remaining_us = lres_int(&r, 0, 2);
            lres_text(&r, 0, 3, b->account, sizeof b->account);
            b->start = lres_int(&r, 0, 4);
            b->end = lres_int(&r, 0, 5);
            b->frozen = lres_int(&r, 0, 6) != 0;
            b->refunded_at = lres_int(&r, 0, 7);
        }
        lres_free(&r);
    }
    int pooled = 0;
    for (size_t i = 0; i < c->npacks; i++)
        pooled |= c->packs[i].found && !c->packs[i].node[0];
    if (!pooled)
        return METER_OK;   /* assigned packs only: nothing is ever reserved of them */
    int rc = store_exec(st, "SELECT s.pack_id, SUM(s.granted_us - s.posted_us) FROM lease_slices s"
                            " JOIN leases l ON l.id = s.lease_id WHERE s.voided = 0"
                            " AND l.state = 'open' AND l.expires_ms > $1 GROUP BY s.pack_id",
                        q, 1, &res);
    if (rc != METER_OK)
        return rc;
    for (int k = 0; k < res.nrows; k++) {
        struct bpack *b = find_pack(c, lres_get(&res, k, 0));
        if (b)
            b->reserved_us = lres_int(&res, k, 1);
    }
    lres_free(&res);
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
    lparam p[] = { P_TEXT(prefix), P_TEXT(c->node), P_INT(c->received) };
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

/* Why a lease deduction can never be stored, or NULL when it can. */
static const char *lease_refusal(const struct ingest_ctx *c, const meter_sync_record *r,
                                 char buf[METER_ERRMAX])
{
    struct blease *b = find_lease(c, r->lease_id);
    const char *acct = r->account[0] ? r->account : METER_ACCOUNT_DEFAULT;
    if (!b || !b->found || strcmp(b->l.node, c->node) != 0)
        /* the same answer for another node's lease as for an unknown one */
        snprintf(buf, METER_ERRMAX, "deduction names lease '%s', which is not a lease of node "
                 "'%s'", r->lease_id, c->node);
    else if (strcmp(b->l.account, acct) != 0 || b->l.cls != r->cls)
        snprintf(buf, METER_ERRMAX, "deduction of account '%.40s', class %s names lease "
                 "'%.60s' of account '%.40s', class %s", acct, meter_class_name(r->cls), r->lease_id,
                 b->l.account, meter_class_name(b->l.cls));
    else if (!find_slice(b, r->pack_id))
        snprintf(buf, METER_ERRMAX, "deduction from pack '%.80s', of which lease '%.60s' "
                 "holds no slice", r->pack_id, r->lease_id);
    else
        return NULL;
    return buf;
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
    const char *acct = r->account[0] ? r->account : METER_ACCOUNT_DEFAULT;
    if (!account_known(c, acct)) {
        snprintf(buf, METER_ERRMAX, "record of account '%s', which the ledger does not know "
                 "(an admin creates it: meter-ledgerd account add)", acct);
        return buf;
    }
    if (strcmp(r->kind, "deduction") == 0 && r->lease_id[0])
        return lease_refusal(c, r, buf);
    if (strcmp(r->kind, "deduction") == 0 && r->pack_id[0]) {
        const struct bpack *p = find_pack(c, r->pack_id);
        if (!p || !p->found)
            snprintf(buf, METER_ERRMAX, "deduction from pack '%s', which the ledger does not "
                     "know", r->pack_id);
        else if (!p->node[0])
            snprintf(buf, METER_ERRMAX, "deduction from pack '%s', which is not assigned to "
                     "node '%s' (it is pooled: spent through leases only)", r->pack_id, c->node);
        else if (strcmp(p->node, c->node) != 0)
            snprintf(buf, METER_ERRMAX, "deduction from pack '%s', which is not assigned to "
                     "node '%s'", r->pack_id, c->node);
        else if (p->type != r->cls)
            snprintf(buf, METER_ERRMAX, "deduction of class %s from pack '%s' of type %s",
                     meter_class_name(r->cls), r->pack_id, meter_class_name(p->type));
        else if (strcmp(p->account, acct) != 0)
            /* three names of up to 127 bytes: each cut to fit one line */
            snprintf(buf, METER_ERRMAX, "deduction of account '%.60s' from pack '%.60s' of "
                     "account '%.60s'", acct, r->pack_id, p->account);
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

/* Why a deduction cannot be stored because its charge (the usage or
 * settlement it pays, in this batch or stored before) is of another
 * account, or NULL.  A charge not known yet is not judged (verify is). */
static const char *charge_refusal(ledger_store *st, const struct ingest_ctx *c,
                                  const meter_sync_record *r, char buf[METER_ERRMAX], int *rc)
{
    *rc = METER_OK;
    if (strcmp(r->kind, "deduction") != 0 || !r->charge_id[0])
        return NULL;
    const char *acct = r->account[0] ? r->account : METER_ACCOUNT_DEFAULT;
    char charge[METER_NAME_MAX] = "";
    int found = 0;
    for (size_t i = 0; i < c->n && !found; i++) {
        const meter_sync_record *x = &c->recs[i];
        if ((!strcmp(x->kind, "usage") || !strcmp(x->kind, "settlement")) &&
            !strcmp(x->id, r->charge_id) && !strcmp(x->node, c->node)) {
            store_copy(charge, sizeof charge, x->account[0] ? x->account : METER_ACCOUNT_DEFAULT);
            found = 1;
        }
    }
    if (!found) {
        lparam p[] = { P_TEXT(r->charge_id), P_TEXT(c->node) };
        lres res;
        *rc = store_exec(st, "SELECT account FROM records WHERE id = $1 AND node = $2"
                             " AND kind IN ('usage', 'settlement')", p, 2, &res);
        if (*rc != METER_OK)
            return NULL;
        if ((found = res.nrows > 0))
            lres_text(&res, 0, 0, charge, sizeof charge);
        lres_free(&res);
    }
    if (!found || !strcmp(charge, acct))
        return NULL;
    snprintf(buf, METER_ERRMAX, "deduction of account '%.60s' for charge '%.60s' of account "
             "'%.60s'", acct, r->charge_id, charge);
    return buf;
}

/* ------------------------------------------------------------ postings -- */

static int post(ledger_store *st, const struct ingest_ctx *c, const meter_sync_record *r,
                const char *pack, const char *source, int64_t amount)
{
    lparam p[] = { P_TEXT(r->id), pack ? P_TEXT(pack) : P_NULL, P_TEXT0(r->lease_id),
                   P_TEXT(source), P_INT(amount), P_INT(c->now) };
    return store_exec(st, "INSERT INTO postings (deduction_id, pack_id, lease_id, source,"
                          " amount_us, at_ms) VALUES ($1, $2, $3, $4, $5, $6)", p, 6, NULL);
}

/* A pack's used amount grows by amount (one deduction record posted): in
 * memory now, in its row at the end of the batch (flush_packs). */
static void charge_pack(struct bpack *b, int64_t amount)
{
    b->remaining_us -= amount;
    b->add_us += amount;
    b->add_n++;
}

/* Writes what the batch added to each pack's used_us and deductions and to
 * each lease slice's posted_us: one UPDATE per row the batch changed, in
 * the transaction that stored the records and their postings (so they
 * commit, or roll back, together), each row still locked by this
 * transaction since lock_leases()/lock_packs(). */
static int flush_packs(ledger_store *st, struct ingest_ctx *c)
{
    int rc = METER_OK;
    for (size_t i = 0; rc == METER_OK && i < c->nleases; i++) {
        struct blease *l = &c->leases[i];
        for (size_t k = 0; rc == METER_OK && l->found && k < l->l.nslices; k++) {
            if (l->add_us[k] == 0)
                continue;
            lparam p[] = { P_TEXT(l->id), P_TEXT(l->l.slices[k].pack_id), P_INT(l->add_us[k]) };
            rc = store_exec(st, "UPDATE lease_slices SET posted_us = posted_us + $3"
                                " WHERE lease_id = $1 AND pack_id = $2", p, 3, NULL);
        }
    }
    for (size_t i = 0; rc == METER_OK && i < c->npacks; i++) {
        struct bpack *b = &c->packs[i];
        if (b->add_n == 0)
            continue;
        lparam p[] = { P_TEXT(b->id), P_INT(b->add_us), P_INT(b->add_n) };
        rc = store_exec(st, "UPDATE packs SET used_us = used_us + $2, deductions = deductions + $3"
                            " WHERE id = $1", p, 3, NULL);
    }
    return rc;
}

/* Takes up to *left from a pooled pack's free minutes when the pack may
 * pay at `at` (valid then, and now neither frozen nor refunded). */
static int post_free(ledger_store *st, const struct ingest_ctx *c, const meter_sync_record *r,
                     struct bpack *b, int64_t *left, int64_t *to_pack)
{
    if (!b || !b->found || b->frozen || b->refunded_at || r->at < b->start || r->at >= b->end)
        return METER_OK;
    int64_t free_us = b->remaining_us - *to_pack - b->reserved_us;
    int64_t t = free_us < *left ? free_us : *left;
    if (t <= 0)
        return METER_OK;
    *left -= t;
    *to_pack += t;
    return post(st, c, r, b->id, "free", t);
}

/* A lease deduction: from the reservation, then free minutes, then overage. */
static int post_lease(ledger_store *st, struct ingest_ctx *c, const meter_sync_record *r)
{
    struct blease *l = find_lease(c, r->lease_id);
    ledger_lease_slice *s = find_slice(l, r->pack_id);
    struct bpack *b = find_pack(c, r->pack_id);
    int64_t left = r->amount_us, to_pack = 0;
    int rc = METER_OK;
    if (!l || !s || !b)
        return store_fail(st, METER_EDB, "lease '%s' or its slice of '%s' vanished", r->lease_id,
                          r->pack_id);
    if (!strcmp(l->l.state, "open") && !s->voided) {
        int64_t held = s->granted_us - s->posted_us;
        int64_t t = held < left ? held : left;
        if (t > 0) {
            rc = post(st, c, r, b->id, "lease", t);
            s->posted_us += t;
            l->add_us[s - l->l.slices] += t;   /* its row: flush_packs */
            b->reserved_us -= t;   /* reserved becomes used: free unchanged */
            to_pack += t;
            left -= t;
        }
    }
    if (rc == METER_OK && left > 0)
        rc = post_free(st, c, r, b, &left, &to_pack);
    if (rc == METER_OK && left > 0)
        rc = post(st, c, r, NULL, "overage", left);
    if (rc == METER_OK && to_pack > 0)
        charge_pack(b, to_pack);
    return rc;
}

static int cmp_fifo(const void *a, const void *b)
{
    const struct bpack *x = *(struct bpack *const *)a, *y = *(struct bpack *const *)b;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* An overage deduction of an account with pooled packs of its class:
 * settled FIFO from the free minutes of those locked (the ones that may
 * still pay, want_pools), the rest overage.  No pooled pack: nothing is
 * posted (the v1 model). */
static int post_overage(ledger_store *st, struct ingest_ctx *c, const meter_sync_record *r)
{
    const char *acct = r->account[0] ? r->account : METER_ACCOUNT_DEFAULT;
    struct bpack **pool = malloc((c->npacks ? c->npacks : 1) * sizeof *pool);
    if (!pool)
        return store_fail(st, METER_ENOMEM, "out of memory");
    size_t np = 0;
    for (size_t i = 0; i < c->npacks; i++) {
        struct bpack *b = &c->packs[i];
        if (b->found && !b->node[0] && b->type == r->cls && !strcmp(b->account, acct))
            pool[np++] = b;
    }
    int rc = METER_OK;
    const struct bpool *g = find_pool(c, acct, r->cls);
    if (np > 0 || (g && g->any)) {
        if (np > 1)
            qsort(pool, np, sizeof *pool, cmp_fifo);
        int64_t left = r->amount_us;
        for (size_t i = 0; rc == METER_OK && i < np && left > 0; i++) {
            int64_t to_pack = 0;
            rc = post_free(st, c, r, pool[i], &left, &to_pack);
            if (rc == METER_OK && to_pack > 0)
                charge_pack(pool[i], to_pack);
        }
        if (rc == METER_OK && left > 0)
            rc = post(st, c, r, NULL, "overage", left);
    }
    free(pool);
    return rc;
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
        P_TEXT(r->account[0] ? r->account : METER_ACCOUNT_DEFAULT),
        ded ? P_TEXT0(r->lease_id) : P_NULL,
    };
    lres res;
    int rc = store_exec(st,
        "INSERT INTO records (id, kind, node, at_ms, received_ms, job, output, session_id,"
        " codec, width, height, duration_us, billed_us, deductible, daily, started_ms, state,"
        " class, ttype, day, charge_id, pack_id, amount_us, before_us, after_us, action,"
        " account, lease_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
        " $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)"
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
    c->naccounts = 0;
    /* lock order (store_leases.c): expired leases resolved, the named
     * leases, the packs in id order, the node */
    int rc = store_expire_leases(st, c->now);
    if (rc == METER_OK)
        rc = load_accounts(st, c);
    if (rc == METER_OK)
        rc = lock_leases(st, c);
    if (rc == METER_OK)
        rc = lock_packs(st, c);
    if (rc == METER_OK)
        rc = load_prefixes(st, c);
    for (size_t i = 0; rc == METER_OK && i < c->n; i++) {
        const meter_sync_record *r = &c->recs[i];
        ledger_ingest_result *o = &c->out[i];
        memset(o, 0, sizeof *o);
        char buf[METER_ERRMAX];
        const char *why = refusal(c, r, buf);
        if (!why && (why = charge_refusal(st, c, r, buf, &rc), rc != METER_OK))
            break;
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
        if ((rc = insert_record(st, r, c->received, &inserted)) != METER_OK)
            break;
        o->outcome = inserted ? LEDGER_ACCEPTED : LEDGER_DUPLICATE;
        if (!inserted || strcmp(r->kind, "deduction") != 0)
            continue;
        /* the effect, in the same transaction as the record */
        if (r->lease_id[0])
            rc = post_lease(st, c, r);
        else if (!r->pack_id[0])
            rc = post_overage(st, c, r);
        else
            charge_pack(find_pack(c, r->pack_id), r->amount_us);
    }
    if (rc == METER_OK)
        rc = flush_packs(st, c);
    return rc;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The distinct lease ids the batch's deductions name, sorted: the lock
 * order of the leases. */
static int gather_leases(ledger_store *st, struct ingest_ctx *c)
{
    const char **ids = malloc(c->n * sizeof *ids);
    if (!ids)
        return store_fail(st, METER_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->recs[i].kind, "deduction") && c->recs[i].lease_id[0])
            ids[k++] = c->recs[i].lease_id;
    if (k > 1)
        qsort(ids, k, sizeof *ids, cmp_id);
    size_t d = 0;
    for (size_t i = 0; i < k; i++)
        if (d == 0 || strcmp(ids[i], ids[d - 1]) != 0)
            ids[d++] = ids[i];
    c->leases = d ? calloc(d, sizeof *c->leases) : NULL;
    if (d && !c->leases) {
        free(ids);
        return store_fail(st, METER_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < d; i++)
        store_copy(c->leases[i].id, sizeof c->leases[i].id, ids[i]);
    c->nleases = d;
    free(ids);
    return METER_OK;
}

int ledger_ingest_at(ledger_store *st, const char *node, const meter_sync_record *recs,
                     size_t n, meter_time received, meter_time now, ledger_ingest_result *out)
{
    if (!node || !*node)
        return store_fail(st, METER_EINVAL, "ingest needs the sending node");
    if (n == 0)
        return METER_OK;
    struct ingest_ctx c;
    memset(&c, 0, sizeof c);
    c.node = node;
    c.recs = recs;
    c.n = n;
    c.received = received;
    c.now = now;
    c.out = out;
    c.prefixes = calloc(NODE_PREFIXES_MAX, sizeof *c.prefixes);
    c.accounts = calloc(n, sizeof *c.accounts);
    c.pools = calloc(n, sizeof *c.pools);
    int rc = c.prefixes && c.accounts && c.pools ? METER_OK
                                                 : store_fail(st, METER_ENOMEM, "out of memory");
    if (rc == METER_OK)
        rc = gather_leases(st, &c);
    /* every pack the batch may post to: the ones deductions name, the
     * slices of the leases they name, and the pooled packs an overage may
     * settle from (looked up before the locks; a pack bought meanwhile is
     * simply not posted to) */
    for (size_t i = 0; rc == METER_OK && i < n; i++)
        if (!strcmp(recs[i].kind, "deduction") && recs[i].pack_id[0])
            rc = want_pack(st, &c, recs[i].pack_id);
    if (rc == METER_OK)
        rc = want_pools(st, &c);
    if (rc == METER_OK)
        rc = store_tx(st, ingest_tx, &c);
    free(c.packs);
    free(c.leases);
    free(c.accounts);
    free(c.pools);
    free(c.prefixes);
    return rc;
}

int ledger_ingest(ledger_store *st, const char *node, const meter_sync_record *recs,
                  size_t n, meter_time now, ledger_ingest_result *out)
{
    return ledger_ingest_at(st, node, recs, n, now, now, out);
}
