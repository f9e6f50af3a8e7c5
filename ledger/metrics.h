/*
 * metrics.h — the ledger's counters for /metrics (Prometheus text format).
 *
 * Counters are per process (each instance behind a load balancer exports
 * its own, as Prometheus expects); per-node last-seen comes from the
 * database, so it is the same on every instance.  All functions are
 * thread-safe (C11 atomics).
 */
#ifndef LEDGER_METRICS_H
#define LEDGER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

enum metric_kind { MK_USAGE, MK_DEDUCTION, MK_SETTLEMENT, MK_PACK_EVENT, MK_INVALID, MK_COUNT };

/* kind: "usage", … (anything else counts as "invalid"). */
void metrics_record(const char *kind, ledger_outcome outcome);
/* One finished request: its status and how long it took. */
void metrics_request(int status, double seconds);
/* Requests being served now. */
void metrics_inflight(int delta);

/* One lease call: op "grant" | "repeated" | "renew" | "release" and the
 * store's result (METER_OK, METER_EREFUSED, …). */
void metrics_lease(const char *op, int rc);

/* The exposition text (malloc'd; NULL on ENOMEM).  nodes and accounts may
 * be NULL when the database could not be read (then ffmeter_ledger_db_up
 * is 0).  Accounts give per-account, per-class gauges of their usable
 * packs (total, used, reserved, remaining, packs) and open leases. */
char *metrics_render(const ledger_node *nodes, size_t n_nodes,
                     const ledger_account *accounts, size_t n_accounts, int db_up);

#endif /* LEDGER_METRICS_H */
