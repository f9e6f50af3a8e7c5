/*
 * api_node.c — the endpoints nodes call: POST /v1/usage/batch and
 * GET /v1/nodes/{node}/packs (PROTOCOL.md, "Node endpoints").
 */
#include <stdlib.h>
#include <string.h>

#include "api_json.h"
#include "metrics.h"

/* One entry of the batch as it goes into the answer. */
struct entry {
    const char *id;
    const char *kind;
    ledger_outcome outcome;
    char reason[PROTO_ERRMAX];
    int listed;              /* first occurrence of its id: goes in a list */
};

static int cmp_entry_id(const void *a, const void *b)
{
    const struct entry *const *x = a, *const *y = b;
    int c = strcmp((*x)->id, (*y)->id);
    return c ? c : (*x < *y ? -1 : *x > *y);   /* then batch order */
}

/* Each id appears in exactly one list (PROTOCOL.md): a record sent twice
 * in one batch is listed once, with the outcome of its first copy. */
static int mark_listed(struct entry *e, size_t n)
{
    struct entry **by = malloc((n ? n : 1) * sizeof *by);
    if (!by)
        return -1;
    for (size_t i = 0; i < n; i++)
        by[i] = &e[i];
    qsort(by, n, sizeof *by, cmp_entry_id);
    for (size_t i = 0; i < n; i++)
        by[i]->listed = i == 0 || strcmp(by[i - 1]->id, by[i]->id) != 0;
    free(by);
    return 0;
}

static json_t *batch_answer(const struct entry *e, size_t n)
{
    json_t *acc = json_array(), *dup = json_array(), *rej = json_array();
    json_t *o = json_object();
    int ok = acc && dup && rej && o;
    for (size_t i = 0; ok && i < n; i++) {
        if (!e[i].listed)
            continue;
        if (e[i].outcome == LEDGER_ACCEPTED)
            ok = !json_array_append_new(acc, json_string(e[i].id));
        else if (e[i].outcome == LEDGER_DUPLICATE)
            ok = !json_array_append_new(dup, json_string(e[i].id));
        else
            ok = !json_array_append_new(rej, json_pack("{s:s, s:s}", "id", e[i].id,
                                                       "reason", e[i].reason));
    }
    if (ok)
        ok = !json_object_set(o, "accepted", acc) && !json_object_set(o, "duplicates", dup) &&
             !json_object_set(o, "rejected", rej);
    json_decref(acc);
    json_decref(dup);
    json_decref(rej);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

void api_batch(request *rq)
{
    const struct ledger_config *cfg = server_config(rq->srv);
    json_t *j;
    if (!rq_json_body(rq, 0, &j))
        return;
    const json_t *arr = json_object_get(j, "records");
    if (json_is_array(arr) && json_array_size(arr) > (size_t)cfg->max_records) {
        reply_error(rq, PROTO_ERR_TOO_LARGE, "a batch of %zu records exceeds the limit of %d",
                    json_array_size(arr), cfg->max_records);
        json_decref(j);
        return;
    }
    const char *node;
    const json_t *records;
    char err[PROTO_ERRMAX];
    if (proto_batch_envelope(j, &node, &records, err) != PROTO_OK) {
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "%s", err);
        json_decref(j);
        return;
    }
    if (strcmp(node, rq->node) != 0) {
        reply_error(rq, PROTO_ERR_FORBIDDEN, "node '%s' cannot send the batch of node '%s'",
                    rq->node, node);
        json_decref(j);
        return;
    }
    size_t n = json_array_size(records), nvalid = 0;
    struct entry *e = calloc(n ? n : 1, sizeof *e);
    meter_sync_record *recs = calloc(n ? n : 1, sizeof *recs);
    ledger_ingest_result *res = calloc(n ? n : 1, sizeof *res);
    size_t *slot = calloc(n ? n : 1, sizeof *slot);   /* valid record → entry index */
    if (!e || !recs || !res || !slot) {
        reply_error(rq, PROTO_ERR_INTERNAL, "out of memory");
        goto out;
    }
    /* Decode every record; a malformed one is rejected on its own — but
     * only under its id: every id is answered in exactly one list, so a
     * record without a readable id fails the whole batch (400, nothing
     * stored) rather than vanish from the answer. */
    for (size_t i = 0; i < n; i++) {
        meter_sync_record *r = &recs[nvalid];
        const json_t *rec = json_array_get(records, i);
        const json_t *idj = json_object_get(rec, "id");
        const char *id = json_string_value(idj);
        if (!id || strlen(id) != json_string_length(idj) || !proto_valid_record_id(id)) {
            reply_error(rq, PROTO_ERR_BAD_REQUEST, "records[%zu].id: %s; the batch is refused "
                        "whole, as a record without an id cannot be answered", i,
                        !json_is_object(rec) ? "the record is not an object"
                        : !idj ? "missing" : "not a record id (letters, digits, '.', '_', "
                        "'-', ':')");
            goto out;
        }
        if (proto_record_from_json(rec, r, e[i].reason) != PROTO_OK) {
            e[i].outcome = LEDGER_REJECTED;
            e[i].kind = "invalid";
            e[i].id = id;
            continue;
        }
        e[i].id = r->id;
        e[i].kind = r->kind;
        slot[nvalid++] = i;
    }
    if (nvalid > 0) {
        ledger_store *st = rq_store(rq);
        if (!st)
            goto out;
        int rc = ledger_ingest_at(st, rq->node, recs, nvalid, rq->wall, rq->now, res);
        if (rc != METER_OK) {
            /* nothing of the batch is stored: the node retries it whole */
            reply_store_error(rq, rc);
            goto out;
        }
        for (size_t k = 0; k < nvalid; k++) {
            struct entry *x = &e[slot[k]];
            x->outcome = res[k].outcome;
            if (x->outcome == LEDGER_REJECTED)
                memcpy(x->reason, res[k].reason, sizeof x->reason);
        }
    }
    for (size_t i = 0; i < n; i++)
        metrics_record(e[i].kind, e[i].outcome);
    if (mark_listed(e, n) != 0) {
        reply_error(rq, PROTO_ERR_INTERNAL, "out of memory");
        goto out;
    }
    reply_json(rq, 200, batch_answer(e, n));
out:
    free(e);
    free(recs);
    free(res);
    free(slot);
    json_decref(j);
}

static json_t *node_pack_row(const void *row, const request *rq)
{
    (void)rq;
    return node_pack_json(row);
}

void api_node_packs(request *rq)
{
    const char *node = rq->seg[0];
    if (strcmp(node, rq->node) != 0) {
        reply_error(rq, PROTO_ERR_FORBIDDEN, "node '%s' may only read its own packs, not "
                    "those of '%.60s'", rq->node, node);
        return;
    }
    ledger_store *st = rq_store(rq);
    if (!st)
        return;
    ledger_pack_filter f = { .type = -1, .node = node };
    ledger_pack *rows;
    size_t n;
    int rc = ledger_pack_list(st, &f, rq->now, &rows, &n);
    reply_rows(rq, "packs", rc, rows, n, sizeof *rows, node_pack_row);
    free(rows);
}
