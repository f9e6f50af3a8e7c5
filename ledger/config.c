/*
 * config.c — reading meter-ledgerd's options from argv and a config file.
 *
 * Both go through one table of options, so the file accepts exactly the
 * long option names and every value is checked the same way.  The command
 * line is read twice: first only for --config (the file is loaded), then
 * fully, so its options override the file's.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "protocol.h"

enum kind { K_STR, K_BOOL, K_SIZE, K_INT, K_FLAG };

struct opt {
    const char *name;
    enum kind kind;
    size_t off;              /* offset of the field in struct ledger_config */
    long long min, max;      /* K_SIZE / K_INT */
};

#define OFF(f) offsetof(struct ledger_config, f)
static const struct opt opts[] = {
    { "listen", K_STR, OFF(listen), 0, 0 },
    { "db", K_STR, OFF(db), 0, 0 },
    { "pg", K_STR, OFF(pg), 0, 0 },
    { "tls-cert", K_STR, OFF(tls_cert), 0, 0 },
    { "tls-key", K_STR, OFF(tls_key), 0, 0 },
    { "console-dir", K_STR, OFF(console_dir), 0, 0 },
    { "allow-bearer", K_BOOL, OFF(allow_bearer), 0, 0 },
    { "max-body", K_SIZE, OFF(max_body), 1024, 64LL * 1024 * 1024 },
    { "max-body-total", K_SIZE, OFF(max_body_total), 1024, 1LL << 30 },
    { "max-records", K_INT, OFF(max_records), 1, PROTO_MAX_BATCH },
    { "max-connections-per-ip", K_INT, OFF(max_per_ip), 1, LEDGER_MAX_CONNECTIONS },
    { "request-deadline", K_INT, OFF(request_deadline_s), 1, 3600 },
    { "shutdown-timeout", K_INT, OFF(shutdown_timeout_s), 0, 3600 },
    { "verbose", K_BOOL, OFF(verbose), 0, 0 },
    { "lease-ttl", K_INT, OFF(lease_ttl_s), 1, 86400 },
    { "lease-max-minutes", K_INT, OFF(lease_max_minutes), 1, METER_PACK_MINUTES_MAX },
    { "leases-per-node", K_INT, OFF(leases_per_node), 1, 100000 },
    { NULL, 0, 0, 0, 0 },
};

static const struct opt *find_opt(const char *name, size_t len)
{
    for (const struct opt *o = opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        *out = 1;
    else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
             !strcasecmp(v, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}

/* Sets one option from its text value; where names the source in errors. */
static int set_opt(struct ledger_config *cfg, const struct opt *o, const char *v,
                   const char *where, char err[METER_ERRMAX])
{
    char *base = (char *)cfg;
    switch (o->kind) {
    case K_STR: {
        if (!*v) {
            snprintf(err, METER_ERRMAX, "%s%s needs a value", where, o->name);
            return -1;
        }
        char **slot = (char **)(base + o->off);
        char *copy = strdup(v);
        if (!copy) {
            snprintf(err, METER_ERRMAX, "out of memory");
            return -1;
        }
        free(*slot);
        *slot = copy;
        return 0;
    }
    case K_BOOL:
    case K_FLAG:
        if (parse_bool(v, (int *)(base + o->off)) != 0) {
            snprintf(err, METER_ERRMAX, "%s%s must be true or false, not '%s'", where, o->name, v);
            return -1;
        }
        return 0;
    default: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno || x < o->min || x > o->max || !isdigit((unsigned char)*v)) {
            snprintf(err, METER_ERRMAX, "%s%s must be an integer from %lld to %lld, not '%s'",
                     where, o->name, o->min, o->max, v);
            return -1;
        }
        if (o->kind == K_SIZE)
            *(size_t *)(base + o->off) = (size_t)x;
        else
            *(int *)(base + o->off) = (int)x;
        return 0;
    }
    }
}

/* meter_conf_read's set(): one line of the --config file; a key may spell
 * its dashes as underscores (max_body and max-body alike). */
static int set_from_file(void *cfg, const char *key, const char *value, char err[METER_ERRMAX])
{
    char name[64];
    size_t len = strlen(key);
    snprintf(name, sizeof name, "%s", key);
    for (char *p = name; *p; p++)
        if (*p == '_')
            *p = '-';
    const struct opt *o = len < sizeof name ? find_opt(name, len) : NULL;
    if (!o) {
        snprintf(err, METER_ERRMAX, "unknown key '%.60s'", name);
        return -1;
    }
    return set_opt(cfg, o, value, "", err);
}

static int load_file(struct ledger_config *cfg, const char *path, char err[METER_ERRMAX])
{
    return meter_conf_read(path, 4096, set_from_file, cfg, err) == METER_OK ? 0 : -1;
}

static void set_defaults(struct ledger_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_body = PROTO_MAX_BODY;
    cfg->max_body_total = LEDGER_DEFAULT_BODY_TOTAL;
    cfg->max_records = PROTO_MAX_BATCH;
    cfg->max_per_ip = LEDGER_DEFAULT_PER_IP;
    cfg->request_deadline_s = LEDGER_DEFAULT_DEADLINE_S;
    cfg->shutdown_timeout_s = 30;
    cfg->lease_ttl_s = LEDGER_DEFAULT_LEASE_TTL_S;
    cfg->lease_max_minutes = LEDGER_DEFAULT_LEASE_MAX_MIN;
    cfg->leases_per_node = LEDGER_DEFAULT_LEASES_PER_NODE;
}

/* Walks argv: options into cfg (all of them, or only --config), other
 * words into cfg->args. */
static int parse_argv(struct ledger_config *cfg, int argc, char **argv, int only_config,
                      char err[METER_ERRMAX])
{
    int words = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            for (i++; i < argc; i++)
                if (!only_config) {
                    if (words == 4) {
                        snprintf(err, METER_ERRMAX, "too many arguments");
                        return -1;
                    }
                    cfg->args[words++] = argv[i];
                }
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (!only_config) {
                if (words == 4) {
                    snprintf(err, METER_ERRMAX, "too many arguments ('%s')", a);
                    return -1;
                }
                cfg->args[words++] = argv[i];
            }
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cfg->help = 1;
            continue;
        }
        if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            cfg->version = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, METER_ERRMAX, "unknown option '%s' (see --help)", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const char *val = eq ? eq + 1 : NULL;
        if (len == 6 && !strncmp(name, "config", 6)) {
            if (!val) {
                if (i + 1 >= argc) {
                    snprintf(err, METER_ERRMAX, "--config needs a file");
                    return -1;
                }
                val = argv[++i];
            }
            if (only_config) {
                free(cfg->config_file);
                if (!(cfg->config_file = strdup(val))) {
                    snprintf(err, METER_ERRMAX, "out of memory");
                    return -1;
                }
            }
            continue;
        }
        const struct opt *o = find_opt(name, len);
        if (!o) {
            snprintf(err, METER_ERRMAX, "unknown option '--%.*s' (see --help)", (int)len, name);
            return -1;
        }
        if (o->kind == K_BOOL && !val)
            val = "true";   /* --allow-bearer alone */
        if (!val) {
            if (i + 1 >= argc) {
                snprintf(err, METER_ERRMAX, "--%s needs a value", o->name);
                return -1;
            }
            val = argv[++i];
        }
        if (!only_config && set_opt(cfg, o, val, "--", err) != 0)
            return -1;
    }
    if (!only_config)
        cfg->nargs = words;
    return 0;
}

int config_load(struct ledger_config *cfg, int argc, char **argv, char err[METER_ERRMAX])
{
    set_defaults(cfg);
    if (parse_argv(cfg, argc, argv, 1, err) != 0)
        return -1;
    if (cfg->config_file && load_file(cfg, cfg->config_file, err) != 0)
        return -1;
    if (parse_argv(cfg, argc, argv, 0, err) != 0)
        return -1;
    if (cfg->db && cfg->pg) {
        /* the file may name one and the command line the other: the command
         * line's choice wins when it made one */
        int cli_db = 0, cli_pg = 0;
        for (int i = 1; i < argc; i++) {
            cli_db |= !strcmp(argv[i], "--db") || !strncmp(argv[i], "--db=", 5);
            cli_pg |= !strcmp(argv[i], "--pg") || !strncmp(argv[i], "--pg=", 5);
        }
        if (cli_db != cli_pg) {
            char **drop = cli_db ? &cfg->pg : &cfg->db;
            free(*drop);
            *drop = NULL;
        } else {
            snprintf(err, METER_ERRMAX, "give either --db or --pg, not both");
            return -1;
        }
    }
    if (!cfg->listen && !(cfg->listen = strdup(LEDGER_DEFAULT_LISTEN))) {
        snprintf(err, METER_ERRMAX, "out of memory");
        return -1;
    }
    if (!cfg->db && !cfg->pg) {
        const char *env = getenv("LEDGER_DB");
        if (!(cfg->db = strdup(env && *env ? env : LEDGER_DEFAULT_DB))) {
            snprintf(err, METER_ERRMAX, "out of memory");
            return -1;
        }
    }
    if (cfg->max_body_total < cfg->max_body) {
        snprintf(err, METER_ERRMAX, "max-body-total (%zu) is less than max-body (%zu): a body "
                 "of the largest size could never be read", cfg->max_body_total, cfg->max_body);
        return -1;
    }
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        snprintf(err, METER_ERRMAX, "TLS needs both --tls-cert and --tls-key");
        return -1;
    }
    char host[256];
    int port;
    if (config_split_listen(cfg->listen, host, sizeof host, &port, err) != 0)
        return -1;
    return 0;
}

void config_free(struct ledger_config *cfg)
{
    free(cfg->listen);
    free(cfg->db);
    free(cfg->pg);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->console_dir);
    free(cfg->config_file);
    memset(cfg, 0, sizeof *cfg);
}

int config_split_listen(const char *listen, char *host, size_t hostcap, int *port,
                        char err[METER_ERRMAX])
{
    const char *colon, *h = listen;
    size_t hlen;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':') {
            snprintf(err, METER_ERRMAX, "--listen '%s': expected [ADDRESS]:PORT", listen);
            return -1;
        }
        h = listen + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon || strchr(listen, ':') != colon) {
            snprintf(err, METER_ERRMAX, "--listen '%s': expected ADDRESS:PORT ([ADDRESS]:PORT for "
                     "IPv6)", listen);
            return -1;
        }
        hlen = (size_t)(colon - listen);
    }
    if (hlen == 0 || hlen >= hostcap) {
        snprintf(err, METER_ERRMAX, "--listen '%s': missing or overlong address", listen);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || errno || p < 0 || p > 65535 || !isdigit((unsigned char)colon[1])) {
        snprintf(err, METER_ERRMAX, "--listen '%s': the port must be 0 to 65535", listen);
        return -1;
    }
    *port = (int)p;
    return 0;
}
