/*
 * http.c — the libmicrohttpd glue: request lifecycle, body limit, routing,
 * start and clean shutdown (replies and request helpers: http_reply.c).
 *
 * A request's life: MHD calls on_uri() when the request line arrives (we
 * keep the raw target, which node signatures cover, and count the request
 * as in flight), then on_access() once after the headers, then once per
 * body chunk, then once more when the body is complete: authentication
 * (or what of it needs the body) and the handler run there.  on_completed()
 * returns the store to the pool, counts the request in the metrics and
 * frees it.
 *
 * Nothing of a body is read before the headers have earned it.  The first
 * call refuses, before a byte of the body is read: an unknown route
 * (404/405), a declared body over --max-body (413), a body on a GET (400),
 * the wrong type (415), credentials that fail what can be checked without
 * the body (401/403, http_auth.c: auth_early), and a body that does not
 * fit in the body budget — --max-body-total bytes held by all connections
 * together — with 503 and Retry-After.  So a stranger makes the ledger hold
 * nothing but libmicrohttpd's per-connection buffer, and even holders of
 * credentials cannot make it hold more than the budget.
 *
 * A chunked body (no Content-Length) cannot be refused before reading; it is
 * read up to the limit (and the budget) and the connection is closed when
 * it goes beyond (MHD cannot queue a reply in the middle of an upload).
 *
 * Slow clients: see the thread model in server_start() and the request
 * deadline in http_deadline.c.
 *
 * Shutdown (server_stop): MHD_quiesce_daemon stops accepting, requests in
 * flight are waited for (up to a timeout), replies sent meanwhile carry
 * "Connection: close", then MHD_stop_daemon.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "http.h"
#include "http_deadline.h"
#include "metrics.h"

struct server {
    const struct ledger_config *cfg;
    store_pool *pool;
    struct MHD_Daemon *d;
    atomic_int inflight;
    atomic_int stopping;
    atomic_size_t body_held;      /* bytes reserved for request bodies, all
                                     connections together (--max-body-total) */
    deadline_watch *deadline;     /* --request-deadline */
    char *tls_cert, *tls_key;     /* PEM text, alive as long as the daemon */
    char mhd_err[METER_ERRMAX];   /* MHD's last log line, for start errors */
    int started;                  /* MHD's start errors are reported by us */
};

enum auth { AUTH_NONE, AUTH_NODE, AUTH_ADMIN };

struct route {
    const char *method;
    const char *pattern;          /* "{}" matches one path segment */
    enum auth auth;
    void (*fn)(request *rq);
};

static const struct route routes[] = {
    { "GET", "/healthz", AUTH_NONE, api_healthz },
    { "GET", "/metrics", AUTH_NONE, api_metrics },
    { "GET", "/", AUTH_NONE, api_console },
    { "GET", "/index.html", AUTH_NONE, api_console },
    { "GET", "/app.js", AUTH_NONE, api_console },
    { "GET", "/style.css", AUTH_NONE, api_console },
    { "POST", "/v1/usage/batch", AUTH_NODE, api_batch },
    { "GET", "/v1/nodes/{}/packs", AUTH_NODE, api_node_packs },
    { "POST", "/v1/leases", AUTH_NODE, api_lease_create },
    { "POST", "/v1/leases/{}/renew", AUTH_NODE, api_lease_renew },
    { "POST", "/v1/leases/{}/release", AUTH_NODE, api_lease_release },
    { "GET", "/v1/leases", AUTH_ADMIN, api_lease_list },
    { "POST", "/v1/accounts", AUTH_ADMIN, api_account_create },
    { "GET", "/v1/accounts", AUTH_ADMIN, api_account_list },
    { "GET", "/v1/verify", AUTH_ADMIN, api_verify },
    { "POST", "/v1/packs", AUTH_ADMIN, api_pack_create },
    { "GET", "/v1/packs", AUTH_ADMIN, api_pack_list },
    { "GET", "/v1/packs/{}", AUTH_ADMIN, api_pack_get },
    { "POST", "/v1/packs/{}/assign", AUTH_ADMIN, api_pack_assign },
    { "POST", "/v1/packs/{}/freeze", AUTH_ADMIN, api_pack_freeze },
    { "POST", "/v1/packs/{}/unfreeze", AUTH_ADMIN, api_pack_unfreeze },
    { "POST", "/v1/packs/{}/refund", AUTH_ADMIN, api_pack_refund },
    { "GET", "/v1/usage/details", AUTH_ADMIN, api_usage_details },
    { "GET", "/v1/usage/records", AUTH_ADMIN, api_usage_records },
    { "GET", "/v1/totals", AUTH_ADMIN, api_totals },
    { "POST", "/v1/nodes", AUTH_ADMIN, api_node_create },
    { "GET", "/v1/nodes", AUTH_ADMIN, api_node_list },
    { "GET", "/v1/audit", AUTH_ADMIN, api_audit },
};
#define NROUTES (sizeof routes / sizeof *routes)

/* The route a request found, kept beside it (request has no slot for a
 * const pointer of this file's type). */
struct request_ext {
    request rq;
    const struct route *route;
    size_t reserved;              /* body bytes taken from the body budget */
};

void ledger_log(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, "meter-ledgerd: %s\n", line);
}

const struct ledger_config *server_config(const server *srv)
{
    return srv->cfg;
}

store_pool *server_pool(const server *srv)
{
    return srv->pool;
}

int server_stopping(const server *srv)
{
    return atomic_load(&srv->stopping);
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --------------------------------------------------------- body budget -- */

/* Takes n bytes from the body budget: 1, or 0 when they do not fit. */
static int budget_take(server *srv, size_t n)
{
    size_t held = atomic_load(&srv->body_held);
    do {
        if (n > srv->cfg->max_body_total - held)
            return 0;
    } while (!atomic_compare_exchange_weak(&srv->body_held, &held, held + n));
    return 1;
}

static void budget_give(server *srv, size_t n)
{
    atomic_fetch_sub(&srv->body_held, n);
}

/* Makes room for add more body bytes (and the NUL after them), within what
 * the request reserved from the budget when its headers came; a chunked
 * body, whose size nobody announced, reserves as it grows.  0; -1 when the
 * budget is exhausted, -2 when memory is. */
static int body_room(struct request_ext *x, size_t add)
{
    request *rq = &x->rq;
    size_t need = rq->body_len + add;
    if (need < rq->body_cap)
        return 0;
    if (need > x->reserved) {
        size_t max = rq->srv->cfg->max_body, want = x->reserved ? x->reserved : 4096;
        while (want < need)
            want *= 2;
        if (want > max)
            want = max;   /* need ≤ max: the caller checked */
        if (!budget_take(rq->srv, want - x->reserved))
            return -1;
        x->reserved = want;
    }
    char *b = realloc(rq->body, x->reserved + 1);
    if (!b)
        return -2;
    rq->body = b;
    rq->body_cap = x->reserved + 1;
    return 0;
}

/* ------------------------------------------------------------- routing -- */

/* Matches path against pattern, capturing "{}" segments into rq. */
static int match(const char *pattern, const char *path, request *rq)
{
    int nseg = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (p[0] == '{' && p[1] == '}') {
            size_t n = strcspn(s, "/");
            if (n == 0 || n > METER_NAME_MAX || nseg == 3)
                return 0;
            if (rq) {
                memcpy(rq->seg_buf[nseg], s, n);
                rq->seg_buf[nseg][n] = '\0';
                rq->seg[nseg] = rq->seg_buf[nseg];
            }
            nseg++;
            s += n;
            p += 2;
            continue;
        }
        if (*p != *s)
            return 0;
        p++, s++;
    }
    return *p == '\0' && *s == '\0';
}

/* The route for method + path; *path_known says whether another method
 * would have matched (405 rather than 404). */
static const struct route *find_route(const char *method, const char *path, request *rq,
                                      int *path_known, char allow[64])
{
    *path_known = 0;
    allow[0] = '\0';
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    for (size_t i = 0; i < NROUTES; i++) {
        if (!match(routes[i].pattern, path, NULL))
            continue;
        if (strcmp(routes[i].method, m) == 0) {
            match(routes[i].pattern, path, rq);
            return &routes[i];
        }
        *path_known = 1;
        size_t len = strlen(allow);
        snprintf(allow + len, 64 - len, "%s%s", len ? ", " : "", routes[i].method);
    }
    return NULL;
}

/* ------------------------------------------------------- MHD callbacks -- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    server *srv = cls;
    struct request_ext *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->rq.srv = srv;
    x->rq.conn = conn;
    x->rq.t0 = mono_now();
    x->rq.raw_target = strdup(uri ? uri : "");
    atomic_fetch_add(&srv->inflight, 1);
    metrics_inflight(1);
    return x;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    server *srv = cls;
    struct request_ext *x = *con_cls;
    deadline_restart(conn);   /* the next request on this connection */
    if (!x)
        return;
    request *rq = &x->rq;
    if (rq->st)
        pool_put(srv->pool, rq->st);
    budget_give(srv, x->reserved);
    double took = mono_now() - rq->t0;
    if (rq->answered) {
        metrics_request(rq->status, took);
        if (srv->cfg->verbose)
            ledger_log("%s %s %d %.1f ms%s%s%s%s", rq->method, rq->raw_target, rq->status,
                       took * 1e3, rq->node[0] ? " node=" : "", rq->node,
                       rq->admin[0] ? " admin=" : "", rq->admin);
    } else if (rq->started && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && srv->cfg->verbose)
        ledger_log("%s %s: connection closed before an answer", rq->method, rq->raw_target);
    free(rq->body);
    free(rq->raw_target);
    free(x);
    *con_cls = NULL;
    metrics_inflight(-1);
    atomic_fetch_sub(&srv->inflight, 1);
}

static int is_json_type(const char *ct)
{
    if (!ct)
        return 0;
    size_t n = strlen(PROTO_CONTENT_TYPE);
    return strncasecmp(ct, PROTO_CONTENT_TYPE, n) == 0 && (ct[n] == '\0' || ct[n] == ';' ||
                                                          ct[n] == ' ');
}

/* The first call, after the headers: route, size and type checks. */
static void on_headers(struct request_ext *x, const char *url, const char *method)
{
    request *rq = &x->rq;
    const struct ledger_config *cfg = rq->srv->cfg;
    rq->started = 1;
    rq->method = method;
    rq->path = url;
    rq->now = meter_now();
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    rq->wall = (meter_time)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
    int known;
    char allow[64];
    x->route = find_route(method, url, rq, &known, allow);
    if (!x->route) {
        if (known) {
            /* 405 is not among the protocol's codes: "bad_request" names it */
            char msg[160];
            snprintf(msg, sizeof msg, "method %s not allowed on %s (allowed: %s)", method, url,
                     allow);
            char *body = proto_error_body(PROTO_ERR_BAD_REQUEST, msg);
            if (body)
                reply_text_owned(rq, 405, body, PROTO_CONTENT_TYPE, MHD_HTTP_HEADER_ALLOW, allow);
            else
                reply_error(rq, PROTO_ERR_INTERNAL, "out of memory");
        } else
            reply_error(rq, PROTO_ERR_NOT_FOUND, "no such endpoint: %s %s", method, url);
        return;
    }
    const char *cl = rq_header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = rq_header(rq, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    int declared = 0;          /* the size is announced: len */
    unsigned long long len = 0;
    if (cl) {
        char *end;
        errno = 0;
        len = strtoull(cl, &end, 10);
        declared = *cl && *end == '\0' && !errno && !te;
        if (declared && len > cfg->max_body) {
            reply_error(rq, PROTO_ERR_TOO_LARGE, "the body of %llu bytes exceeds the limit of "
                        "%zu bytes", len, cfg->max_body);
            return;
        }
    }
    int has_body = te || (cl && (!declared || len > 0));
    if (!has_body)
        return;   /* authenticated at the last call, right after this one */
    if (strcmp(x->route->method, "POST") != 0) {
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "%s %s takes no request body", method, url);
        return;
    }
    if (!is_json_type(rq_header(rq, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        reply_error(rq, PROTO_ERR_UNSUPPORTED_MEDIA, "the body must be %s",
                    PROTO_CONTENT_TYPE);
        return;
    }
    if (x->route->auth != AUTH_NONE) {
        int ok = auth_early(rq, x->route->auth == AUTH_ADMIN);
        rq_store_release(rq);   /* not held while the body arrives */
        if (!ok)
            return;
    }
    if (declared) {
        if (!budget_take(rq->srv, (size_t)len)) {
            reply_error(rq, PROTO_ERR_UNAVAILABLE, "too many request bodies in progress "
                        "(max-body-total %zu bytes): retry later", cfg->max_body_total);
            return;
        }
        x->reserved = (size_t)len;
    }
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls, (void)version;
    struct request_ext *x = *con_cls;
    if (!x)
        return MHD_NO;   /* out of memory in on_uri */
    request *rq = &x->rq;
    if (!rq->started) {
        on_headers(x, url, method);
        return rq->answered ? (enum MHD_Result)rq->queue_rc : MHD_YES;
    }
    if (*upload_size) {
        size_t max = rq->srv->cfg->max_body, add = *upload_size;
        if (rq->body_len + add > max) {
            /* chunked upload past the limit: no reply is possible mid-upload */
            ledger_log("%s %s: chunked body over %zu bytes, connection closed", method, url, max);
            return MHD_NO;
        }
        int room = body_room(x, add);
        if (room == -1)
            ledger_log("%s %s: chunked body, too many request bodies in progress "
                       "(max-body-total %zu bytes), connection closed", method, url,
                       rq->srv->cfg->max_body_total);
        if (room != 0)
            return MHD_NO;
        memcpy(rq->body + rq->body_len, upload, add);
        rq->body_len += add;
        rq->body[rq->body_len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    if (rq->answered)
        return (enum MHD_Result)rq->queue_rc;
    deadline_received(conn);
    int ok = 1;
    if (x->route->auth == AUTH_NODE)
        ok = auth_node(rq);
    else if (x->route->auth == AUTH_ADMIN)
        ok = auth_admin(rq);
    if (ok && !rq->answered)
        x->route->fn(rq);
    if (!rq->answered)
        reply_error(rq, PROTO_ERR_INTERNAL, "the handler gave no answer");
    return (enum MHD_Result)rq->queue_rc;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    server *srv = cls;
    char line[METER_ERRMAX];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    memcpy(srv->mhd_err, line, sizeof line);
    if (srv->started)   /* before: server_start reports it, in one line */
        ledger_log("libmicrohttpd: %s", line);
}

/* -------------------------------------------------------- start / stop -- */

static char *read_file(const char *path, char err[METER_ERRMAX])
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, METER_ERRMAX, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
        if (len + 1 == cap) {
            if (cap >= 1 << 20)
                break;   /* no PEM file is that large */
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            } else
                buf = nb;
        }
    }
    int bad = !buf || ferror(f) || len + 1 == cap;
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err, METER_ERRMAX, "cannot read %s (I/O error or too large)", path);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

server *server_start(const struct ledger_config *cfg, store_pool *pool, char err[METER_ERRMAX])
{
    char host[256];
    int port;
    if (config_split_listen(cfg->listen, host, sizeof host, &port, err) != 0)
        return NULL;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    int gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0) {
        snprintf(err, METER_ERRMAX, "--listen %s: %s", cfg->listen, gai_strerror(gai));
        return NULL;
    }
    server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        freeaddrinfo(ai);
        snprintf(err, METER_ERRMAX, "out of memory");
        return NULL;
    }
    srv->cfg = cfg;
    srv->pool = pool;
    /* Threads: one per connection.  The handlers block — on SQLite's write
     * lock (busy timeout 10 s), on PostgreSQL round trips — and in
     * libmicrohttpd's polling models (MHD_OPTION_THREAD_POOL_SIZE, epoll) a
     * blocked handler stalls every other connection of its worker thread,
     * /healthz included; with a thread each, a slow request only ever delays
     * itself.  What threads cost is bounded instead: at most
     * LEDGER_MAX_CONNECTIONS connections, --max-connections-per-ip of them
     * from one address (one host cannot take every slot), --request-deadline
     * for a request to arrive (a trickling client gives its slot back);
     * beyond its parked stack a connection holds libmicrohttpd's buffer
     * (MHD_OPTION_CONNECTION_MEMORY_LIMIT) and its share of --max-body-total.
     * Connections over a limit are closed at once, unanswered. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem tls[3] = { { MHD_OPTION_END, 0, NULL } };
    if (cfg->tls_cert) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, METER_ERRMAX, "this libmicrohttpd was built without TLS");
            goto fail;
        }
        if (!(srv->tls_cert = read_file(cfg->tls_cert, err)) ||
            !(srv->tls_key = read_file(cfg->tls_key, err)))
            goto fail;
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert };
        tls[1] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key };
    }
    if (!(srv->deadline = deadline_start(cfg->request_deadline_s))) {
        snprintf(err, METER_ERRMAX, "cannot start the request-deadline thread");
        goto fail;
    }
    srv->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_access, srv,
                              MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,   /* first */
                              MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                              MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                              MHD_OPTION_NOTIFY_CONNECTION, deadline_on_connection,
                              srv->deadline,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,   /* idle */
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)LEDGER_MAX_CONNECTIONS,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_per_ip,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32 * 1024,
                              MHD_OPTION_ARRAY, tls,
                              MHD_OPTION_END);
    if (!srv->d) {
        snprintf(err, METER_ERRMAX, "cannot listen on %.60s: %.170s", cfg->listen,
                 srv->mhd_err[0] ? srv->mhd_err : strerror(errno));
        goto fail;
    }
    srv->started = 1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    int bound = info ? info->port : port;
    ledger_log("listening on %s://%s%s%s:%d (%s)", cfg->tls_cert ? "https" : "http",
               ai->ai_family == AF_INET6 ? "[" : "", host, ai->ai_family == AF_INET6 ? "]" : "",
               bound, cfg->pg ? "postgresql" : "sqlite");
    freeaddrinfo(ai);
    return srv;
fail:
    freeaddrinfo(ai);
    deadline_stop(srv->deadline);
    free(srv->tls_cert);
    free(srv->tls_key);
    free(srv);
    return NULL;
}

void server_stop(server *srv, int timeout_s)
{
    if (!srv)
        return;
    atomic_store(&srv->stopping, 1);
    MHD_socket fd = MHD_quiesce_daemon(srv->d);
    /* No new connections from here on: shutdown() makes the kernel refuse
     * them (the descriptor itself must stay open until MHD stops). */
    if (fd != MHD_INVALID_SOCKET)
        shutdown(fd, SHUT_RDWR);
    int waiting = atomic_load(&srv->inflight);
    if (waiting > 0)
        ledger_log("stopping: waiting for %d request(s) in flight", waiting);
    double deadline = mono_now() + timeout_s;
    while (atomic_load(&srv->inflight) > 0 && mono_now() < deadline) {
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&srv->inflight) > 0)
        ledger_log("stopping: %d request(s) still in flight after %d s, closing them",
                   atomic_load(&srv->inflight), timeout_s);
    MHD_stop_daemon(srv->d);
    deadline_stop(srv->deadline);   /* after: every connection is closed */
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    free(srv->tls_cert);
    free(srv->tls_key);
    free(srv);
}
