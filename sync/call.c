/*
 * call.c — one request to the ledger with retries.
 *
 * Retried (backoff + jitter, honouring Retry-After): no answer at all
 * (refused, reset, timeout), 408, 429, 5xx, and a 2xx whose body is not
 * the JSON the protocol promises.  Not retried: 401/403 (credentials),
 * every other 4xx (the request itself is wrong; retrying cannot help) and
 * TLS verification failures.
 * Retrying a batch is harmless: the ledger answers "duplicates" for what
 * it already stored; retrying a lease request too: the same id gets the
 * lease already stored.  A caller may list statuses that are answers, not
 * failures (a 422 refusing a lease): those come back at once.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sync_internal.h"

static int retryable_status(long s)
{
    return s == 0 || s == 408 || s == 429 || s >= 500;
}

/* "503 unavailable: database is locked" from a status and error body. */
static void describe(const sync_resp *r, char *out, size_t cap)
{
    char code[32], msg[PROTO_ERRMAX];
    if (r->status == 0) {
        snprintf(out, cap, "%s", r->error);
        return;
    }
    if (r->body && proto_error_parse(r->body, r->len, code, msg) == PROTO_OK && msg[0])
        snprintf(out, cap, "ledger answered %ld %.31s: %.180s", r->status,
                 code[0] ? code : "error", msg);
    else
        snprintf(out, cap, "ledger answered HTTP %ld", r->status);
}

static int expected(const long *expect, long status)
{
    for (; expect && *expect; expect++)
        if (*expect == status)
            return 1;
    return 0;
}

int sync_call(sync_ctx *c, const char *method, const char *path, const char *body, size_t len,
              sync_check_fn check, void *arg, json_t **answer, long *status)
{
    return sync_call_expect(c, method, path, body, len, check, arg, NULL, answer, status, NULL);
}

int sync_call_expect(sync_ctx *c, const char *method, const char *path, const char *body,
                     size_t len, sync_check_fn check, void *arg, const long *expect,
                     json_t **answer, long *status, char msg[PROTO_ERRMAX])
{
    const meter_sync_config *cfg = c->cfg;
    char last[METER_ERRMAX] = "";
    int fatal = 0;
    *answer = NULL;
    *status = 0;
    if (msg)
        msg[0] = '\0';
    for (int attempt = 0; attempt <= cfg->retries; attempt++) {
        if (attempt > 0 && sync_stopped(c))
            return sync_fail(c, METER_SYNC_ESTOPPED, "stopped by a signal; last error: %s",
                             last);
        sync_resp r;
        if (sync_http_do(c->http, method, path, body, len, &r) != 0)
            return sync_fail(c, METER_SYNC_ECONFIG, "%s %s: %s", method, path, r.error);
        *status = r.status;
        if (r.aborted) {
            sync_resp_free(&r);
            return sync_fail(c, METER_SYNC_ESTOPPED, "%s %s: aborted by a signal", method,
                             path);
        }
        char what[METER_ERRMAX];
        if (expected(expect, r.status)) {
            char code[32], m[PROTO_ERRMAX] = "";
            if (msg && r.body && proto_error_parse(r.body, r.len, code, m) == PROTO_OK)
                snprintf(msg, PROTO_ERRMAX, "%s", m);
            sync_resp_free(&r);
            return METER_OK;
        }
        if (r.status >= 200 && r.status < 300) {   /* 200, or 201 for a new lease */
            json_error_t je;
            json_t *j = r.body ? json_loadb(r.body, r.len, 0, &je) : NULL;
            char perr[PROTO_ERRMAX] = "";
            if (!j)
                snprintf(perr, sizeof perr, "not JSON (%s)", r.body ? je.text : "empty body");
            else if (check && check(arg, j, perr) != PROTO_OK) {
                json_decref(j);
                j = NULL;
            }
            if (j) {
                sync_resp_free(&r);
                *answer = j;
                return METER_OK;
            }
            snprintf(what, sizeof what, "malformed answer: %.200s", perr);
        } else {
            describe(&r, what, sizeof what);
            fatal = !retryable_status(r.status) || r.permanent;
        }
        long retry_after = r.retry_after_ms;
        sync_resp_free(&r);
        snprintf(last, sizeof last, "%s %.60s: %.180s", method, path, what);
        if (fatal) {
            meter_sync_note(c->st, last);
            int rc = *status == 401 || *status == 403 ? METER_SYNC_EAUTH
                   : *status == 0 ? METER_SYNC_ENET : METER_SYNC_EPROTO;
            return sync_fail(c, rc, "%s", last);
        }
        if (attempt == cfg->retries)
            break;
        long wait = sync_backoff_ms(attempt, cfg->backoff_base_ms, cfg->backoff_cap_ms,
                                    retry_after < 0 ? 0 : retry_after, sync_random32());
        char note[METER_ERRMAX];
        snprintf(note, sizeof note, "%.180s (attempt %d of %d, retrying in %ld.%01ld s)", last,
                 attempt + 1, cfg->retries + 1, wait / 1000, (wait % 1000) / 100);
        meter_sync_note(c->st, note);
        sync_log(c, "%s", note);
        c->rep->retries++;
        if (sync_sleep_ms(wait, cfg->stop))
            return sync_fail(c, METER_SYNC_ESTOPPED, "stopped by a signal; last error: %s",
                             last);
    }
    int rc = *status >= 200 && *status < 300 ? METER_SYNC_EPROTO : METER_SYNC_ENET;
    char gave_up[METER_ERRMAX];
    snprintf(gave_up, sizeof gave_up, "%.210s (gave up after %d attempt%s)", last,
             cfg->retries + 1, cfg->retries ? "s" : "");
    meter_sync_note(c->st, gave_up);
    return sync_fail(c, rc, "%s", gave_up);
}
