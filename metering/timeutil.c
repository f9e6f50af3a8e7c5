/*
 * timeutil.c — the clock (with the METER_NOW test clock), ISO 8601 parsing
 * and formatting, billing days.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

meter_time meter_now(void)
{
    const char *fake = getenv("METER_NOW");
    if (fake && *fake) {
        meter_time t;
        char *end;
        long long ms = strtoll(fake, &end, 10);
        if (*end == '\0' && ms >= 0)
            return ms;
        char err[METER_ERRMAX];
        if (meter_parse_time(fake, &t, err) == METER_OK)
            return t;
        static int warned;
        if (!warned) {
            warned = 1;
            fprintf(stderr, "libmeter: ignoring METER_NOW: %s\n", err);
        }
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (meter_time)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d[m - 1] + (m == 2 && leap);
}

/* Reads exactly n digits. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int meter_parse_offset(const char *s, int *minutes)
{
    if (strcmp(s, "Z") == 0 || strcmp(s, "z") == 0) {
        *minutes = 0;
        return METER_OK;
    }
    int sign, hh, mm;
    if (*s == '+')
        sign = 1;
    else if (*s == '-')
        sign = -1;
    else
        return METER_EINVAL;
    s++;
    if (digits(&s, 2, &hh))
        return METER_EINVAL;
    if (*s == ':')
        s++;
    if (digits(&s, 2, &mm) || *s || hh > 14 || mm > 59)
        return METER_EINVAL;
    *minutes = sign * (hh * 60 + mm);
    return METER_OK;
}

int meter_parse_time(const char *s, meter_time *out, char err[METER_ERRMAX])
{
    if (!s || !*s)
        return meter_fail_buf(err, METER_EINVAL, "empty time");
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d))
        goto bad;
    if (*p == '\0') {
        /* a bare date: midnight UTC */
    } else {
        if (*p != 'T' && *p != 't' && *p != ' ')
            goto bad;
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
            goto bad;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec))
                goto bad;
            if (*p == '.' || *p == ',') {
                p++;
                int n = 0, scale = 100;
                while (isdigit((unsigned char)*p)) {
                    if (n < 3) {
                        ms += (*p - '0') * scale;
                        scale /= 10;
                    }
                    n++;
                    p++;
                }
                if (n == 0)
                    goto bad;
            }
        }
        if (*p == '\0')
            return meter_fail_buf(err, METER_EINVAL,
                                  "time '%s' has no zone (add Z or +HH:MM)", s);
        if (meter_parse_offset(p, &off) != METER_OK)
            goto bad;
    }
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
        h > 23 || mi > 59 || sec > 59)
        return meter_fail_buf(err, METER_EINVAL, "time '%s' is out of range", s);
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *out = ((meter_time)t - (meter_time)off * 60) * 1000 + ms;
    if (*out < 0)
        return meter_fail_buf(err, METER_EINVAL, "time '%s' is before 1970", s);
    return METER_OK;
bad:
    return meter_fail_buf(err, METER_EINVAL,
                          "malformed time '%s' (want ISO 8601 like 2026-11-26T09:30:00Z)", s);
}

void meter_format_time(meter_time t, int offset_min, char buf[40])
{
    meter_time shifted = t + (meter_time)offset_min * 60000;
    time_t secs = (time_t)(shifted >= 0 ? shifted / 1000 : (shifted - 999) / 1000);
    int ms = (int)(shifted - (meter_time)secs * 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char zone[16];
    if (offset_min == 0)
        strcpy(zone, "Z");
    else
        snprintf(zone, sizeof zone, "%c%02d:%02d", offset_min < 0 ? '-' : '+',
                 abs(offset_min) / 60, abs(offset_min) % 60);
    char frac[8] = "";
    if (ms)
        snprintf(frac, sizeof frac, ".%03d", ms % 1000);
    char out[96];  /* roomy for the compiler; real output is ≤ 29 bytes */
    snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d%s%s", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac, zone);
    meter_copy(buf, 40, out);
}

void meter_format_minutes(int64_t us, char buf[32])
{
    /* Display only: truncated to thousandths of a minute, integer maths. */
    const char *sign = us < 0 ? "-" : "";
    uint64_t a = us < 0 ? (uint64_t)0 - (uint64_t)us : (uint64_t)us;
    uint64_t whole = a / 60000000u;
    uint64_t milli = (a % 60000000u) / 60000u;
    snprintf(buf, 32, "%s%" PRIu64 ".%03" PRIu64, sign, whole, milli);
}

void meter_day_of(meter_time t, int offset_min, char day[11])
{
    char buf[40];
    meter_format_time(t, offset_min, buf);
    memcpy(day, buf, 10);
    day[10] = '\0';
}

meter_time meter_day_end(const char day[11], int offset_min)
{
    struct tm tm = {0};
    tm.tm_year = atoi(day) - 1900;
    tm.tm_mon = atoi(day + 5) - 1;
    tm.tm_mday = atoi(day + 8) + 1;  /* timegm normalises the day after */
    return ((meter_time)timegm(&tm) - (meter_time)offset_min * 60) * 1000;
}

meter_time meter_add_years(meter_time t, int n)
{
    time_t secs = (time_t)(t / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    tm.tm_year += n;  /* Feb 29 + 1 year: timegm normalises to Mar 1 */
    return (meter_time)timegm(&tm) * 1000 + t % 1000;
}
