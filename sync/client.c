/*
 * client.c — meter_sync_run: push, then pull, then leases, then note the
 * outcome.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sync_internal.h"

void sync_log(const sync_ctx *c, const char *fmt, ...)
{
    if (!c->cfg->log)
        return;
    char line[2 * METER_ERRMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    line[strcspn(line, "\r\n")] = '\0';
    c->cfg->log(c->cfg->log_ctx, line);
}

int sync_fail(sync_ctx *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->rep->error, sizeof c->rep->error, fmt, ap);
    va_end(ap);
    c->rep->error[strcspn(c->rep->error, "\r\n")] = '\0';
    return rc;
}

int sync_stopped(const sync_ctx *c)
{
    return c->cfg->stop && *c->cfg->stop;
}

const char *meter_sync_strerror(int code)
{
    switch (code) {
    case METER_SYNC_ECONFIG:  return "bad sync configuration";
    case METER_SYNC_ENET:     return "ledger unreachable";
    case METER_SYNC_EAUTH:    return "credentials refused by the ledger";
    case METER_SYNC_EPROTO:   return "ledger answer breaks the protocol";
    case METER_SYNC_ESTOPPED: return "stopped by a signal";
    default:                  return meter_strerror(code);
    }
}

/* The node name on the wire: the store's, which every record carries; a
 * configured name must agree, or the ledger would reject every record as
 * another node's and the whole outbox would land in quarantine. */
static int resolve_node(sync_ctx *c)
{
    char *mine = NULL;
    int rc = meter_setting_get(c->st, "node", &mine);
    if (rc != METER_OK)
        return sync_fail(c, rc, "read the node name: %s", meter_errmsg(c->st));
    snprintf(c->node, sizeof c->node, "%s", mine);
    int differs = c->cfg->node[0] && strcmp(c->cfg->node, mine) != 0;
    meter_free(mine);
    if (differs)
        return sync_fail(c, METER_SYNC_ECONFIG, "node '%s' is not this database's node name "
                         "'%s' (change it with: meterctl config set node %s)", c->cfg->node,
                         c->node, c->cfg->node);
    if (!proto_valid_node(c->node))
        return sync_fail(c, METER_SYNC_ECONFIG, "node name '%s' cannot be used with the "
                         "ledger (letters, digits, '.', '_', '-', ':' only)", c->node);
    snprintf(c->rep->node, sizeof c->rep->node, "%s", c->node);
    return METER_OK;
}

int meter_sync_run(meter_store *st, const meter_sync_config *cfg, meter_sync_report *out)
{
    memset(out, 0, sizeof *out);
    sync_ctx c = { .st = st, .cfg = cfg, .rep = out };
    int rc = meter_sync_config_check(cfg, out->error);
    if (rc != METER_OK)
        return rc;
    if ((rc = resolve_node(&c)) != METER_OK) {
        meter_sync_note(st, out->error);
        return rc;
    }
    if ((rc = sync_http_open(cfg, c.node, &c.http, out->error)) != METER_OK)
        return rc;
    rc = sync_push(&c);
    if (rc == METER_OK && !cfg->no_pull)
        rc = sync_pull(&c);
    /* applying packs queues pack events: send them now, not next time */
    if (rc == METER_OK && out->packs_applied > 0)
        rc = sync_push(&c);
    /* leases last: their releases need the deductions acknowledged first */
    if (rc == METER_OK)
        rc = sync_leases(&c);
    sync_http_close(c.http);

    if (rc != METER_OK) {
        meter_sync_note(st, out->error);
        return rc;
    }
    meter_sync_note(st, NULL);
    if (out->conflicts > 0) {
        /* after the success note: last success stays, the conflict shows
         * as the last error in `meterctl sync status` */
        char msg[METER_ERRMAX];
        snprintf(msg, sizeof msg, "pack conflict: %.200s%s", out->conflict[0],
                 out->conflicts > 1 ? " (and more)" : "");
        meter_sync_note(st, msg);
    }
    return METER_OK;
}
