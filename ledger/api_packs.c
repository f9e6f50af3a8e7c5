/*
 * api_packs.c — pack administration (admin endpoints): buy (for an
 * account; pooled unless assigned to a node), list, show, assign, freeze,
 * unfreeze, refund.  Every change is audited by the store
 * in the same transaction, with the admin's name and the request body.
 */
#include <string.h>

#include "api_json.h"

static ledger_actor actor(request *rq)
{
    return (ledger_actor){ rq->admin, rq->body_len ? rq->body : NULL };
}

static void reply_pack(request *rq, int status, const ledger_pack *p)
{
    reply_json(rq, status, pack_json(p));
}

/* The {id} path parameter, checked. */
static const char *pack_id(request *rq)
{
    const char *id = rq->seg[0];
    if (!proto_valid_pack_id(id)) {
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "invalid pack id (letters, digits, '.', '_', "
                    "'-', ':')");
        return NULL;
    }
    return id;
}

/* Reads an optional string member; 0 after answering 400. */
static int opt_string(request *rq, json_t *body, const char *key, int (*valid)(const char *),
                      const char **out)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 1;
    if (!json_is_string(v) || !valid(json_string_value(v))) {
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "%s: must be a string of letters, digits, '.', "
                    "'_', '-', ':'", key);
        return 0;
    }
    *out = json_string_value(v);
    return 1;
}

void api_pack_create(request *rq)
{
    json_t *body;
    if (!rq_json_body(rq, 0, &body))
        return;
    const char *id = NULL, *node = NULL, *account = NULL;
    meter_class type;
    json_t *t = json_object_get(body, "type"), *m = json_object_get(body, "minutes");
    json_t *s = json_object_get(body, "start_ms");
    if (!opt_string(rq, body, "id", proto_valid_pack_id, &id) ||
        !opt_string(rq, body, "node", proto_valid_node, &node) ||
        !opt_string(rq, body, "account", proto_valid_node, &account))
        goto out;
    if (!json_is_string(t) || meter_class_parse(json_string_value(t), &type) != METER_OK) {
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "type: must be \"general\" or \"tsc\"");
        goto out;
    }
    if (!json_is_integer(m) || json_integer_value(m) < 1 ||
        json_integer_value(m) > METER_PACK_MINUTES_MAX) {
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "minutes: must be an integer from 1 to %lld",
                    (long long)METER_PACK_MINUTES_MAX);
        goto out;
    }
    meter_time start = 0;
    if (s && !json_is_null(s)) {
        if (!json_is_integer(s) || json_integer_value(s) < 1 ||
            json_integer_value(s) > PROTO_TIME_MAX_MS) {
            reply_error(rq, PROTO_ERR_BAD_REQUEST, "start_ms: must be epoch milliseconds");
            goto out;
        }
        start = json_integer_value(s);
    }
    ledger_store *st = rq_store(rq);
    if (!st)
        goto out;
    ledger_actor who = actor(rq);
    ledger_pack p;
    int rc = ledger_pack_add(st, id, type, json_integer_value(m), start, node, account,
                             rq->now, &who, &p);
    if (rc == METER_OK)
        reply_pack(rq, 201, &p);
    else
        reply_store_error(rq, rc);
out:
    json_decref(body);
}

static json_t *pack_row(const void *row, const request *rq)
{
    (void)rq;
    return pack_json(row);
}

void api_pack_list(request *rq)
{
    ledger_pack_filter f = { .type = -1 };
    const char *id = rq_arg(rq, "id");
    if (id && *id) {
        if (!proto_valid_record_id(id)) {
            reply_error(rq, PROTO_ERR_BAD_REQUEST, "id: invalid search text");
            return;
        }
        f.id_like = id;
    }
    const char *status = rq_arg(rq, "status");
    if (status && *status)
        f.status = status;   /* the store names the valid ones when it is wrong */
    if (!arg_class(rq, "type", &f.type) || !arg_name(rq, "node", &f.node) ||
        !arg_name(rq, "account", &f.account))
        return;
    ledger_store *st = rq_store(rq);
    if (!st)
        return;
    ledger_pack *rows;
    size_t n;
    int rc = ledger_pack_list(st, &f, rq->now, &rows, &n);
    reply_rows(rq, "packs", rc, rows, n, sizeof *rows, pack_row);
    free(rows);
}

void api_pack_get(request *rq)
{
    const char *id = pack_id(rq);
    ledger_store *st = id ? rq_store(rq) : NULL;
    if (!st)
        return;
    ledger_pack p;
    int rc = ledger_pack_get(st, id, rq->now, &p);
    if (rc == METER_OK)
        reply_pack(rq, 200, &p);
    else
        reply_store_error(rq, rc);
}

void api_pack_assign(request *rq)
{
    const char *id = pack_id(rq);
    json_t *body;
    if (!id || !rq_json_body(rq, 0, &body))
        return;
    const char *node = NULL;
    if (opt_string(rq, body, "node", proto_valid_node, &node)) {
        if (!node)
            reply_error(rq, PROTO_ERR_BAD_REQUEST, "node: required");
        else {
            ledger_store *st = rq_store(rq);
            ledger_actor who = actor(rq);
            ledger_pack p;
            int rc = st ? ledger_pack_assign(st, id, node, rq->now, &who, &p) : METER_OK;
            if (st && rc == METER_OK)
                reply_pack(rq, 200, &p);
            else if (st)
                reply_store_error(rq, rc);
        }
    }
    json_decref(body);
}

/* freeze, unfreeze and refund take no parameters; a body, if any, must
 * still be a JSON object (it is kept in the audit log). */
static void pack_action(request *rq, int which)
{
    const char *id = pack_id(rq);
    json_t *body;
    if (!id || !rq_json_body(rq, 1, &body))
        return;
    json_decref(body);
    ledger_store *st = rq_store(rq);
    if (!st)
        return;
    ledger_actor who = actor(rq);
    ledger_pack p;
    int rc = which == 2 ? ledger_pack_refund(st, id, rq->now, &who, &p)
                        : ledger_pack_freeze(st, id, which, rq->now, &who, &p);
    if (rc == METER_OK)
        reply_pack(rq, 200, &p);
    else
        reply_store_error(rq, rc);
}

void api_pack_freeze(request *rq)   { pack_action(rq, 1); }
void api_pack_unfreeze(request *rq) { pack_action(rq, 0); }
void api_pack_refund(request *rq)   { pack_action(rq, 2); }
