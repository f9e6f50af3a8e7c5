/*
 * sync.h — the node's sync client: pushes the outbox to the ledger and
 * pulls the packs the ledger assigns to this node (PROTOCOL.md).
 *
 *     meter_sync_config cfg;
 *     meter_sync_config_init(&cfg);                 defaults
 *     meter_sync_config_load(&cfg, path, err);      optional key=value file
 *     meter_sync_config_set(&cfg, "ledger", url, err);   … one key at a time
 *     meter_sync_run(st, &cfg, &report);
 *
 * Exactly-once effect: a record leaves the outbox only when the ledger
 * listed it as accepted or duplicate; a crash or a lost answer at any point
 * only causes a resend, which the ledger answers with "duplicates".
 *
 * Errors: METER_OK, a METER_E* code from libmeter (database), or one of
 * the METER_SYNC_E* codes below; report->error holds one line naming the
 * problem in every case.  Every attempt is noted in the store
 * (meter_sync_note) for `meterctl sync status`.
 */
#ifndef METER_SYNC_H
#define METER_SYNC_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "meter.h"

#ifdef __cplusplus
extern "C" {
#endif

enum meter_sync_error {
    METER_SYNC_ECONFIG  = -100,  /* bad or missing configuration           */
    METER_SYNC_ENET     = -101,  /* ledger unreachable / 5xx / 429 / timeout
                                    after every retry; TLS verification
                                    failed (not retried)                    */
    METER_SYNC_EAUTH    = -102,  /* 401 or 403: credentials refused         */
    METER_SYNC_EPROTO   = -103,  /* the ledger's answer breaks the protocol,
                                    after every retry; or a 4xx the client
                                    cannot fix by retrying (404, 413, 415)  */
    METER_SYNC_ESTOPPED = -104,  /* stopped by a signal (cfg.stop)          */
};

/* Defaults (PROTOCOL.md, client behaviour). */
#define METER_SYNC_DEFAULT_BATCH      500
#define METER_SYNC_DEFAULT_MAX_BYTES  (1024 * 1024)
#define METER_SYNC_DEFAULT_RETRIES    5
#define METER_SYNC_DEFAULT_TIMEOUT_MS 60000
#define METER_SYNC_DEFAULT_CONNECT_MS 10000
#define METER_SYNC_BACKOFF_BASE_MS    500
#define METER_SYNC_BACKOFF_CAP_MS     60000
#define METER_SYNC_RETRY_AFTER_MAX_MS 600000   /* a longer Retry-After is cut */
#define METER_SYNC_CONF_DEFAULT       "/etc/ffmeter/sync.conf"
#define METER_SYNC_SECRET_MAX         256      /* bytes, without the NUL */
#define METER_SYNC_URL_MAX            1024
#define METER_SYNC_LEASE_PERIOD_MS    60000

typedef struct meter_sync_config {
    char ledger_url[METER_SYNC_URL_MAX];  /* "https://ledger:8443" (base) */
    char node[METER_NAME_MAX];            /* "" = the store's `node` setting */
    char secret[METER_SYNC_SECRET_MAX + 1];
    int bearer;                 /* 1: Authorization: Bearer <secret>       */
    char cacert[4096];          /* CA bundle file; "" = the system's       */
    int insecure;               /* 1: no TLS verification (warned about)   */
    long connect_timeout_ms;
    long timeout_ms;            /* one whole request                       */
    size_t batch;               /* records per request (1 … 1000)          */
    size_t max_bytes;           /* JSON bytes per request                  */
    int retries;                /* retries per request after the first try */
    long backoff_base_ms, backoff_cap_ms;
    int no_pull;                /* 1: push only                            */
    /* Leases (farm mode): -1 (default) = on when the store's
     * lease_accounts setting is not empty; 0 = off; 1 = on, also for the
     * pairs a running session or recent usage names alone. */
    int leases;
    /* The renew period: how often the caller syncs (--watch; default
     * 60 s).  A pair holds what its burn rate needs for two periods, and a
     * lease is renewed when it would expire within two. */
    long lease_period_ms;
    /* First signal: finish the request in flight, start nothing new and
     * return METER_SYNC_ESTOPPED; a second one also aborts the request.
     * NULL: not interruptible. */
    volatile sig_atomic_t *stop;
    /* Progress and warnings, one line each (no newline); NULL: silent. */
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
} meter_sync_config;

/* Defaults; no ledger, no secret. */
void meter_sync_config_init(meter_sync_config *cfg);

/* One setting, as in the config file:
 *   ledger URL | node NAME | secret_file PATH | auth hmac|bearer |
 *   cacert PATH | insecure yes|no | batch N | max_bytes N | retries N |
 *   timeout SECONDS | connect_timeout SECONDS | pull yes|no |
 *   backoff_base_ms MS | backoff_cap_ms MS | leases yes|no
 * (secret_file reads the secret now.)  Returns METER_OK or
 * METER_SYNC_ECONFIG with err naming the key and the problem. */
int meter_sync_config_set(meter_sync_config *cfg, const char *key, const char *value,
                          char err[METER_ERRMAX]);

/* Reads a key=value file ('#' comments, blank lines, spaces around '='
 * ignored) through meter_sync_config_set.  A missing file is an error;
 * callers decide whether the default path is optional. */
int meter_sync_config_load(meter_sync_config *cfg, const char *path, char err[METER_ERRMAX]);

/* Reads the secret from a file: the first line, surrounding blanks
 * stripped.  Warns (cfg->log) when the file is readable by group/others. */
int meter_sync_read_secret(meter_sync_config *cfg, const char *path, char err[METER_ERRMAX]);

/* Checks that the configuration can run: ledger URL http(s), a secret,
 * sizes in range.  Called by meter_sync_run too. */
int meter_sync_config_check(const meter_sync_config *cfg, char err[METER_ERRMAX]);

/* Wipes the secret from memory. */
void meter_sync_config_clear(meter_sync_config *cfg);

#define METER_SYNC_CONFLICTS_MAX 8

typedef struct meter_sync_report {
    char node[METER_NAME_MAX];
    int64_t sent;               /* records sent (a resent one counts again) */
    int64_t accepted, duplicates, rejected;
    int64_t batches;            /* answered batch requests                  */
    int64_t retries;            /* failed attempts that were retried        */
    int64_t packs;              /* packs the ledger listed                  */
    int64_t packs_applied;      /* of which new or changed here             */
    int64_t conflicts;          /* packs meter_pack_apply refused           */
    char conflict[METER_SYNC_CONFLICTS_MAX][METER_ERRMAX];
    int pulled;                 /* 1 when the pull ran to its end           */
    /* leases (farm mode) */
    int64_t leases_requested;   /* lease requests sent (a resent id: once) */
    int64_t leases_granted;     /* of which granted (201, or 200 for an id
                                   the ledger had already granted)          */
    int64_t leases_refused;     /* 422 (no minutes to reserve) or 404
                                   (unknown account): recorded as refused   */
    int64_t leases_renewed;
    int64_t leases_released;
    int64_t leases_resolved;    /* found resolved at the ledger (409 on a
                                   renewal, a request answered expired)     */
    int leased;                 /* 1 when the lease step ran to its end     */
    char error[METER_ERRMAX];   /* "" on success                            */
} meter_sync_report;

/* One sync: push the whole outbox in batches, then (unless no_pull) pull
 * and apply this node's packs, then (leases on) manage the node's leases.
 * Pack conflicts are reported, not fatal.
 *
 * Leases, for every (account, class) of the store's lease_accounts and
 * every pair with a running session or usage in the last 10 minutes:
 *   - request (meter_lease_request → POST /v1/leases → meter_lease_granted)
 *     when the pair's minutes (Σ remaining of its slices that can take a
 *     deduction now) are below what its burn rate needs for two periods (at least the
 *     store's lease_minutes), or its soonest expiry is within two periods;
 *     sized by the same figure.  A request not answered (a crash, the
 *     ledger away) is resent with the same id next time: one lease.  422
 *     (nothing to reserve) or 404 (unknown account): meter_lease_resolved
 *     "refused" with the ledger's reason.  429 (too many open leases):
 *     left requested, asked again next run.
 *   - renew (POST /v1/leases/{id}/renew → meter_lease_renewed) open leases
 *     with usable minutes that expire within two periods; 409 (resolved at
 *     the ledger): meter_lease_resolved with the state the ledger names.
 *   - release (POST /v1/leases/{id}/release → meter_lease_resolved) open
 *     leases that are spent (nothing usable left: used up, expired here,
 *     voided) or whose pair is no longer leased for — only
 *     once none of their deductions is in the outbox (meter_lease.unsent
 *     0): the ledger must hear of the usage before the rest goes back. */
int meter_sync_run(meter_store *st, const meter_sync_config *cfg, meter_sync_report *out);

/* A static name for a METER_SYNC_E* code (else meter_strerror). */
const char *meter_sync_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif /* METER_SYNC_H */
