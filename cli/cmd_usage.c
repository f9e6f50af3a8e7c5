/*
 * cmd_usage.c — meterctl usage | jobs: the console's "Usage details" view
 * (one row per day × pack × transcoding type) and the raw per-output
 * records and metering sessions behind it.
 */
#include <string.h>

#include "args.h"

#define NELEM(a) (sizeof (a) / sizeof *(a))

/* Options both views take: a time period and the class / type filters. */
static int query_option(const char *cmd, int o, meter_query *q)
{
    meter_class cls;
    int rc;

    switch (o) {
    case 'f': return args_time(cmd, "--from", optarg, &q->from);
    case 'T': return args_time(cmd, "--to", optarg, &q->to);
    case 'y': q->ttype = optarg; return EXIT_OK;
    case 'A': q->account = optarg; return EXIT_OK;
    case 't':
        if ((rc = args_class(cmd, "--type", optarg, &cls))) return rc;
        q->type = (int)cls;
        return EXIT_OK;
    }
    return EXIT_USAGE;
}

static int check_period(const char *cmd, const meter_query *q)
{
    if (q->from && q->to && q->from > q->to)
        return cli_usage_error("%s: --from is after --to", cmd);
    return EXIT_OK;
}

/* ------------------------------------------------------------ usage -- */

static const out_col usage_cols[] = {
    { "day",      "Day",               OUT_STR  },
    { "account",  "Account",           OUT_STR  },
    { "pack_id",  "Pack ID",           OUT_STR  },
    { "type",     "Type",              OUT_STR  },
    { "ttype",    "Transcoding type",  OUT_STR  },
    { "used",     "Used minutes",      OUT_MIN  },
    { "before",   "Minutes before",    OUT_MIN  },
    { "after",    "Minutes after",     OUT_MIN  },
    { "first_at", NULL,                OUT_TIME },
    { "last_at",  NULL,                OUT_TIME },
    { "count",    NULL,                OUT_INT  },
};

int cmd_usage(const struct cli *c, const struct cli_cmd *cmd,
              int argc, char **argv)
{
    static const struct option opts[] = {
        { "pack",  required_argument, NULL, 'p' },
        { "type",  required_argument, NULL, 't' },
        { "ttype", required_argument, NULL, 'y' },
        { "from",  required_argument, NULL, 'f' },
        { "to",    required_argument, NULL, 'T' },
        { "account", required_argument, NULL, 'A' },
        { "help",  no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    meter_query q = { .type = -1 };
    int rc, o;

    while ((o = args_getopt(argc, argv, opts)) != -1) {
        if (o == 'h') {
            cli_print_help(cmd, stdout);
            return EXIT_OK;
        }
        if (o == 'p') q.pack_id = optarg;
        else if (o == '?' || (rc = query_option(argv[0], o, &q))) return EXIT_USAGE;
    }
    if ((rc = args_positional(argc, argv, 0, 0, ""))) return rc;
    if ((rc = check_period(argv[0], &q))) return rc;

    meter_store *st;
    meter_usage_row *rows = NULL;
    size_t n = 0;
    if ((rc = cli_open(c, CLI_OPEN_QUERY, &st))) return rc;
    if ((rc = meter_usage_details(st, &q, &rows, &n)) != METER_OK)
        return cli_fail(st, rc);
    out_table *t = out_new(usage_cols, NELEM(usage_cols));
    for (size_t i = 0; i < n; i++) {
        const meter_usage_row *r = &rows[i];
        int overage = r->pack_id[0] == '\0';
        out_str(t, r->day);
        out_str(t, r->account);
        out_str(t, overage ? NULL : r->pack_id);
        out_str(t, meter_class_name(r->type));
        out_str(t, r->ttype);
        out_min(t, r->used_us);
        /* overage was taken from no pack: it has no balance around it */
        if (overage) {
            out_null(t);
            out_null(t);
        } else {
            out_min(t, r->before_us);
            out_min(t, r->after_us);
        }
        out_time(t, r->first_at);
        out_time(t, r->last_at);
        out_int(t, r->count);
    }
    meter_free(rows);
    return cli_finish(c, st, t, 0);
}

/* ------------------------------------------------------------- jobs -- */

/* Other helpers' tests read these keys (meterctl --format json jobs). */
static const out_col job_cols[] = {
    { "id",          NULL,               OUT_STR  },
    { "recorded_at", "Recorded at",      OUT_TIME },
    { "job",         "Job",              OUT_STR  },
    { "output",      "Output",           OUT_STR  },
    { "node",        NULL,               OUT_STR  },
    { "account",     "Account",          OUT_STR  },
    { "class",       "Class",            OUT_STR  },
    { "ttype",       "Transcoding type", OUT_STR  },
    { "codec",       "Codec",            OUT_STR  },
    { "width",       NULL,               OUT_INT  },
    { "height",      NULL,               OUT_INT  },
    { NULL,          "Size",             OUT_STR  },
    { "duration",    "Duration (min)",   OUT_MIN  },
    { "billed",      "Billed (min)",     OUT_MIN  },
    { "covered",     "Covered (min)",    OUT_MIN  },
    { "overage",     "Overage (min)",    OUT_MIN  },
    { "started_at",  NULL,               OUT_TIME },
    { "state",       "State",            OUT_STR  },
    { "settled",     NULL,               OUT_BOOL },
};

static const out_col session_cols[] = {
    { "id",         NULL,           OUT_STR  },
    { "opened_at",  "Opened at",    OUT_TIME },
    { "job",        "Job",          OUT_STR  },
    { "output",     "Output",       OUT_STR  },
    { "account",    "Account",      OUT_STR  },
    { "class",      "Class",        OUT_STR  },
    { "codec",      "Codec",        OUT_STR  },
    { "status",     "Status",       OUT_STR  },
    { "duration",   "Duration (min)", OUT_MIN  },
    { "segments",   "Segments",     OUT_INT  },
    { "pid",        "PID",          OUT_INT  },
    { "updated_at", "Updated at",   OUT_TIME },
};

static out_table *job_table(const meter_job_row *rows, size_t n)
{
    out_table *t = out_new(job_cols, NELEM(job_cols));
    char size[32];

    for (size_t i = 0; i < n; i++) {
        const meter_job_row *r = &rows[i];
        out_str(t, r->id);
        out_time(t, r->recorded_at);
        out_str(t, r->job);
        out_str(t, r->output);
        out_str(t, r->node);
        out_str(t, r->account);
        out_str(t, meter_class_name(r->cls));
        out_str(t, r->ttype);
        out_str(t, r->codec);
        out_int(t, r->width);
        out_int(t, r->height);
        if (r->width > 0 && r->height > 0) {
            snprintf(size, sizeof size, "%dx%d", r->width, r->height);
            out_str(t, size);
        } else {
            out_null(t);   /* audio, remux */
        }
        out_min(t, r->duration_us);
        out_min(t, r->billed_us);
        out_min(t, r->covered_us);
        out_min(t, r->overage_us);
        out_time(t, r->started_at);
        out_str(t, r->state);
        out_bool(t, r->settled);
    }
    return t;
}

static out_table *session_table(const meter_session_row *rows, size_t n)
{
    out_table *t = out_new(session_cols, NELEM(session_cols));

    for (size_t i = 0; i < n; i++) {
        const meter_session_row *r = &rows[i];
        out_str(t, r->id);
        out_time(t, r->opened_at);
        out_str(t, r->job);
        out_str(t, r->output);
        out_str(t, r->account[0] ? r->account : NULL);
        out_str(t, meter_class_name(r->cls));
        out_str(t, r->codec);
        out_str(t, r->status);
        out_min(t, r->duration_us);
        out_int(t, r->segments);
        out_int(t, r->pid);
        out_time(t, r->updated_at);
    }
    return t;
}

int cmd_jobs(const struct cli *c, const struct cli_cmd *cmd,
             int argc, char **argv)
{
    static const struct option opts[] = {
        { "job",      required_argument, NULL, 'j' },
        { "type",     required_argument, NULL, 't' },
        { "ttype",    required_argument, NULL, 'y' },
        { "from",     required_argument, NULL, 'f' },
        { "to",       required_argument, NULL, 'T' },
        { "sessions", no_argument,       NULL, 's' },
        { "account",  required_argument, NULL, 'A' },
        { "help",     no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    meter_query q = { .type = -1 };
    int sessions = 0, rc, o;

    while ((o = args_getopt(argc, argv, opts)) != -1) {
        if (o == 'h') {
            cli_print_help(cmd, stdout);
            return EXIT_OK;
        }
        if (o == 'j') q.job = optarg;
        else if (o == 's') sessions = 1;
        else if (o == '?' || (rc = query_option(argv[0], o, &q))) return EXIT_USAGE;
    }
    if ((rc = args_positional(argc, argv, 0, 0, ""))) return rc;
    if ((rc = check_period(argv[0], &q))) return rc;
    if (sessions && q.ttype)
        return cli_usage_error("%s: --ttype does not apply to --sessions", argv[0]);

    meter_store *st;
    out_table *t;
    size_t n = 0;
    if ((rc = cli_open(c, CLI_OPEN_QUERY, &st))) return rc;
    if (sessions) {
        meter_session_row *rows = NULL;
        if ((rc = meter_sessions(st, &q, &rows, &n)) != METER_OK)
            return cli_fail(st, rc);
        t = session_table(rows, n);
        meter_free(rows);
    } else {
        meter_job_row *rows = NULL;
        if ((rc = meter_jobs(st, &q, &rows, &n)) != METER_OK)
            return cli_fail(st, rc);
        t = job_table(rows, n);
        meter_free(rows);
    }
    return cli_finish(c, st, t, 0);
}
