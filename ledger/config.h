/*
 * config.h — meter-ledgerd's settings: command line and config file.
 *
 * The config file holds "key = value" lines, keys being the long option
 * names (listen, db, pg, tls-cert, tls-key, allow-bearer, max-body,
 * max-body-total, max-records, max-connections-per-ip, request-deadline,
 * console-dir, shutdown-timeout, verbose, lease-ttl, lease-max-minutes,
 * leases-per-node); '#' starts a comment line.
 * Options given on the command line win over the file.
 */
#ifndef LEDGER_CONFIG_H
#define LEDGER_CONFIG_H

#include <stddef.h>

#include "meter.h"

#define LEDGER_DEFAULT_LISTEN "127.0.0.1:8470"
#define LEDGER_DEFAULT_DB     "/var/lib/ffmeter/ledger.db"
/* Connections served at once (one thread each, see http.c); more wait in
 * the kernel's listen queue. */
#define LEDGER_MAX_CONNECTIONS 256
#define LEDGER_DEFAULT_PER_IP  32
#define LEDGER_DEFAULT_DEADLINE_S 30
#define LEDGER_DEFAULT_BODY_TOTAL ((size_t)64 * 1024 * 1024)
#define LEDGER_DEFAULT_LEASE_TTL_S   300   /* a lease lives 5 minutes past grant/renewal */
#define LEDGER_DEFAULT_LEASE_MAX_MIN 600   /* larger lease requests are cut to this */
#define LEDGER_DEFAULT_LEASES_PER_NODE 64  /* open leases one node may hold */

struct ledger_config {
    char *listen;            /* HOST:PORT, [IPv6]:PORT; port 0 = any free one */
    char *db;                /* SQLite path (when pg is NULL) */
    char *pg;                /* PostgreSQL conninfo, or NULL */
    char *tls_cert, *tls_key;
    char *console_dir;       /* serve the console from here, not the binary */
    char *config_file;
    int allow_bearer;
    size_t max_body;         /* bytes */
    size_t max_body_total;   /* bytes of request bodies held at once, all
                                connections together */
    int max_records;         /* records per batch */
    int max_per_ip;          /* connections at once from one address */
    int request_deadline_s;  /* a request must have arrived within this */
    int shutdown_timeout_s;  /* how long SIGTERM waits for in-flight requests */
    int verbose;             /* log every request */
    int lease_ttl_s;         /* seconds a lease lives from its grant or renewal */
    int lease_max_minutes;   /* the largest lease granted */
    int leases_per_node;     /* open leases one node may hold (429 beyond) */
    /* the subcommand: argv words that are not options */
    int nargs;
    char *args[4];
    int help, version;
};

/* Fills cfg from argv (and the config file that --config names).  On a
 * usage error returns -1 with a one-line message in err. */
int config_load(struct ledger_config *cfg, int argc, char **argv, char err[METER_ERRMAX]);
void config_free(struct ledger_config *cfg);

/* Parses "HOST:PORT" / "[V6]:PORT" into host and port (host without
 * brackets).  -1 with a message when malformed. */
int config_split_listen(const char *listen, char *host, size_t hostcap, int *port,
                        char err[METER_ERRMAX]);

#endif /* LEDGER_CONFIG_H */
