/*
 * http_auth.c — who is asking: nodes (HMAC-signed requests, or a bearer
 * token with --allow-bearer) and admins (bearer admin tokens).
 *
 * 401 means "not authenticated": a missing or malformed header, an unknown
 * node, a bad signature, a time outside ±300 s, a replayed nonce, a wrong
 * token.  403 means "authenticated, but not allowed": a node's credentials
 * on an admin endpoint, an admin token on a node endpoint, a node acting
 * for another node (the handlers check that part).
 *
 * Order of the node checks: everything that needs no database first, then
 * the secret and the signature (constant-time compare in proto_verify),
 * and only a request whose signature is good gets its nonce stored — so
 * nobody without the secret can fill the nonce table or burn nonces.
 *
 * Two moments: a request with a body is first checked from its headers
 * alone (auth_early, before a byte of the body is read or buffered), so a
 * stranger cannot make the ledger hold megabytes: bearer tokens are checked
 * completely there, a signed request up to its signature (headers, time,
 * known node, unused nonce).  auth_node/auth_admin then run once the body
 * is in; they skip what auth_early already settled.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

/* How long a nonce is remembered: past the end of the time window on both
 * sides, with a minute to spare for clock differences between instances. */
#define NONCE_KEEP_MS ((2 * PROTO_TIME_WINDOW_S + 60) * INT64_C(1000))

#define TOKEN_MAX 256

static int parse_time(const char *s, int64_t *out)
{
    if (!s || !*s || strlen(s) > 15)
        return -1;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno)
        return -1;
    *out = v;
    return 0;
}

static int is_hex64(const char *s)
{
    if (!s || strlen(s) != PROTO_SIG_HEXLEN)
        return 0;
    for (const char *p = s; *p; p++)
        if (!isxdigit((unsigned char)*p))
            return 0;
    return 1;
}

/* The token of "Authorization: Bearer TOKEN", or NULL. */
static const char *bearer_token(request *rq)
{
    const char *h = rq_header(rq, PROTO_HDR_AUTH);
    size_t n = strlen(PROTO_BEARER_PREFIX);
    if (!h || strncasecmp(h, PROTO_BEARER_PREFIX, n) != 0)
        return NULL;
    h += n;
    while (*h == ' ')
        h++;
    return *h && strlen(h) <= TOKEN_MAX ? h : NULL;
}

/* The X-Meter-* headers of a signed request. */
struct signed_hdrs {
    const char *node, *nonce, *sig;
    int64_t t;
};

/* Reads a signed request's headers: all present, well formed, the time
 * within the window.  0, or -1 after answering 401. */
static int signed_headers(request *rq, struct signed_hdrs *h)
{
    const char *node = rq_header(rq, PROTO_HDR_NODE);
    const char *tstr = rq_header(rq, PROTO_HDR_TIME);
    const char *nonce = rq_header(rq, PROTO_HDR_NONCE);
    const char *sig = rq_header(rq, PROTO_HDR_SIGNATURE);
    if (!node || !tstr || !nonce || !sig) {
        reply_error(rq, PROTO_ERR_UNAUTHORIZED, "a signed request needs the headers %s, %s, "
                    "%s and %s (missing %s)", PROTO_HDR_NODE, PROTO_HDR_TIME, PROTO_HDR_NONCE,
                    PROTO_HDR_SIGNATURE, !node ? PROTO_HDR_NODE : !tstr ? PROTO_HDR_TIME
                                         : !nonce ? PROTO_HDR_NONCE : PROTO_HDR_SIGNATURE);
        return -1;
    }
    if (!proto_valid_node(node)) {
        reply_error(rq, PROTO_ERR_UNAUTHORIZED, "malformed %s header", PROTO_HDR_NODE);
        return -1;
    }
    if (parse_time(tstr, &h->t) != 0) {
        reply_error(rq, PROTO_ERR_UNAUTHORIZED, "malformed %s header (unix seconds expected)",
                    PROTO_HDR_TIME);
        return -1;
    }
    if (!proto_valid_nonce(nonce)) {
        reply_error(rq, PROTO_ERR_UNAUTHORIZED, "malformed %s header (%d to %d hex digits)",
                    PROTO_HDR_NONCE, PROTO_NONCE_MIN, PROTO_NONCE_MAX);
        return -1;
    }
    if (!is_hex64(sig)) {
        reply_error(rq, PROTO_ERR_UNAUTHORIZED, "malformed %s header (64 hex digits)",
                    PROTO_HDR_SIGNATURE);
        return -1;
    }
    int64_t now_s = rq->wall / 1000;
    if (!proto_time_ok(h->t, now_s)) {
        reply_error(rq, PROTO_ERR_UNAUTHORIZED, "%s %lld is %lld s from the ledger's clock "
                    "(allowed: %d s)", PROTO_HDR_TIME, (long long)h->t,
                    (long long)(h->t > now_s ? h->t - now_s : now_s - h->t), PROTO_TIME_WINDOW_S);
        return -1;
    }
    h->node = node;
    h->nonce = nonce;
    h->sig = sig;
    return 0;
}

/* The node's secret: METER_OK, or a METER_E* code after answering (401
 * for an unknown node). */
static int node_secret(request *rq, ledger_store *st, const char *node,
                       char secret[LEDGER_SECRET_HEX + 1])
{
    int rc = ledger_node_secret(st, node, secret);
    if (rc == METER_ENOTFOUND)
        reply_error(rq, PROTO_ERR_UNAUTHORIZED, "unknown node '%s'", node);
    else if (rc != METER_OK)
        reply_store_error(rq, rc);
    return rc;
}

/* The answer to a nonce check: 1 when fresh, else 0 after answering 401
 * (a replay) or the store's error. */
static int nonce_fresh(request *rq, int rc)
{
    if (rc == METER_EEXIST)
        reply_error(rq, PROTO_ERR_UNAUTHORIZED, "nonce already used: a replayed request");
    else if (rc != METER_OK)
        reply_store_error(rq, rc);
    return rc == METER_OK;
}

/* What both checks of a signed request start with: well-formed headers
 * in the time window, a store, and the named node's secret.  1 when all
 * are there, 0 after answering 401 or a store error. */
static int signed_start(request *rq, struct signed_hdrs *h, ledger_store **st,
                        char secret[LEDGER_SECRET_HEX + 1])
{
    if (signed_headers(rq, h) != 0 || !(*st = rq_store(rq)))
        return 0;
    return node_secret(rq, *st, h->node, secret) == METER_OK;
}

/* Checks a signed request.  Returns 1 (valid; node in rq->node when
 * consume, else only checked), 0 after answering 401 or a store error. */
static int check_signed(request *rq, int consume, int *valid_out)
{
    struct signed_hdrs h;
    ledger_store *st;
    char secret[LEDGER_SECRET_HEX + 1];
    *valid_out = 0;
    if (!signed_start(rq, &h, &st, secret))
        return 0;
    int good = proto_verify(secret, rq->method, rq->raw_target, h.t, h.nonce, rq->body,
                            rq->body_len, h.sig);
    memset(secret, 0, sizeof secret);
    if (!good) {
        reply_error(rq, PROTO_ERR_UNAUTHORIZED, "bad signature for node '%s'", h.node);
        return 0;
    }
    *valid_out = 1;
    if (!consume)
        return 1;
    if (!nonce_fresh(rq, ledger_node_seen(st, h.node, h.nonce, rq->wall,
                                          rq->wall + NONCE_KEEP_MS)))
        return 0;
    snprintf(rq->node, sizeof rq->node, "%s", h.node);
    return 1;
}

/* A signed request, before its body is read: everything but the signature
 * (which covers the body) — headers, time, a known node, a fresh nonce.
 * 1 when the body may be read, 0 after answering 401 or a store error. */
static int signed_early(request *rq)
{
    struct signed_hdrs h;
    ledger_store *st;
    char secret[LEDGER_SECRET_HEX + 1];
    int known = signed_start(rq, &h, &st, secret);
    memset(secret, 0, sizeof secret);   /* the signature is checked later */
    if (!known)
        return 0;
    return nonce_fresh(rq, ledger_nonce_used(st, h.node, h.nonce, rq->wall));
}

/* Which node holds this bearer token (only with --allow-bearer): 1 found,
 * 0 not, -1 after answering a store error. */
static int bearer_node(request *rq, ledger_store *st, const char *token, char node[METER_NAME_MAX])
{
    const char *named = rq_header(rq, PROTO_HDR_NODE);
    int rc;
    if (named && proto_valid_node(named)) {
        char secret[LEDGER_SECRET_HEX + 1];
        rc = ledger_node_secret(st, named, secret);
        if (rc == METER_OK) {
            int same = proto_ct_streq(secret, token);
            memset(secret, 0, sizeof secret);
            if (same)
                snprintf(node, METER_NAME_MAX, "%s", named);
            return same;
        }
    } else
        rc = ledger_node_by_secret(st, token, node);
    if (rc == METER_ENOTFOUND)
        return 0;
    if (rc != METER_OK) {
        reply_store_error(rq, rc);
        return -1;
    }
    return 1;
}

static int is_admin_token(request *rq, ledger_store *st, const char *token)
{
    char name[METER_NAME_MAX];
    int rc = ledger_admin_by_token(st, token, name);
    if (rc == METER_OK)
        return 1;
    if (rc != METER_ENOTFOUND) {
        reply_store_error(rq, rc);
        return -1;
    }
    return 0;
}

int auth_node(request *rq)
{
    if (rq->node[0])
        return 1;   /* a bearer token, checked from the headers (auth_early) */
    if (rq_header(rq, PROTO_HDR_SIGNATURE)) {
        int valid;
        return check_signed(rq, 1, &valid);
    }
    const char *token = bearer_token(rq);
    if (!token) {
        reply_error(rq, PROTO_ERR_UNAUTHORIZED, "node requests must be signed (%s, %s, %s, %s)",
                    PROTO_HDR_NODE, PROTO_HDR_TIME, PROTO_HDR_NONCE, PROTO_HDR_SIGNATURE);
        return 0;
    }
    ledger_store *st = rq_store(rq);
    if (!st)
        return 0;
    const int allow = server_config(rq->srv)->allow_bearer;
    if (allow) {
        char node[METER_NAME_MAX];
        int found = bearer_node(rq, st, token, node);
        if (found < 0)
            return 0;
        if (found) {
            int rc = ledger_node_seen(st, node, NULL, rq->wall, 0);
            if (rc != METER_OK) {
                reply_store_error(rq, rc);
                return 0;
            }
            snprintf(rq->node, sizeof rq->node, "%s", node);
            return 1;
        }
    }
    int admin = is_admin_token(rq, st, token);
    if (admin < 0)
        return 0;
    if (admin)
        reply_error(rq, PROTO_ERR_FORBIDDEN, "admin credentials cannot be used for node "
                    "requests");
    else if (!allow)
        reply_error(rq, PROTO_ERR_UNAUTHORIZED, "node requests must be signed (bearer tokens "
                    "need meter-ledgerd --allow-bearer)");
    else
        reply_error(rq, PROTO_ERR_UNAUTHORIZED, "invalid node token");
    return 0;
}

int auth_admin(request *rq)
{
    if (rq->admin[0])
        return 1;   /* checked from the headers (auth_early) */
    const char *token = bearer_token(rq);
    if (!token) {
        if (rq_header(rq, PROTO_HDR_SIGNATURE)) {
            /* a node's signed request: 403 if it is genuinely a node */
            int valid;
            if (check_signed(rq, 0, &valid) && valid)
                reply_error(rq, PROTO_ERR_FORBIDDEN, "node credentials cannot be used for admin "
                            "endpoints");
            return 0;
        }
        reply_error(rq, PROTO_ERR_UNAUTHORIZED, "admin endpoints need %s: %s<admin token>",
                    PROTO_HDR_AUTH, PROTO_BEARER_PREFIX);
        return 0;
    }
    ledger_store *st = rq_store(rq);
    if (!st)
        return 0;
    char name[METER_NAME_MAX];
    int rc = ledger_admin_by_token(st, token, name);
    if (rc == METER_OK) {
        snprintf(rq->admin, sizeof rq->admin, "%s", name);
        return 1;
    }
    if (rc != METER_ENOTFOUND) {
        reply_store_error(rq, rc);
        return 0;
    }
    char node[METER_NAME_MAX];
    rc = ledger_node_by_secret(st, token, node);
    if (rc == METER_OK)
        reply_error(rq, PROTO_ERR_FORBIDDEN, "node credentials cannot be used for admin "
                    "endpoints");
    else if (rc == METER_ENOTFOUND)
        reply_error(rq, PROTO_ERR_UNAUTHORIZED, "invalid admin token");
    else
        reply_store_error(rq, rc);
    return 0;
}

int auth_early(request *rq, int admin)
{
    /* a signature covers the body: only its headers can be checked now */
    if (rq_header(rq, PROTO_HDR_SIGNATURE) && !(admin && bearer_token(rq)))
        return signed_early(rq);
    /* a bearer token (or none) does not depend on the body: the full check */
    return admin ? auth_admin(rq) : auth_node(rq);
}
