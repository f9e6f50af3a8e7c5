/*
 * http.c — the client's transport: one libcurl easy handle per run, signed
 * headers, TLS verification on unless --insecure, answers capped at
 * PROTO_MAX_BODY.
 *
 * Every request gets a new connection.  On a reused keep-alive connection
 * that the server closed, libcurl silently resends the request — with the
 * same nonce, which the ledger (having seen it) must refuse as a replay.
 * A fresh connection turns that case into an ordinary transport error that
 * call.c retries with a new nonce; a connect per batch costs little.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "sync_internal.h"

struct sync_http {
    CURL *curl;
    const meter_sync_config *cfg;
    char node[METER_NAME_MAX];
    char errbuf[CURL_ERROR_SIZE];
};

typedef struct sink {
    char *buf;
    size_t len, cap;
    int too_large;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    sink *s = arg;
    size_t add = size * n;
    if (add > PROTO_MAX_BODY - s->len) {   /* len ≤ PROTO_MAX_BODY always */
        s->too_large = 1;
        return 0;                          /* aborts with CURLE_WRITE_ERROR */
    }
    if (s->len + add + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + add + 1)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (!b)
            return 0;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, add);
    s->len += add;
    s->buf[s->len] = '\0';
    return add;
}

/* A second signal aborts the transfer in flight. */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt; (void)dn; (void)ut; (void)un;
    volatile sig_atomic_t *stop = arg;
    return stop && *stop >= 2;
}

int sync_http_open(const meter_sync_config *cfg, const char *node, sync_http **out,
                   char err[METER_ERRMAX])
{
    *out = NULL;
    /* not thread-safe before curl 7.84, and meter_sync_run is the only
     * caller in the process: called once per run, paired with cleanup */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, METER_ERRMAX, "cannot initialise libcurl");
        return METER_SYNC_ECONFIG;
    }
    sync_http *h = calloc(1, sizeof *h);
    if (!h || !(h->curl = curl_easy_init())) {
        free(h);
        curl_global_cleanup();
        snprintf(err, METER_ERRMAX, "cannot initialise libcurl (out of memory)");
        return METER_ENOMEM;
    }
    h->cfg = cfg;
    snprintf(h->node, sizeof h->node, "%s", node);
    *out = h;
    return METER_OK;
}

void sync_http_close(sync_http *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    free(h);
    curl_global_cleanup();
}

void sync_resp_free(sync_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

static int add_header(struct curl_slist **l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int add_header(struct curl_slist **l, const char *fmt, ...)
{
    char line[METER_SYNC_SECRET_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return -1;
    struct curl_slist *nl = curl_slist_append(*l, line);
    memset(line, 0, sizeof line);   /* may have held the bearer token */
    if (!nl)
        return -1;
    *l = nl;
    return 0;
}

/* Authentication headers (PROTOCOL.md): HMAC signature or bearer token. */
static int auth_headers(sync_http *h, struct curl_slist **l, const char *method,
                        const char *path, const char *body, size_t len, char *err)
{
    const meter_sync_config *cfg = h->cfg;
    if (add_header(l, "%s: %s", PROTO_HDR_NODE, h->node))
        return -1;
    if (cfg->bearer)
        return add_header(l, "%s: %s%s", PROTO_HDR_AUTH, PROTO_BEARER_PREFIX, cfg->secret);
    /* the ledger's clock is real: the test clock METER_NOW is not used */
    int64_t now = (int64_t)time(NULL);
    char nonce[33], sig[65];
    if (proto_nonce(nonce) != PROTO_OK ||
        proto_sign(cfg->secret, method, path, now, nonce, body, len, sig) != PROTO_OK) {
        snprintf(err, METER_ERRMAX, "cannot sign the request (libcrypto failed)");
        return -1;
    }
    if (add_header(l, "%s: %" PRId64, PROTO_HDR_TIME, now) ||
        add_header(l, "%s: %s", PROTO_HDR_NONCE, nonce) ||
        add_header(l, "%s: %s", PROTO_HDR_SIGNATURE, sig))
        return -1;
    return 0;
}

static void set_options(sync_http *h, const char *url, const char *method, const char *body,
                        size_t len, struct curl_slist *hdrs, sink *s)
{
    const meter_sync_config *cfg = h->cfg;
    CURL *c = h->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);   /* see the top of the file */
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);   /* a redirect is an error */
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ffmeter-sync/" METER_VERSION_STRING);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, cfg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, cfg->stop);
    if (cfg->cacert[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, cfg->cacert);
    if (cfg->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    }
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
}

int sync_http_do(sync_http *h, const char *method, const char *path, const char *body,
                 size_t len, sync_resp *r)
{
    memset(r, 0, sizeof *r);
    r->retry_after_ms = -1;
    char url[METER_SYNC_URL_MAX + 256];
    int n = snprintf(url, sizeof url, "%s%s", h->cfg->ledger_url, path);
    if (n < 0 || (size_t)n >= sizeof url) {
        snprintf(r->error, sizeof r->error, "request URL too long");
        return -1;
    }
    struct curl_slist *hdrs = NULL;
    int bad = add_header(&hdrs, "Accept: %s", PROTO_CONTENT_TYPE) ||
              add_header(&hdrs, "Expect:");   /* no 100-continue round trip */
    if (!bad && body)
        bad = add_header(&hdrs, "Content-Type: %s", PROTO_CONTENT_TYPE);
    if (!bad && auth_headers(h, &hdrs, method, path, body, len, r->error)) {
        curl_slist_free_all(hdrs);
        if (!r->error[0])
            snprintf(r->error, sizeof r->error, "out of memory");
        return -1;
    }
    if (bad) {
        curl_slist_free_all(hdrs);
        snprintf(r->error, sizeof r->error, "out of memory");
        return -1;
    }
    sink s = { 0 };
    h->errbuf[0] = '\0';
    set_options(h, url, method, body, len, hdrs, &s);
    CURLcode cc = curl_easy_perform(h->curl);
    /* the bearer header must not linger in freed heap memory either */
    for (struct curl_slist *p = hdrs; p; p = p->next)
        memset(p->data, 0, strlen(p->data));
    curl_slist_free_all(hdrs);

    if (cc == CURLE_OK) {
        curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &r->status);
        curl_off_t ra = 0;
        if (curl_easy_getinfo(h->curl, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
            r->retry_after_ms = ra > METER_SYNC_RETRY_AFTER_MAX_MS / 1000
                              ? METER_SYNC_RETRY_AFTER_MAX_MS : (long)ra * 1000;
        r->body = s.buf;
        r->len = s.len;
        return 0;
    }
    free(s.buf);
    r->status = 0;
    r->aborted = cc == CURLE_ABORTED_BY_CALLBACK;
    r->timed_out = cc == CURLE_OPERATION_TIMEDOUT;
    r->permanent = cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
                   cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CRL_BADFILE ||
                   cc == CURLE_SSL_ISSUER_ERROR || cc == CURLE_SSL_PINNEDPUBKEYNOTMATCH ||
                   cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL;
    if (s.too_large)
        snprintf(r->error, sizeof r->error, "answer larger than %d bytes", PROTO_MAX_BODY);
    else
        snprintf(r->error, sizeof r->error, "%s",
                 h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc));
    r->error[strcspn(r->error, "\r\n")] = '\0';
    return 0;
}
