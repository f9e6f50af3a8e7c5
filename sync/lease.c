/*
 * lease.c — the node's leases, after push and pull (sync.h, PROTOCOL.md
 * "Client behaviour").  For each (account, class) the node leases for:
 *
 *   1. release open leases that are spent (no slice that can still take a
 *      deduction has minutes) or no longer needed, once none of their
 *      deductions waits in the outbox (the push before this step normally
 *      emptied it);
 *   2. renew open leases with usable minutes that expire within two
 *      periods;
 *   3. ask for a new lease when the pair holds less than its burn rate
 *      needs for two periods (at least lease_minutes), or all it holds
 *      expires within two periods and nothing was renewed.
 *
 * Every request goes through sync_call (signed, retried); a lease request
 * is retry-safe because its id is made before it is sent
 * (meter_lease_request) and the ledger answers a known id with the lease
 * it stored.  The ledger's refusals (422, 404, 409) are answers: they
 * resolve the lease locally and the run goes on.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease_plan.h"

/* Sessions opened longer ago than this and still "running" are not looked
 * at (a crashed job the reaper has not seen yet; bounds the query). */
#define SESSION_LOOKBACK_MS (24LL * 3600 * 1000)

typedef struct lease_check {
    const char *id;
    const char *account;    /* NULL: not checked */
    meter_class cls;
    int open_ok;            /* 0: the answer must be a resolved lease (release) */
    proto_lease l;
} lease_check;

static int check_lease(void *arg, const json_t *answer, char err[PROTO_ERRMAX])
{
    lease_check *k = arg;
    int rc = proto_lease_from_json(answer, &k->l, err);
    if (rc != PROTO_OK)
        return rc;
    if (strcmp(k->l.id, k->id) != 0)
        snprintf(err, PROTO_ERRMAX, "lease answer: lease '%.95s', not the '%.95s' asked about",
                 k->l.id, k->id);
    else if (k->account && (strcmp(k->l.account, k->account) != 0 || k->l.cls != k->cls))
        snprintf(err, PROTO_ERRMAX, "lease answer: lease %.95s is for %.80s/%s, not the "
                 "account and class asked for", k->id, k->l.account,
                 meter_class_name(k->l.cls));
    else if (!k->open_ok && strcmp(k->l.state, "open") == 0)
        snprintf(err, PROTO_ERRMAX, "lease answer: lease %.95s is still open after its "
                 "release", k->id);
    else
        return PROTO_OK;
    return PROTO_EINVAL;
}

static lease_check *new_check(const char *id, const char *account, meter_class cls,
                              int open_ok)
{
    lease_check *k = calloc(1, sizeof *k);
    if (k) {
        k->id = id;
        k->account = account;
        k->cls = cls;
        k->open_ok = open_ok;
    }
    return k;
}

/* The ledger's slices as libmeter takes them (malloc'd; NULL on ENOMEM). */
static meter_lease_slice *slices_of(const proto_lease *l)
{
    meter_lease_slice *s = calloc(l->nslices ? l->nslices : 1, sizeof *s);
    for (size_t i = 0; s && i < l->nslices; i++) {
        snprintf(s[i].pack_id, sizeof s[i].pack_id, "%s", l->slices[i].pack_id);
        s[i].granted_us = l->slices[i].granted_us;
        s[i].start = l->slices[i].start_ms;
        s[i].end = l->slices[i].end_ms;
        s[i].voided = l->slices[i].voided;
    }
    return s;
}

static int resolve(sync_ctx *c, const char *id, const char *state, const char *reason)
{
    int rc = meter_lease_resolved(c->st, id, state, reason && *reason ? reason : NULL);
    if (rc != METER_OK)
        return sync_fail(c, rc, "lease %s: cannot record it %s: %s", id, state,
                         meter_errmsg(c->st));
    sync_log(c, "lease %s: %s%s%s", id, state, reason && *reason ? ": " : "",
             reason ? reason : "");
    return METER_OK;
}

/* A lease answer for an open lease, applied as a grant or a renewal. */
static int apply_open(sync_ctx *c, const proto_lease *l, int renewal, meter_time sent_at)
{
    meter_lease_slice *s = slices_of(l);
    if (!s)
        return sync_fail(c, METER_ENOMEM, "out of memory");
    int rc = renewal
           ? meter_lease_renewed(c->st, l->id, sent_at, l->ttl_ms, l->expires_ms, s, l->nslices)
           : meter_lease_granted(c->st, l->id, l->ttl_ms, l->expires_ms, s, l->nslices);
    free(s);
    if (rc != METER_OK)
        return sync_fail(c, rc, "lease %s: cannot record its %s: %s", l->id,
                         renewal ? "renewal" : "grant", meter_errmsg(c->st));
    sync_log(c, "lease %s: %s %" PRId64 " us of %s/%s in %zu slice%s, ttl %" PRId64 " s",
             l->id, renewal ? "renewed" : "granted", l->granted_us, l->account,
             meter_class_name(l->cls), l->nslices, l->nslices == 1 ? "" : "s",
             l->ttl_ms / 1000);
    return METER_OK;
}

/* The state a 409 names ("lease … is expired"): released or expired. */
static const char *state_named(const char *msg)
{
    return strstr(msg, "released") ? "released" : "expired";
}

enum { ASKED_NO, ASKED_GRANTED, ASKED_STALE, ASKED_FULL };

/* One lease request for pair p: a new id, or the one already requested
 * and not answered.  *out says what came of it. */
static int request(sync_ctx *c, const sync_pair *p, int64_t want_us, int *out)
{
    static const long expect[] = { 404, 422, 429, 0 };
    meter_lease ml;
    *out = ASKED_NO;
    int rc = meter_lease_request(c->st, p->account, p->cls, want_us, &ml);
    if (rc != METER_OK)
        return sync_fail(c, rc, "lease request for %s/%s: %s", p->account,
                         meter_class_name(p->cls), meter_errmsg(c->st));
    proto_lease_request q;
    memset(&q, 0, sizeof q);
    snprintf(q.id, sizeof q.id, "%s", ml.id);
    snprintf(q.account, sizeof q.account, "%s", ml.account);
    q.cls = ml.cls;
    q.want_us = ml.requested_us;
    json_t *j = proto_lease_request_to_json(&q);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    lease_check *k = new_check(ml.id, ml.account, ml.cls, 1);
    if (!body || !k) {
        free(body);
        free(k);
        return sync_fail(c, METER_ENOMEM, "out of memory");
    }
    sync_log(c, "lease %s: asking for %" PRId64 " us of %s/%s", ml.id, q.want_us, q.account,
             meter_class_name(q.cls));
    c->rep->leases_requested++;
    json_t *answer = NULL;
    long status = 0;
    char msg[PROTO_ERRMAX];
    rc = sync_call_expect(c, "POST", PROTO_PATH_LEASES, body, strlen(body), check_lease, k,
                          expect, &answer, &status, msg);
    free(body);
    json_decref(answer);
    if (rc == METER_OK) {
        if (status == 422 || status == 404) {
            char why[METER_ERRMAX];
            snprintf(why, sizeof why, "%.200s (ledger: %ld)", msg[0] ? msg : "refused", status);
            rc = resolve(c, ml.id, "refused", why);
            c->rep->leases_refused++;
        } else if (status == 429) {
            sync_log(c, "lease %s: the ledger holds as many leases of this node as it "
                     "allows (429); asked again next time", ml.id);
            *out = ASKED_FULL;
        } else if (strcmp(k->l.state, "open") == 0) {
            if ((rc = apply_open(c, &k->l, 0, 0)) == METER_OK) {
                c->rep->leases_granted++;
                *out = ASKED_GRANTED;
            }
        } else {   /* a resent id whose lease resolved meanwhile */
            rc = resolve(c, ml.id, k->l.state, "resolved at the ledger before the node "
                         "heard of the grant");
            c->rep->leases_resolved++;
            *out = ASKED_STALE;
        }
    }
    free(k);
    return rc;
}

/* POSTs {} to lease l's renew (renew nonzero) or release path, the answer
 * checked as lease l (still open only after a renewal); expect, *status
 * and msg as for sync_call_expect, whose result it returns.  *k is the
 * checked answer, the caller's to free (NULL when out of memory). */
static int lease_post(sync_ctx *c, const meter_lease *l, int renew, const long expect[],
                      lease_check **k, long *status, char msg[PROTO_ERRMAX])
{
    char path[64 + METER_ID_MAX];
    snprintf(path, sizeof path, renew ? PROTO_PATH_LEASE_RENEW_FMT : PROTO_PATH_LEASE_RELEASE_FMT,
             l->id);   /* ids need no escaping */
    *k = new_check(l->id, l->account, l->cls, renew);
    if (!*k)
        return sync_fail(c, METER_ENOMEM, "out of memory");
    json_t *answer = NULL;
    int rc = sync_call_expect(c, "POST", path, "{}", 2, check_lease, *k, expect, &answer, status,
                              msg);
    json_decref(answer);
    return rc;
}

static int renew(sync_ctx *c, const meter_lease *l, int *renewed)
{
    static const long expect[] = { 404, 409, 0 };
    *renewed = 0;
    meter_time sent_at = meter_now();   /* the ledger's ttl counts from about now */
    lease_check *k;
    long status = 0;
    char msg[PROTO_ERRMAX];
    int rc = lease_post(c, l, 1, expect, &k, &status, msg);
    if (rc == METER_OK) {
        if (status == 409 || status == 404) {
            char why[METER_ERRMAX];
            snprintf(why, sizeof why, "renewal refused: %.200s (ledger: %ld)",
                     msg[0] ? msg : status == 404 ? "unknown lease" : "resolved", status);
            rc = resolve(c, l->id, status == 409 ? state_named(msg) : "expired", why);
            c->rep->leases_resolved++;
        } else if (strcmp(k->l.state, "open") == 0) {
            if ((rc = apply_open(c, &k->l, 1, sent_at)) == METER_OK) {
                c->rep->leases_renewed++;
                *renewed = 1;
            }
        } else {
            rc = resolve(c, l->id, k->l.state, "resolved at the ledger");
            c->rep->leases_resolved++;
        }
    }
    free(k);
    return rc;
}

static int release(sync_ctx *c, const meter_lease *l, const char *why)
{
    static const long expect[] = { 404, 0 };
    lease_check *k;
    long status = 0;
    char msg[PROTO_ERRMAX];
    int rc = lease_post(c, l, 0, expect, &k, &status, msg);
    if (rc == METER_OK) {
        if (status == 404) {
            char why[METER_ERRMAX];
            snprintf(why, sizeof why, "unknown at the ledger: %.200s", msg[0] ? msg : "404");
            rc = resolve(c, l->id, "expired", why);
            c->rep->leases_resolved++;
        } else {
            rc = resolve(c, l->id, k->l.state, why);
            if (strcmp(k->l.state, "released") == 0)
                c->rep->leases_released++;
            else
                c->rep->leases_resolved++;
        }
    }
    free(k);
    return rc;
}

/* The pair's open leases (malloc'd, meter_free). */
static int pair_leases(sync_ctx *c, const sync_pair *p, meter_lease **ls, size_t *n)
{
    int rc = meter_lease_list(c->st, p->account, 1, ls, n);
    if (rc != METER_OK)
        return sync_fail(c, rc, "list the leases of %s: %s", p->account, meter_errmsg(c->st));
    size_t k = 0;
    for (size_t i = 0; i < *n; i++)
        if ((*ls)[i].cls == p->cls)
            (*ls)[k++] = (*ls)[i];
    *n = k;
    return METER_OK;
}

/* The pair's slices that can take a deduction now (status valid). */
static int usable_slices(sync_ctx *c, const sync_pair *p, meter_pack **ps, size_t *n)
{
    meter_pack_filter f = { .type = (int)p->cls, .status = "valid", .account = p->account };
    int rc = meter_pack_list(c->st, &f, ps, n);
    return rc == METER_OK ? METER_OK
                          : sync_fail(c, rc, "list the lease slices of %s/%s: %s", p->account,
                                      meter_class_name(p->cls), meter_errmsg(c->st));
}

static int64_t usable_of(const meter_pack *ps, size_t n, const char *lease_id)
{
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ps[i].lease_id, lease_id) == 0)
            sum += ps[i].remaining_us;
    return sum;
}

/* Whether the pair's last asks were refused so recently that asking again
 * now would only add another refused row: after k refusals in a row the
 * pair waits sync_lease_refusal_wait_ms(k) from the last one. */
static int refused_lately(sync_ctx *c, const sync_pair *p, meter_time now, int64_t period,
                          int *wait)
{
    meter_lease *ls;
    size_t n;
    *wait = 0;
    int rc = meter_lease_list(c->st, p->account, 0, &ls, &n);
    if (rc != METER_OK)
        return sync_fail(c, rc, "list the leases of %s: %s", p->account, meter_errmsg(c->st));
    /* oldest first: count the refusals that end the pair's list */
    int refusals = 0;
    meter_time last = 0;
    for (size_t i = n; i-- > 0;) {
        if (ls[i].cls != p->cls)
            continue;
        if (strcmp(ls[i].state, "refused") != 0)
            break;
        if (!refusals)
            last = ls[i].resolved_at;
        if (++refusals >= 16)
            break;
    }
    meter_free(ls);
    *wait = refusals > 0 && now < last + sync_lease_refusal_wait_ms(refusals, period);
    return METER_OK;
}

static int manage_pair(sync_ctx *c, const sync_pair *p, int64_t min_us, int *full)
{
    const int64_t period = c->cfg->lease_period_ms;
    const int needed = p->configured || p->active;
    meter_lease *ls = NULL;
    meter_pack *ps = NULL;
    size_t n = 0, np = 0;
    int rc = pair_leases(c, p, &ls, &n);
    if (rc == METER_OK && n > 0)
        rc = usable_slices(c, p, &ps, &np);
    int fresh = 0;
    for (size_t i = 0; rc == METER_OK && i < n; i++) {
        int64_t usable = usable_of(ps, np, ls[i].id);
        if (sync_stopped(c))
            rc = sync_fail(c, METER_SYNC_ESTOPPED, "stopped by a signal");
        else if (sync_lease_release_due(&ls[i], usable, needed))
            rc = release(c, &ls[i], usable > 0 ? "no longer needed"
                                   : ls[i].remaining_us > 0 ? "nothing usable left (expired "
                                                              "or voided here)" : "spent");
        else if (needed && sync_lease_renew_due(&ls[i], usable, meter_now(), period)) {
            int renewed;
            rc = renew(c, &ls[i], &renewed);
            fresh |= renewed;
        }
    }
    meter_free(ls);
    meter_free(ps);
    if (rc != METER_OK || !needed)
        return rc;

    /* the figures after what changed above: Σ usable slices, soonest expiry */
    if ((rc = pair_leases(c, p, &ls, &n)) != METER_OK)
        return rc;
    ps = NULL;
    np = 0;
    if (n > 0 && (rc = usable_slices(c, p, &ps, &np)) != METER_OK) {
        meter_free(ls);
        return rc;
    }
    meter_time now = meter_now(), soonest = 0;
    int64_t local = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t usable = usable_of(ps, np, ls[i].id);
        if (usable <= 0)
            continue;
        local += usable;
        if (!soonest || ls[i].expires_at < soonest)
            soonest = ls[i].expires_at;
    }
    meter_free(ls);
    meter_free(ps);
    int64_t burn = 0;
    if ((rc = meter_burn(c->st, p->account, p->cls, SYNC_BURN_WINDOW_MS, &burn)) != METER_OK)
        return sync_fail(c, rc, "burn rate of %s/%s: %s", p->account,
                         meter_class_name(p->cls), meter_errmsg(c->st));
    int64_t target = sync_lease_target_us(burn, SYNC_BURN_WINDOW_MS, period, min_us);
    if (*full || !sync_lease_wanted(local, target, soonest, now, period, fresh))
        return METER_OK;
    int wait = 0;
    if ((rc = refused_lately(c, p, now, period, &wait)) != METER_OK || wait)
        return rc;
    /* a resent id may come back resolved: then one new request */
    for (int tries = 0; tries < 2; tries++) {
        if (sync_stopped(c))
            return sync_fail(c, METER_SYNC_ESTOPPED, "stopped by a signal");
        int out;
        if ((rc = request(c, p, target, &out)) != METER_OK)
            return rc;
        if (out == ASKED_FULL)
            *full = 1;
        if (out != ASKED_STALE)
            break;
    }
    return METER_OK;
}

/* Pairs: lease_accounts, then those with a running session or usage in
 * the burn window, then those holding open leases (to release them). */
static int collect(sync_ctx *c, const char *accounts, sync_pairs *ps)
{
    char err[METER_ERRMAX];
    int rc = sync_lease_accounts_parse(accounts, ps, err);
    if (rc != METER_OK)
        return sync_fail(c, rc, "%s", err);
    meter_time now = meter_now();
    meter_query q = { .type = -1, .from = now - SESSION_LOOKBACK_MS };
    meter_session_row *ss;
    size_t n;
    if ((rc = meter_sessions(c->st, &q, &ss, &n)) != METER_OK)
        return sync_fail(c, rc, "list the running sessions: %s", meter_errmsg(c->st));
    for (size_t i = 0; rc == METER_OK && i < n; i++)
        if (strcmp(ss[i].status, "running") == 0 && ss[i].account[0])
            rc = sync_pairs_add(ps, ss[i].account, ss[i].cls, 0, 1);
    meter_free(ss);
    meter_job_row *js = NULL;
    meter_lease *ls = NULL;
    q.from = now - SYNC_BURN_WINDOW_MS;
    if (rc == METER_OK && (rc = meter_jobs(c->st, &q, &js, &n)) != METER_OK)
        return sync_fail(c, rc, "list the recent usage: %s", meter_errmsg(c->st));
    for (size_t i = 0; rc == METER_OK && i < n; i++)
        if (js[i].recorded_at >= now - SYNC_BURN_WINDOW_MS && js[i].billed_us > 0)
            rc = sync_pairs_add(ps, js[i].account, js[i].cls, 0, 1);
    meter_free(js);
    if (rc == METER_OK && (rc = meter_lease_list(c->st, NULL, 1, &ls, &n)) != METER_OK)
        return sync_fail(c, rc, "list the leases: %s", meter_errmsg(c->st));
    for (size_t i = 0; rc == METER_OK && i < n; i++)
        rc = sync_pairs_add(ps, ls[i].account, ls[i].cls, 0, 0);
    meter_free(ls);
    return rc == METER_OK ? METER_OK : sync_fail(c, rc, "out of memory");
}

static int setting(sync_ctx *c, const char *key, char **out)
{
    int rc = meter_setting_get(c->st, key, out);
    return rc == METER_OK ? METER_OK
                          : sync_fail(c, rc, "read the %s setting: %s", key, meter_errmsg(c->st));
}

int sync_leases(sync_ctx *c)
{
    if (c->cfg->leases == 0)
        return METER_OK;
    char *accounts = NULL, *minutes = NULL;
    int rc = setting(c, "lease_accounts", &accounts);
    if (rc == METER_OK && c->cfg->leases < 0 && !accounts[0]) {   /* standalone */
        meter_free(accounts);
        return METER_OK;
    }
    if (rc == METER_OK)
        rc = setting(c, "lease_minutes", &minutes);
    int64_t min_us = 0;
    if (rc == METER_OK) {
        char *end;
        long long m = strtoll(minutes, &end, 10);
        if (end == minutes || *end || m < 1 || m > METER_PACK_TOTAL_MAX_US / METER_US_PER_MIN)
            rc = sync_fail(c, METER_SYNC_ECONFIG, "lease_minutes: '%s' is not a number of "
                           "minutes", minutes);
        min_us = (int64_t)m * METER_US_PER_MIN;
    }
    sync_pairs ps = { 0 };
    if (rc == METER_OK)
        rc = collect(c, accounts, &ps);
    int full = 0;
    for (size_t i = 0; rc == METER_OK && i < ps.n; i++)
        rc = manage_pair(c, &ps.v[i], min_us, &full);
    if (rc == METER_OK)
        c->rep->leased = 1;
    sync_pairs_free(&ps);
    meter_free(accounts);
    meter_free(minutes);
    return rc;
}
