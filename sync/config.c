/*
 * config.c — the client's settings: defaults, one key at a time, a
 * key=value file (default /etc/ffmeter/sync.conf), the secret file.
 *
 *     # /etc/ffmeter/sync.conf
 *     ledger = https://ledger.example.net:8443
 *     secret_file = /etc/ffmeter/node.secret
 *     cacert = /etc/ffmeter/ledger-ca.pem
 *     batch = 500
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "sync_internal.h"

void meter_sync_config_init(meter_sync_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->connect_timeout_ms = METER_SYNC_DEFAULT_CONNECT_MS;
    cfg->timeout_ms = METER_SYNC_DEFAULT_TIMEOUT_MS;
    cfg->batch = METER_SYNC_DEFAULT_BATCH;
    cfg->max_bytes = METER_SYNC_DEFAULT_MAX_BYTES;
    cfg->retries = METER_SYNC_DEFAULT_RETRIES;
    cfg->backoff_base_ms = METER_SYNC_BACKOFF_BASE_MS;
    cfg->backoff_cap_ms = METER_SYNC_BACKOFF_CAP_MS;
    cfg->leases = -1;
    cfg->lease_period_ms = METER_SYNC_LEASE_PERIOD_MS;
}

void meter_sync_config_clear(meter_sync_config *cfg)
{
    OPENSSL_cleanse(cfg->secret, sizeof cfg->secret);
}

static int bad(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, METER_ERRMAX, fmt, ap);
    va_end(ap);
    return METER_SYNC_ECONFIG;
}

static int parse_long(const char *key, const char *v, long min, long max, long *out, char *err)
{
    char *end;
    errno = 0;
    long x = isdigit((unsigned char)v[0]) ? strtol(v, &end, 10) : (end = (char *)v, 0);
    if (end == v || *end || errno)
        return bad(err, "%s: '%s' is not a whole number", key, v);
    if (x < min || x > max)
        return bad(err, "%s: %ld is out of range (%ld to %ld)", key, x, min, max);
    *out = x;
    return METER_OK;
}

static int parse_bool(const char *key, const char *v, int *out, char *err)
{
    if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "on"))
        *out = 1;
    else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "off"))
        *out = 0;
    else
        return bad(err, "%s: '%s' is not yes or no", key, v);
    return METER_OK;
}

static int set_ledger(meter_sync_config *cfg, const char *v, char *err)
{
    size_t n = strlen(v);
    size_t scheme = !strncmp(v, "https://", 8) ? 8 : !strncmp(v, "http://", 7) ? 7 : 0;
    if (!scheme)
        return bad(err, "ledger: '%s' is not an http:// or https:// URL", v);
    if (n >= sizeof cfg->ledger_url)
        return bad(err, "ledger: URL too long (at most %zu bytes)", sizeof cfg->ledger_url - 1);
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return bad(err, "ledger: the URL contains a blank or control character");
    if (strchr(v, '?') || strchr(v, '#'))
        return bad(err, "ledger: the URL must not have a query or fragment");
    if (!v[scheme] || v[scheme] == '/')
        return bad(err, "ledger: '%s' has no host", v);
    memcpy(cfg->ledger_url, v, n + 1);
    /* the API paths start with "/": no trailing slash on the base */
    while (n > scheme && cfg->ledger_url[n - 1] == '/')
        cfg->ledger_url[--n] = '\0';
    return METER_OK;
}

int meter_sync_read_secret(meter_sync_config *cfg, const char *path, char err[METER_ERRMAX])
{
    FILE *f = fopen(path, "r");
    if (!f)
        return bad(err, "secret file %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & 077) && cfg->log)
        cfg->log(cfg->log_ctx, "warning: the secret file is readable by other users "
                               "(chmod 600 it)");
    char buf[METER_SYNC_SECRET_MAX + 4];
    char *line = fgets(buf, sizeof buf, f);
    fclose(f);
    if (!line) {
        OPENSSL_cleanse(buf, sizeof buf);
        return bad(err, "secret file %s is empty", path);
    }
    size_t n = strlen(buf);
    /* a line that fills the buffer without its end goes on past it */
    int cut = n == sizeof buf - 1 && buf[n - 1] != '\n';
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    size_t lead = strspn(buf, " \t");
    int rc = METER_OK;
    /* what is left between the blanks must fit cfg->secret: a line that
     * ends within the buffer may still hold a secret of a few bytes more */
    if (cut || n - lead > METER_SYNC_SECRET_MAX)
        rc = bad(err, "secret file %s: the secret is longer than %d bytes", path,
                 METER_SYNC_SECRET_MAX);
    else if (n == lead)
        rc = bad(err, "secret file %s is empty", path);
    else {
        for (size_t i = lead; i < n && rc == METER_OK; i++)
            if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
                rc = bad(err, "secret file %s: the secret contains a control character", path);
        if (rc == METER_OK)
            memcpy(cfg->secret, buf + lead, n - lead + 1);
    }
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

int meter_sync_config_set(meter_sync_config *cfg, const char *key, const char *v,
                          char err[METER_ERRMAX])
{
    long x;
    int rc;
    if (!v)
        v = "";
    if (!strcmp(key, "ledger"))
        return set_ledger(cfg, v, err);
    if (!strcmp(key, "node")) {
        if (!proto_valid_node(v))
            return bad(err, "node: '%s' is not a node name (letters, digits, '.', '_', '-', "
                       "':'; at most %d bytes)", v, METER_NAME_MAX - 1);
        snprintf(cfg->node, sizeof cfg->node, "%s", v);
        return METER_OK;
    }
    if (!strcmp(key, "secret_file"))
        return meter_sync_read_secret(cfg, v, err);
    if (!strcmp(key, "auth")) {
        if (strcmp(v, "hmac") && strcmp(v, "bearer"))
            return bad(err, "auth: '%s' is not hmac or bearer", v);
        cfg->bearer = !strcmp(v, "bearer");
        return METER_OK;
    }
    if (!strcmp(key, "cacert")) {
        if (!*v)
            return bad(err, "cacert: empty path");
        if (access(v, R_OK) != 0)
            return bad(err, "cacert: cannot read %s: %s", v, strerror(errno));
        if (strlen(v) >= sizeof cfg->cacert)
            return bad(err, "cacert: path too long");
        strcpy(cfg->cacert, v);
        return METER_OK;
    }
    if (!strcmp(key, "insecure"))
        return parse_bool(key, v, &cfg->insecure, err);
    if (!strcmp(key, "pull")) {
        int pull;
        if ((rc = parse_bool(key, v, &pull, err)) == METER_OK)
            cfg->no_pull = !pull;
        return rc;
    }
    if (!strcmp(key, "leases"))
        return parse_bool(key, v, &cfg->leases, err);
    if (!strcmp(key, "batch")) {
        if ((rc = parse_long(key, v, 1, PROTO_MAX_BATCH, &x, err)) == METER_OK)
            cfg->batch = (size_t)x;
        return rc;
    }
    if (!strcmp(key, "max_bytes")) {
        if ((rc = parse_long(key, v, 1024, PROTO_MAX_BODY, &x, err)) == METER_OK)
            cfg->max_bytes = (size_t)x;
        return rc;
    }
    if (!strcmp(key, "retries")) {
        if ((rc = parse_long(key, v, 0, 100, &x, err)) == METER_OK)
            cfg->retries = (int)x;
        return rc;
    }
    if (!strcmp(key, "timeout")) {
        if ((rc = parse_long(key, v, 1, 3600, &x, err)) == METER_OK)
            cfg->timeout_ms = x * 1000;
        return rc;
    }
    if (!strcmp(key, "connect_timeout")) {
        if ((rc = parse_long(key, v, 1, 600, &x, err)) == METER_OK)
            cfg->connect_timeout_ms = x * 1000;
        return rc;
    }
    /* the backoff's first step and ceiling (milliseconds): for tests and
     * for farms that want to back off further */
    if (!strcmp(key, "backoff_base_ms")) {
        if ((rc = parse_long(key, v, 1, 600000, &x, err)) == METER_OK)
            cfg->backoff_base_ms = x;
        return rc;
    }
    if (!strcmp(key, "backoff_cap_ms")) {
        if ((rc = parse_long(key, v, 1, 3600000, &x, err)) == METER_OK)
            cfg->backoff_cap_ms = x;
        return rc;
    }
    return bad(err, "unknown setting '%s' (ledger, node, secret_file, auth, cacert, insecure, "
               "batch, max_bytes, retries, timeout, connect_timeout, pull, leases, "
               "backoff_base_ms, backoff_cap_ms)", key);
}

/* meter_conf_read's set(): one setting of the file. */
static int set_from_file(void *cfg, const char *key, const char *value, char err[METER_ERRMAX])
{
    return meter_sync_config_set(cfg, key, value, err);
}

int meter_sync_config_load(meter_sync_config *cfg, const char *path, char err[METER_ERRMAX])
{
    return meter_conf_read(path, 8192, set_from_file, cfg, err) == METER_OK
        ? METER_OK : METER_SYNC_ECONFIG;
}

int meter_sync_config_check(const meter_sync_config *cfg, char err[METER_ERRMAX])
{
    if (!cfg->ledger_url[0])
        return bad(err, "no ledger URL (--ledger URL, or ledger = URL in the config file)");
    if (!cfg->secret[0])
        return bad(err, "no node secret (--secret-file FILE, $METER_SYNC_SECRET, or "
                   "secret_file = FILE in the config file)");
    if (cfg->batch < 1 || cfg->batch > PROTO_MAX_BATCH)
        return bad(err, "batch must be 1 to %d records", PROTO_MAX_BATCH);
    if (cfg->max_bytes < 1024 || cfg->max_bytes > PROTO_MAX_BODY)
        return bad(err, "max_bytes must be 1024 to %d", PROTO_MAX_BODY);
    if (cfg->retries < 0 || cfg->timeout_ms < 1 || cfg->connect_timeout_ms < 1)
        return bad(err, "retries, timeout and connect_timeout must be positive");
    if (cfg->lease_period_ms < 1000 || cfg->lease_period_ms > 86400000L)
        return bad(err, "the lease period must be 1 s to 1 day");
    return METER_OK;
}
