/*
 * test_time — the time and number helpers of meter.h: meter_parse_time
 * (every accepted form, malformed times refused), meter_format_time,
 * meter_format_minutes (3 decimals, truncated) and the METER_NOW test clock.
 * Expected epoch values come from libc's timegm (tap_utc), not libmeter.
 */
#include "mtest.h"

static void parse_ok(const char *s, int64_t want)
{
    meter_time t = -1;
    char err[METER_ERRMAX] = "";
    int rc = meter_parse_time(s, &t, err);
    if (CHECK_RC_ERR(err, rc, METER_OK, "parse '%s'", s))
        CHECK_EQ_I64(t, want, "value of '%s'", s);
}

static void parse_bad(const char *s)
{
    meter_time t = 12345;
    char err[METER_ERRMAX] = "";
    int rc = meter_parse_time(s, &t, err);
    CHECK_RC_ERR(err, rc, METER_EINVAL, "refuse '%s'", s ? s : "(null)");
    CHECK(err[0] != '\0' && !strchr(err, '\n'),
          "one-line message for '%s': %s", s ? s : "(null)", err);
}

static void parsing(void)
{
    int64_t t0 = tap_utc(2026, 11, 26, 9, 30, 0);
    parse_ok("2026-11-26T09:30:00Z", t0);
    parse_ok("2026-11-26T17:30:00+08:00", t0);
    parse_ok("2026-11-26T04:00:00-05:30", t0);
    parse_ok("2026-11-26 09:30:00.250+0000", t0 + 250);
    parse_ok("2026-11-26T09:30:00.5Z", t0 + 500);
    parse_ok("2026-11-26", tap_utc(2026, 11, 26, 0, 0, 0));
    parse_ok("1970-01-01T00:00:00Z", 0);
    parse_ok("2028-02-29T23:59:59Z", tap_utc(2028, 2, 29, 23, 59, 59));
    parse_ok("2026-01-01T00:30:00+01:00", tap_utc(2025, 12, 31, 23, 30, 0));

    parse_bad("2026-11-26T09:30:00");        /* no zone */
    parse_bad("2026-11-26 09:30");           /* no seconds, no zone */
    parse_bad("2026-13-01T00:00:00Z");       /* month 13 */
    parse_bad("2026-00-10T00:00:00Z");       /* month 0 */
    parse_bad("2026-02-30T00:00:00Z");       /* no such day */
    parse_bad("2027-02-29T00:00:00Z");       /* not a leap year */
    parse_bad("2026-11-26T24:30:00Z");       /* hour 24 */
    parse_bad("2026-11-26T09:60:00Z");       /* minute 60 */
    parse_bad("2026-11-26T09:30:00+8");      /* short offset */
    parse_bad("2026-11-26T09:30:00+25:00");  /* offset out of range */
    parse_bad("2026-11-26T09:30:00Zjunk");   /* trailing garbage */
    parse_bad("2026-11-26junk");
    parse_bad("26-11-26T09:30:00Z");
    parse_bad("yesterday");
    parse_bad("");
    parse_bad(" 2026-11-26T09:30:00Z");
}

static void formatting(void)
{
    char buf[40];
    int64_t t0 = tap_utc(2026, 11, 26, 9, 30, 0);
    meter_format_time(t0, 0, buf);
    CHECK_EQ_STR(buf, "2026-11-26T09:30:00Z", "format UTC");
    meter_format_time(t0 + 250, 0, buf);
    CHECK_EQ_STR(buf, "2026-11-26T09:30:00.250Z", "format with ms");
    meter_format_time(t0, 480, buf);
    CHECK_EQ_STR(buf, "2026-11-26T17:30:00+08:00", "format at +08:00");
    meter_format_time(t0, -330, buf);
    CHECK_EQ_STR(buf, "2026-11-26T04:00:00-05:30", "format at -05:30");
    meter_format_time(0, 0, buf);
    CHECK_EQ_STR(buf, "1970-01-01T00:00:00Z", "format epoch");

    /* round trip over a spread of instants and offsets */
    int bad = 0;
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < 2000; ++i) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        meter_time t = (meter_time)(x % (INT64_C(4102444800000)));
        int off = (int)((x >> 40) % 1681) - 840;   /* −14:00 … +14:00 */
        meter_time back = -1;
        char err[METER_ERRMAX];
        meter_format_time(t, off, buf);
        if (meter_parse_time(buf, &back, err) != METER_OK || back != t) {
            if (!bad++)
                tap_diag("round trip %" PRId64 " off %d -> %s -> %" PRId64,
                         t, off, buf, back);
        }
    }
    CHECK_EQ_INT(bad, 0, "format/parse round trip of 2000 instants");

    static const struct { int64_t us; const char *want; } m[] = {
        { 0, "0.000" },
        { 60000000, "1.000" },
        { 59999999, "0.999" },
        { 60000, "0.001" },
        { 59999, "0.000" },
        { 740740680, "12.345" },
        { INT64_C(600000000000000), "10000000.000" },
        { 90000000, "1.500" },
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; ++i) {
        char mb[32];
        meter_format_minutes(m[i].us, mb);
        CHECK_EQ_STR(mb, m[i].want, "minutes of %" PRId64 " us", m[i].us);
    }
}

static void clock_env(void)
{
    int64_t t0 = tap_utc(2026, 6, 1, 12, 0, 0);
    tap_set_now("2026-06-01T12:00:00Z");
    CHECK_EQ_I64(meter_now(), t0, "METER_NOW as ISO 8601");
    tap_set_now("2026-06-01T20:00:00+08:00");
    CHECK_EQ_I64(meter_now(), t0, "METER_NOW with an offset");
    tap_set_now_ms(t0 + 1234);
    CHECK_EQ_I64(meter_now(), t0 + 1234, "METER_NOW as epoch ms");
    tap_set_now_ms(t0 + MS_PER_DAY);
    CHECK_EQ_I64(meter_now(), t0 + MS_PER_DAY, "METER_NOW re-read on change");

    unsetenv("METER_NOW");
    int64_t wall = (int64_t)time(NULL) * 1000;
    int64_t now = meter_now();
    /* not a timing assertion: only that the wall clock is used at all */
    CHECK(now > wall - 3600 * 1000 && now < wall + 3600 * 1000,
          "without METER_NOW the wall clock is used");
}

int main(void)
{
    parsing();
    formatting();
    clock_env();
    return done_testing();
}
