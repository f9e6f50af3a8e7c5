/*
 * lease_plan.h — the lease client's decisions (lease_plan.c): pure
 * functions, no store, no network, so the tests can pin them down.
 */
#ifndef METER_SYNC_LEASE_PLAN_H
#define METER_SYNC_LEASE_PLAN_H

#include "sync_internal.h"

/* ---------------------------------------------------------- lease plan -- */

/* One (account, class) the node leases for. */
typedef struct sync_pair {
    char account[METER_NAME_MAX];
    meter_class cls;
    int configured;         /* named by lease_accounts */
    int active;             /* a running session or recent usage */
} sync_pair;

typedef struct sync_pairs {
    sync_pair *v;
    size_t n, cap;
} sync_pairs;

/* Adds (account, cls) unless there; sets the flags given (1) on it.
 * METER_ENOMEM or METER_OK. */
int sync_pairs_add(sync_pairs *ps, const char *account, meter_class cls, int configured,
                   int active);
void sync_pairs_free(sync_pairs *ps);

/* Parses the lease_accounts setting, "acme,beta:tsc": a comma list of
 * ACCOUNT (both classes) or ACCOUNT:CLASS (the part after the last ':'
 * when it is a class name; account names may hold ':' themselves), adding
 * each pair as configured.  "" adds nothing.  METER_EINVAL with err naming
 * the item, METER_ENOMEM, or METER_OK. */
int sync_lease_accounts_parse(const char *s, sync_pairs *ps, char err[METER_ERRMAX]);

/* The window the burn rate is measured over (meter_burn). */
#define SYNC_BURN_WINDOW_MS  (10 * 60 * 1000)

/* The minutes a pair should hold locally: what `burn_us` billed in the last
 * `window_ms` needs for the next two periods, rounded up, and at least
 * min_us; at most METER_PACK_TOTAL_MAX_US.  This is also the size asked. */
int64_t sync_lease_target_us(int64_t burn_us, int64_t window_ms, int64_t period_ms,
                             int64_t min_us);

/* 1 when a new lease should be asked for: local_us (Σ usable minutes of
 * the pair's open leases) below target_us, or — unless a lease of the pair was
 * granted or renewed in this run (a ledger ttl shorter than two periods
 * would otherwise ask every run) — the soonest expiry of those leases
 * (0: none) within two periods of now. */
int sync_lease_wanted(int64_t local_us, int64_t target_us, meter_time soonest,
                      meter_time now, int64_t period_ms, int fresh);

/* How long a pair waits, from its last refusal, before asking again after
 * `refusals` (≥ 1) refused asks in a row: half a period after one (so the
 * next round asks again: the slack is for the round's own time), then
 * 2^(k−1) periods less that slack, at most SYNC_REFUSAL_WAIT_MAX_MS. */
#define SYNC_REFUSAL_WAIT_MAX_MS (5 * 60 * 1000)
int64_t sync_lease_refusal_wait_ms(int refusals, int64_t period_ms);

/* A lease's usable minutes (`usable_us`) are the remaining of its slices
 * that can still take a deduction now (status valid: started, not ended,
 * before their local expiry, not voided) — its remaining_us also counts
 * slices a renewal voided or that expired. */

/* 1 when an open lease should be renewed: usable minutes left, and its
 * local expiry within two periods of now. */
int sync_lease_renew_due(const meter_lease *l, int64_t usable_us, meter_time now,
                         int64_t period_ms);

/* 1 when an open lease may and should be released: none of its deductions
 * left in the outbox, and spent (nothing usable left: used up, expired
 * locally, voided) or its pair not needed. */
int sync_lease_release_due(const meter_lease *l, int64_t usable_us, int needed);

#endif /* METER_SYNC_LEASE_PLAN_H */
