/*
 * metrics.c — counters and their Prometheus text exposition (metrics.h).
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static const char *const kind_names[MK_COUNT] = {
    "usage", "deduction", "settlement", "pack_event", "invalid",
};
static const char *const outcome_names[3] = { "accepted", "duplicate", "rejected" };

/* Upper bounds of the latency histogram, seconds. */
static const double buckets[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
#define NBUCKETS (sizeof buckets / sizeof *buckets)

static atomic_ullong records[MK_COUNT][3];
static atomic_ullong requests[600];       /* by status code, 100 … 599 */
static atomic_ullong hist[NBUCKETS + 1];  /* last: +Inf */
static atomic_ullong hist_sum_us;
static atomic_ullong hist_count;
static atomic_int inflight;

/* Lease calls by operation and result. */
static const char *const lease_ops[] = { "grant", "repeated", "renew", "release" };
static const char *const lease_results[] = { "ok", "refused", "not_found", "conflict",
                                             "limited", "error" };
#define N_LEASE_OPS (sizeof lease_ops / sizeof *lease_ops)
#define N_LEASE_RESULTS (sizeof lease_results / sizeof *lease_results)
static atomic_ullong leases[N_LEASE_OPS][N_LEASE_RESULTS];

void metrics_lease(const char *op, int rc)
{
    size_t o = 0;
    while (o < N_LEASE_OPS && strcmp(lease_ops[o], op ? op : "") != 0)
        o++;
    if (o == N_LEASE_OPS)
        return;
    size_t r = rc == METER_OK ? 0 : rc == METER_EREFUSED ? 1 : rc == METER_ENOTFOUND ? 2
             : rc == METER_EEXIST ? 3 : rc == LEDGER_ELIMIT ? 4 : 5;
    atomic_fetch_add(&leases[o][r], 1);
}

void metrics_record(const char *kind, ledger_outcome outcome)
{
    int k = MK_INVALID;
    for (int i = 0; i < MK_INVALID; i++)
        if (kind && !strcmp(kind, kind_names[i]))
            k = i;
    if ((unsigned)outcome < 3)
        atomic_fetch_add(&records[k][outcome], 1);
}

void metrics_request(int status, double seconds)
{
    if (status >= 100 && status < 600)
        atomic_fetch_add(&requests[status], 1);
    size_t b = 0;
    while (b < NBUCKETS && seconds > buckets[b])
        b++;
    atomic_fetch_add(&hist[b], 1);   /* cumulated when rendered */
    atomic_fetch_add(&hist_sum_us, (unsigned long long)(seconds * 1e6));
    atomic_fetch_add(&hist_count, 1);
}

void metrics_inflight(int delta)
{
    atomic_fetch_add(&inflight, delta);
}

/* A growing text buffer. */
struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = b->cap * 2 + (size_t)n;
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
}

/* A label value with \, " and newline escaped (node names never need it,
 * but the exposition must stay well-formed whatever is stored). */
static void label(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            put(b, "\\%c", *s);
        else if (*s == '\n')
            put(b, "\\n");
        else
            put(b, "%c", *s);
    }
}

static void account_gauge(struct buf *b, const char *name, const char *help,
                          const ledger_account *a, size_t n, size_t field)
{
    put(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    for (size_t i = 0; a && i < n; i++)
        for (int c = 0; c < 2; c++) {
            const int64_t *v = (const int64_t *)((const char *)&a[i].cls[c] + field);
            put(b, "%s{account=\"", name);
            label(b, a[i].name);
            put(b, "\",class=\"%s\"} %lld\n", meter_class_name((meter_class)c), (long long)*v);
        }
}

char *metrics_render(const ledger_node *nodes, size_t n_nodes,
                     const ledger_account *accounts, size_t n_accounts, int db_up)
{
    struct buf b = { malloc(4096), 0, 4096, 0 };
    if (!b.p)
        return NULL;
    b.p[0] = '\0';

    put(&b, "# HELP ffmeter_ledger_records_total Records received from nodes, by kind and result.\n"
            "# TYPE ffmeter_ledger_records_total counter\n");
    for (int k = 0; k < MK_COUNT; k++)
        for (int o = 0; o < 3; o++)
            if (k != MK_INVALID || o == LEDGER_REJECTED)   /* invalid: only ever rejected */
                put(&b, "ffmeter_ledger_records_total{kind=\"%s\",result=\"%s\"} %llu\n",
                    kind_names[k], outcome_names[o], atomic_load(&records[k][o]));

    put(&b, "# HELP ffmeter_ledger_requests_total HTTP requests answered, by status code.\n"
            "# TYPE ffmeter_ledger_requests_total counter\n");
    for (int s = 100; s < 600; s++) {
        unsigned long long v = atomic_load(&requests[s]);
        if (v)
            put(&b, "ffmeter_ledger_requests_total{code=\"%d\"} %llu\n", s, v);
    }

    put(&b, "# HELP ffmeter_ledger_request_seconds Time to answer a request.\n"
            "# TYPE ffmeter_ledger_request_seconds histogram\n");
    unsigned long long cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cum += atomic_load(&hist[i]);
        put(&b, "ffmeter_ledger_request_seconds_bucket{le=\"%g\"} %llu\n", buckets[i], cum);
    }
    cum += atomic_load(&hist[NBUCKETS]);
    put(&b, "ffmeter_ledger_request_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
    put(&b, "ffmeter_ledger_request_seconds_sum %.6f\n",
        (double)atomic_load(&hist_sum_us) / 1e6);
    put(&b, "ffmeter_ledger_request_seconds_count %llu\n", atomic_load(&hist_count));

    put(&b, "# HELP ffmeter_ledger_inflight_requests Requests being served.\n"
            "# TYPE ffmeter_ledger_inflight_requests gauge\n"
            "ffmeter_ledger_inflight_requests %d\n", atomic_load(&inflight));

    put(&b, "# HELP ffmeter_ledger_db_up Whether the database answered this scrape.\n"
            "# TYPE ffmeter_ledger_db_up gauge\n"
            "ffmeter_ledger_db_up %d\n", db_up ? 1 : 0);

    put(&b, "# HELP ffmeter_ledger_node_last_seen_seconds When each node last made an "
            "authenticated request (Unix time).\n"
            "# TYPE ffmeter_ledger_node_last_seen_seconds gauge\n");
    for (size_t i = 0; nodes && i < n_nodes; i++) {
        if (!nodes[i].last_seen)
            continue;   /* never seen: no sample rather than 1970 */
        put(&b, "ffmeter_ledger_node_last_seen_seconds{node=\"");
        label(&b, nodes[i].name);
        put(&b, "\"} %lld.%03lld\n", (long long)(nodes[i].last_seen / 1000),
            (long long)(nodes[i].last_seen % 1000));
    }
    put(&b, "# HELP ffmeter_ledger_lease_requests_total Lease calls from nodes, by operation "
            "and result.\n# TYPE ffmeter_ledger_lease_requests_total counter\n");
    for (size_t o = 0; o < N_LEASE_OPS; o++)
        for (size_t r = 0; r < N_LEASE_RESULTS; r++)
            put(&b, "ffmeter_ledger_lease_requests_total{op=\"%s\",result=\"%s\"} %llu\n",
                lease_ops[o], lease_results[r], atomic_load(&leases[o][r]));

    /* per account and class, over the packs usable now (store.h) */
    account_gauge(&b, "ffmeter_ledger_account_total_us", "Pack-µs of the account's usable packs.",
                  accounts, n_accounts, offsetof(ledger_account_class, total_us));
    account_gauge(&b, "ffmeter_ledger_account_used_us", "Pack-µs used of them.",
                  accounts, n_accounts, offsetof(ledger_account_class, used_us));
    account_gauge(&b, "ffmeter_ledger_account_reserved_us", "Pack-µs open leases hold of them.",
                  accounts, n_accounts, offsetof(ledger_account_class, reserved_us));
    account_gauge(&b, "ffmeter_ledger_account_remaining_us", "Pack-µs neither used nor reserved.",
                  accounts, n_accounts, offsetof(ledger_account_class, remaining_us));
    account_gauge(&b, "ffmeter_ledger_account_packs", "Usable packs.",
                  accounts, n_accounts, offsetof(ledger_account_class, packs));
    account_gauge(&b, "ffmeter_ledger_account_open_leases", "Leases open now.",
                  accounts, n_accounts, offsetof(ledger_account_class, open_leases));
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
