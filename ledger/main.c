/*
 * main.c — meter-ledgerd's entry: options, the administrative subcommands
 * (migrate, admin add, node add) and the server's life (signals, clean
 * shutdown).
 *
 *   meter-ledgerd [OPTIONS]                 serve
 *   meter-ledgerd [OPTIONS] migrate         create / upgrade the schema
 *   meter-ledgerd [OPTIONS] admin add NAME  print a new admin token once
 *   meter-ledgerd [OPTIONS] node add NAME   print a new node secret once
 *   meter-ledgerd [OPTIONS] node bind NAME PREFIX  bind a record-id prefix
 *   meter-ledgerd [OPTIONS] account add NAME | account list
 *   meter-ledgerd [OPTIONS] verify          check the ledger's invariants
 *
 * Exit codes: 0 ok, 1 failure (database, listening, …; verify: a
 * violation), 2 usage error.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "http.h"
#include "pool.h"
#include "protocol.h"
#include "store.h"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: meter-ledgerd [OPTIONS]                 run the ledger server\n"
        "       meter-ledgerd [OPTIONS] migrate         create or upgrade the database schema\n"
        "       meter-ledgerd [OPTIONS] admin add NAME  create an admin; prints its token once\n"
        "       meter-ledgerd [OPTIONS] node add NAME   create a node; prints its secret once\n"
        "       meter-ledgerd [OPTIONS] node bind NAME PREFIX\n"
        "                     let NAME send record ids PREFIX-… (a re-created node database;\n"
        "                     PREFIX is its node_id: meterctl config get node_id)\n"
        "       meter-ledgerd [OPTIONS] account add NAME  create an account (a customer)\n"
        "       meter-ledgerd [OPTIONS] account list      accounts and their minutes per class\n"
        "       meter-ledgerd [OPTIONS] verify          check the ledger's invariants: exit 0,\n"
        "                     or 1 with one line per violation\n"
        "       meter-ledgerd --help | --version\n"
        "\n"
        "The central ledger of an ffmeter farm: nodes push their usage records\n"
        "(stored exactly once) and pull the packs assigned to them; admins buy,\n"
        "assign, freeze and refund packs and read usage (JSON API under /v1/, web\n"
        "console at /).  See meter-ledgerd(8) and sync/PROTOCOL.md.\n"
        "\n"
        "Options (also as \"key = value\" lines in --config FILE, without the dashes):\n"
        "  --listen ADDR:PORT    listen here (default %s; [::1]:PORT for IPv6;\n"
        "                        port 0 picks a free port, printed on stderr)\n"
        "  --db PATH             SQLite database (default $LEDGER_DB, else %s)\n"
        "  --pg CONNINFO         PostgreSQL instead, e.g. 'postgresql://user@host/db';\n"
        "                        several instances may share one database\n"
        "  --config FILE         read options from FILE (the command line wins)\n"
        "  --tls-cert FILE --tls-key FILE   serve HTTPS with this PEM certificate and key\n"
        "  --allow-bearer        also accept 'Authorization: Bearer <node secret>' from nodes\n"
        "  --max-body BYTES      largest request body (default %d; 413 beyond)\n"
        "  --max-body-total BYTES  request bodies held at once, all connections\n"
        "                        together (default %zu; 503 + Retry-After beyond)\n"
        "  --max-records N       most records per batch (default and maximum %d)\n"
        "  --max-connections-per-ip N  connections at once from one address\n"
        "                        (default %d, at most %d)\n"
        "  --request-deadline S  a request must arrive within S seconds, however\n"
        "                        steadily it trickles in (default %d)\n"
        "  --console-dir DIR     serve the console from DIR instead of the built-in copy\n"
        "  --shutdown-timeout S  on SIGTERM, wait up to S seconds for requests in flight (30)\n"
        "  --verbose             log every request\n"
        "  --lease-ttl S         a lease lives S seconds from its grant or renewal (%d)\n"
        "  --lease-max-minutes N the most a node holds of one account and class in open\n"
        "                        leases; larger asks are cut (%d)\n"
        "  --leases-per-node N   open leases one node may hold; 429 beyond (%d)\n"
        "  -h, --help            this help\n"
        "  -V, --version         print the version\n"
        "\n"
        "The server migrates the schema when it starts; it stops cleanly on SIGTERM\n"
        "or SIGINT (no new connections, requests in flight finished).\n"
        "Exit codes: 0 ok; 1 failure; 2 usage error.\n",
        LEDGER_DEFAULT_LISTEN, LEDGER_DEFAULT_DB, PROTO_MAX_BODY, LEDGER_DEFAULT_BODY_TOTAL,
        PROTO_MAX_BATCH, LEDGER_DEFAULT_PER_IP, LEDGER_MAX_CONNECTIONS,
        LEDGER_DEFAULT_DEADLINE_S, LEDGER_DEFAULT_LEASE_TTL_S, LEDGER_DEFAULT_LEASE_MAX_MIN,
        LEDGER_DEFAULT_LEASES_PER_NODE);
}

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "meter-ledgerd: %s\n", line);
    return code;
}

static int open_migrated(const struct ledger_config *cfg, ledger_store **st)
{
    char err[METER_ERRMAX];
    int rc = ledger_store_open(cfg->pg ? NULL : cfg->db, cfg->pg, LEDGER_OPEN_MIGRATE, st, err);
    if (rc != METER_OK) {
        fail(1, "%s: %s", cfg->pg ? "PostgreSQL" : cfg->db, err);
        return -1;
    }
    return 0;
}

static int cmd_migrate(const struct ledger_config *cfg)
{
    ledger_store *st;
    if (open_migrated(cfg, &st) != 0)
        return 1;
    int v = 0;
    ledger_store_schema(st, &v);
    printf("schema version %d (%s)\n", v, ledger_store_backend(st));
    ledger_store_close(st);
    return 0;
}

/* admin add NAME / node add NAME: the credential goes to stdout, alone on
 * its line, so scripts can capture it; it is never shown again. */
static int cmd_add(const struct ledger_config *cfg, const char *what, const char *name)
{
    if (!proto_valid_node(name))
        return fail(2, "%s name '%.60s': use 1 to %d letters, digits, '.', '_', '-', ':'", what,
                    name, METER_NAME_MAX - 1);
    ledger_store *st;
    if (open_migrated(cfg, &st) != 0)
        return 1;
    char secret[LEDGER_SECRET_HEX + 1];
    ledger_actor cli = { "cli", NULL };
    int rc = !strcmp(what, "admin") ? ledger_admin_add(st, name, meter_now(), secret)
                                    : ledger_node_add(st, name, meter_now(), &cli, secret);
    int out = 0;
    if (rc != METER_OK)
        out = fail(1, "%s", ledger_store_errmsg(st));
    else
        printf("%s\n", secret);
    memset(secret, 0, sizeof secret);
    ledger_store_close(st);
    return out;
}

/* node bind NAME PREFIX: lets NAME send records whose ids start with
 * PREFIX- (a re-created node database; its node_id). */
static int cmd_bind(const struct ledger_config *cfg, const char *name, const char *prefix)
{
    ledger_store *st;
    if (open_migrated(cfg, &st) != 0)
        return 1;
    ledger_actor cli = { "cli", NULL };
    int rc = ledger_node_bind(st, name, prefix, meter_now(), &cli);
    char *all = NULL;
    if (rc == METER_OK)
        rc = ledger_node_prefixes(st, name, &all);
    int out = rc == METER_OK ? 0 : fail(rc == METER_EINVAL ? 2 : 1, "%s",
                                        ledger_store_errmsg(st));
    if (rc == METER_OK)
        printf("node %s sends record ids of: %s\n", name, all);
    free(all);
    ledger_store_close(st);
    return out;
}

/* account add NAME / account list. */
static int cmd_account(const struct ledger_config *cfg, const char *name)
{
    if (name && !proto_valid_node(name))
        return fail(2, "account name '%.60s': use 1 to %d letters, digits, '.', '_', '-', ':'",
                    name, METER_NAME_MAX - 1);
    ledger_store *st;
    if (open_migrated(cfg, &st) != 0)
        return 1;
    ledger_actor cli = { "cli", NULL };
    int out = 0;
    if (name) {
        if (ledger_account_add(st, name, meter_now(), &cli) != METER_OK)
            out = fail(1, "%s", ledger_store_errmsg(st));
        else
            printf("account %s added\n", name);
    } else {
        ledger_account *rows;
        size_t n;
        if (ledger_account_list(st, meter_now(), &rows, &n) != METER_OK)
            out = fail(1, "%s", ledger_store_errmsg(st));
        else {
            printf("%-24s %6s %16s %16s %16s\n", "ACCOUNT", "PACKS", "GENERAL_MIN", "TSC_MIN",
                   "RESERVED_MIN");
            for (size_t i = 0; i < n; i++) {
                char g[32], t[32], r[32];
                meter_format_minutes(rows[i].cls[METER_CLASS_GENERAL].remaining_us, g);
                meter_format_minutes(rows[i].cls[METER_CLASS_TSC].remaining_us, t);
                meter_format_minutes(rows[i].cls[METER_CLASS_GENERAL].reserved_us +
                                     rows[i].cls[METER_CLASS_TSC].reserved_us, r);
                printf("%-24s %6lld %16s %16s %16s\n", rows[i].name, (long long)rows[i].packs,
                       g, t, r);
            }
            free(rows);
        }
    }
    ledger_store_close(st);
    return out;
}

/* verify: one line per violation on stdout, exit 1 when there is any. */
static int cmd_verify(const struct ledger_config *cfg)
{
    ledger_store *st;
    if (open_migrated(cfg, &st) != 0)
        return 1;
    char **lines;
    size_t n;
    int out;
    if (ledger_verify(st, meter_now(), &lines, &n) != METER_OK)
        out = fail(1, "verify: %s", ledger_store_errmsg(st));
    else {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", lines[i]);
        if (n == 0)
            printf("ledger verified: every invariant holds\n");
        out = n ? 1 : 0;
        ledger_verify_free(lines, n);
    }
    ledger_store_close(st);
    return out;
}

static int serve(const struct ledger_config *cfg)
{
    ledger_store *st;
    if (open_migrated(cfg, &st) != 0)
        return 1;
    ledger_store_close(st);
    store_pool *pool;
    if (pool_create(cfg->pg ? NULL : cfg->db, cfg->pg, 32, &pool) != METER_OK)
        return fail(1, "out of memory");

    /* Signals: blocked in every thread (MHD's inherit this mask) and taken
     * synchronously here. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[METER_ERRMAX];
    server *srv = server_start(cfg, pool, err);
    if (!srv) {
        pool_destroy(pool);
        return fail(1, "%s", err);
    }
    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    ledger_log("%s received: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server_stop(srv, cfg->shutdown_timeout_s);
    pool_destroy(pool);
    ledger_log("stopped");
    return 0;
}

int main(int argc, char **argv)
{
    struct ledger_config cfg;
    char err[METER_ERRMAX];
    if (config_load(&cfg, argc, argv, err) != 0) {
        config_free(&cfg);
        return fail(2, "%s", err);
    }
    int rc;
    const char *a0 = cfg.nargs > 0 ? cfg.args[0] : NULL;
    const char *a1 = cfg.nargs > 1 ? cfg.args[1] : NULL;
    if (cfg.help) {
        usage(stdout);
        rc = 0;
    } else if (cfg.version) {
        printf("meter-ledgerd %s (protocol v%d, schema %d)\n", METER_VERSION_STRING,
               PROTO_VERSION, LEDGER_SCHEMA_VERSION);
        rc = 0;
    } else if (!a0) {
        json_object_seed(0);   /* before any thread: jansson's hash seed */
        rc = serve(&cfg);
    } else if (!strcmp(a0, "migrate") && cfg.nargs == 1) {
        rc = cmd_migrate(&cfg);
    } else if ((!strcmp(a0, "admin") || !strcmp(a0, "node")) && a1 && !strcmp(a1, "add") &&
               cfg.nargs == 3) {
        rc = cmd_add(&cfg, a0, cfg.args[2]);
    } else if (!strcmp(a0, "node") && a1 && !strcmp(a1, "bind") && cfg.nargs == 4) {
        rc = cmd_bind(&cfg, cfg.args[2], cfg.args[3]);
    } else if (!strcmp(a0, "account") && a1 && !strcmp(a1, "add") && cfg.nargs == 3) {
        rc = cmd_account(&cfg, cfg.args[2]);
    } else if (!strcmp(a0, "account") && a1 && !strcmp(a1, "list") && cfg.nargs == 2) {
        rc = cmd_account(&cfg, NULL);
    } else if (!strcmp(a0, "account")) {
        rc = fail(2, "usage: meter-ledgerd account add NAME | account list");
    } else if (!strcmp(a0, "verify") && cfg.nargs == 1) {
        rc = cmd_verify(&cfg);
    } else if (!strcmp(a0, "node") && a1 && !strcmp(a1, "bind")) {
        rc = fail(2, "usage: meter-ledgerd node bind NAME PREFIX");
    } else if ((!strcmp(a0, "admin") || !strcmp(a0, "node")) && (!a1 || !strcmp(a1, "add"))) {
        rc = fail(2, "usage: meter-ledgerd %s add NAME", a0);
    } else {
        rc = fail(2, "unknown command '%s' (serve with no command; or migrate, admin add NAME, "
                  "node add NAME, node bind NAME PREFIX, account add NAME, account list, "
                  "verify; see --help)", a0);
    }
    config_free(&cfg);
    return rc;
}
