/*
 * push.c — the outbox to the ledger, batch after batch.
 *
 * A batch is at most cfg->batch records and cfg->max_bytes of JSON (at
 * least one record, whatever its size).  After the ledger's answer, the
 * accepted and duplicate ids leave the outbox in one transaction and each
 * rejected record is quarantined with the ledger's reason; ids the answer
 * does not mention stay and go again with the next batch.  A 413 halves
 * the batch (the ledger's limits may be lower than ours).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync_internal.h"

typedef struct batch_check {
    const meter_sync_record *sent;
    size_t n;
    proto_batch_result res;
} batch_check;

static int check_batch(void *arg, const json_t *answer, char err[PROTO_ERRMAX])
{
    batch_check *b = arg;
    proto_batch_result_free(&b->res);
    return proto_batch_result_parse(answer, b->sent, b->n, &b->res, err);
}

/* Encodes rows into a batch within the caps; records that cannot be
 * encoded (text that is not UTF-8) are quarantined here, as the ledger
 * would reject them.  Compacts the chosen rows to rows[0 … *k). */
static int build(sync_ctx *c, meter_sync_record *rows, size_t n, size_t max_bytes,
                 size_t *k, char **body, size_t *len)
{
    json_t *arr = json_array();
    json_t *env = json_pack("{s:s}", "node", c->node);
    size_t bytes = strlen(c->node) + 32, used = 0;
    *k = 0;
    *body = NULL;
    if (!arr || !env) {
        json_decref(arr);
        json_decref(env);
        return sync_fail(c, METER_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        json_t *j = proto_record_to_json(&rows[i]);
        if (!j) {
            int rc = meter_outbox_quarantine(c->st, rows[i].id,
                                             "cannot be encoded for the ledger "
                                             "(text that is not UTF-8, or an unknown kind)");
            if (rc != METER_OK && rc != METER_ENOTFOUND) {
                json_decref(arr);
                json_decref(env);
                return sync_fail(c, rc, "quarantine %s: %s", rows[i].id,
                                 meter_errmsg(c->st));
            }
            sync_log(c, "record %s cannot be encoded: quarantined", rows[i].id);
            c->rep->rejected++;
            continue;
        }
        size_t size = json_dumpb(j, NULL, 0, JSON_COMPACT) + 1;   /* + ',' */
        if (used > 0 && bytes + size > max_bytes) {
            json_decref(j);
            break;
        }
        json_array_append_new(arr, j);
        if (used != i)
            rows[used] = rows[i];
        used++;
        bytes += size;
    }
    *k = used;
    if (used == 0) {
        json_decref(arr);
        json_decref(env);
        return METER_OK;
    }
    json_object_set_new(env, "records", arr);
    *body = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    if (!*body)
        return sync_fail(c, METER_ENOMEM, "out of memory");
    *len = strlen(*body);
    return METER_OK;
}

/* Applies a batch answer to the outbox. */
static int settle(sync_ctx *c, const proto_batch_result *res)
{
    size_t n = res->n_accepted + res->n_duplicates;
    const char **ids = calloc(n ? n : 1, sizeof *ids);
    if (!ids)
        return sync_fail(c, METER_ENOMEM, "out of memory");
    for (size_t i = 0; i < res->n_accepted; i++)
        ids[i] = res->accepted[i];
    for (size_t i = 0; i < res->n_duplicates; i++)
        ids[res->n_accepted + i] = res->duplicates[i];
    int rc = n ? meter_outbox_ack(c->st, ids, n) : METER_OK;
    free(ids);
    if (rc != METER_OK)
        return sync_fail(c, rc, "acknowledge %zu records: %s", n, meter_errmsg(c->st));
    for (size_t i = 0; i < res->n_rejected; i++) {
        rc = meter_outbox_quarantine(c->st, res->rejected[i].id, res->rejected[i].reason);
        if (rc != METER_OK && rc != METER_ENOTFOUND)
            return sync_fail(c, rc, "quarantine %s: %s", res->rejected[i].id,
                             meter_errmsg(c->st));
        sync_log(c, "record %s rejected by the ledger: %s", res->rejected[i].id,
                 res->rejected[i].reason);
    }
    c->rep->accepted += (int64_t)res->n_accepted;
    c->rep->duplicates += (int64_t)res->n_duplicates;
    c->rep->rejected += (int64_t)res->n_rejected;
    return METER_OK;
}

int sync_push(sync_ctx *c)
{
    const meter_sync_config *cfg = c->cfg;
    size_t batch = cfg->batch;
    /* One round pushes at most what the outbox held when it started: jobs
     * that add records faster than the ledger takes them must not keep
     * the round from its end, where the leases are renewed (a busy node
     * would otherwise let them expire and meter into overage). */
    meter_sync_status ss;
    int64_t budget, moved_total = 0;
    int src = meter_sync_status_get(c->st, &ss);
    if (src != METER_OK)
        return sync_fail(c, src, "read the outbox: %s", meter_errmsg(c->st));
    budget = ss.depth;
    for (;;) {
        if (moved_total >= budget)
            return METER_OK;
        if (sync_stopped(c))
            return sync_fail(c, METER_SYNC_ESTOPPED, "stopped by a signal");
        meter_sync_record *rows;
        size_t n, k, len = 0;
        char *body;
        int rc = meter_outbox_fetch(c->st, batch, &rows, &n);
        if (rc != METER_OK)
            return sync_fail(c, rc, "read the outbox: %s", meter_errmsg(c->st));
        if (n == 0) {
            meter_free(rows);
            return METER_OK;
        }
        rc = build(c, rows, n, cfg->max_bytes, &k, &body, &len);
        if (rc != METER_OK || k == 0) {
            meter_free(rows);
            if (rc != METER_OK)
                return rc;
            continue;   /* every fetched record was quarantined locally */
        }
        batch_check bc = { rows, k, { 0 } };
        json_t *answer = NULL;
        long status = 0;
        rc = sync_call(c, "POST", PROTO_PATH_BATCH, body, len, check_batch, &bc, &answer,
                       &status);
        free(body);
        json_decref(answer);
        if (rc == METER_SYNC_EPROTO && status == 413 && k > 1) {
            batch = k / 2;
            sync_log(c, "ledger refused %zu records as too large; batches of %zu now", k,
                     batch);
            c->rep->error[0] = '\0';
            proto_batch_result_free(&bc.res);
            meter_free(rows);
            continue;
        }
        if (rc == METER_OK) {
            c->rep->batches++;
            c->rep->sent += (int64_t)k;
            rc = settle(c, &bc.res);
            size_t moved = bc.res.n_accepted + bc.res.n_duplicates + bc.res.n_rejected;
            moved_total += (int64_t)moved;
            /* the ledger must make progress, or we would resend forever */
            if (rc == METER_OK && moved == 0)
                rc = sync_fail(c, METER_SYNC_EPROTO, "POST %s: the ledger answered none of "
                               "the %zu records sent", PROTO_PATH_BATCH, k);
        }
        proto_batch_result_free(&bc.res);
        meter_free(rows);
        if (rc != METER_OK)
            return rc;
    }
}
