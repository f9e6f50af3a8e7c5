/*
 * sync_internal.h — what the client's files share (not installed).
 *
 *   http.c     one libcurl handle: signed requests, bounded answers
 *   backoff.c  exponential backoff with full jitter, interruptible sleep
 *   call.c     one request with retries and the classification of answers
 *   push.c     the outbox in batches
 *   pull.c     the node's packs
 *   lease_plan.c  which (account, class) pairs to lease for, how much
 *              (pure; lease_plan.h)
 *   lease.c    the node's leases: request, renew, release
 *   client.c   meter_sync_run and logging
 *   config.c   meter_sync_config_*
 */
#ifndef METER_SYNC_INTERNAL_H
#define METER_SYNC_INTERNAL_H

#include <stdint.h>

#include <jansson.h>

#include "protocol.h"
#include "sync.h"

/* ---------------------------------------------------------------- http -- */

typedef struct sync_http sync_http;

typedef struct sync_resp {
    long status;            /* HTTP status; 0 = no answer (transport error) */
    char *body;             /* NUL-terminated, may be NULL */
    size_t len;
    long retry_after_ms;    /* Retry-After, or -1 */
    int aborted;            /* the transfer was stopped by a second signal */
    int timed_out;
    int permanent;          /* a transport error retrying cannot fix (TLS
                               verification, bad CA file, bad URL) */
    char error[METER_ERRMAX];  /* transport error text when status == 0 */
} sync_resp;

/* Opens a handle for cfg (which must outlive it) as `node`. */
int sync_http_open(const meter_sync_config *cfg, const char *node, sync_http **out,
                   char err[METER_ERRMAX]);
/* path starts with "/v1/"; it is appended to the ledger URL and signed.
 * Fills r (free with sync_resp_free) and returns 0; the caller looks at
 * r->status.  Returns -1 only when the request could not be prepared
 * (r->error says why). */
int sync_http_do(sync_http *h, const char *method, const char *path, const char *body,
                 size_t len, sync_resp *r);
void sync_resp_free(sync_resp *r);
void sync_http_close(sync_http *h);

/* ------------------------------------------------------------- backoff -- */

/* The wait before retry number `attempt` (0 = the first retry): a uniform
 * draw from [0, min(cap, base·2^attempt)] (full jitter) using rnd, and at
 * least retry_after_ms (≥ 0; capped at METER_SYNC_RETRY_AFTER_MAX_MS) when
 * the ledger gave one. */
long sync_backoff_ms(int attempt, long base_ms, long cap_ms, long retry_after_ms, uint32_t rnd);
/* A random 32-bit number for the jitter. */
uint32_t sync_random32(void);
/* Sleeps ms, waking early when *stop is set; returns 1 when stopped. */
int sync_sleep_ms(long ms, volatile sig_atomic_t *stop);

/* -------------------------------------------------------------- client -- */

typedef struct sync_ctx {
    meter_store *st;
    const meter_sync_config *cfg;
    meter_sync_report *rep;
    sync_http *http;
    char node[METER_NAME_MAX];
} sync_ctx;

void sync_log(const sync_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets rep->error (one line) and returns rc. */
int sync_fail(sync_ctx *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int sync_stopped(const sync_ctx *c);

/* Checks a 200 answer; PROTO_OK or an error in err (then it is retried as
 * a malformed answer). */
typedef int (*sync_check_fn)(void *arg, const json_t *answer, char err[PROTO_ERRMAX]);

/* One request with retries.  On METER_OK *answer is the parsed 2xx body
 * (json_decref it).  *status gets the last HTTP status (0 none).  Every
 * failed attempt is noted in the store. */
int sync_call(sync_ctx *c, const char *method, const char *path, const char *body, size_t len,
              sync_check_fn check, void *arg, json_t **answer, long *status);

/* sync_call for a request whose refusals are answers: a status listed in
 * `expect` (0-terminated) returns METER_OK at once, without a retry or an
 * error note, with *answer NULL, *status that status and msg the error
 * body's message ("" when it has none).  expect NULL: sync_call. */
int sync_call_expect(sync_ctx *c, const char *method, const char *path, const char *body,
                     size_t len, sync_check_fn check, void *arg, const long *expect,
                     json_t **answer, long *status, char msg[PROTO_ERRMAX]);

/* Pushes the outbox, batch after batch: at most as many records as it
 * held when the call began (newer ones wait for the next round). */
int sync_push(sync_ctx *c);
int sync_pull(sync_ctx *c);
/* After push and pull: request, renew and release this node's leases
 * (PROTOCOL.md, client behaviour).  METER_OK when leases are off. */
int sync_leases(sync_ctx *c);

#endif /* METER_SYNC_INTERNAL_H */
