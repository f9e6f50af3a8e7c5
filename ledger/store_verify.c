/*
 * store_verify.c — the ledger's invariants, checked on one snapshot
 * (store_snapshot: every query sees the same committed state, so a check
 * run beside live traffic reports no half-written transaction).  Each
 * check is one query that returns only the rows that break it; each such
 * row becomes one line naming the pack, slice, lease, record or charge.
 * The list of checks is in store.h (ledger_verify).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_impl.h"

struct vctx {
    meter_time now;
    char **lines;
    size_t n, cap;
    int64_t more;             /* violations past LEDGER_VERIFY_MAX */
};

static int add(ledger_store *st, struct vctx *v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int add(ledger_store *st, struct vctx *v, const char *fmt, ...)
{
    if (v->n >= LEDGER_VERIFY_MAX) {
        v->more++;
        return METER_OK;
    }
    char line[METER_ERRMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    int rc = store_grow(st, &v->lines, &v->cap, v->n, sizeof *v->lines);
    if (rc != METER_OK)
        return rc;
    if (!(v->lines[v->n] = strdup(line)))
        return store_fail(st, METER_ENOMEM, "out of memory");
    v->n++;
    return METER_OK;
}

#define S(r, i, c) (lres_get((r), (i), (c)) ? lres_get((r), (i), (c)) : "")
#define I(r, i, c) lres_int((r), (i), (c))

/* Runs a check; each row it returns is passed to one(). */
static int check(ledger_store *st, struct vctx *v, const char *sql,
                 int (*one)(ledger_store *, struct vctx *, const lres *, int))
{
    lparam p[] = { P_INT(v->now) };
    int np = strstr(sql, "$1") ? 1 : 0;
    lres r;
    int rc = store_exec(st, sql, p, np, &r);
    for (int i = 0; rc == METER_OK && i < r.nrows; i++)
        rc = one(st, v, &r, i);
    lres_free(&r);
    return rc;
}

/* ---------------------------------------------------------------- packs -- */

static int pack_sum(ledger_store *st, struct vctx *v, const lres *r, int i)
{
    return add(st, v, "pack '%s': used %" PRId64 " µs, but its %s add up to %" PRId64 " µs",
               S(r, i, 0), I(r, i, 1), *S(r, i, 3) ? "deduction records" : "postings",
               I(r, i, 2));
}

static int pack_bounds(ledger_store *st, struct vctx *v, const lres *r, int i)
{
    return add(st, v, "pack '%s': used %" PRId64 " µs + reserved %" PRId64 " µs is outside 0 … "
               "its total %" PRId64 " µs", S(r, i, 0), I(r, i, 1), I(r, i, 2), I(r, i, 3));
}

static int pack_refund(ledger_store *st, struct vctx *v, const lres *r, int i)
{
    return add(st, v, "pack '%s': refunded, yet open leases reserve %" PRId64 " µs of it and "
               "%" PRId64 " µs were posted to it after the refund", S(r, i, 0), I(r, i, 1),
               I(r, i, 2));
}

/* ---------------------------------------------------------------- leases -- */

static int slice_sum(ledger_store *st, struct vctx *v, const lres *r, int i)
{
    return add(st, v, "lease '%s', slice of pack '%s': posted %" PRId64 " µs of %" PRId64 " µs "
               "granted, its lease postings add up to %" PRId64 " µs", S(r, i, 0), S(r, i, 1),
               I(r, i, 3), I(r, i, 2), I(r, i, 4));
}

static int lease_sum(ledger_store *st, struct vctx *v, const lres *r, int i)
{
    return add(st, v, "lease '%s' (%s, resolved_ms %s): granted %" PRId64 " µs, its slices "
               "granted %" PRId64 " µs and posted %" PRId64 " µs", S(r, i, 0), S(r, i, 2),
               lres_get(r, i, 3) ? S(r, i, 3) : "null", I(r, i, 1), I(r, i, 4), I(r, i, 5));
}

/* -------------------------------------------------------------- records -- */

static int deduction_sum(ledger_store *st, struct vctx *v, const lres *r, int i)
{
    return add(st, v, "deduction '%s'%s%s: amount %" PRId64 " µs, its postings add up to "
               "%" PRId64 " µs", S(r, i, 0), *S(r, i, 3) ? " of lease " : "", S(r, i, 3),
               I(r, i, 1), I(r, i, 2));
}

static int charge_sum(ledger_store *st, struct vctx *v, const lres *r, int i)
{
    return add(st, v, "node '%s', charge '%s': billed %" PRId64 " µs, its deduction records add "
               "up to %" PRId64 " µs", S(r, i, 0), S(r, i, 1), I(r, i, 2), I(r, i, 3));
}

static int verify_tx(ledger_store *st, void *vctx)
{
    struct vctx *v = vctx;
    ledger_verify_free(v->lines, v->n);   /* a retried attempt starts afresh */
    v->lines = NULL;
    v->n = v->cap = 0;
    v->more = 0;
    int rc = check(st, v,
        /* used = Σ deduction records (assigned) or Σ postings (pooled) */
        "SELECT id, used_us, s, node FROM (SELECT p.id, p.used_us, p.node, CASE WHEN p.node IS"
        " NOT NULL THEN COALESCE((SELECT SUM(r.amount_us) FROM records r WHERE r.kind ="
        " 'deduction' AND r.pack_id = p.id AND r.lease_id IS NULL), 0) ELSE COALESCE((SELECT"
        " SUM(q.amount_us) FROM postings q WHERE q.pack_id = p.id), 0) END AS s FROM packs p) x"
        " WHERE s <> used_us ORDER BY id", pack_sum);
    if (rc == METER_OK)
        rc = check(st, v,
            "SELECT id, used_us, res, total_us FROM (SELECT id, used_us, total_us, "
            RESERVED_OF("packs.id", "$1") " AS res FROM packs) x"
            " WHERE used_us < 0 OR res < 0 OR used_us + res > total_us ORDER BY id", pack_bounds);
    if (rc == METER_OK)
        rc = check(st, v,
            "SELECT id, res, late FROM (SELECT id, " RESERVED_OF("packs.id", "$1") " AS res,"
            " COALESCE((SELECT SUM(q.amount_us) FROM postings q WHERE q.pack_id = packs.id AND"
            " q.at_ms > packs.refunded_ms), 0) AS late FROM packs WHERE refunded_ms IS NOT NULL"
            " AND node IS NULL) x WHERE res > 0 OR late > 0 ORDER BY id", pack_refund);
    if (rc == METER_OK)
        rc = check(st, v,
            "SELECT lease_id, pack_id, granted_us, posted_us, s FROM (SELECT lease_id, pack_id,"
            " granted_us, posted_us, COALESCE((SELECT SUM(q.amount_us) FROM postings q WHERE"
            " q.lease_id = lease_slices.lease_id AND q.pack_id = lease_slices.pack_id AND"
            " q.source = 'lease'), 0) AS s FROM lease_slices) x"
            " WHERE s <> posted_us OR posted_us > granted_us ORDER BY lease_id, pack_id",
            slice_sum);
    if (rc == METER_OK)
        rc = check(st, v,
            "SELECT l.id, l.granted_us, l.state, l.resolved_ms, COALESCE(SUM(s.granted_us), 0),"
            " COALESCE(SUM(s.posted_us), 0) FROM leases l LEFT JOIN lease_slices s"
            " ON s.lease_id = l.id GROUP BY l.id, l.granted_us, l.state, l.resolved_ms"
            " HAVING COALESCE(SUM(s.granted_us), 0) <> l.granted_us"
            " OR COALESCE(SUM(s.posted_us), 0) > l.granted_us"
            " OR (l.state = 'open') <> (l.resolved_ms IS NULL) ORDER BY l.id", lease_sum);
    if (rc == METER_OK)
        rc = check(st, v,
            "SELECT r.id, r.amount_us, COALESCE(SUM(q.amount_us), 0), r.lease_id FROM records r"
            " LEFT JOIN postings q ON q.deduction_id = r.id WHERE r.kind = 'deduction' AND"
            " (r.lease_id IS NOT NULL OR r.id IN (SELECT deduction_id FROM postings))"
            " GROUP BY r.id, r.amount_us, r.lease_id"
            " HAVING COALESCE(SUM(q.amount_us), 0) <> r.amount_us ORDER BY r.id", deduction_sum);
    if (rc == METER_OK)
        rc = check(st, v,
            "SELECT c.node, c.id, c.billed_us, SUM(d.amount_us) FROM records d JOIN records c"
            " ON c.id = d.charge_id AND c.node = d.node WHERE d.kind = 'deduction'"
            " AND c.kind IN ('usage', 'settlement') GROUP BY c.node, c.id, c.billed_us"
            " HAVING SUM(d.amount_us) <> c.billed_us ORDER BY c.node, c.id", charge_sum);
    if (rc == METER_OK && v->more > 0) {
        char line[80];
        snprintf(line, sizeof line, "… and %" PRId64 " more violations", v->more);
        free(v->lines[v->n - 1]);
        if (!(v->lines[v->n - 1] = strdup(line)))
            rc = store_fail(st, METER_ENOMEM, "out of memory");
    }
    return rc;
}

int ledger_verify(ledger_store *st, meter_time now, char ***lines, size_t *n)
{
    *lines = NULL;
    *n = 0;
    struct vctx v = { now, NULL, 0, 0, 0 };
    int rc = store_snapshot(st, verify_tx, &v);
    if (rc != METER_OK) {
        ledger_verify_free(v.lines, v.n);
        return rc;
    }
    *lines = v.lines;
    *n = v.n;
    return METER_OK;
}

void ledger_verify_free(char **lines, size_t n)
{
    for (size_t i = 0; lines && i < n; i++)
        free(lines[i]);
    free(lines);
}
