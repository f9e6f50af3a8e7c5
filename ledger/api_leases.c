/*
 * api_leases.c — leases over HTTP (PROTOCOL.md, "Accounts and leases"):
 * the node endpoints POST /v1/leases, /v1/leases/{id}/renew and
 * /v1/leases/{id}/release, and the admin listing GET /v1/leases.
 *
 * Answers are {"lease": LEASE} in the wire shape of sync/protocol.h
 * (proto_lease_to_json), with ttl_ms = expires_ms − the ledger's now for
 * an open lease (the node counts it on its own clock), 0 once resolved.
 * Store results map to statuses: a new lease 201, a repeated id 200,
 * another node's id or an unknown account 404, nothing to reserve 422, a
 * node at leases-per-node 429, a renewal of a resolved lease 409.
 */
#include <stdlib.h>
#include <string.h>

#include "api_json.h"
#include "metrics.h"

_Static_assert(LEDGER_LEASE_SLICES_MAX == PROTO_LEASE_SLICES_MAX,
               "a stored lease fits the wire's slice count");

static ledger_lease_limits limits(request *rq)
{
    const struct ledger_config *cfg = server_config(rq->srv);
    return (ledger_lease_limits){ .ttl_ms = (int64_t)cfg->lease_ttl_s * 1000,
                                  .max_us = (int64_t)cfg->lease_max_minutes * METER_US_PER_MIN,
                                  .per_node = cfg->leases_per_node };
}

json_t *lease_json(const ledger_lease *l, meter_time now)
{
    proto_lease *w = calloc(1, sizeof *w);   /* 11 KB: not on the stack */
    if (!w)
        return NULL;
    memcpy(w->id, l->id, sizeof w->id);
    memcpy(w->node, l->node, sizeof w->node);
    memcpy(w->account, l->account, sizeof w->account);
    w->cls = l->cls;
    memcpy(w->state, l->state, sizeof w->state);
    w->requested_us = l->requested_us;
    w->granted_us = l->granted_us;
    w->created_ms = l->created_at;
    w->expires_ms = l->expires_at;
    int open = !strcmp(l->state, "open");
    w->ttl_ms = open && l->expires_at > now ? l->expires_at - now : 0;
    w->resolved_ms = open ? 0 : l->resolved_at;
    w->nslices = l->nslices;
    for (size_t i = 0; i < l->nslices; i++) {
        proto_lease_slice *s = &w->slices[i];
        memcpy(s->pack_id, l->slices[i].pack_id, sizeof s->pack_id);
        s->granted_us = l->slices[i].granted_us;
        s->posted_us = l->slices[i].posted_us;
        s->start_ms = l->slices[i].start;
        s->end_ms = l->slices[i].end;
        s->voided = l->slices[i].voided;
    }
    json_t *o = proto_lease_to_json(w);
    free(w);
    return o;
}

static void reply_lease(request *rq, int status, const ledger_lease *l)
{
    json_t *o = lease_json(l, rq->now);
    reply_json(rq, status, o ? json_pack("{s:o}", "lease", o) : NULL);
}

/* The store's answer for a lease call; counts it in the metrics. */
static void answer(request *rq, int rc, int status, const ledger_lease *l, const char *what)
{
    metrics_lease(what, rc);
    if (rc == METER_OK)
        reply_lease(rq, status, l);
    else
        reply_store_error(rq, rc);
}

/* What a lease call needs: the store (*st), the configured limits (*lim)
 * and a lease for the store to fill, returned (the caller's to free); or
 * NULL after answering 503 (no store) or 500 (out of memory). */
static ledger_lease *lease_call(request *rq, ledger_store **st, ledger_lease_limits *lim)
{
    *st = rq_store(rq);
    if (!*st)
        return NULL;
    *lim = limits(rq);
    ledger_lease *l = malloc(sizeof *l);
    if (!l)
        reply_error(rq, PROTO_ERR_INTERNAL, "out of memory");
    return l;
}

void api_lease_create(request *rq)
{
    json_t *body;
    if (!rq_json_body(rq, 0, &body))
        return;
    proto_lease_request q;
    char err[PROTO_ERRMAX];
    if (proto_lease_request_from_json(body, &q, err) != PROTO_OK) {
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "%s", err);
        json_decref(body);
        return;
    }
    json_decref(body);
    ledger_store *st;
    ledger_lease_limits lim;
    ledger_lease *l = lease_call(rq, &st, &lim);
    if (!l)
        return;
    int created = 0;
    int rc = ledger_lease_grant(st, rq->node, q.id, q.account, q.cls, q.want_us, &lim, rq->now,
                                l, &created);
    answer(rq, rc, created ? 201 : 200, l, rc == METER_OK && !created ? "repeated" : "grant");
    free(l);
}

/* renew and release take no parameters; a body, if any, must be a JSON
 * object. */
static void lease_action(request *rq, int renew)
{
    const char *id = rq->seg[0];
    json_t *body;
    if (!rq_json_body(rq, 1, &body))
        return;
    json_decref(body);
    if (!proto_record_id_prefix(id, "lease", NULL)) {
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "'%.60s' is not a lease id (<node_id>-l<seq>)",
                    id);
        return;
    }
    ledger_store *st;
    ledger_lease_limits lim;
    ledger_lease *l = lease_call(rq, &st, &lim);
    if (!l)
        return;
    int rc = renew ? ledger_lease_renew(st, rq->node, id, &lim, rq->now, l)
                   : ledger_lease_release(st, rq->node, id, rq->now, l);
    answer(rq, rc, 200, l, renew ? "renew" : "release");
    free(l);
}

void api_lease_renew(request *rq)   { lease_action(rq, 1); }
void api_lease_release(request *rq) { lease_action(rq, 0); }

static json_t *lease_row(const void *row, const request *rq)
{
    return lease_json(row, rq->now);
}

void api_lease_list(request *rq)
{
    ledger_lease_filter f = { 0 };
    if (!arg_name(rq, "node", &f.node) || !arg_name(rq, "account", &f.account) ||
        !arg_int(rq, "limit", 1, 1000, &f.limit))
        return;
    const char *state = rq_arg(rq, "state");
    if (state && *state)
        f.state = state;   /* the store names the valid ones when it is wrong */
    ledger_store *st = rq_store(rq);
    if (!st)
        return;
    ledger_lease *rows;
    size_t n;
    int rc = ledger_lease_list(st, &f, rq->now, &rows, &n);
    if (rc != METER_OK) {
        reply_store_error(rq, rc);
        return;
    }
    json_t *arr = rows_json(rq, rows, n, sizeof *rows, lease_row);
    free(rows);
    if (!arr) {
        reply_error(rq, PROTO_ERR_INTERNAL, "out of memory");
        return;
    }
    /* now_ms: the ledger's clock, which decides expiry, so the console
     * shows "expires in" and "expired … ago" on it, not the browser's */
    reply_json(rq, 200, json_pack("{s:o, s:I}", "leases", arr, "now_ms", (json_int_t)rq->now));
}
