/*
 * http_reply.c — answering a request (reply_*) and reading it (rq_*):
 * JSON bodies, error bodies with their status and headers, the store
 * borrowed for the request.  See http.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "http.h"

/* ------------------------------------------------------------- replies -- */

static void queue(request *rq, int status, struct MHD_Response *resp, const char *ctype)
{
    if (rq->answered) {
        /* a handler bug; the first answer stands */
        MHD_destroy_response(resp);
        return;
    }
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (ctype && !strncmp(ctype, "text/html", 9)) {
        /* the console: its own scripts only, never framed */
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'self'; frame-ancestors 'none'; base-uri 'none'");
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    }
    if (server_stopping(rq->srv))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    rq->queue_rc = MHD_queue_response(rq->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    rq->answered = 1;
    rq->status = status;
}

void reply_bytes(request *rq, int status, const char *content_type, const void *data,
                 size_t len, int copy)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)data, copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        rq->queue_rc = MHD_NO;
        rq->answered = 1;
        rq->status = 500;
        return;
    }
    queue(rq, status, resp, content_type);
}

void reply_text_owned(request *rq, int status, char *text, const char *ctype,
                             const char *extra_name, const char *extra_value)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text,
                                                                MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        rq->queue_rc = MHD_NO;
        rq->answered = 1;
        rq->status = 500;
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (extra_name)
        MHD_add_response_header(resp, extra_name, extra_value);
    queue(rq, status, resp, ctype);
}

void reply_json(request *rq, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        reply_error(rq, PROTO_ERR_INTERNAL, "out of memory building the answer");
        return;
    }
    reply_text_owned(rq, status, text, PROTO_CONTENT_TYPE, NULL, NULL);
}

json_t *rows_json(const request *rq, const void *rows, size_t n, size_t size,
                  json_t *(*row_json)(const void *row, const request *rq))
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, row_json((const char *)rows + i * size, rq)) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    return arr;
}

void reply_rows(request *rq, const char *key, int rc, const void *rows, size_t n, size_t size,
                json_t *(*row_json)(const void *row, const request *rq))
{
    if (rc != METER_OK) {
        reply_store_error(rq, rc);
        return;
    }
    json_t *arr = rows_json(rq, rows, n, size, row_json);
    if (!arr) {
        reply_error(rq, PROTO_ERR_INTERNAL, "out of memory");
        return;
    }
    reply_json(rq, 200, json_pack("{s:o}", key, arr));
}

void reply_error(request *rq, proto_error e, const char *fmt, ...)
{
    char msg[PROTO_ERRMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int status = proto_error_status(e);
    char *body = proto_error_body(e, msg);
    if (!body) {
        reply_bytes(rq, 500, "text/plain", "out of memory\n", 14, 0);
        return;
    }
    const char *hn = NULL, *hv = NULL;
    if (e == PROTO_ERR_UNAUTHORIZED)
        hn = MHD_HTTP_HEADER_WWW_AUTHENTICATE, hv = "Bearer realm=\"meter-ledgerd\"";
    else if (e == PROTO_ERR_UNAVAILABLE || e == PROTO_ERR_RATE_LIMITED)
        hn = MHD_HTTP_HEADER_RETRY_AFTER, hv = "1";
    if (status >= 500 || status == 401 || status == 403)
        ledger_log("%s %s: %d %s", rq->method ? rq->method : "?",
                   rq->path ? rq->path : "?", status, msg);
    reply_text_owned(rq, status, body, PROTO_CONTENT_TYPE, hn, hv);
}

void reply_store_error(request *rq, int rc)
{
    const char *msg = rq->st ? ledger_store_errmsg(rq->st) : meter_strerror(rc);
    switch (rc) {
    case METER_EINVAL:    reply_error(rq, PROTO_ERR_BAD_REQUEST, "%s", msg); break;
    case METER_ENOTFOUND: reply_error(rq, PROTO_ERR_NOT_FOUND, "%s", msg); break;
    case METER_EEXIST:    reply_error(rq, PROTO_ERR_CONFLICT, "%s", msg); break;
    case METER_EREFUSED:  reply_error(rq, PROTO_ERR_REFUSED, "%s", msg); break;
    case METER_EBUSY:     reply_error(rq, PROTO_ERR_UNAVAILABLE, "%s", msg); break;
    case LEDGER_ELIMIT:   reply_error(rq, PROTO_ERR_RATE_LIMITED, "%s", msg); break;
    default:              reply_error(rq, PROTO_ERR_INTERNAL, "%s", msg);
    }
}

/* ------------------------------------------------------------- helpers -- */

ledger_store *rq_store(request *rq)
{
    if (rq->st)
        return rq->st;
    char err[METER_ERRMAX];
    rq->st = pool_get(server_pool(rq->srv), err);
    if (!rq->st)
        reply_error(rq, PROTO_ERR_UNAVAILABLE, "database unavailable: %s", err);
    return rq->st;
}

void rq_store_release(request *rq)
{
    pool_put(server_pool(rq->srv), rq->st);
    rq->st = NULL;
}

const char *rq_arg(request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *rq_header(request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

int rq_json_body(request *rq, int allow_empty, json_t **out)
{
    *out = NULL;
    if (rq->body_len == 0) {
        if (allow_empty)
            return 1;
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "a JSON object body is required");
        return 0;
    }
    json_error_t je;
    json_t *j = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "malformed JSON at line %d column %d: %s",
                    je.line, je.column, je.text);
        return 0;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "the body must be a JSON object");
        return 0;
    }
    *out = j;
    return 1;
}
