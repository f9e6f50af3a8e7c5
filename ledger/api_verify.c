/*
 * api_verify.c — GET /v1/verify (admin): the ledger's invariants checked
 * now (ledger_verify), {"ok": bool, "violations": ["one line", …]}.
 */
#include <stdlib.h>

#include "api_json.h"

static json_t *violation_json(const void *row, const request *rq)
{
    (void)rq;
    return json_string(*(char *const *)row);
}

void api_verify(request *rq)
{
    ledger_store *st = rq_store(rq);
    if (!st)
        return;
    char **lines;
    size_t n;
    int rc = ledger_verify(st, rq->now, &lines, &n);
    if (rc != METER_OK) {
        reply_store_error(rq, rc);
        return;
    }
    json_t *arr = rows_json(rq, lines, n, sizeof *lines, violation_json);
    ledger_verify_free(lines, n);
    if (!arr) {
        reply_error(rq, PROTO_ERR_INTERNAL, "out of memory");
        return;
    }
    reply_json(rq, 200, json_pack("{s:b, s:o}", "ok", n == 0, "violations", arr));
}
