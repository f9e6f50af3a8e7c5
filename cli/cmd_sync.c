/*
 * cmd_sync.c — meterctl sync | sync status | sync quarantine | sync release:
 * the node side of the central ledger (sync/PROTOCOL.md).
 *
 * `meterctl sync` pushes the whole outbox and pulls this node's packs, then
 * exits (cron, systemd timers); with --watch SECONDS it repeats until
 * SIGTERM or SIGINT.  Settings come from, lowest first: the config file
 * (--config FILE, else $METER_SYNC_CONF, else /etc/ffmeter/sync.conf when
 * it exists), $METER_SYNC_SECRET, then the command line.  The secret is
 * never an argument (it would show in ps): a file or the environment.
 *
 * Built without the sync client (no libcurl/libcrypto, METERCTL_NO_SYNC)
 * only the push/pull is missing; status, quarantine and release need
 * libmeter alone.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "args.h"

/* sync/sync.mk puts sync/ on the include path (and links the client);
 * without it, or configured without libcurl/libcrypto, only the push/pull
 * is missing. */
#if !defined(METERCTL_NO_SYNC) && defined(__has_include)
#if __has_include("sync.h")
#include "sync.h"
#define METERCTL_HAVE_SYNC 1
#endif
#endif

#define NELEM(a) (sizeof (a) / sizeof *(a))

/* ------------------------------------------------------------- status -- */

static const out_col status_cols[] = {
    { "depth",           "Outbox depth",            OUT_INT  },
    { "oldest_at",       "Oldest unsynced",         OUT_TIME },
    { "oldest_age_s",    "Oldest unsynced age (s)", OUT_INT  },
    { "last_success_at", "Last success",            OUT_TIME },
    { "last_attempt_at", "Last attempt",            OUT_TIME },
    { "last_error",      "Last error",              OUT_STR  },
    { "quarantined",     "Quarantined",             OUT_INT  },
    { "lease_policy",    "Lease policy",            OUT_STR  },
    { "live_leases",     "Live leases",             OUT_INT  },
};

static const out_col quarantine_cols[] = {
    { "id",             "Record ID",      OUT_STR  },
    { "kind",           "Kind",           OUT_STR  },
    { "reason",         "Reason",         OUT_STR  },
    { "quarantined_at", "Quarantined at", OUT_TIME },
};

static const out_col lease_cols[] = {
    { "id",           "Lease ID",       OUT_STR  },
    { "account",      "Account",        OUT_STR  },
    { "class",        "Class",          OUT_STR  },
    { "state",        "State",          OUT_STR  },
    { "granted",      "Granted",        OUT_MIN  },
    { "remaining",    "Remaining",      OUT_MIN  },
    { "expires_in_s", "Expires in (s)", OUT_INT  },
    { "unsent",       "Unsent",         OUT_INT  },
};

static out_table *quarantine_table(const meter_quarantined *q, size_t n)
{
    out_table *t = out_new(quarantine_cols, NELEM(quarantine_cols));
    for (size_t i = 0; i < n; i++) {
        out_str(t, q[i].id);
        out_str(t, q[i].kind);
        out_str(t, q[i].reason);
        out_time(t, q[i].at);
    }
    return t;
}

/* The live leases: requested (not answered yet) and open. */
static int live_lease(const meter_lease *l)
{
    return !strcmp(l->state, "open") || !strcmp(l->state, "requested");
}

static out_table *lease_table(const meter_lease *l, size_t n, meter_time now)
{
    out_table *t = out_new(lease_cols, NELEM(lease_cols));
    for (size_t i = 0; i < n; i++) {
        if (!live_lease(&l[i]))
            continue;
        out_str(t, l[i].id);
        out_str(t, l[i].account);
        out_str(t, meter_class_name(l[i].cls));
        out_str(t, l[i].state);
        out_min(t, l[i].granted_us);
        out_min(t, l[i].remaining_us);
        if (l[i].expires_at) {
            int64_t in = (l[i].expires_at - now) / 1000;
            out_int(t, in < 0 ? 0 : in);
        } else {
            out_null(t);
        }
        out_int(t, l[i].unsent);
    }
    return t;
}

/* JSON of a table as out_print renders it (so keys and time formats are
 * the CLI's), parsed back to be combined with another. */
static json_t *table_json(const out_table *t, int single)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    int rc = out_print(t, OUT_JSON, single, f);
    fclose(f);
    json_t *j = rc == 0 ? json_loadb(buf, len, 0, NULL) : NULL;
    free(buf);
    return j;
}

/* The figures an operator alerts on, the lease policy and the live
 * leases; in table and JSON format also the quarantined records with
 * their reasons.  CSV: the figures, then (when there are any) a blank
 * line and the leases as a second CSV table. */
int cmd_sync_status(const struct cli *c, const struct cli_cmd *cmd, int argc, char **argv)
{
    int rc = cli_no_options(cmd, argc, argv, 0, 0, "");
    if (rc) return rc < 0 ? EXIT_OK : rc;

    meter_store *st;
    meter_sync_status s;
    meter_quarantined *q = NULL;
    meter_lease *ls = NULL;
    size_t nq = 0, nl = 0, live = 0;
    char *policy = NULL;
    if ((rc = cli_open(c, CLI_OPEN_QUERY, &st))) return rc;
    if ((rc = meter_sync_status_get(st, &s)) != METER_OK) return cli_fail(st, rc);
    if (s.quarantined > 0 && (rc = meter_outbox_quarantined(st, &q, &nq)) != METER_OK)
        return cli_fail(st, rc);
    if ((rc = meter_setting_get(st, "lease_policy", &policy)) != METER_OK ||
        (rc = meter_lease_list(st, NULL, 0, &ls, &nl)) != METER_OK) {
        meter_free(q);
        meter_free(policy);
        return cli_fail(st, rc);
    }
    for (size_t i = 0; i < nl; i++)
        live += live_lease(&ls[i]);

    meter_time now = meter_now();
    out_table *t = out_new(status_cols, NELEM(status_cols));
    out_int(t, s.depth);
    out_time(t, s.oldest_at);
    if (s.oldest_at) {
        int64_t age = (now - s.oldest_at) / 1000;
        out_int(t, age < 0 ? 0 : age);
    } else {
        out_null(t);
    }
    out_time(t, s.last_success_at);
    out_time(t, s.last_attempt_at);
    out_str(t, s.last_error[0] ? s.last_error : NULL);
    out_int(t, s.quarantined);
    out_str(t, policy);
    out_int(t, (int64_t)live);
    meter_free(policy);
    out_table *lt = lease_table(ls, nl, now);
    meter_free(ls);
    meter_close(st);
    out_table *qt = quarantine_table(q, nq);
    meter_free(q);

    int bad = 0;
    if (c->format == OUT_JSON) {
        json_t *j = table_json(t, 1), *a = table_json(lt, 0), *qa = table_json(qt, 0);
        bad = !j || !a || !qa || json_object_set_new(j, "leases", a) != 0;
        if (bad)
            json_decref(a);
        if (!bad && nq > 0)
            bad = json_object_set_new(j, "quarantine", qa) != 0;
        else
            json_decref(qa);
        if (!bad)
            bad = json_dumpf(j, stdout, JSON_INDENT(2)) != 0 || fputc('\n', stdout) == EOF;
        json_decref(j);
    } else if (c->format == OUT_CSV) {
        bad = out_print(t, OUT_CSV, 1, stdout) != 0;
        if (!bad && live > 0)
            bad = fputc('\n', stdout) == EOF || out_print(lt, OUT_CSV, 0, stdout) != 0;
    } else {
        bad = out_print(t, OUT_TABLE, 1, stdout) != 0;
        if (!bad && live > 0) {
            printf("\nLeases (requested and open; meterctl lease list shows them all):\n");
            bad = out_print(lt, OUT_TABLE, 0, stdout) != 0;
        }
        if (!bad && nq > 0) {
            printf("\nQuarantined records (meterctl sync release [ID] puts them back):\n");
            bad = out_print(qt, OUT_TABLE, 0, stdout) != 0;
        }
    }
    out_free(t);
    out_free(lt);
    out_free(qt);
    if (bad) {
        cli_error("cannot write the output");
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

int cmd_sync_quarantine(const struct cli *c, const struct cli_cmd *cmd, int argc, char **argv)
{
    int rc = cli_no_options(cmd, argc, argv, 0, 0, "");
    if (rc) return rc < 0 ? EXIT_OK : rc;

    meter_store *st;
    meter_quarantined *q;
    size_t n;
    if ((rc = cli_open(c, CLI_OPEN_QUERY, &st))) return rc;
    if ((rc = meter_outbox_quarantined(st, &q, &n)) != METER_OK) return cli_fail(st, rc);
    out_table *t = quarantine_table(q, n);
    meter_free(q);
    return cli_finish(c, st, t, 0);
}

int cmd_sync_release(const struct cli *c, const struct cli_cmd *cmd, int argc, char **argv)
{
    static const out_col cols[] = {
        { "released", "Released", OUT_INT },
    };
    int rc = cli_no_options(cmd, argc, argv, 0, 1, "record ID");
    if (rc) return rc < 0 ? EXIT_OK : rc;
    const char *id = optind < argc ? argv[optind] : NULL;

    meter_store *st;
    int released = 0;
    if ((rc = cli_open(c, 0, &st))) return rc;
    if ((rc = meter_outbox_release(st, id, &released)) != METER_OK) return cli_fail(st, rc);
    if (id && released == 0) {
        meter_close(st);
        cli_error("%s: record %s is not quarantined (see meterctl sync quarantine)",
                  argv[0], id);
        return EXIT_NOTFOUND;
    }
    out_table *t = out_new(cols, NELEM(cols));
    out_int(t, released);
    return cli_finish(c, st, t, 1);
}

/* --------------------------------------------------------------- sync -- */

#ifndef METERCTL_HAVE_SYNC

int cmd_sync(const struct cli *c, const struct cli_cmd *cmd, int argc, char **argv)
{
    (void)c;
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        cli_print_help(cmd, stdout);
        return EXIT_OK;
    }
    cli_error("%s: this meterctl was built without the sync client (it needs libcurl "
              "and libcrypto: scripts/install-deps, then ./configure)", argv[0]);
    return EXIT_FAIL;
}

#else

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    if (stop_flag < 2)
        stop_flag++;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);   /* no SA_RESTART: sleeps end early */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* a peer that closes mid-write must be an error, not a dead process */
    signal(SIGPIPE, SIG_IGN);
}

struct log_ctx {
    const char *cmd;
    int verbose;
};

/* Warnings always; progress (retries, rejected ids, packs) with --verbose. */
static void log_line(void *arg, const char *line)
{
    const struct log_ctx *l = arg;
    if (l->verbose || !strncmp(line, "warning:", 8))
        fprintf(stderr, "meterctl: %s: %s\n", l->cmd, line);
}

static int sync_exit(int rc)
{
    switch (rc) {
    case METER_OK:            return EXIT_OK;
    case METER_SYNC_ECONFIG:  return EXIT_USAGE;
    case METER_SYNC_ENET:
    case METER_SYNC_EAUTH:
    case METER_SYNC_EPROTO:
    case METER_SYNC_ESTOPPED: return EXIT_FAIL;
    default:                  return cli_exit_code(rc);
    }
}

static const out_col report_cols[] = {
    { "node",          "Node",               OUT_STR },
    { "sent",          "Records sent",       OUT_INT },
    { "accepted",      "Accepted",           OUT_INT },
    { "duplicates",    "Duplicates",         OUT_INT },
    { "rejected",      "Rejected",           OUT_INT },
    { "retries",       "Retries",            OUT_INT },
    { "packs",         "Packs at the ledger", OUT_INT },
    { "packs_changed", "Packs changed here", OUT_INT },
    { "conflicts",     "Pack conflicts",     OUT_INT },
    { "leases_requested", "Leases requested", OUT_INT },
    { "leases_granted",   "Leases granted",   OUT_INT },
    { "leases_renewed",   "Leases renewed",   OUT_INT },
    { "leases_released",  "Leases released",  OUT_INT },
    { "leases_refused",   "Leases refused",   OUT_INT },
    { "leases_resolved",  "Leases resolved at the ledger", OUT_INT },
    { "outbox_depth",  "Outbox depth",       OUT_INT },
};

static int print_report(const struct cli *c, meter_store *st, const meter_sync_report *r)
{
    meter_sync_status s;
    int64_t depth = meter_sync_status_get(st, &s) == METER_OK ? s.depth : -1;
    out_table *t = out_new(report_cols, NELEM(report_cols));
    out_str(t, r->node);
    out_int(t, r->sent);
    out_int(t, r->accepted);
    out_int(t, r->duplicates);
    out_int(t, r->rejected);
    out_int(t, r->retries);
    if (r->pulled) out_int(t, r->packs); else out_null(t);
    out_int(t, r->packs_applied);
    out_int(t, r->conflicts);
    out_int(t, r->leases_requested);
    out_int(t, r->leases_granted);
    out_int(t, r->leases_renewed);
    out_int(t, r->leases_released);
    out_int(t, r->leases_refused);
    out_int(t, r->leases_resolved);
    if (depth >= 0) out_int(t, depth); else out_null(t);
    int rc = out_print(t, c->format, 1, stdout);
    out_free(t);
    fflush(stdout);
    return rc;
}

static void warn_report(const char *cmd, const meter_sync_report *r)
{
    for (int64_t i = 0; i < r->conflicts && i < METER_SYNC_CONFLICTS_MAX; i++)
        fprintf(stderr, "meterctl: %s: warning: pack conflict: %s\n", cmd, r->conflict[i]);
    if (r->conflicts > METER_SYNC_CONFLICTS_MAX)
        fprintf(stderr, "meterctl: %s: warning: %lld more pack conflicts\n", cmd,
                (long long)(r->conflicts - METER_SYNC_CONFLICTS_MAX));
    if (r->rejected > 0)
        fprintf(stderr, "meterctl: %s: warning: %lld records rejected by the ledger and "
                "quarantined (meterctl sync status lists them)\n", cmd, (long long)r->rejected);
}

/* Sleeps between --watch rounds; 1 when a signal asks to stop. */
static int watch_sleep(long seconds)
{
    for (long ms = seconds * 1000; ms > 0; ms -= 200) {
        if (stop_flag)
            return 1;
        struct timespec ts = { 0, (ms < 200 ? ms : 200) * 1000000L };
        nanosleep(&ts, NULL);
    }
    return stop_flag != 0;
}

/* Command-line values, applied over the file and the environment. */
struct sync_args {
    const char *config, *ledger, *node, *secret_file, *cacert;
    const char *batch, *max_bytes, *retries, *timeout, *connect_timeout;
    int bearer, insecure, no_pull, no_leases, verbose;
    long watch;
};

static int parse_args(int argc, char **argv, const struct cli_cmd *cmd, struct sync_args *a)
{
    static const struct option opts[] = {
        { "config",          required_argument, NULL, 'C' },
        { "ledger",          required_argument, NULL, 'l' },
        { "node",            required_argument, NULL, 'n' },
        { "secret-file",     required_argument, NULL, 's' },
        { "bearer",          no_argument,       NULL, 'B' },
        { "cacert",          required_argument, NULL, 'c' },
        { "insecure",        no_argument,       NULL, 'k' },
        { "batch",           required_argument, NULL, 'b' },
        { "max-bytes",       required_argument, NULL, 'm' },
        { "retries",         required_argument, NULL, 'r' },
        { "timeout",         required_argument, NULL, 't' },
        { "connect-timeout", required_argument, NULL, 'T' },
        { "no-pull",         no_argument,       NULL, 'P' },
        { "no-leases",       no_argument,       NULL, 'L' },
        { "watch",           required_argument, NULL, 'w' },
        { "verbose",         no_argument,       NULL, 'v' },
        { "help",            no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int o, rc;
    int64_t w;
    while ((o = args_getopt(argc, argv, opts)) != -1) {
        switch (o) {
        case 'h': cli_print_help(cmd, stdout); return -1;
        case 'C': a->config = optarg; break;
        case 'l': a->ledger = optarg; break;
        case 'n': a->node = optarg; break;
        case 's': a->secret_file = optarg; break;
        case 'B': a->bearer = 1; break;
        case 'c': a->cacert = optarg; break;
        case 'k': a->insecure = 1; break;
        case 'b': a->batch = optarg; break;
        case 'm': a->max_bytes = optarg; break;
        case 'r': a->retries = optarg; break;
        case 't': a->timeout = optarg; break;
        case 'T': a->connect_timeout = optarg; break;
        case 'P': a->no_pull = 1; break;
        case 'L': a->no_leases = 1; break;
        case 'v': a->verbose = 1; break;
        case 'w':
            if ((rc = args_int64(argv[0], "--watch", optarg, 1, 86400, &w))) return rc;
            a->watch = (long)w;
            break;
        default: return EXIT_USAGE;
        }
    }
    return args_positional(argc, argv, 0, 0, "");
}

/* File, then environment, then command line. */
static int build_config(const char *cmd, const struct sync_args *a, meter_sync_config *cfg)
{
    char err[METER_ERRMAX];
    const char *file = a->config ? a->config : getenv("METER_SYNC_CONF");
    int must = file != NULL;
    if (!file)
        file = METER_SYNC_CONF_DEFAULT;
    if ((must || access(file, F_OK) == 0) && meter_sync_config_load(cfg, file, err) != METER_OK)
        return cli_usage_error("%s: %s", cmd, err);

    const char *env = getenv("METER_SYNC_SECRET");
    if (env && *env && !a->secret_file) {
        if (strlen(env) > METER_SYNC_SECRET_MAX)
            return cli_usage_error("%s: $METER_SYNC_SECRET is longer than %d bytes", cmd,
                                   METER_SYNC_SECRET_MAX);
        strcpy(cfg->secret, env);
    }
    struct { const char *key, *opt, *val; } kv[] = {
        { "ledger", "--ledger", a->ledger }, { "node", "--node", a->node },
        { "secret_file", "--secret-file", a->secret_file },
        { "cacert", "--cacert", a->cacert }, { "batch", "--batch", a->batch },
        { "max_bytes", "--max-bytes", a->max_bytes }, { "retries", "--retries", a->retries },
        { "timeout", "--timeout", a->timeout },
        { "connect_timeout", "--connect-timeout", a->connect_timeout },
    };
    for (size_t i = 0; i < NELEM(kv); i++) {
        if (!kv[i].val || meter_sync_config_set(cfg, kv[i].key, kv[i].val, err) == METER_OK)
            continue;
        /* "batch: 'x' is not …" → "--batch: 'x' is not …" */
        size_t k = strlen(kv[i].key);
        const char *why = !strncmp(err, kv[i].key, k) && !strncmp(err + k, ": ", 2)
                        ? err + k + 2 : err;
        return cli_usage_error("%s: %s: %s", cmd, kv[i].opt, why);
    }
    if (a->bearer) cfg->bearer = 1;
    if (a->insecure) cfg->insecure = 1;
    if (a->no_pull) cfg->no_pull = 1;
    if (a->no_leases) cfg->leases = 0;
    /* leases are renewed ahead by two periods: the time between syncs */
    if (a->watch) cfg->lease_period_ms = a->watch * 1000L;
    if (meter_sync_config_check(cfg, err) != METER_OK)
        return cli_usage_error("%s: %s", cmd, err);
    if (cfg->insecure)
        fprintf(stderr, "meterctl: %s: warning: TLS certificate verification is off "
                "(--insecure): anyone on the path can impersonate the ledger\n", cmd);
    if (cfg->bearer && !strncmp(cfg->ledger_url, "http://", 7))
        fprintf(stderr, "meterctl: %s: warning: bearer token sent over plain http\n", cmd);
    return EXIT_OK;
}

int cmd_sync(const struct cli *c, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct sync_args a = { 0 };
    int rc = parse_args(argc, argv, cmd, &a);
    if (rc == -1) return EXIT_OK;   /* --help */
    if (rc) return rc;

    struct log_ctx lc = { argv[0], a.verbose };
    meter_sync_config cfg;
    meter_sync_config_init(&cfg);
    cfg.log = log_line;
    cfg.log_ctx = &lc;
    cfg.stop = &stop_flag;
    if ((rc = build_config(argv[0], &a, &cfg))) {
        meter_sync_config_clear(&cfg);
        return rc;
    }
    long interval = a.watch;   /* 0: run once */

    meter_store *st;
    if ((rc = cli_open(c, 0, &st))) {
        meter_sync_config_clear(&cfg);
        return rc;
    }
    install_signals();
    meter_sync_report rep;
    for (;;) {
        int src = meter_sync_run(st, &cfg, &rep);
        if (!interval) {
            /* one run: the report on success, one error line otherwise */
            if (src != METER_OK) {
                cli_error("%s: %s", argv[0], rep.error[0] ? rep.error : meter_sync_strerror(src));
                rc = sync_exit(src);
            } else {
                warn_report(argv[0], &rep);
                rc = print_report(c, st, &rep) == 0 ? EXIT_OK : EXIT_FAIL;
            }
            break;
        }
        if (src == METER_SYNC_ESTOPPED || stop_flag) {
            rc = EXIT_OK;
            break;
        }
        if (src == METER_SYNC_ECONFIG) {   /* will not fix itself */
            cli_error("%s: %s", argv[0], rep.error);
            rc = EXIT_USAGE;
            break;
        }
        if (src != METER_OK)
            cli_error("%s: %s (next try in %ld s)", argv[0], rep.error, interval);
        else if (rep.sent || rep.packs_applied || rep.conflicts || rep.leases_requested ||
                 rep.leases_renewed || rep.leases_released || rep.leases_resolved) {
            warn_report(argv[0], &rep);
            print_report(c, st, &rep);
        }
        if (watch_sleep(interval)) {
            rc = EXIT_OK;
            break;
        }
    }
    meter_close(st);
    meter_sync_config_clear(&cfg);
    return rc;
}

#endif /* METERCTL_HAVE_SYNC */
