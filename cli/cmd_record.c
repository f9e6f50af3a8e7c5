/*
 * cmd_record.c — meterctl record: one usage entered by hand (imports,
 * corrections, tests), billed and deducted like a metered output, once per
 * idempotency key (--id, else the job and output; libmeter's
 * meter_record_once decides).  A repeat bills nothing, prints the earlier
 * record with duplicate = yes and a note on stderr, and exits 0: the usage
 * is recorded, which is what a retrying scheduler wants to hear.
 */
#include <limits.h>

#include "args.h"

#define NELEM(a) (sizeof (a) / sizeof *(a))

static const out_col result_cols[] = {
    { "id",       "Usage ID",         OUT_STR  },
    { "job",      "Job",              OUT_STR  },
    { "output",   "Output",           OUT_STR  },
    { "account",  "Account",          OUT_STR  },
    { "ttype",    "Transcoding type", OUT_STR  },
    { "billed",   "Billed minutes",   OUT_MIN  },
    { "covered",  "Covered minutes",  OUT_MIN  },
    { "overage",  "Overage minutes",  OUT_MIN  },
    { "settled",  "Settled",          OUT_BOOL },
    { "duplicate", "Duplicate",       OUT_BOOL },
};

int cmd_record(const struct cli *c, const struct cli_cmd *cmd,
               int argc, char **argv)
{
    static const struct option opts[] = {
        { "job",         required_argument, NULL, 'j' },
        { "output",      required_argument, NULL, 'o' },
        { "class",       required_argument, NULL, 'c' },
        { "codec",       required_argument, NULL, 'x' },
        { "width",       required_argument, NULL, 'W' },
        { "height",      required_argument, NULL, 'H' },
        { "duration-ms", required_argument, NULL, 'd' },
        { "at",          required_argument, NULL, 'a' },
        { "id",          required_argument, NULL, 'i' },
        { "account",     required_argument, NULL, 'A' },
        { "help",        no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    meter_usage_in in = { .cls = METER_CLASS_GENERAL };
    const char *key = NULL;
    int64_t ms = 0;
    int have_class = 0, rc, o;

    while ((o = args_getopt(argc, argv, opts)) != -1) {
        switch (o) {
        case 'h': cli_print_help(cmd, stdout); return EXIT_OK;
        case 'j': in.job = optarg; break;
        case 'o': in.output = optarg; break;
        case 'x': in.codec = optarg; break;
        case 'c':
            if ((rc = args_class(argv[0], "--class", optarg, &in.cls))) return rc;
            have_class = 1;
            break;
        case 'W':
            if ((rc = args_int(argv[0], "--width", optarg, 0, INT_MAX,
                               &in.width))) return rc;
            break;
        case 'H':
            if ((rc = args_int(argv[0], "--height", optarg, 0, INT_MAX,
                               &in.height))) return rc;
            break;
        case 'd':
            /* bounded so that ms × 1000 stays inside libmeter's range */
            if ((rc = args_int64(argv[0], "--duration-ms", optarg, 1,
                                 METER_DURATION_MAX_US / 1000, &ms))) return rc;
            break;
        case 'a':
            if ((rc = args_time(argv[0], "--at", optarg, &in.at))) return rc;
            break;
        case 'i': key = optarg; break;   /* libmeter checks its form */
        case 'A': in.account = optarg; break;   /* and the account's */
        default: return EXIT_USAGE;
        }
    }
    if ((rc = args_positional(argc, argv, 0, 0, ""))) return rc;
    if (!in.job) return args_missing(argv[0], "--job J");
    if (!in.output) return args_missing(argv[0], "--output O");
    if (!have_class) return args_missing(argv[0], "--class general|tsc");
    if (!in.codec) return args_missing(argv[0], "--codec X");
    if (!ms) return args_missing(argv[0], "--duration-ms MS");
    in.duration_us = ms * 1000;   /* libmeter counts microseconds */

    meter_store *st;
    meter_usage_result r;
    int already = 0;
    char *account = NULL;
    if ((rc = cli_open(c, 0, &st))) return rc;
    if ((rc = meter_record_once(st, &in, key, &r, &already)) != METER_OK)
        return cli_fail(st, rc);
    if (!in.account && (rc = meter_setting_get(st, "account", &account)) != METER_OK)
        return cli_fail(st, rc);
    if (already)
        fprintf(stderr, "meterctl: %s: already recorded as %s; nothing billed\n", argv[0], r.id);

    out_table *t = out_new(result_cols, NELEM(result_cols));
    out_str(t, r.id);
    out_str(t, in.job);
    out_str(t, in.output);
    out_str(t, in.account ? in.account : account);
    out_str(t, r.ttype);
    out_min(t, r.billed_us);
    out_min(t, r.covered_us);
    out_min(t, r.overage_us);
    out_bool(t, r.settled);
    out_bool(t, already);
    rc = cli_finish(c, st, t, 1);
    meter_free(account);
    return rc;
}
