/*
 * http.h — meter-ledgerd's HTTP server (libmicrohttpd) and what the
 * endpoint handlers (api_*.c) see of a request.
 *
 * One thread per connection; a request's handler runs once its body is
 * fully read, and a body is read only after its headers passed every check
 * that needs no body (size, type, credentials, the body budget: see
 * http.c).  A handler answers with exactly one reply_*() call.
 */
#ifndef LEDGER_HTTP_H
#define LEDGER_HTTP_H

#include <stdarg.h>
#include <stddef.h>

#include <jansson.h>

#include "config.h"
#include "pool.h"
#include "protocol.h"
#include "store.h"

struct MHD_Connection;
struct MHD_Daemon;

typedef struct server server;

typedef struct request {
    server *srv;
    struct MHD_Connection *conn;
    char *raw_target;        /* path and query exactly as on the request line */
    const char *method;      /* "GET", "POST", … */
    const char *path;        /* decoded path, no query */
    char *body;              /* NUL-terminated; NULL when empty */
    size_t body_len, body_cap;
    const char *seg[3];      /* path parameters matched by the route ("{id}") */
    char seg_buf[3][METER_NAME_MAX + 1];
    meter_time now;          /* billing clock: meter_now() (METER_NOW in tests) */
    meter_time wall;         /* real clock, ms: signatures and nonces (PROTOCOL.md:
                                the node signs with the real clock, always) */
    double t0;               /* monotonic start, seconds */
    ledger_store *st;        /* borrowed from the pool, on demand */
    char node[METER_NAME_MAX];   /* the authenticated node, or "" */
    char admin[METER_NAME_MAX];  /* the authenticated admin, or "" */
    int started;             /* the access handler has seen it */
    int answered;            /* a response is queued */
    int status;
    int queue_rc;            /* MHD_YES / MHD_NO from queueing */
} request;

/* ------------------------------------------------------------- replies -- */

/* Answers with a JSON body (takes the reference).  NULL body: 500. */
void reply_json(request *rq, int status, json_t *body);
/* Answers a store call that listed n rows of `size` bytes each: for rc
 * other than METER_OK as reply_store_error does, else 200 {"KEY": [...]}
 * with row_json(row, rq) for each row in order, or 500 when building it
 * ran out of memory (row_json returns NULL then).  The rows stay the
 * caller's to free. */
void reply_rows(request *rq, const char *key, int rc, const void *rows, size_t n, size_t size,
                json_t *(*row_json)(const void *row, const request *rq));
/* The JSON array of reply_rows (for answers of another shape), or NULL
 * when it ran out of memory. */
json_t *rows_json(const request *rq, const void *rows, size_t n, size_t size,
                  json_t *(*row_json)(const void *row, const request *rq));
/* Answers {"error": {"code", "message"}}; message is printf-style. */
void reply_error(request *rq, proto_error e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Answers for a failed store call: METER_E* → 400/404/409/422/503/500,
 * LEDGER_ELIMIT → 429, with the store's message. */
void reply_store_error(request *rq, int rc);
/* Answers with raw bytes (console files, /metrics text). */
void reply_bytes(request *rq, int status, const char *content_type, const void *data,
                 size_t len, int copy);
/* Answers with a malloc'd text (taken), plus one extra header (or NULL). */
void reply_text_owned(request *rq, int status, char *text, const char *content_type,
                      const char *extra_name, const char *extra_value);

/* ------------------------------------------------------------- helpers -- */

/* The store for this request (borrowed once, returned when it ends), or
 * NULL after answering 503. */
ledger_store *rq_store(request *rq);
/* Gives the store back early (before a body upload: a slow client must
 * not hold a database connection); rq_store borrows one again. */
void rq_store_release(request *rq);
/* A query-string argument (decoded), or NULL. */
const char *rq_arg(request *rq, const char *name);
/* A request header, or NULL. */
const char *rq_header(request *rq, const char *name);
/* The body as a JSON object; NULL after answering 400 (or when the body is
 * empty and allow_empty: then *out is NULL and 1 is returned). */
int rq_json_body(request *rq, int allow_empty, json_t **out);

/* ---------------------------------------------------------------- auth -- */

/* Before a body is read, from the headers alone (see http_auth.c): admin
 * nonzero for an admin endpoint.  Bearer tokens are checked completely
 * (rq->node / rq->admin set), a signed request up to its signature.
 * Returns 1 when the body may be read, or 0 after answering 401/403/5xx. */
int auth_early(request *rq, int admin);
/* Node endpoints: the request must carry a node's valid signature (or its
 * bearer token with --allow-bearer).  Returns 1 with rq->node set, or 0
 * after answering 401/403/5xx. */
int auth_node(request *rq);
/* Admin endpoints: Authorization: Bearer <admin token>.  Returns 1 with
 * rq->admin set, or 0 after answering 401/403/5xx. */
int auth_admin(request *rq);

/* ------------------------------------------------------------ endpoints -- */

void api_batch(request *rq);          /* POST /v1/usage/batch */
void api_node_packs(request *rq);     /* GET /v1/nodes/{node}/packs */
void api_pack_create(request *rq);    /* POST /v1/packs */
void api_pack_list(request *rq);      /* GET /v1/packs */
void api_pack_get(request *rq);       /* GET /v1/packs/{id} */
void api_pack_assign(request *rq);    /* POST /v1/packs/{id}/assign */
void api_pack_freeze(request *rq);    /* POST /v1/packs/{id}/freeze */
void api_pack_unfreeze(request *rq);  /* POST /v1/packs/{id}/unfreeze */
void api_pack_refund(request *rq);    /* POST /v1/packs/{id}/refund */
void api_usage_details(request *rq);  /* GET /v1/usage/details */
void api_usage_records(request *rq);  /* GET /v1/usage/records */
void api_totals(request *rq);         /* GET /v1/totals */
void api_node_create(request *rq);    /* POST /v1/nodes */
void api_node_list(request *rq);      /* GET /v1/nodes */
void api_audit(request *rq);          /* GET /v1/audit */
void api_account_create(request *rq); /* POST /v1/accounts */
void api_account_list(request *rq);   /* GET /v1/accounts */
void api_lease_create(request *rq);   /* POST /v1/leases (node) */
void api_lease_renew(request *rq);    /* POST /v1/leases/{id}/renew (node) */
void api_lease_release(request *rq);  /* POST /v1/leases/{id}/release (node) */
void api_lease_list(request *rq);     /* GET /v1/leases */
void api_verify(request *rq);         /* GET /v1/verify */
void api_healthz(request *rq);        /* GET /healthz */
void api_metrics(request *rq);        /* GET /metrics */
void api_console(request *rq);        /* GET /, /app.js, /style.css */

/* -------------------------------------------------------------- server -- */

/* One line on stderr, "meter-ledgerd: …" (journald adds the time). */
void ledger_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The settings handlers read, and the store pool. */
const struct ledger_config *server_config(const server *srv);
store_pool *server_pool(const server *srv);
/* 1 once server_stop has begun (answers then carry Connection: close). */
int server_stopping(const server *srv);

/* Starts listening (cfg->listen; port 0 picks a free one) with the store
 * pool.  Prints "meter-ledgerd: listening on http(s)://HOST:PORT" on
 * stderr.  NULL with a message in err on failure. */
server *server_start(const struct ledger_config *cfg, store_pool *pool, char err[METER_ERRMAX]);
/* Clean shutdown: stop accepting, wait up to timeout_s for the requests
 * in flight to finish, then stop and free. */
void server_stop(server *srv, int timeout_s);

#endif /* LEDGER_HTTP_H */
