/*
 * fuzz_time.c — time, date and number parsing as users and peers type it:
 *
 *   meter_parse_time     meterctl's --from/--to/--at, METER_NOW, the
 *                        filter's tests (metering/timeutil.c)
 *   meter_parse_offset   the day_offset setting ("+08:00", "Z")
 *   meter_now            with METER_NOW set to the input (the test clock)
 *   args_int64/args_time meterctl's number and time options (cli/args.c)
 *   proto_valid_day      the wire's "YYYY-MM-DD" (sync/protocol.c)
 *
 * Checked beyond "no crash": a time that parses formats back (in UTC and
 * in the input's offset) to a text that parses to the same instant; its
 * billing day contains it; a wire day that validates is a date
 * meter_parse_time takes, and names the same day; a number args_int64
 * takes is what strtoll reads and lies within the bounds.
 *
 * Input: "TIME\nOFFSET\nNUMBER" (missing parts are empty).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "fuzz_util.h"
#include "internal.h"
#include "protocol.h"

/* 9999-12-31T23:59:59.999Z + 1 ms: the first instant a 4-digit year cannot show. */
#define YEAR_10000_MS INT64_C(253402300800000)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_detach_stdin();
    return 0;
}

/* t formatted with offset `off` parses back to t when the local time it
 * shows is within years 1970 … 9999. */
static void check_format_roundtrip(meter_time t, int off)
{
    char buf[40], err[METER_ERRMAX];
    meter_format_time(t, off, buf);
    meter_time shifted = t + (meter_time)off * 60000, back = -1;
    int rc = meter_parse_time(buf, &back, err);
    if (shifted >= 0 && shifted < YEAR_10000_MS) {
        fuzz_check(rc == METER_OK, "%" PRId64 " at %+d min formats as '%s', which does not "
                   "parse: %s", t, off, buf, err);
        fuzz_check(back == t, "'%s' is %" PRId64 ", not %" PRId64, buf, back, t);
    }
    /* the billing day of t in that offset contains t */
    char day[11];
    meter_day_of(t, off, day);
    if (shifted >= 0 && shifted < YEAR_10000_MS) {
        meter_time end = meter_day_end(day, off);
        fuzz_check(end > t && end - t <= METER_MS_PER_DAY, "day %s (%+d min) ends at %" PRId64
                   ", %" PRId64 " is not in it", day, off, end, t);
    }
}

static void fuzz_time(const char *s)
{
    meter_time t = -1;
    char err[METER_ERRMAX] = "";
    if (meter_parse_time(s, &t, err) != METER_OK) {
        fuzz_check(err[0] && !strpbrk(err, "\n"), "refused '%s' without a one-line reason", s);
        return;
    }
    fuzz_check(t >= 0 && t < YEAR_10000_MS + 15 * 3600 * INT64_C(1000),
               "'%s' parsed to %" PRId64, s, t);
    check_format_roundtrip(t, 0);
    /* the offset the input was written in, when it has one */
    size_t n = strlen(s);
    int off;
    for (size_t k = 1; k <= 6 && k <= n; k++)
        if (meter_parse_offset(s + n - k, &off) == METER_OK) {
            check_format_roundtrip(t, off);
            break;
        }
    (void)meter_add_years(t, 1);
}

static void fuzz_offset(const char *s, meter_time t)
{
    int off = 99999;
    if (meter_parse_offset(s, &off) != METER_OK)
        return;
    fuzz_check(off >= -(14 * 60 + 59) && off <= 14 * 60 + 59, "'%s' is %d minutes", s, off);
    check_format_roundtrip(t, off);
}

static void fuzz_day(const char *s)
{
    if (!proto_valid_day(s))
        return;
    meter_time t;
    char err[METER_ERRMAX], day[11];
    fuzz_check(meter_parse_time(s, &t, err) == METER_OK, "wire day '%s' is not a date: %s",
               s, err);
    meter_day_of(t, 0, day);
    fuzz_check(strcmp(day, s) == 0, "wire day '%s' is day %s", s, day);
}

static void fuzz_number(const char *s)
{
    int64_t v;
    if (args_int64("fuzz", "--n", s, -1000, INT64_MAX, &v) == EXIT_OK) {
        fuzz_check(v >= -1000, "'%s' gave %" PRId64 " below the minimum", s, v);
        fuzz_check(v == strtoll(s, NULL, 10), "'%s' gave %" PRId64, s, v);
    }
    int i;
    if (args_int("fuzz", "--i", s, 1, 100, &i) == EXIT_OK)
        fuzz_check(i >= 1 && i <= 100, "'%s' gave %d", s, i);
    meter_time t;
    (void)args_time("fuzz", "--at", s, &t);
}

/* METER_NOW as the test clock: an integer or a time; anything else is the
 * wall clock (warned about once). */
static void fuzz_now(const char *s)
{
    if (!*s)
        return;
    setenv("METER_NOW", s, 1);
    meter_time now = meter_now();
    unsetenv("METER_NOW");
    fuzz_check(now >= 0, "METER_NOW='%s' gave %" PRId64, s, now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in in;
    fuzz_in_init(&in, data, size);
    const char *time = fuzz_field(&in, '\n');
    const char *offset = fuzz_field(&in, '\n');
    const char *number = fuzz_rest(&in, NULL);
    if (!time)
        time = "";
    if (!offset)
        offset = "";

    fuzz_time(time);
    meter_time t;
    char err[METER_ERRMAX];
    if (meter_parse_time(time, &t, err) != METER_OK)
        t = 1764149400000;   /* 2025-11-26T09:30:00Z */
    fuzz_offset(offset, t);
    fuzz_day(time);
    fuzz_number(number);
    fuzz_now(time);
    fuzz_fields_free(&in);
    return 0;
}
