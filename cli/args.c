/*
 * args.c — parsing helpers and one-line usage errors (args.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

/* One line, always: control characters a user typed into a name (and that
 * come back in a message) are shown as '?'. */
static void vreport(const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    fprintf(stderr, "meterctl: %s\n", msg);
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    return EXIT_USAGE;
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
}

const char *args_option_word(const char *arg, char buf[64])
{
    size_t n = strcspn(arg, "=");
    if (n >= 64) n = 63;
    memcpy(buf, arg, n);
    buf[n] = '\0';
    return buf;
}

int args_getopt(int argc, char **argv, const struct option *longopts)
{
    char buf[64];
    int c = getopt_long(argc, argv, ":h", longopts, NULL);

    if (c != '?' && c != ':') return c;
    /* After an error optind points past the offending word. */
    const char *word = (optind > 0 && optind <= argc) ? argv[optind - 1] : "";
    if (c == ':') {
        cli_usage_error("%s: option '%s' needs a value", argv[0],
                        args_option_word(word, buf));
    } else if (optopt && strncmp(word, "--", 2) != 0) {
        cli_usage_error("%s: unknown option '-%c'", argv[0], optopt);
    } else if (optopt && strchr(word, '=')) {
        cli_usage_error("%s: option '%s' takes no value", argv[0],
                        args_option_word(word, buf));
    } else {
        cli_usage_error("%s: unknown option '%s'", argv[0],
                        args_option_word(word, buf));
    }
    return '?';
}

int args_positional(int argc, char **argv, int min, int max, const char *what)
{
    int n = argc - optind;
    if (n < min) return cli_usage_error("%s: missing %s", argv[0], what);
    if (n > max)
        return cli_usage_error("%s: unexpected argument '%s'", argv[0],
                               argv[optind + max]);
    return EXIT_OK;
}

int args_int64(const char *cmd, const char *opt, const char *s,
               int64_t min, int64_t max, int64_t *out)
{
    const char *p = s;
    char *end;

    if (*p == '+' || *p == '-') p++;
    if (*p < '0' || *p > '9')   /* strtoll would skip blanks, accept "" */
        return cli_usage_error("%s: %s: '%s' is not a whole number", cmd, opt, s);
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return cli_usage_error("%s: %s: '%s' is not a whole number", cmd, opt, s);
    if (errno == ERANGE)
        return cli_usage_error("%s: %s: '%s' is too %s", cmd, opt, s,
                               v < 0 ? "small" : "large");
    if (v < min || v > max) {
        if (max == INT64_MAX)
            return cli_usage_error("%s: %s: '%s' is out of range (at least %"
                                   PRId64 ")", cmd, opt, s, min);
        return cli_usage_error("%s: %s: '%s' is out of range (%" PRId64
                               " to %" PRId64 ")", cmd, opt, s, min, max);
    }
    *out = v;
    return EXIT_OK;
}

int args_int(const char *cmd, const char *opt, const char *s,
             int min, int max, int *out)
{
    int64_t v;
    int rc = args_int64(cmd, opt, s, min, max, &v);
    if (rc == EXIT_OK) *out = (int)v;
    return rc;
}

int args_time(const char *cmd, const char *opt, const char *s, meter_time *out)
{
    char err[METER_ERRMAX] = "";
    if (meter_parse_time(s, out, err) != METER_OK)
        return cli_usage_error("%s: %s: %s", cmd, opt,
                               err[0] ? err : "not an ISO 8601 time with a zone");
    return EXIT_OK;
}

int args_class(const char *cmd, const char *opt, const char *s, meter_class *out)
{
    if (meter_class_parse(s, out) != METER_OK)
        return cli_usage_error("%s: %s: unknown class '%s' (general or tsc)",
                               cmd, opt, s);
    return EXIT_OK;
}

int args_missing(const char *cmd, const char *opt)
{
    return cli_usage_error("%s: missing %s", cmd, opt);
}
