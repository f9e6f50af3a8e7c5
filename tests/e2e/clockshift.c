/*
 * clockshift.c — an LD_PRELOAD shim that moves a process's wall clock by
 * $E2E_CLOCK_OFFSET seconds (may be negative), for the security tests: a
 * node whose clock is off signs its requests with the wrong time.
 *
 * meterctl signs with time(NULL) (the real clock; METER_NOW does not apply
 * to signatures), so time(), gettimeofday() and clock_gettime() on the
 * realtime clocks are shifted.  The monotonic clocks curl times requests
 * with are left alone.  Not part of any shipped program.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long offset_s(void)
{
    const char *s = getenv("E2E_CLOCK_OFFSET");
    return s ? strtol(s, NULL, 10) : 0;
}

static int real_clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*fn)(clockid_t, struct timespec *);
    if (!fn)
        fn = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    return fn(id, ts);
}

static int shifted(clockid_t id)
{
    return id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    int rc = real_clock_gettime(id, ts);
    if (rc == 0 && shifted(id))
        ts->tv_sec += offset_s();
    return rc;
}

time_t time(time_t *t)
{
    struct timespec ts;
    real_clock_gettime(CLOCK_REALTIME, &ts);
    time_t now = ts.tv_sec + offset_s();
    if (t)
        *t = now;
    return now;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    (void)tz;
    struct timespec ts;
    int rc = real_clock_gettime(CLOCK_REALTIME, &ts);
    if (rc == 0) {
        tv->tv_sec = ts.tv_sec + offset_s();
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}
