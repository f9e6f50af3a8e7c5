/*
 * api_accounts.c — accounts (admin endpoints): POST /v1/accounts creates
 * one, GET /v1/accounts lists them with, per class, what their usable
 * packs hold: total, used, reserved by open leases, remaining, packs.
 */
#include <stdlib.h>
#include <string.h>

#include "api_json.h"

void api_account_create(request *rq)
{
    json_t *body;
    const char *name;
    if (!body_name(rq, &body, &name))
        return;
    ledger_store *st = rq_store(rq);
    if (st) {
        ledger_actor who = { rq->admin, rq->body };
        int rc = ledger_account_add(st, name, rq->now, &who);
        if (rc == METER_OK)
            reply_json(rq, 201, json_pack("{s:s, s:I}", "name", name,
                                          "created_ms", (json_int_t)rq->now));
        else
            reply_store_error(rq, rc);
    }
    json_decref(body);
}

static json_t *class_json(const ledger_account_class *c)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "total_us", (json_int_t)c->total_us,
                          "used_us", (json_int_t)c->used_us,
                          "reserved_us", (json_int_t)c->reserved_us,
                          "remaining_us", (json_int_t)c->remaining_us,
                          "packs", (json_int_t)c->packs,
                          "open_leases", (json_int_t)c->open_leases);
    if (o && put_minutes(o, "remaining_min", c->remaining_us)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *account_json(const ledger_account *a)
{
    json_t *g = class_json(&a->cls[METER_CLASS_GENERAL]), *t = class_json(&a->cls[METER_CLASS_TSC]);
    if (!g || !t) {
        json_decref(g);
        json_decref(t);
        return NULL;
    }
    return json_pack("{s:s, s:I, s:I, s:{s:o, s:o}}", "name", a->name,
                     "created_ms", (json_int_t)a->created_at, "packs", (json_int_t)a->packs,
                     "classes", "general", g, "tsc", t);
}

static json_t *account_row(const void *row, const request *rq)
{
    (void)rq;
    return account_json(row);
}

void api_account_list(request *rq)
{
    ledger_store *st = rq_store(rq);
    if (!st)
        return;
    ledger_account *rows;
    size_t n;
    int rc = ledger_account_list(st, rq->now, &rows, &n);
    reply_rows(rq, "accounts", rc, rows, n, sizeof *rows, account_row);
    free(rows);
}
