/*
 * api_admin.c — the other admin endpoints: usage details and records,
 * totals, nodes, the audit log.
 */
#include <stdlib.h>
#include <string.h>

#include "api_json.h"

/* Filters common to the usage queries; 0 after answering 400. */
static int query_args(request *rq, ledger_query *q)
{
    memset(q, 0, sizeof *q);
    q->type = -1;
    if (!arg_name(rq, "node", &q->node) || !arg_name(rq, "account", &q->account) ||
        !arg_class(rq, "type", &q->type) ||
        !arg_text(rq, "ttype", METER_TTYPE_MAX, &q->ttype) ||
        !arg_time(rq, "from_ms", &q->from) || !arg_time(rq, "to_ms", &q->to))
        return 0;
    return 1;
}

static json_t *detail_row(const void *row, const request *rq)
{
    (void)rq;
    const ledger_detail_row *d = row;
    int overage = d->pack_id[0] == '\0';
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:I, s:o, s:o, s:I, s:I, s:I}",
        "day", d->day, "node", d->node, "account", d->account,
        "pack_id", overage ? json_null() : json_string(d->pack_id),
        "type", meter_class_name(d->type), "ttype", d->ttype,
        "used_us", (json_int_t)d->used_us,
        "before_us", overage ? json_null() : json_integer(d->before_us),
        "after_us", overage ? json_null() : json_integer(d->after_us),
        "first_ms", (json_int_t)d->first_at, "last_ms", (json_int_t)d->last_at,
        "count", (json_int_t)d->count);
    int ok = o && !put_minutes(o, "used_min", d->used_us);
    if (ok && d->overflow)
        ok = !json_object_set_new(o, "overflow", json_true());
    if (ok && !overage)
        ok = !put_minutes(o, "before_min", d->before_us) &&
             !put_minutes(o, "after_min", d->after_us);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

void api_usage_details(request *rq)
{
    ledger_query q;
    if (!query_args(rq, &q))
        return;
    const char *pack = rq_arg(rq, "pack");
    if (pack && *pack) {
        if (strcmp(pack, "-") != 0 && !proto_valid_pack_id(pack)) {
            reply_error(rq, PROTO_ERR_BAD_REQUEST, "pack: invalid pack id ('-' selects overage)");
            return;
        }
        q.pack_id = pack;
    }
    ledger_store *st = rq_store(rq);
    if (!st)
        return;
    ledger_detail_row *rows;
    size_t n;
    int rc = ledger_usage_details(st, &q, &rows, &n);
    reply_rows(rq, "rows", rc, rows, n, sizeof *rows, detail_row);
    free(rows);
}

void api_usage_records(request *rq)
{
    ledger_query q;
    if (!query_args(rq, &q) || !arg_text(rq, "job", METER_NAME_MAX, &q.job) ||
        !arg_name(rq, "after", &q.after) || !arg_int(rq, "limit", 1, 1000, &q.limit))
        return;
    ledger_store *st = rq_store(rq);
    if (!st)
        return;
    meter_sync_record *rows;
    meter_time *recv;
    size_t n;
    int rc = ledger_usage_records(st, &q, &rows, &recv, &n);
    if (rc != METER_OK) {
        reply_store_error(rq, rc);
        return;
    }
    json_t *arr = json_array();
    int ok = arr != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *o = proto_record_to_json(&rows[i]);
        ok = o && !json_object_set_new(o, "received_ms", json_integer(recv[i])) &&
             !put_minutes(o, "duration_min", rows[i].duration_us) &&
             !put_minutes(o, "billed_min", rows[i].billed_us) &&
             !json_array_append(arr, o);
        json_decref(o);
    }
    int limit = q.limit ? q.limit : 100;
    json_t *next = n == (size_t)limit && n > 0 ? json_string(rows[n - 1].id) : json_null();
    free(rows);
    free(recv);
    if (!ok || !next) {
        json_decref(arr);
        json_decref(next);
        reply_error(rq, PROTO_ERR_INTERNAL, "out of memory");
        return;
    }
    reply_json(rq, 200, json_pack("{s:o, s:o}", "records", arr, "next", next));
}

static json_t *total_row(const void *row, const request *rq)
{
    (void)rq;
    const ledger_total_row *t = row;
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "node", t->node,
                          "usage_count", (json_int_t)t->usage_count,
                          "duration_us", (json_int_t)t->duration_us,
                          "billed_us", (json_int_t)t->billed_us,
                          "covered_us", (json_int_t)t->covered_us,
                          "overage_us", (json_int_t)t->overage_us,
                          "records", (json_int_t)t->records);
    if (o && !put_minutes(o, "billed_min", t->billed_us) &&
        !put_minutes(o, "covered_min", t->covered_us) &&
        !put_minutes(o, "overage_min", t->overage_us) &&
        (!t->overflow || !json_object_set_new(o, "overflow", json_true())))
        return o;
    json_decref(o);
    return NULL;
}

void api_totals(request *rq)
{
    const char *node = NULL, *account = NULL;
    if (!arg_name(rq, "node", &node) || !arg_name(rq, "account", &account))
        return;
    ledger_store *st = rq_store(rq);
    if (!st)
        return;
    ledger_total_row *rows;
    size_t n;
    int rc = ledger_totals(st, node, account, &rows, &n);
    reply_rows(rq, "totals", rc, rows, n, sizeof *rows, total_row);
    free(rows);
}

void api_node_create(request *rq)
{
    json_t *body;
    const char *name;
    if (!body_name(rq, &body, &name))
        return;
    ledger_store *st = rq_store(rq);
    if (st) {
        ledger_actor who = { rq->admin, rq->body };
        char secret[LEDGER_SECRET_HEX + 1];
        int rc = ledger_node_add(st, name, rq->now, &who, secret);
        if (rc == METER_OK)
            reply_json(rq, 201, json_pack("{s:s, s:s}", "name", name, "secret", secret));
        else
            reply_store_error(rq, rc);
        memset(secret, 0, sizeof secret);
    }
    json_decref(body);
}

static json_t *node_row(const void *row, const request *rq)
{
    (void)rq;
    const ledger_node *nd = row;
    return json_pack("{s:s, s:I, s:o}", "name", nd->name, "created_ms",
                     (json_int_t)nd->created_at, "last_seen_ms",
                     nd->last_seen ? json_integer(nd->last_seen) : json_null());
}

void api_node_list(request *rq)
{
    ledger_store *st = rq_store(rq);
    if (!st)
        return;
    ledger_node *rows;
    size_t n;
    int rc = ledger_node_list(st, &rows, &n);
    reply_rows(rq, "nodes", rc, rows, n, sizeof *rows, node_row);
    free(rows);
}

static json_t *audit_row(const void *row, const request *rq)
{
    (void)rq;
    const ledger_audit_row *a = row;
    return json_pack("{s:I, s:I, s:s, s:s, s:o, s:o}",
        "seq", (json_int_t)a->seq, "at_ms", (json_int_t)a->at, "admin", a->admin,
        "action", a->action, "target", a->target[0] ? json_string(a->target) : json_null(),
        "body", a->body ? json_string(a->body) : json_null());
}

void api_audit(request *rq)
{
    meter_time from = 0, to = 0;
    if (!arg_time(rq, "from_ms", &from) || !arg_time(rq, "to_ms", &to))
        return;
    ledger_store *st = rq_store(rq);
    if (!st)
        return;
    ledger_audit_row *rows;
    size_t n;
    int rc = ledger_audit_list(st, from, to, &rows, &n);
    reply_rows(rq, "audit", rc, rows, n, sizeof *rows, audit_row);
    ledger_audit_free(rows, n);
}
