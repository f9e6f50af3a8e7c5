/*
 * backoff.c — how long to wait before a retry: exponential backoff with
 * full jitter (a uniform draw from [0, min(cap, base·2^n)]), so many nodes
 * retrying after one ledger outage spread out instead of arriving in step,
 * and never less than the Retry-After the ledger asked for.
 */
#include <errno.h>
#include <time.h>

#include <openssl/rand.h>

#include "sync_internal.h"

long sync_backoff_ms(int attempt, long base_ms, long cap_ms, long retry_after_ms, uint32_t rnd)
{
    if (base_ms < 1)
        base_ms = 1;
    if (cap_ms < base_ms)
        cap_ms = base_ms;
    long ceiling = base_ms;
    for (int i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    /* uniform in [0, ceiling]: 64-bit product, no modulo bias worth noting */
    long wait = (long)(((uint64_t)rnd * (uint64_t)(ceiling + 1)) >> 32);
    if (retry_after_ms > METER_SYNC_RETRY_AFTER_MAX_MS)
        retry_after_ms = METER_SYNC_RETRY_AFTER_MAX_MS;
    if (retry_after_ms > wait)
        wait = retry_after_ms;
    return wait;
}

uint32_t sync_random32(void)
{
    uint32_t r;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
        r = (uint32_t)time(NULL) * 2654435761u;   /* jitter only: not a secret */
    return r;
}

int sync_sleep_ms(long ms, volatile sig_atomic_t *stop)
{
    /* short slices so a signal is seen promptly even when it arrives
     * between the check and the sleep */
    while (ms > 0) {
        if (stop && *stop)
            return 1;
        long slice = ms > 100 ? 100 : ms;
        struct timespec ts = { slice / 1000, (slice % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            if (stop && *stop)
                return 1;
        ms -= slice;
    }
    return stop && *stop;
}
