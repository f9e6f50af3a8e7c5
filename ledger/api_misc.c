/*
 * api_misc.c — the unauthenticated endpoints: /healthz, /metrics and the
 * web console's static files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_json.h"
#include "console.h"
#include "metrics.h"

void api_healthz(request *rq)
{
    ledger_store *st = rq_store(rq);   /* answers 503 when it cannot connect */
    if (!st)
        return;
    int rc = ledger_store_ping(st);
    if (rc != METER_OK) {
        reply_error(rq, PROTO_ERR_UNAVAILABLE, "database unavailable: %s",
                    ledger_store_errmsg(st));
        return;
    }
    reply_json(rq, 200, json_pack("{s:s, s:s, s:s}", "status", "ok", "backend",
                                  ledger_store_backend(st), "version", METER_VERSION_STRING));
}

void api_metrics(request *rq)
{
    char err[METER_ERRMAX];
    ledger_node *nodes = NULL;
    ledger_account *accounts = NULL;
    size_t n = 0, na = 0;
    int db_up = 0;
    ledger_store *st = pool_get(server_pool(rq->srv), err);
    if (st) {
        rq->st = st;
        db_up = ledger_node_list(st, &nodes, &n) == METER_OK &&
                ledger_account_list(st, rq->now, &accounts, &na) == METER_OK;
    }
    char *text = metrics_render(nodes, n, accounts, na, db_up);
    free(nodes);
    free(accounts);
    if (!text) {
        reply_error(rq, PROTO_ERR_INTERNAL, "out of memory");
        return;
    }
    reply_bytes(rq, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text), 1);
    free(text);
}

/* The console's pages are static; the API they call checks the token. */
static void reply_console(request *rq, const char *type, const void *data, size_t len, int copy)
{
    reply_bytes(rq, 200, type, data, len, copy);
}

static const char *type_of(const char *name)
{
    for (const struct console_file *f = console_files; f->name; f++)
        if (!strcmp(f->name, name))
            return f->content_type;
    return "application/octet-stream";
}

void api_console(request *rq)
{
    const char *name = strcmp(rq->path, "/") == 0 ? "index.html" : rq->path + 1;
    const char *dir = server_config(rq->srv)->console_dir;
    if (dir) {
        /* only the routed names reach here: no path traversal possible */
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "rb");
        if (!f) {
            reply_error(rq, PROTO_ERR_NOT_FOUND, "console file %s: %s", name, strerror(errno));
            return;
        }
        char *buf = malloc(1 << 20);
        size_t len = buf ? fread(buf, 1, 1 << 20, f) : 0;
        fclose(f);
        if (!buf) {
            reply_error(rq, PROTO_ERR_INTERNAL, "out of memory");
            return;
        }
        reply_console(rq, type_of(name), buf, len, 1);
        free(buf);
        return;
    }
    for (const struct console_file *f = console_files; f->name; f++)
        if (!strcmp(f->name, name)) {
            reply_console(rq, f->content_type, f->data, f->size, 0);
            return;
        }
    reply_error(rq, PROTO_ERR_NOT_FOUND, "no console file %s", name);
}
