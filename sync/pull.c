/*
 * pull.c — the packs the ledger assigns to this node, applied locally.
 *
 * meter_pack_apply adds new packs and applies freezes, unfreezes and
 * refunds.  What it refuses (a refund of a pack already used here, a pack
 * whose size or validity differs) is a conflict: reported, the rest goes
 * on, and the node keeps deducting as before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync_internal.h"

typedef struct packs_check {
    meter_remote_pack *packs;
    size_t n;
} packs_check;

static int check_packs(void *arg, const json_t *answer, char err[PROTO_ERRMAX])
{
    packs_check *p = arg;
    free(p->packs);
    p->packs = NULL;
    p->n = 0;
    return proto_packs_from_json(answer, &p->packs, &p->n, err);
}

static void conflict(sync_ctx *c, const char *msg)
{
    meter_sync_report *rep = c->rep;
    if (rep->conflicts < METER_SYNC_CONFLICTS_MAX)
        snprintf(rep->conflict[rep->conflicts], METER_ERRMAX, "%s", msg);
    rep->conflicts++;
    sync_log(c, "pack conflict: %s", msg);
}

static int apply(sync_ctx *c, const meter_remote_pack *p)
{
    meter_pack before;
    int rc = meter_pack_get(c->st, p->id, &before);
    int known = rc == METER_OK;
    if (rc != METER_OK && rc != METER_ENOTFOUND)
        return sync_fail(c, rc, "read pack %s: %s", p->id, meter_errmsg(c->st));
    rc = meter_pack_apply(c->st, p);
    if (rc == METER_EREFUSED || rc == METER_EINVAL) {
        conflict(c, meter_errmsg(c->st));
        return METER_OK;
    }
    if (rc != METER_OK)
        return sync_fail(c, rc, "apply pack %s: %s", p->id, meter_errmsg(c->st));
    meter_pack after;
    if (meter_pack_get(c->st, p->id, &after) == METER_OK &&
        (!known || after.frozen != before.frozen || after.refunded_at != before.refunded_at)) {
        c->rep->packs_applied++;
        sync_log(c, "pack %s: %s", p->id, !known ? "added" : after.status);
    }
    return METER_OK;
}

int sync_pull(sync_ctx *c)
{
    char path[64 + METER_NAME_MAX];
    /* node names are [A-Za-z0-9._:-]: nothing to escape */
    snprintf(path, sizeof path, PROTO_PATH_NODE_PACKS_FMT, c->node);
    packs_check pc = { NULL, 0 };
    json_t *answer = NULL;
    long status = 0;
    int rc = sync_call(c, "GET", path, NULL, 0, check_packs, &pc, &answer, &status);
    json_decref(answer);
    if (rc == METER_OK) {
        c->rep->packs = (int64_t)pc.n;
        for (size_t i = 0; i < pc.n && rc == METER_OK; i++)
            rc = apply(c, &pc.packs[i]);
        if (rc == METER_OK)
            c->rep->pulled = 1;
    }
    free(pc.packs);
    return rc;
}
