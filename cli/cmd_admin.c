/*
 * cmd_admin.c — meterctl init | settle | verify | config | reap |
 * import-spool: the store's housekeeping.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"

#define NELEM(a) (sizeof (a) / sizeof *(a))

/* ------------------------------------------------------------- init -- */

static const out_col init_cols[] = {
    { "path",           "Database",       OUT_STR  },
    { "created",        "Created",        OUT_BOOL },
    { "schema_version", "Schema version", OUT_INT  },
    { "node",           "Node",           OUT_STR  },
    { "node_id",        "Node ID",        OUT_STR  },
};

/* Removes a database file this run created, with its WAL companions. */
static void remove_new_db(const char *path)
{
    static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
    char name[4200];
    for (size_t i = 0; i < NELEM(suffix); i++) {
        snprintf(name, sizeof name, "%s%s", path, suffix[i]);
        unlink(name);
    }
}

int cmd_init(const struct cli *c, const struct cli_cmd *cmd,
             int argc, char **argv)
{
    static const struct option opts[] = {
        { "node", required_argument, NULL, 'n' },
        { "help", no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *node = NULL;
    int rc, o;

    while ((o = args_getopt(argc, argv, opts)) != -1) {
        switch (o) {
        case 'h': cli_print_help(cmd, stdout); return EXIT_OK;
        case 'n': node = optarg; break;
        default: return EXIT_USAGE;
        }
    }
    if ((rc = args_positional(argc, argv, 0, 0, ""))) return rc;

    int existed = access(c->db, F_OK) == 0;
    meter_store *st;
    if ((rc = cli_open(c, METER_OPEN_CREATE, &st))) return rc;
    if (node && (rc = meter_setting_set(st, "node", node)) != METER_OK) {
        rc = cli_fail(st, rc);
        /* init is one step to the user: a refused --node leaves no new,
         * half-configured database behind */
        if (!existed) remove_new_db(c->db);
        return rc;
    }
    char *name = NULL, *id = NULL;
    if ((rc = meter_setting_get(st, "node", &name)) != METER_OK ||
        (rc = meter_setting_get(st, "node_id", &id)) != METER_OK) {
        meter_free(name);
        return cli_fail(st, rc);
    }
    out_table *t = out_new(init_cols, NELEM(init_cols));
    out_str(t, c->db);
    out_bool(t, !existed);
    out_int(t, meter_schema_version());
    out_str(t, name);
    out_str(t, id);
    meter_free(name);
    meter_free(id);
    return cli_finish(c, st, t, 1);
}

/* ----------------------------------------------------------- settle -- */

static const out_col settle_cols[] = {
    { "groups",  "Groups settled",  OUT_INT },
    { "billed",  "Billed minutes",  OUT_MIN },
    { "covered", "Covered minutes", OUT_MIN },
    { "overage", "Overage minutes", OUT_MIN },
};

int cmd_settle(const struct cli *c, const struct cli_cmd *cmd,
               int argc, char **argv)
{
    int rc = cli_no_options(cmd, argc, argv, 0, 0, "");
    if (rc) return rc < 0 ? EXIT_OK : rc;

    meter_store *st;
    meter_settle_result r;
    if ((rc = cli_open(c, 0, &st))) return rc;
    if ((rc = meter_settle(st, &r)) != METER_OK) return cli_fail(st, rc);
    out_table *t = out_new(settle_cols, NELEM(settle_cols));
    out_int(t, r.days);
    out_min(t, r.billed_us);
    out_min(t, r.covered_us);
    out_min(t, r.overage_us);
    return cli_finish(c, st, t, 1);
}

/* ----------------------------------------------------------- verify -- */

static const out_col verify_cols[] = {
    { "problem", "Problem", OUT_STR },
};

struct verify_ctx {
    out_table *t;   /* json, csv: collected, printed at the end */
    int lines;      /* table: each problem printed as it is found */
};

static void report(void *ctx, const char *problem)
{
    struct verify_ctx *v = ctx;
    if (v->lines) printf("%s\n", problem);
    else out_str(v->t, problem);
}

int cmd_verify(const struct cli *c, const struct cli_cmd *cmd,
               int argc, char **argv)
{
    int rc = cli_no_options(cmd, argc, argv, 0, 0, "");
    if (rc) return rc < 0 ? EXIT_OK : rc;

    meter_store *st;
    size_t violations = 0;
    if ((rc = cli_open(c, CLI_OPEN_QUERY, &st))) return rc;
    struct verify_ctx v = { out_new(verify_cols, NELEM(verify_cols)),
                            c->format == OUT_TABLE };
    if ((rc = meter_verify(st, report, &v, &violations)) != METER_OK) {
        out_free(v.t);
        return cli_fail(st, rc);
    }
    if (v.lines) {
        meter_close(st);
        out_free(v.t);
        printf("verify: %zu violation%s\n", violations,
               violations == 1 ? "" : "s");
    } else if ((rc = cli_finish(c, st, v.t, 0)) != EXIT_OK) {
        return rc;
    }
    return violations ? EXIT_FAIL : EXIT_OK;
}

/* ----------------------------------------------------------- config -- */

/* The settings meter.h documents, for "config get" without a key. */
static const char *const setting_keys[] = {
    "node", "node_id", "rounding", "settlement", "day_offset", "account", "lease_accounts",
    "lease_policy", "lease_minutes",
};

static const out_col setting_cols[] = {
    { "key",   "Key",   OUT_STR },
    { "value", "Value", OUT_STR },
};

/* Prints settings; a table of one key prints the bare value (for shell
 * scripts: x=$(meterctl config get rounding)). */
static int print_settings(const struct cli *c, meter_store *st,
                          const char *const *keys, size_t n, int single)
{
    out_table *t = out_new(setting_cols, NELEM(setting_cols));
    for (size_t i = 0; i < n; i++) {
        char *v = NULL;
        int rc = meter_setting_get(st, keys[i], &v);
        if (rc != METER_OK) {
            out_free(t);
            return cli_fail(st, rc);
        }
        if (single && c->format == OUT_TABLE) {
            puts(v);
            meter_free(v);
            out_free(t);
            meter_close(st);
            return EXIT_OK;
        }
        out_str(t, keys[i]);
        out_str(t, v);
        meter_free(v);
    }
    return cli_finish(c, st, t, single);
}

int cmd_config_get(const struct cli *c, const struct cli_cmd *cmd,
                   int argc, char **argv)
{
    int rc = cli_no_options(cmd, argc, argv, 0, 1, "");
    if (rc) return rc < 0 ? EXIT_OK : rc;

    meter_store *st;
    if ((rc = cli_open(c, CLI_OPEN_QUERY, &st))) return rc;
    if (optind < argc)
        return print_settings(c, st, (const char *const *)&argv[optind], 1, 1);
    return print_settings(c, st, setting_keys, NELEM(setting_keys), 0);
}

int cmd_config_set(const struct cli *c, const struct cli_cmd *cmd,
                   int argc, char **argv)
{
    int rc = cli_no_options(cmd, argc, argv, 2, 2, "KEY and VALUE");
    if (rc) return rc < 0 ? EXIT_OK : rc;

    meter_store *st;
    const char *key = argv[optind];
    if ((rc = cli_open(c, 0, &st))) return rc;
    if ((rc = meter_setting_set(st, key, argv[optind + 1])) != METER_OK)
        return cli_fail(st, rc);
    return print_settings(c, st, &key, 1, 1);
}

/* ------------------------------------------------- reap, import-spool -- */

int cmd_reap(const struct cli *c, const struct cli_cmd *cmd,
             int argc, char **argv)
{
    int rc = cli_no_options(cmd, argc, argv, 0, 0, "");
    if (rc) return rc < 0 ? EXIT_OK : rc;

    meter_store *st;
    int count = 0;
    if ((rc = cli_open(c, 0, &st))) return rc;
    if ((rc = meter_reap(st, &count)) != METER_OK) return cli_fail(st, rc);
    static const out_col cols[] = { { "reaped", "Sessions reaped", OUT_INT } };
    out_table *t = out_new(cols, NELEM(cols));
    out_int(t, count);
    return cli_finish(c, st, t, 1);
}

int cmd_import_spool(const struct cli *c, const struct cli_cmd *cmd,
                     int argc, char **argv)
{
    int rc = cli_no_options(cmd, argc, argv, 0, 1, "");
    if (rc) return rc < 0 ? EXIT_OK : rc;

    /* the same default a session spools to (meter.h, meter_session_opts) */
    char dflt[4200];
    const char *dir = optind < argc ? argv[optind] : getenv("METER_SPOOL");
    if (!dir || !dir[0]) {
        snprintf(dflt, sizeof dflt, "%s.spool", c->db);
        dir = dflt;
    }

    meter_store *st;
    int count = 0;
    if ((rc = cli_open(c, 0, &st))) return rc;
    if ((rc = meter_import_spool(st, dir, &count)) != METER_OK)
        return cli_fail(st, rc);
    static const out_col cols[] = {
        { "dir",      "Spool directory",   OUT_STR },
        { "imported", "Sessions imported", OUT_INT },
    };
    out_table *t = out_new(cols, NELEM(cols));
    out_str(t, dir);
    out_int(t, count);
    return cli_finish(c, st, t, 1);
}
