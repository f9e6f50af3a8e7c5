/*
 * store_accounts.c — accounts: the customers of a farm.  Each owns packs
 * and every record carries one; "default" always exists (the migration to
 * schema 3 creates it and gives it everything stored before).
 *
 * An account's balance is read, never kept: per class, over its packs
 * usable now (started, not ended, not frozen, not refunded), Σ total,
 * Σ used, Σ reserved (RESERVED_OF: its open leases) and their difference.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "store_impl.h"

int ledger_account_exists(ledger_store *st, const char *name)
{
    lparam p[] = { P_TEXT(name ? name : "") };
    lres r;
    int rc = store_exec(st, "SELECT 1 FROM accounts WHERE name = $1", p, 1, &r);
    if (rc == METER_OK && r.nrows == 0)
        rc = store_fail(st, METER_ENOTFOUND, "no account '%.127s' (create it first: POST "
                        "/v1/accounts or meter-ledgerd account add)", name ? name : "");
    lres_free(&r);
    return rc;
}

struct add_ctx {
    const char *name;
    meter_time now;
    const ledger_actor *who;
};

static int add_tx(ledger_store *st, void *vctx)
{
    struct add_ctx *c = vctx;
    lparam p[] = { P_TEXT(c->name), P_INT(c->now) };
    int rc = store_exec(st, "INSERT INTO accounts (name, created_ms) VALUES ($1, $2)", p, 2, NULL);
    if (rc == METER_EEXIST)
        return store_fail(st, rc, "account '%s' already exists", c->name);
    if (rc == METER_OK)
        rc = store_audit(st, c->who, c->now, "account.add", c->name);
    return rc;
}

int ledger_account_add(ledger_store *st, const char *name, meter_time now,
                       const ledger_actor *who)
{
    if (!name || !proto_valid_node(name))
        return store_fail(st, METER_EINVAL, "invalid account name '%.60s' (1 to %d letters, "
                          "digits, '.', '_', '-', ':')", name ? name : "", METER_NAME_MAX - 1);
    struct add_ctx c = { name, now, who };
    return store_tx(st, add_tx, &c);
}

static ledger_account *find(ledger_account *rows, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (!strcmp(rows[i].name, name))
            return &rows[i];
    return NULL;
}

int ledger_account_list(ledger_store *st, meter_time now, ledger_account **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    lres a, k, u, l;
    int rc = store_exec(st, "SELECT name, created_ms FROM accounts ORDER BY name", NULL, 0, &a);
    if (rc != METER_OK)
        return rc;
    lparam p[] = { P_INT(now) };
    memset(&k, 0, sizeof k);
    memset(&u, 0, sizeof u);
    memset(&l, 0, sizeof l);
    rc = store_exec(st, "SELECT account, count(*) FROM packs GROUP BY account", NULL, 0, &k);
    if (rc == METER_OK)
        rc = store_exec(st, "SELECT account, type, SUM(total_us), SUM(used_us), SUM(res), count(*)"
                            " FROM (SELECT account, type, total_us, used_us, "
                            RESERVED_OF("packs.id", "$1") " AS res FROM packs"
                            " WHERE frozen = 0 AND refunded_ms IS NULL AND start_ms <= $1"
                            " AND end_ms > $1) x GROUP BY account, type", p, 1, &u);
    if (rc == METER_OK)
        rc = store_exec(st, "SELECT account, class, count(*) FROM leases WHERE state = 'open'"
                            " AND expires_ms > $1 GROUP BY account, class", p, 1, &l);
    ledger_account *out = NULL;
    if (rc == METER_OK && a.nrows && !(out = calloc((size_t)a.nrows, sizeof *out)))
        rc = store_fail(st, METER_ENOMEM, "out of memory");
    size_t na = rc == METER_OK ? (size_t)a.nrows : 0;
    for (size_t i = 0; i < na; i++) {
        lres_text(&a, (int)i, 0, out[i].name, sizeof out[i].name);
        out[i].created_at = lres_int(&a, (int)i, 1);
    }
    for (int i = 0; i < k.nrows; i++) {
        ledger_account *x = find(out, na, lres_get(&k, i, 0));
        if (x)
            x->packs = lres_int(&k, i, 1);
    }
    for (int i = 0; i < u.nrows; i++) {
        ledger_account *x = find(out, na, lres_get(&u, i, 0));
        if (!x)
            continue;
        ledger_account_class *c = &x->cls[store_class(lres_get(&u, i, 1))];
        c->total_us = lres_int(&u, i, 2);
        c->used_us = lres_int(&u, i, 3);
        c->reserved_us = lres_int(&u, i, 4);
        c->remaining_us = c->total_us - c->used_us - c->reserved_us;
        c->packs = lres_int(&u, i, 5);
    }
    for (int i = 0; i < l.nrows; i++) {
        ledger_account *x = find(out, na, lres_get(&l, i, 0));
        if (x)
            x->cls[store_class(lres_get(&l, i, 1))].open_leases = lres_int(&l, i, 2);
    }
    lres_free(&a);
    lres_free(&k);
    lres_free(&u);
    lres_free(&l);
    if (rc != METER_OK) {
        free(out);
        return rc;
    }
    *rows = out;
    *n = na;
    return METER_OK;
}
