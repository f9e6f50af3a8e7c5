/*
 * cmd_pack.c — meterctl pack add | list | show | freeze | unfreeze | refund:
 * the console's "Resource packs" view.
 */
#include <string.h>

#include "args.h"

#define NELEM(a) (sizeof (a) / sizeof *(a))

/* A list shows the console's columns; show (one pack) shows everything. */
static const out_col list_cols[] = {
    { "id",          "Pack ID",           OUT_STR  },
    { "account",     "Account",           OUT_STR  },
    { "status",      "Status",            OUT_STR  },
    { "type",        "Type",              OUT_STR  },
    { "total",       "Total minutes",     OUT_MIN  },
    { "remaining",   "Remaining minutes", OUT_MIN  },
    { "start",       "Start time",        OUT_TIME },
    { "end",         "End time",          OUT_TIME },
    { "frozen",      NULL,                OUT_BOOL },
    { "refunded_at", NULL,                OUT_TIME },
    { "deductions",  NULL,                OUT_INT  },
    { "lease_id",    "Lease",             OUT_STR  },
    { "source_id",   NULL,                OUT_STR  },
    { "expires_at",  NULL,                OUT_TIME },
};
static const out_col show_cols[] = {
    { "id",          "Pack ID",           OUT_STR  },
    { "account",     "Account",           OUT_STR  },
    { "status",      "Status",            OUT_STR  },
    { "type",        "Type",              OUT_STR  },
    { "total",       "Total minutes",     OUT_MIN  },
    { "remaining",   "Remaining minutes", OUT_MIN  },
    { "start",       "Start time",        OUT_TIME },
    { "end",         "End time",          OUT_TIME },
    { "frozen",      "Frozen",            OUT_BOOL },
    { "refunded_at", "Refunded at",       OUT_TIME },
    { "deductions",  "Deductions",        OUT_INT  },
    { "lease_id",    "Lease",             OUT_STR  },
    { "source_id",   "Ledger pack",       OUT_STR  },
    { "expires_at",  "Lease expires at",  OUT_TIME },
};

static void pack_row(out_table *t, const meter_pack *p)
{
    out_str(t, p->id);
    out_str(t, p->account);
    out_str(t, p->status);
    out_str(t, meter_class_name(p->type));
    out_min(t, p->total_us);
    out_min(t, p->remaining_us);
    out_time(t, p->start);
    out_time(t, p->end);
    out_bool(t, p->frozen);
    out_time(t, p->refunded_at);
    out_int(t, p->deductions);
    /* own packs: no lease (null in json, empty in the table) */
    out_str(t, p->lease_id[0] ? p->lease_id : NULL);
    out_str(t, p->source_id[0] ? p->source_id : NULL);
    out_time(t, p->expires_at);
}

static int print_pack(const struct cli *c, meter_store *st, const meter_pack *p)
{
    out_table *t = out_new(show_cols, NELEM(show_cols));
    pack_row(t, p);
    return cli_finish(c, st, t, 1);
}

int cmd_pack_add(const struct cli *c, const struct cli_cmd *cmd,
                 int argc, char **argv)
{
    static const struct option opts[] = {
        { "type",    required_argument, NULL, 't' },
        { "minutes", required_argument, NULL, 'm' },
        { "id",      required_argument, NULL, 'i' },
        { "start",   required_argument, NULL, 's' },
        { "account", required_argument, NULL, 'A' },
        { "help",    no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *id = NULL, *account = NULL;
    meter_class type = METER_CLASS_GENERAL;
    int64_t minutes = 0;
    meter_time start = 0;
    int have_type = 0, have_minutes = 0, rc, o;

    while ((o = args_getopt(argc, argv, opts)) != -1) {
        switch (o) {
        case 'h': cli_print_help(cmd, stdout); return EXIT_OK;
        case 't':
            if ((rc = args_class(argv[0], "--type", optarg, &type))) return rc;
            have_type = 1;
            break;
        case 'm':
            /* the upper limit is libmeter's; the CLI only needs a count */
            if ((rc = args_int64(argv[0], "--minutes", optarg, 1, INT64_MAX,
                                 &minutes))) return rc;
            have_minutes = 1;
            break;
        case 'i': id = optarg; break;
        case 'A': account = optarg; break;   /* libmeter checks the name */
        case 's':
            if ((rc = args_time(argv[0], "--start", optarg, &start))) return rc;
            break;
        default: return EXIT_USAGE;
        }
    }
    if ((rc = args_positional(argc, argv, 0, 0, ""))) return rc;
    if (!have_type) return args_missing(argv[0], "--type general|tsc");
    if (!have_minutes) return args_missing(argv[0], "--minutes N");

    meter_store *st;
    meter_pack p;
    if ((rc = cli_open(c, 0, &st))) return rc;
    if ((rc = meter_pack_add_account(st, account, id, type, minutes, start, &p)) != METER_OK)
        return cli_fail(st, rc);
    return print_pack(c, st, &p);
}

/* The statuses meter.h names; a typo must not read as "no such packs". */
static int known_status(const char *s)
{
    static const char *const names[] = {
        "valid", "pending", "exhausted", "expired", "frozen", "refunded",
    };
    for (size_t i = 0; i < NELEM(names); i++)
        if (!strcmp(s, names[i])) return 1;
    return 0;
}

int cmd_pack_list(const struct cli *c, const struct cli_cmd *cmd,
                  int argc, char **argv)
{
    static const struct option opts[] = {
        { "id",     required_argument, NULL, 'i' },
        { "type",   required_argument, NULL, 't' },
        { "status", required_argument, NULL, 's' },
        { "account", required_argument, NULL, 'A' },
        { "help",   no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    meter_pack_filter f = { .id_like = NULL, .type = -1, .status = NULL };
    meter_class type;
    int rc, o;

    while ((o = args_getopt(argc, argv, opts)) != -1) {
        switch (o) {
        case 'h': cli_print_help(cmd, stdout); return EXIT_OK;
        case 'i': f.id_like = optarg; break;
        case 'A': f.account = optarg; break;
        case 't':
            if ((rc = args_class(argv[0], "--type", optarg, &type))) return rc;
            f.type = (int)type;
            break;
        case 's':
            if (!known_status(optarg))
                return cli_usage_error("%s: --status: unknown status '%s' (valid, "
                    "pending, exhausted, expired, frozen or refunded)",
                    argv[0], optarg);
            f.status = optarg;
            break;
        default: return EXIT_USAGE;
        }
    }
    if ((rc = args_positional(argc, argv, 0, 0, ""))) return rc;

    meter_store *st;
    meter_pack *rows = NULL;
    size_t n = 0;
    if ((rc = cli_open(c, CLI_OPEN_QUERY, &st))) return rc;
    if ((rc = meter_pack_list(st, &f, &rows, &n)) != METER_OK)
        return cli_fail(st, rc);
    out_table *t = out_new(list_cols, NELEM(list_cols));
    for (size_t i = 0; i < n; i++) pack_row(t, &rows[i]);
    meter_free(rows);
    return cli_finish(c, st, t, 0);
}

/* pack show|freeze|unfreeze|refund ID: act (unless act is NULL), then
 * print the pack as it is now. */
static int pack_action(const struct cli *c, const struct cli_cmd *cmd,
                       int argc, char **argv,
                       int (*act)(meter_store *, const char *))
{
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int rc, o;

    while ((o = args_getopt(argc, argv, opts)) != -1) {
        if (o == 'h') {
            cli_print_help(cmd, stdout);
            return EXIT_OK;
        }
        return EXIT_USAGE;
    }
    if ((rc = args_positional(argc, argv, 1, 1, "pack ID"))) return rc;
    const char *id = argv[optind];

    meter_store *st;
    meter_pack p;
    if ((rc = cli_open(c, CLI_OPEN_QUERY, &st))) return rc;
    if (act && (rc = act(st, id)) != METER_OK) return cli_fail(st, rc);
    if ((rc = meter_pack_get(st, id, &p)) != METER_OK) return cli_fail(st, rc);
    return print_pack(c, st, &p);
}

int cmd_pack_show(const struct cli *c, const struct cli_cmd *cmd,
                  int argc, char **argv)
{
    return pack_action(c, cmd, argc, argv, NULL);
}

int cmd_pack_freeze(const struct cli *c, const struct cli_cmd *cmd,
                    int argc, char **argv)
{
    return pack_action(c, cmd, argc, argv, meter_pack_freeze);
}

int cmd_pack_unfreeze(const struct cli *c, const struct cli_cmd *cmd,
                      int argc, char **argv)
{
    return pack_action(c, cmd, argc, argv, meter_pack_unfreeze);
}

int cmd_pack_refund(const struct cli *c, const struct cli_cmd *cmd,
                    int argc, char **argv)
{
    return pack_action(c, cmd, argc, argv, meter_pack_refund);
}
