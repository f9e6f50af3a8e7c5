/*
 * cmd_rates.c — meterctl rates [set | unset]: the effective rate table
 * (built-in rows overlaid with the database's overrides).
 */
#include <inttypes.h>
#include <string.h>

#include "args.h"

#define NELEM(a) (sizeof (a) / sizeof *(a))

static const out_col rate_cols[] = {
    { "class",      "Class",            OUT_STR  },
    { "ttype",      "Transcoding type", OUT_STR  },
    { "ratio",      "Ratio",            OUT_STR  },
    { "ratio_num",  NULL,               OUT_INT  },
    { "ratio_den",  NULL,               OUT_INT  },
    { "deductible", NULL,               OUT_BOOL },
    { "overridden", NULL,               OUT_BOOL },
    { NULL,         "Source",           OUT_STR  },
};

static int64_t gcd(int64_t a, int64_t b)
{
    while (b) {
        int64_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

/* The ratio as people write it: "1:4" for whole numbers of pack minutes,
 * an exact decimal when there is one ("0.25"), else "1/3"; "none" when
 * the type has no ratio (not deductible).  Integers only: a display of an
 * exact rational must not round. */
static void format_ratio(int64_t num, int64_t den, char buf[96])
{
    if (den <= 0) {
        snprintf(buf, 96, "none");
        return;
    }
    int64_t g = gcd(num < 0 ? -num : num, den);
    if (g > 1) {
        num /= g;
        den /= g;
    }
    if (den == 1) {
        snprintf(buf, 96, "1:%" PRId64, num);
        return;
    }
    int64_t d = den;
    while (d % 2 == 0) d /= 2;
    while (d % 5 == 0) d /= 5;
    /* no finite decimal, or one whose digits could overflow rem * 10 */
    if (d != 1 || num < 0 || den > INT64_MAX / 10) {
        snprintf(buf, 96, "%" PRId64 "/%" PRId64, num, den);
        return;
    }
    int len = snprintf(buf, 96, "%" PRId64 ".", num / den);
    int64_t rem = num % den;
    while (rem && len < 94) {   /* den = 2^a·5^b < 2^60: ≤ 60 digits */
        rem *= 10;
        buf[len++] = (char)('0' + rem / den);
        rem %= den;
    }
    buf[len] = '\0';
}

static void rate_row(out_table *t, const meter_rate *r)
{
    char ratio[96];
    format_ratio(r->num, r->den, ratio);
    out_str(t, meter_class_name(r->cls));
    out_str(t, r->ttype);
    out_str(t, ratio);
    if (r->den > 0) {
        out_int(t, r->num);
        out_int(t, r->den);
    } else {   /* no ratio: JSON null, not a made-up 0/0 */
        out_null(t);
        out_null(t);
    }
    out_bool(t, r->den > 0);
    out_bool(t, r->overridden);
    out_str(t, r->overridden ? "override" : "built-in");
}

int cmd_rates(const struct cli *c, const struct cli_cmd *cmd,
              int argc, char **argv)
{
    static const struct option opts[] = {
        { "class", required_argument, NULL, 'c' },
        { "help",  no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    meter_class cls;
    int only = -1, rc, o;

    while ((o = args_getopt(argc, argv, opts)) != -1) {
        switch (o) {
        case 'h': cli_print_help(cmd, stdout); return EXIT_OK;
        case 'c':
            if ((rc = args_class(argv[0], "--class", optarg, &cls))) return rc;
            only = (int)cls;
            break;
        default: return EXIT_USAGE;
        }
    }
    /* "rates foo": main.c found no subcommand foo and passed it here */
    if (optind < argc)
        return cli_usage_error("%s: unknown subcommand '%s' (set, unset)",
                               argv[0], argv[optind]);

    meter_store *st;
    meter_rate *rows = NULL;
    size_t n = 0;
    if ((rc = cli_open(c, CLI_OPEN_QUERY, &st))) return rc;
    if ((rc = meter_rates_list(st, &rows, &n)) != METER_OK)
        return cli_fail(st, rc);
    out_table *t = out_new(rate_cols, NELEM(rate_cols));
    for (size_t i = 0; i < n; i++)
        if (only < 0 || (int)rows[i].cls == only) rate_row(t, &rows[i]);
    meter_free(rows);
    return cli_finish(c, st, t, 0);
}

/* rates set / unset: --class and --ttype, and for set --ratio. */
static int rate_change(const struct cli *c, const struct cli_cmd *cmd,
                       int argc, char **argv, int set)
{
    static const struct option opts[] = {
        { "class", required_argument, NULL, 'c' },
        { "ttype", required_argument, NULL, 'y' },
        { "ratio", required_argument, NULL, 'r' },
        { "help",  no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *ttype = NULL, *ratio = NULL;
    meter_class cls = METER_CLASS_GENERAL;
    int have_class = 0, rc, o;

    while ((o = args_getopt(argc, argv, opts)) != -1) {
        switch (o) {
        case 'h': cli_print_help(cmd, stdout); return EXIT_OK;
        case 'c':
            if ((rc = args_class(argv[0], "--class", optarg, &cls))) return rc;
            have_class = 1;
            break;
        case 'y': ttype = optarg; break;
        case 'r':
            if (!set)
                return cli_usage_error("%s: --ratio does not apply", argv[0]);
            ratio = optarg;
            break;
        default: return EXIT_USAGE;
        }
    }
    if ((rc = args_positional(argc, argv, 0, 0, ""))) return rc;
    if (!have_class) return args_missing(argv[0], "--class general|tsc");
    if (!ttype) return args_missing(argv[0], "--ttype NAME");
    if (set && !ratio) return args_missing(argv[0], "--ratio R");

    meter_store *st;
    meter_rate r;
    if ((rc = cli_open(c, 0, &st))) return rc;
    rc = set ? meter_rate_set(st, cls, ttype, ratio)
             : meter_rate_unset(st, cls, ttype);
    if (rc != METER_OK) return cli_fail(st, rc);

    out_table *t = out_new(rate_cols, NELEM(rate_cols));
    rc = meter_rate_lookup(st, cls, ttype, &r);
    if (rc == METER_OK) {
        rate_row(t, &r);
    } else if (rc == METER_ENOTFOUND && !set) {
        /* the override is gone and no built-in row remains */
        out_str(t, meter_class_name(cls));
        out_str(t, ttype);
        out_str(t, "none");
        out_null(t);
        out_null(t);
        out_bool(t, 0);
        out_bool(t, 0);
        out_null(t);
    } else {
        out_free(t);
        return cli_fail(st, rc);
    }
    return cli_finish(c, st, t, 1);
}

int cmd_rates_set(const struct cli *c, const struct cli_cmd *cmd,
                  int argc, char **argv)
{
    return rate_change(c, cmd, argc, argv, 1);
}

int cmd_rates_unset(const struct cli *c, const struct cli_cmd *cmd,
                    int argc, char **argv)
{
    return rate_change(c, cmd, argc, argv, 0);
}
