/*
 * cmd_lease.c — meterctl lease list: the farm-mode leases this node holds
 * or asked for (libmeter's meter_lease_list), for an operator watching
 * what is reserved at the ledger and what is still to be sent.
 */
#include "args.h"

#define NELEM(a) (sizeof (a) / sizeof *(a))

static const out_col lease_cols[] = {
    { "id",           "Lease ID",         OUT_STR  },
    { "account",      "Account",          OUT_STR  },
    { "class",        "Class",            OUT_STR  },
    { "state",        "State",            OUT_STR  },
    { "requested",    "Asked (min)",      OUT_MIN  },
    { "granted",      "Granted (min)",    OUT_MIN  },
    { "remaining",    "Left (min)",       OUT_MIN  },
    { "unsent",       "Unsent",           OUT_INT  },
    { "requested_at", "Requested at",     OUT_TIME },
    { "expires_at",   "Expires at",       OUT_TIME },
    { "resolved_at",  NULL,               OUT_TIME },
    { "reason",       NULL,               OUT_STR  },
};

int cmd_lease_list(const struct cli *c, const struct cli_cmd *cmd,
                   int argc, char **argv)
{
    static const struct option opts[] = {
        { "account", required_argument, NULL, 'A' },
        { "open",    no_argument,       NULL, 'o' },
        { "help",    no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *account = NULL;
    int open_only = 0, rc, o;

    while ((o = args_getopt(argc, argv, opts)) != -1) {
        switch (o) {
        case 'h': cli_print_help(cmd, stdout); return EXIT_OK;
        case 'A':
            if (!meter_account_valid(optarg))
                return cli_usage_error("%s: --account: invalid account name '%s' (letters, "
                                       "digits, '.', '_', '-', ':')", argv[0], optarg);
            account = optarg;
            break;
        case 'o': open_only = 1; break;
        default: return EXIT_USAGE;
        }
    }
    if ((rc = args_positional(argc, argv, 0, 0, ""))) return rc;

    meter_store *st;
    meter_lease *rows = NULL;
    size_t n = 0;
    if ((rc = cli_open(c, CLI_OPEN_QUERY, &st))) return rc;
    if ((rc = meter_lease_list(st, account, open_only, &rows, &n)) != METER_OK)
        return cli_fail(st, rc);
    out_table *t = out_new(lease_cols, NELEM(lease_cols));
    for (size_t i = 0; i < n; i++) {
        const meter_lease *l = &rows[i];
        out_str(t, l->id);
        out_str(t, l->account);
        out_str(t, meter_class_name(l->cls));
        out_str(t, l->state);
        out_min(t, l->requested_us);
        out_min(t, l->granted_us);
        out_min(t, l->remaining_us);
        out_int(t, l->unsent);
        out_time(t, l->requested_at);
        out_time(t, l->expires_at);
        out_time(t, l->resolved_at);
        out_str(t, l->reason[0] ? l->reason : NULL);
    }
    meter_free(rows);
    return cli_finish(c, st, t, 0);
}
