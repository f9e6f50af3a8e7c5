/*
 * loadgen.c — fills a node database with real libmeter records for the
 * load tests (tests/load/): meter_record() in a loop, through the public
 * API only (meter.h), until the sync outbox holds at least RECORDS records
 * (usage and the deductions each usage makes: one per pack it draws from,
 * plus an overage row for what no pack covered).
 *
 *   loadgen DB RECORDS
 *
 * DB must exist (meterctl init) and should hold the packs the node pulled
 * from the ledger, so the deductions name packs the ledger knows.  The
 * usage cycles through ten shapes — HD/FHD/4K H.264 and H.265, audio,
 * remuxing, TSC, and an 8K output no rate covers (always overage) — with
 * durations that are not whole seconds, so billing rounds.
 *
 * Prints one line: "usage U records R seconds S" (R = the outbox depth at
 * the end).  Exit status 1 on the first libmeter error, with it on stderr;
 * 2 on misuse.
 */
#include "meter.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct shape {
    const char *output;
    meter_class cls;
    const char *codec;
    int width, height;
};

static const struct shape shapes[] = {
    { "720p",  METER_CLASS_GENERAL, "h264", 1280, 720 },
    { "1080p", METER_CLASS_GENERAL, "h264", 1920, 1080 },
    { "720p",  METER_CLASS_GENERAL, "h264", 1280, 720 },
    { "2160p", METER_CLASS_GENERAL, "h265", 3840, 2160 },
    { "540p",  METER_CLASS_GENERAL, "h264", 960, 540 },
    { "audio", METER_CLASS_GENERAL, "aac", 0, 0 },
    { "copy",  METER_CLASS_GENERAL, "copy", 0, 0 },
    { "tsc",   METER_CLASS_TSC,     "h264", 1280, 720 },
    { "1080p", METER_CLASS_GENERAL, "h265", 1920, 1080 },
    { "8k",    METER_CLASS_GENERAL, "h264", 7680, 4320 },   /* no rate: overage */
};
#define NSHAPES (sizeof shapes / sizeof *shapes)

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int depth(meter_store *st, int64_t *out)
{
    meter_sync_status s;
    int rc = meter_sync_status_get(st, &s);
    *out = s.depth;
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: loadgen DB RECORDS\n");
        return 2;
    }
    char *end;
    errno = 0;
    long long want = strtoll(argv[2], &end, 10);
    if (errno || *end || want < 1 || want > 100000000) {
        fprintf(stderr, "loadgen: RECORDS must be a number from 1 to 100000000, not '%s'\n",
                argv[2]);
        return 2;
    }

    char err[METER_ERRMAX] = "";
    meter_store *st;
    int rc = meter_open(argv[1], 0, &st, err);
    if (rc != METER_OK) {
        fprintf(stderr, "loadgen: %s: %s\n", argv[1], err);
        return 1;
    }
    int64_t have = 0;
    if ((rc = depth(st, &have)) != METER_OK)
        goto fail;

    double t0 = seconds_now();
    long usage = 0;
    char job[64];
    /* A usage adds two to three records (itself, a deduction or an overage
     * row, a second deduction when it splits across packs): runs of a third
     * of what is missing never overshoot, and the outbox is counted once
     * per run instead of once per record. */
    while (have < want) {
        int64_t run = (want - have) / 3;
        for (int64_t k = 0; k < (run > 0 ? run : 1); k++) {
            const struct shape *s = &shapes[usage % NSHAPES];
            snprintf(job, sizeof job, "load-%ld", usage / 2);   /* two outputs per job */
            meter_usage_in in = {
                .job = job, .output = s->output, .cls = s->cls, .codec = s->codec,
                .width = s->width, .height = s->height,
                /* 20 s … 140 s, not whole milliseconds */
                .duration_us = INT64_C(20000000) + (usage * INT64_C(7919333)) % INT64_C(120000000)
                               + 17,
                .at = 0,
            };
            if ((rc = meter_record(st, &in, NULL)) != METER_OK)
                goto fail;
            usage++;
        }
        if ((rc = depth(st, &have)) != METER_OK)
            goto fail;
    }
    printf("usage %ld records %" PRId64 " seconds %.2f\n", usage, have, seconds_now() - t0);
    meter_close(st);
    return 0;

fail:
    fprintf(stderr, "loadgen: %s: %s\n", argv[1], meter_errmsg(st));
    meter_close(st);
    return 1;
}
