/*
 * fuzz_ledger_http.c — meter-ledgerd's request handling, the whole way:
 * the real server (ledger/http.c: routing, body limits; http_auth.c: node
 * signatures, nonces, bearer and admin tokens; api_*.c: every endpoint;
 * the SQLite store) runs in this process on 127.0.0.1, and each input
 * becomes one HTTP request over a loopback connection.  Nothing in the
 * ledger is changed for it: the harness is a client.
 *
 * So that the handlers are reached, the harness owns a ledger database (a
 * temporary directory, tmpfs when there is one) with two nodes and an
 * admin, and signs requests as the protocol says (proto_sign over the
 * exact target, the body, a fresh nonce and the current time).  The input
 * chooses how it authenticates, including wrongly.
 *
 * Checked: every answer is a well-formed HTTP response; a /v1 error
 * answer is a protocol error body whose code matches its status (405 says
 * bad_request); no request gets 500 (a handler or store failure on input
 * a client can send); a 200 answer to a batch is one the node's client
 * takes (each id sent listed at most once); a replayed signed request is
 * refused; the server keeps answering.  The database starts
 * afresh every 4096 inputs.  FUZZ_TRACE=1 prints each request's status.
 *
 * Input:
 *   AUTH METHOD TARGET\n       AUTH: node | node2 | bearer | admin | stale
 *                              | badsig | replay | nobearer | anything
 *                              else for none
 *   Header: value\n …          extra headers (CR dropped), up to a blank line
 *   \n
 *   BODY                       sent with Content-Length (and
 *                              Content-Type: application/json unless a
 *                              header above names one)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "fuzz_util.h"
#include "http.h"
#include "pool.h"
#include "protocol.h"
#include "store.h"

#define NODE  "fuzz-node"
#define NODE2 "fuzz-node-2"

/* Two servers on one database: one with --allow-bearer, one without. */
static struct ledger_config cfg[2];
static char listen_at[2][64];
static int port[2];
static store_pool *pool;
static server *srv[2];
static char db[512];
static char secret[LEDGER_SECRET_HEX + 1], secret2[LEDGER_SECRET_HEX + 1];
static char token[LEDGER_SECRET_HEX + 1];
static unsigned long nonce_seq;
static unsigned runs;

/* A port free right now on 127.0.0.1 (bound and released). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("fuzz_ledger_http: free port");
        abort();
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void start(void)
{
    const char *const suffix[] = { "", "-wal", "-shm" };
    for (int i = 0; i < 3; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", db, suffix[i]);
        unlink(p);
    }
    ledger_store *st;
    char err[METER_ERRMAX];
    if (ledger_store_open(db, NULL, LEDGER_OPEN_MIGRATE, &st, err) != METER_OK) {
        fprintf(stderr, "fuzz_ledger_http: %s\n", err);
        abort();
    }
    ledger_actor cli = { "cli", NULL };
    meter_time now = meter_now();
    if (ledger_node_add(st, NODE, now, &cli, secret) != METER_OK ||
        ledger_node_add(st, NODE2, now, &cli, secret2) != METER_OK ||
        ledger_admin_add(st, "fuzz-admin", now, token) != METER_OK) {
        fprintf(stderr, "fuzz_ledger_http: %s\n", ledger_store_errmsg(st));
        abort();
    }
    ledger_store_close(st);
    if (pool_create(db, NULL, 8, &pool) != METER_OK)
        abort();
    for (int i = 0; i < 2; i++) {
        /* through config_load, as meter-ledgerd does: every setting not
         * named here has its real default */
        port[i] = free_port();
        snprintf(listen_at[i], sizeof listen_at[i], "127.0.0.1:%d", port[i]);
        char *argv[] = { "meter-ledgerd", "--listen", listen_at[i], "--db", db,
                         "--shutdown-timeout", "5", i == 0 ? "--allow-bearer" : NULL, NULL };
        int argc = i == 0 ? 8 : 7;
        if (config_load(&cfg[i], argc, argv, err) != 0) {
            fprintf(stderr, "fuzz_ledger_http: %s\n", err);
            abort();
        }
        if (!(srv[i] = server_start(&cfg[i], pool, err))) {
            fprintf(stderr, "fuzz_ledger_http: %s\n", err);
            abort();
        }
    }
}

static void stop(void)
{
    for (int i = 0; i < 2; i++) {
        server_stop(srv[i], 5);
        srv[i] = NULL;
        config_free(&cfg[i]);
    }
    pool_destroy(pool);
    pool = NULL;
}

static void cleanup(void)
{
    stop();
    fuzz_rmtree(fuzz_tmpdir());
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_detach_stdin();
    signal(SIGPIPE, SIG_IGN);
    unsetenv("METER_NOW");
    json_object_seed(0);   /* before any thread, as main() does */
    snprintf(db, sizeof db, "%s/ledger.db", fuzz_tmpdir());
    start();
    atexit(cleanup);
    return 0;
}

/* ------------------------------------------------------------ the client -- */

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *data, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void putf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(buf *b, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    put(b, line, n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Sends req to the server on port p, reads the whole answer into resp. */
static void exchange(int p, const buf *req, buf *resp)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { 15, 0 };
    fuzz_check(fd >= 0, "socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    if (rc != 0 && errno == EINTR) {
        /* libFuzzer's SIGALRM (its -timeout watch) interrupted it: the
         * connection goes on being made, wait for it */
        struct pollfd pfd = { fd, POLLOUT, 0 };
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        while ((rc = poll(&pfd, 1, 15000)) < 0 && errno == EINTR)
            ;
        rc = rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && !soerr ? 0 : -1;
        errno = soerr ? soerr : ETIMEDOUT;
    }
    fuzz_check(rc == 0, "the ledger does not take connections any more: %s", strerror(errno));
    size_t off = 0;
    while (off < req->n) {
        ssize_t w = send(fd, req->p + off, req->n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;   /* the server may answer (413) and close before the end */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    char chunk[16384];
    for (;;) {
        ssize_t r = recv(fd, chunk, sizeof chunk, 0);
        if (r < 0 && errno == EINTR)
            continue;
        fuzz_check(r >= 0, "no answer within 15 s: %s", strerror(errno));
        if (r == 0)
            break;
        put(resp, chunk, (size_t)r);
    }
    close(fd);
}

/* The first value of header `name` in a response head, or NULL. */
static const char *resp_header(const char *head, size_t headlen, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (const char *p = head; p && p < head + headlen;) {
        const char *eol = memchr(p, '\n', (size_t)(head + headlen - p));
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            *len = (size_t)(eol - v) - (eol > v && eol[-1] == '\r');
            return v;
        }
        p = eol + 1;
    }
    return NULL;
}

/* A 200 answer to a batch is one the node's client takes: every id it
 * lists was sent, in one list only (proto_batch_result_parse). */
static void check_batch_answer(const char *req_body, size_t req_len, const char *body,
                               size_t blen)
{
    json_t *rq = json_loadb(req_body, req_len, JSON_REJECT_DUPLICATES, NULL);
    json_t *an = json_loadb(body, blen, 0, NULL);
    const json_t *recs = json_object_get(rq, "records");
    size_t n = json_array_size(recs);
    meter_sync_record *sent = calloc(n ? n : 1, sizeof *sent);
    if (!sent)
        abort();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(recs, i), "id"));
        if (id && proto_valid_record_id(id))
            snprintf(sent[k++].id, sizeof sent->id, "%s", id);
    }
    proto_batch_result res;
    char err[PROTO_ERRMAX];
    fuzz_check(proto_batch_result_parse(an, sent, k, &res, err) == PROTO_OK,
               "the client would refuse the ledger's batch answer: %s", err);
    proto_batch_result_free(&res);
    free(sent);
    json_decref(an);
    json_decref(rq);
}

/* Checks one answer to a request for `target`. */
static void check_answer(const buf *resp, const char *method, const char *target,
                         int want_answer, const char *req_body, size_t req_len)
{
    fuzz_check(resp->n > 0 || !want_answer, "no answer at all to %s", target);
    if (resp->n == 0)
        return;   /* a chunked body over the limit: closed without an answer */
    int status = 0;
    fuzz_check(sscanf(resp->p, "HTTP/1.%*d %d", &status) == 1 && status >= 100 && status < 600,
               "not an HTTP answer: %.80s", resp->p);
    const char *end = strstr(resp->p, "\r\n\r\n");
    fuzz_check(end != NULL, "answer without the end of its head");
    size_t headlen = (size_t)(end - resp->p) + 2;
    const char *body = end + 4;
    size_t blen = resp->n - (size_t)(body - resp->p);
    fuzz_check(status != 500, "500 for %s: %.*s", target, (int)(blen > 300 ? 300 : blen), body);

    if (strcmp(method, "HEAD") == 0)
        return;   /* the head of a GET, without its body */
    size_t ctlen = 0;
    const char *ct = resp_header(resp->p, headlen, "Content-Type", &ctlen);
    int json = ct && ctlen >= 16 && strncmp(ct, "application/json", 16) == 0;
    if (status >= 400 && json) {
        char code[32], message[PROTO_ERRMAX];
        fuzz_check(proto_error_parse(body, blen, code, message) == PROTO_OK,
                   "%d answer is not an error body: %.200s", status, body);
        proto_error want = status == 405 ? PROTO_ERR_BAD_REQUEST : proto_error_for_status(status);
        fuzz_check(strcmp(code, proto_error_name(want)) == 0, "%d answer says code '%s'",
                   status, code);
        fuzz_check(message[0], "%d answer without a message", status);
    } else if (status >= 400) {
        /* only libmicrohttpd itself answers errors in HTML (a request it
         * could not parse never reaches the ledger) */
        fuzz_check(!ct || strncmp(ct, "text/html", 9) == 0, "%d answer of type %.*s",
                   status, (int)ctlen, ct);
    } else if (json) {
        json_t *j = json_loadb(body, blen, 0, NULL);
        fuzz_check(json_is_object(j), "%d JSON answer does not parse: %.200s", status, body);
        json_decref(j);
        if (status == 200 && !strcmp(method, "POST") &&
            !strncmp(target, PROTO_PATH_BATCH, strlen(PROTO_PATH_BATCH)))
            check_batch_answer(req_body, req_len, body, blen);
    }
}

/* ----------------------------------------------------------- one input -- */

enum auth { A_NONE, A_NODE, A_NODE2, A_BEARER, A_ADMIN, A_STALE, A_BADSIG, A_REPLAY,
            A_NOBEARER };

static enum auth auth_of(const char *w)
{
    static const char *const names[] = { "none", "node", "node2", "bearer", "admin", "stale",
                                         "badsig", "replay", "nobearer" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(w, names[i]) == 0)
            return (enum auth)i;
    return A_NONE;
}

/* Whether the target names a node endpoint (as written: a percent-encoded
 * path is not recognised here, which only skips a check). */
static int node_endpoint(const char *target)
{
    size_t n = strcspn(target, "?");
    if (n == strlen(PROTO_PATH_BATCH) && !strncmp(target, PROTO_PATH_BATCH, n))
        return 1;
    const char *pre = "/v1/nodes/", *suf = "/packs";
    size_t pn = strlen(pre), sn = strlen(suf);
    return n > pn + sn && !strncmp(target, pre, pn) && !strncmp(target + n - sn, suf, sn) &&
           !memchr(target + pn, '/', n - pn - sn);
}

/* The X-Meter-* headers of a signed request. */
static void sign(buf *req, const char *node, const char *sec, const char *method,
                 const char *target, int64_t t, const char *nonce, const char *body, size_t blen)
{
    char sig[65];
    fuzz_check(proto_sign(sec, method, target, t, nonce, body, blen, sig) == PROTO_OK,
               "cannot sign");
    putf(req, "%s: %s\r\n%s: %" PRId64 "\r\n%s: %s\r\n%s: %s\r\n", PROTO_HDR_NODE, node,
         PROTO_HDR_TIME, t, PROTO_HDR_NONCE, nonce, PROTO_HDR_SIGNATURE, sig);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (++runs % 4096 == 0) {
        stop();
        start();
    }
    fuzz_in in;
    fuzz_in_init(&in, data, size);
    char *first = fuzz_field(&in, '\n');
    if (!first)
        return 0;
    char *save = NULL;
    const char *aw = strtok_r(first, " ", &save);
    const char *method = strtok_r(NULL, " ", &save);
    const char *target = strtok_r(NULL, " ", &save);
    if (!aw || !method || !target || strpbrk(method, "\r") || strpbrk(target, "\r")) {
        fuzz_fields_free(&in);
        return 0;
    }
    enum auth auth = auth_of(aw);

    buf hdrs = { 0 };
    int has_ct = 0, has_te = 0;
    for (char *h; hdrs.n < 16384 && (h = fuzz_field(&in, '\n')) && *h;) {
        char *o = h;   /* drop CRs: each line stays one header line */
        for (char *p = h; *p; p++)
            if (*p != '\r')
                *o++ = *p;
        *o = '\0';
        if (!*h)
            break;
        has_ct |= strncasecmp(h, "Content-Type:", 13) == 0;
        has_te |= strncasecmp(h, "Transfer-Encoding:", 18) == 0;
        putf(&hdrs, "%.1000s\r\n", h);
    }
    size_t blen;
    const char *body = fuzz_rest(&in, &blen);

    buf req = { 0 };
    put(&req, method, strlen(method));   /* whole, however long (putf cuts at 1 KiB) */
    put(&req, " ", 1);
    put(&req, target, strlen(target));
    putf(&req, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if (blen || !strcmp(method, "POST"))
        putf(&req, "Content-Length: %zu\r\n", blen);
    if (blen && !has_ct)
        putf(&req, "Content-Type: application/json\r\n");
    int64_t now_s = (int64_t)time(NULL);
    char nonce[40];
    snprintf(nonce, sizeof nonce, "%08x%024lx", (unsigned)getpid(), ++nonce_seq);
    int which = auth == A_NOBEARER;   /* the server without --allow-bearer */
    switch (auth) {
    case A_NODE:
    case A_REPLAY:
        sign(&req, NODE, secret, method, target, now_s, nonce, body, blen);
        break;
    case A_NODE2:
        sign(&req, NODE2, secret2, method, target, now_s, nonce, body, blen);
        break;
    case A_STALE:
        sign(&req, NODE, secret, method, target, now_s - 1000, nonce, body, blen);
        break;
    case A_BADSIG:
        sign(&req, NODE, secret, method, target, now_s, nonce, "x", 1);
        break;
    case A_BEARER:
    case A_NOBEARER:
        putf(&req, "%s: %s%s\r\n", PROTO_HDR_AUTH, PROTO_BEARER_PREFIX, secret);
        break;
    case A_ADMIN:
        putf(&req, "%s: %s%s\r\n", PROTO_HDR_AUTH, PROTO_BEARER_PREFIX, token);
        break;
    case A_NONE:
        break;
    }
    if (hdrs.n)
        put(&req, hdrs.p, hdrs.n);
    put(&req, "\r\n", 2);
    put(&req, body, blen);

    int first_status = 0;
    for (int round = 0; round < (auth == A_REPLAY ? 2 : 1); round++) {
        buf resp = { 0 };
        exchange(port[which], &req, &resp);
        /* a body that is not the chunked encoding it claims, or chunked over
         * the limit: libmicrohttpd closes without an answer (http.c) */
        check_answer(&resp, method, target, blen <= PROTO_MAX_BODY && !has_te, body, blen);
        int status = 0;
        if (resp.n)
            sscanf(resp.p, "HTTP/1.%*d %d", &status);
        if (getenv("FUZZ_TRACE"))   /* to see what the seeds reach */
            fprintf(stderr, "fuzz_ledger_http: %s %s %s -> %d %.*s\n", aw, method, target,
                    status, (int)(resp.n > 160 ? 160 : resp.n),
                    resp.n && strstr(resp.p, "\r\n\r\n") ? strstr(resp.p, "\r\n\r\n") + 4 : "");
        if (round == 0)
            first_status = status;
        else if (first_status / 100 == 2 && node_endpoint(target))
            fuzz_check(status == 401, "a replayed node request got %d", status);
        free(resp.p);
    }
    free(req.p);
    free(hdrs.p);
    fuzz_fields_free(&in);
    return 0;
}
