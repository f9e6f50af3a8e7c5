/*
 * lease_plan.c — the decisions of the lease client, without a store or a
 * network: which (account, class) pairs the node leases for, how many
 * minutes a pair should hold, when to ask, renew and release.
 *
 * The sizing: a pair's recent burn (Σ billed in the last 10 minutes)
 * scaled to two periods (the --watch interval): the minutes it needs until
 * the sync after next, so one missed sync does not leave it short.  Never
 * less than the store's `lease_minutes`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease_plan.h"

int sync_pairs_add(sync_pairs *ps, const char *account, meter_class cls, int configured,
                   int active)
{
    for (size_t i = 0; i < ps->n; i++) {
        sync_pair *p = &ps->v[i];
        if (p->cls == cls && strcmp(p->account, account) == 0) {
            p->configured |= configured;
            p->active |= active;
            return METER_OK;
        }
    }
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? 2 * ps->cap : 8;
        sync_pair *v = realloc(ps->v, cap * sizeof *v);
        if (!v)
            return METER_ENOMEM;
        ps->v = v;
        ps->cap = cap;
    }
    sync_pair *p = &ps->v[ps->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->account, sizeof p->account, "%s", account);
    p->cls = cls;
    p->configured = configured;
    p->active = active;
    return METER_OK;
}

void sync_pairs_free(sync_pairs *ps)
{
    free(ps->v);
    memset(ps, 0, sizeof *ps);
}

int sync_lease_accounts_parse(const char *s, sync_pairs *ps, char err[METER_ERRMAX])
{
    for (const char *p = s ? s : ""; *p;) {
        size_t n = strcspn(p, ",");
        char item[METER_NAME_MAX + 16];
        if (n == 0 || n >= sizeof item) {
            snprintf(err, METER_ERRMAX, "lease_accounts: %s", n ? "an item is too long"
                                                                  : "an empty item");
            return METER_EINVAL;
        }
        memcpy(item, p, n);
        item[n] = '\0';
        char *colon = strrchr(item, ':');
        meter_class cls;
        int both = 1;
        if (colon && meter_class_parse(colon + 1, &cls) == METER_OK) {
            *colon = '\0';
            both = 0;
        }
        if (!proto_valid_node(item)) {   /* account names have the node-name syntax */
            snprintf(err, METER_ERRMAX, "lease_accounts: '%.80s' is not an account name", item);
            return METER_EINVAL;
        }
        int rc = both ? sync_pairs_add(ps, item, METER_CLASS_GENERAL, 1, 0)
                      : sync_pairs_add(ps, item, cls, 1, 0);
        if (rc == METER_OK && both)
            rc = sync_pairs_add(ps, item, METER_CLASS_TSC, 1, 0);
        if (rc != METER_OK) {
            snprintf(err, METER_ERRMAX, "out of memory");
            return rc;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return METER_OK;
}

int64_t sync_lease_target_us(int64_t burn_us, int64_t window_ms, int64_t period_ms,
                             int64_t min_us)
{
    if (burn_us < 0)
        burn_us = 0;
    if (window_ms < 1)
        window_ms = 1;
    if (period_ms < 0)
        period_ms = 0;
    /* burn · 2 periods / window, rounded up: 128 bits, as burn may be near
     * 10^18 and the period a day */
    unsigned __int128 need = ((unsigned __int128)burn_us * (unsigned __int128)(2 * period_ms) +
                              (unsigned __int128)window_ms - 1) / (unsigned __int128)window_ms;
    int64_t want = need > (unsigned __int128)METER_PACK_TOTAL_MAX_US
                 ? METER_PACK_TOTAL_MAX_US : (int64_t)need;
    if (want < min_us)
        want = min_us;
    if (want > METER_PACK_TOTAL_MAX_US)
        want = METER_PACK_TOTAL_MAX_US;
    return want < 1 ? 1 : want;
}

int sync_lease_wanted(int64_t local_us, int64_t target_us, meter_time soonest,
                      meter_time now, int64_t period_ms, int fresh)
{
    if (local_us < target_us)
        return 1;
    return !fresh && soonest != 0 && soonest - now <= 2 * period_ms;
}

int sync_lease_renew_due(const meter_lease *l, int64_t usable_us, meter_time now,
                         int64_t period_ms)
{
    return strcmp(l->state, "open") == 0 && usable_us > 0 && l->expires_at != 0 &&
           l->expires_at - now <= 2 * period_ms;
}

int sync_lease_release_due(const meter_lease *l, int64_t usable_us, int needed)
{
    return strcmp(l->state, "open") == 0 && l->unsent == 0 && (usable_us <= 0 || !needed);
}

int64_t sync_lease_refusal_wait_ms(int refusals, int64_t period_ms)
{
    if (refusals <= 1 || period_ms <= 0)
        return period_ms > 0 ? period_ms / 2 : 0;
    int64_t wait = period_ms;
    for (int k = 1; k < refusals - 1 && wait < SYNC_REFUSAL_WAIT_MAX_MS; k++)
        wait *= 2;
    wait = wait * 2 - period_ms / 2;
    return wait < SYNC_REFUSAL_WAIT_MAX_MS ? wait : SYNC_REFUSAL_WAIT_MAX_MS;
}
