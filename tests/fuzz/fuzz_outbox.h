/*
 * fuzz_outbox.h — a check the libmeter harnesses share: everything
 * libmeter queued for the ledger can be sent and is a record the ledger's
 * decoder takes (sync/protocol.c), so no usage is billed on a node and
 * then stuck in its outbox.  Checked records are acknowledged, which keeps
 * the outbox short.
 */
#ifndef FUZZ_OUTBOX_H
#define FUZZ_OUTBOX_H

#include "fuzz_util.h"
#include "meter.h"
#include "protocol.h"

static inline void fuzz_check_outbox(meter_store *st)
{
    meter_sync_record *rows = NULL;
    size_t n = 0;
    fuzz_check(meter_outbox_fetch(st, 1000, &rows, &n) == METER_OK, "outbox: %s",
               meter_errmsg(st));
    const char **ids = calloc(n ? n : 1, sizeof *ids);
    if (!ids)
        abort();
    for (size_t i = 0; i < n; i++) {
        json_t *j = proto_record_to_json(&rows[i]);
        fuzz_check(j != NULL, "%s record %s (job '%s', output '%s') cannot be encoded for "
                   "the ledger", rows[i].kind, rows[i].id, rows[i].job, rows[i].output);
        meter_sync_record back;
        char err[PROTO_ERRMAX];
        fuzz_check(proto_record_from_json(j, &back, err) == PROTO_OK,
                   "the ledger would reject %s record %s: %s", rows[i].kind, rows[i].id, err);
        json_decref(j);
        ids[i] = rows[i].id;
    }
    fuzz_check(meter_outbox_ack(st, ids, n) == METER_OK, "ack: %s", meter_errmsg(st));
    free(ids);
    meter_free(rows);
}

#endif /* FUZZ_OUTBOX_H */
