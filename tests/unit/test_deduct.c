/*
 * test_deduct — the realtime deduction engine (billing-rules.md §2, §3):
 * earliest end first across several packs, split deductions, overage when
 * packs run out or a type is not deductible, skipping of frozen, expired,
 * exhausted, pending, refunded and other-class packs, the usage-details rows
 * (day × pack × ttype with used/before/after), the raw records, the
 * ceil-minute rounding policy, and bad usage input refused without a write.
 *
 * Every expected number is worked out by hand from the ratio table:
 * billed = duration × ratio, in µs.
 */
#include "mtest.h"

#define S(x) ((int64_t)(x) * US_PER_S)

/* Finds the usage-details row of (pack, ttype) in rows; NULL if none. */
static const meter_usage_row *find_row(const meter_usage_row *rows, size_t n,
                                       const char *pack, const char *ttype)
{
    for (size_t i = 0; i < n; ++i)
        if (!strcmp(rows[i].pack_id, pack) && !strcmp(rows[i].ttype, ttype))
            return &rows[i];
    return NULL;
}

static void expect_row(const meter_usage_row *rows, size_t n, const char *day,
                       const char *pack, const char *ttype, int64_t used,
                       int64_t before, int64_t after, int64_t count)
{
    const meter_usage_row *r = find_row(rows, n, pack, ttype);
    if (!CHECK(r != NULL, "details row %s %s %s exists", day, pack, ttype))
        return;
    CHECK_EQ_STR(r->day, day, "%s %s day", pack, ttype);
    CHECK_EQ_I64(r->used_us, used, "%s %s used", pack, ttype);
    CHECK_EQ_I64(r->before_us, before, "%s %s before", pack, ttype);
    CHECK_EQ_I64(r->after_us, after, "%s %s after", pack, ttype);
    CHECK_EQ_I64(r->count, count, "%s %s deduction count", pack, ttype);
}

/* Records and checks billed/covered/overage and the ttype. */
static void usage(meter_store *st, const char *job, meter_class c,
                  const char *codec, int w, int h, int64_t dur,
                  const char *ttype, int64_t billed, int64_t covered)
{
    meter_usage_result r;
    int rc = mt_record(st, job, c, codec, w, h, dur, &r);
    if (!CHECK_RC(st, rc, METER_OK, "%s: record %s %dx%d %" PRId64 " us", job,
                  codec, w, h, dur))
        return;
    if (ttype)
        CHECK_EQ_STR(r.ttype, ttype, "%s ttype", job);
    CHECK_EQ_I64(r.billed_us, billed, "%s billed", job);
    CHECK_EQ_I64(r.covered_us, covered, "%s covered", job);
    CHECK_EQ_I64(r.overage_us, billed - covered, "%s overage", job);
    CHECK_EQ_INT(r.settled, 1, "%s settled in realtime mode", job);
    CHECK(r.id[0] != '\0', "%s has a record id", job);
}

static int64_t available(meter_store *st, meter_class c)
{
    int64_t us = -1;
    if (meter_available(st, c, &us) != METER_OK)
        tap_diag("meter_available: %s", meter_errmsg(st));
    return us;
}

static void fifo(const char *dir)
{
    meter_store *st = mt_open(tap_path(dir, "fifo.db"));
    int64_t now = tap_utc(2026, 6, 15, 12, 0, 0);
    tap_set_now_ms(now);
    /* usable general packs; end = start + 1 year decides the order */
    mt_add_pack(st, "B", METER_CLASS_GENERAL, 5, tap_utc(2026, 1, 1, 0, 0, 0));
    mt_add_pack(st, "C", METER_CLASS_GENERAL, 20, tap_utc(2026, 5, 1, 0, 0, 0));
    mt_add_pack(st, "X", METER_CLASS_GENERAL, 1, tap_utc(2025, 6, 20, 0, 0, 0));
    mt_add_pack(st, "A", METER_CLASS_GENERAL, 10, tap_utc(2026, 3, 1, 0, 0, 0));
    mt_add_pack(st, "D", METER_CLASS_GENERAL, 3, tap_utc(2025, 9, 1, 0, 0, 0));
    /* packs that must be skipped, several ending before the usable ones */
    mt_add_pack(st, "E-expired", METER_CLASS_GENERAL, 50,
                tap_utc(2025, 1, 1, 0, 0, 0));
    mt_add_pack(st, "F-frozen", METER_CLASS_GENERAL, 50,
                tap_utc(2025, 7, 1, 0, 0, 0));
    CHECK_RC(st, meter_pack_freeze(st, "F-frozen"), METER_OK, "freeze F");
    mt_add_pack(st, "P-pending", METER_CLASS_GENERAL, 50,
                tap_utc(2026, 7, 1, 0, 0, 0));
    mt_add_pack(st, "R-refunded", METER_CLASS_GENERAL, 50,
                tap_utc(2026, 6, 14, 0, 0, 0));
    CHECK_RC(st, meter_pack_refund(st, "R-refunded"), METER_OK, "refund R");
    mt_add_pack(st, "T-tsc", METER_CLASS_TSC, 10, tap_utc(2025, 8, 1, 0, 0, 0));

    CHECK_EQ_I64(available(st, METER_CLASS_GENERAL), S(60 + 180 + 300 + 600 +
                                                       1200),
                 "available general = X+D+B+A+C");
    CHECK_EQ_I64(available(st, METER_CLASS_TSC), S(600), "available tsc = T");

    /* not deductible although packs have minutes: 8K and MV-HEVC */
    usage(st, "job-8k", METER_CLASS_GENERAL, "h264", 7680, 4320, S(10),
          "Standard.H264.8K", S(10), 0);
    usage(st, "job-mv", METER_CLASS_GENERAL, "mvhevc", 1920, 1080, S(10), NULL,
          S(10), 0);
    /* 30 s H.264 HD ×2 = 60 s: all of X (the earliest end) */
    usage(st, "job-1", METER_CLASS_GENERAL, "libx264", 1280, 720, S(30),
          "Standard.H264.HD", S(60), S(60));
    CHECK_EQ_I64(mt_remaining(st, "X"), 0, "X used up");
    CHECK_EQ_STR(mt_pack(st, "X").status, "exhausted", "X exhausted");
    /* 4 min H.264 SD ×1 = 240 s: D 180 (all), B 60 */
    usage(st, "job-2", METER_CLASS_GENERAL, "h264", 640, 480, S(240),
          "Standard.H264.SD", S(240), S(240));
    CHECK_EQ_I64(mt_remaining(st, "D"), 0, "D used up");
    CHECK_EQ_I64(mt_remaining(st, "B"), S(240), "B 300 − 60");
    /* 45 s H.265 FHD ×20 = 900 s: B 240, A 600, C 60 */
    usage(st, "job-3", METER_CLASS_GENERAL, "hevc", 1920, 1080, S(45),
          "Standard.H265.FHD", S(900), S(900));
    CHECK_EQ_I64(mt_remaining(st, "B"), 0, "B used up");
    CHECK_EQ_I64(mt_remaining(st, "A"), 0, "A used up");
    CHECK_EQ_I64(mt_remaining(st, "C"), S(1140), "C 1200 − 60");
    /* 10 s AV1 4K ×160 = 1600 s: C 1140, overage 460 */
    usage(st, "job-4", METER_CLASS_GENERAL, "libsvtav1", 3840, 2160, S(10),
          "Standard.AV1.4K", S(1600), S(1140));
    CHECK_EQ_I64(mt_remaining(st, "C"), 0, "C used up");
    /* 60 s audio ×1/4 = 15 s: nothing left → overage */
    usage(st, "job-5", METER_CLASS_GENERAL, "aac", 0, 0, S(60), "Audio", S(15),
          0);
    /* TSC: 10 s H.264 HD ×2 = 20 s from T only */
    usage(st, "job-6", METER_CLASS_TSC, "h264", 1280, 720, S(10),
          "TESHD-10.H264.HD", S(20), S(20));
    CHECK_EQ_I64(mt_remaining(st, "T-tsc"), S(580), "T 600 − 20");

    /* skipped packs untouched */
    static const char *const skipped[] = { "E-expired", "F-frozen",
                                           "P-pending", "R-refunded" };
    for (int i = 0; i < 4; ++i) {
        meter_pack p = mt_pack(st, skipped[i]);
        CHECK(p.remaining_us == 50 * US_PER_MIN && p.deductions == 0,
              "%s never deducted (remaining %" PRId64 ", %" PRId64
              " deductions)", skipped[i], p.remaining_us, p.deductions);
    }
    CHECK_EQ_I64(mt_pack(st, "B").deductions, 2, "B: two deductions");
    CHECK_EQ_I64(mt_pack(st, "C").deductions, 2, "C: two deductions");
    CHECK_EQ_I64(available(st, METER_CLASS_GENERAL), 0, "no general left");

    /* usage details, one day */
    meter_query q = mt_query_all();
    meter_usage_row *rows = NULL;
    size_t n = 0;
    const char *day = "2026-06-15";
    if (CHECK_RC(st, meter_usage_details(st, &q, &rows, &n), METER_OK,
                 "usage details")) {
        expect_row(rows, n, day, "X", "Standard.H264.HD", S(60), S(60), 0, 1);
        expect_row(rows, n, day, "D", "Standard.H264.SD", S(180), S(180), 0, 1);
        expect_row(rows, n, day, "B", "Standard.H264.SD", S(60), S(300), S(240),
                   1);
        expect_row(rows, n, day, "B", "Standard.H265.FHD", S(240), S(240), 0, 1);
        expect_row(rows, n, day, "A", "Standard.H265.FHD", S(600), S(600), 0, 1);
        expect_row(rows, n, day, "C", "Standard.H265.FHD", S(60), S(1200),
                   S(1140), 1);
        expect_row(rows, n, day, "C", "Standard.AV1.4K", S(1140), S(1140), 0, 1);
        expect_row(rows, n, day, "T-tsc", "TESHD-10.H264.HD", S(20), S(600),
                   S(580), 1);
        for (size_t i = 0; i < n; ++i) {
            if (rows[i].pack_id[0] && rows[i].before_us - rows[i].used_us !=
                rows[i].after_us)
                FAIL("row %s %s: before − used ≠ after", rows[i].pack_id,
                     rows[i].ttype);
        }
        meter_free(rows);
    }
    /* overage rows: "-" */
    q.pack_id = "-";
    if (CHECK_RC(st, meter_usage_details(st, &q, &rows, &n), METER_OK,
                 "overage rows")) {
        int64_t sum = 0;
        int only_overage = 1;
        for (size_t i = 0; i < n; ++i) {
            sum += rows[i].used_us;
            only_overage = only_overage && rows[i].pack_id[0] == '\0';
        }
        CHECK(only_overage, "'-' selects only overage rows");
        CHECK_EQ_I64(sum, S(10 + 10 + 460 + 15), "overage rows sum");
        const meter_usage_row *r = find_row(rows, n, "", "Standard.AV1.4K");
        CHECK(r && r->used_us == S(460), "AV1 4K overage row 460 s");
        r = find_row(rows, n, "", "Audio");
        CHECK(r && r->used_us == S(15), "Audio overage row 15 s");
        meter_free(rows);
    }

    /* a second day: two deductions of one type add up in one row */
    tap_set_now_ms(tap_utc(2026, 6, 16, 10, 0, 0));
    mt_add_pack(st, "G", METER_CLASS_GENERAL, 10, 0);
    usage(st, "job-7", METER_CLASS_GENERAL, "h264", 854, 480, S(30),
          "Standard.H264.SD", S(30), S(30));
    tap_set_now_ms(tap_utc(2026, 6, 16, 11, 0, 0));
    usage(st, "job-8", METER_CLASS_GENERAL, "avc", 480, 854, S(30),
          "Standard.H264.SD", S(30), S(30));
    q = mt_query_all();
    q.pack_id = "G";
    if (CHECK_RC(st, meter_usage_details(st, &q, &rows, &n), METER_OK,
                 "details of G")) {
        CHECK_EQ_I64(n, 1, "G: one row for the day and type");
        expect_row(rows, n, "2026-06-16", "G", "Standard.H264.SD", S(60),
                   S(600), S(540), 2);
        if (n >= 1) {
            CHECK_EQ_I64(rows[0].first_at, tap_utc(2026, 6, 16, 10, 0, 0),
                         "G row first_at");
            CHECK_EQ_I64(rows[0].last_at, tap_utc(2026, 6, 16, 11, 0, 0),
                         "G row last_at");
        }
        meter_free(rows);
    }

    /* filters */
    q = mt_query_all();
    q.pack_id = "B";
    CHECK(meter_usage_details(st, &q, &rows, &n) == METER_OK && n == 2,
          "pack B: 2 rows (%zu)", n);
    meter_free(rows);
    q = mt_query_all();
    q.ttype = "Standard.H265.FHD";
    if (meter_usage_details(st, &q, &rows, &n) == METER_OK) {
        CHECK(n == 3 && find_row(rows, n, "B", q.ttype) &&
              find_row(rows, n, "A", q.ttype) && find_row(rows, n, "C", q.ttype),
              "ttype H265 FHD: rows of B, A, C (%zu)", n);
        meter_free(rows);
    }
    q = mt_query_all();
    q.type = METER_CLASS_TSC;
    if (meter_usage_details(st, &q, &rows, &n) == METER_OK) {
        CHECK(n == 1 && !strcmp(rows[0].pack_id, "T-tsc"), "type tsc: T only");
        meter_free(rows);
    }
    q = mt_query_all();
    q.from = tap_utc(2026, 6, 16, 0, 0, 0);
    if (meter_usage_details(st, &q, &rows, &n) == METER_OK) {
        CHECK(n == 1 && !strcmp(rows[0].pack_id, "G"), "from 06-16: G only");
        meter_free(rows);
    }
    q = mt_query_all();
    q.to = tap_utc(2026, 6, 16, 0, 0, 0);
    if (meter_usage_details(st, &q, &rows, &n) == METER_OK) {
        CHECK(find_row(rows, n, "G", "Standard.H264.SD") == NULL &&
              find_row(rows, n, "X", "Standard.H264.HD") != NULL,
              "to 06-16 (exclusive): day 15 only");
        meter_free(rows);
    }

    /* the raw records */
    mt_sums s;
    if (mt_job_sums(st, NULL, &s) == METER_OK) {
        CHECK_EQ_I64(s.n, 10, "10 usage records");
        CHECK_EQ_I64(s.billed, S(10 + 10 + 60 + 240 + 900 + 1600 + 15 + 20 +
                                 30 + 30), "Σ billed");
        CHECK_EQ_I64(s.overage, S(10 + 10 + 460 + 15), "Σ overage");
        CHECK_EQ_I64(s.covered + s.overage, s.billed,
                     "Σ covered + Σ overage = Σ billed");
        CHECK_EQ_I64(s.unbalanced, 0, "each record: covered + overage = billed");
        int64_t dsum = 0;
        meter_pack *packs = NULL;
        size_t np = 0;
        if (meter_pack_list(st, NULL, &packs, &np) == METER_OK) {
            for (size_t i = 0; i < np; ++i) {
                int64_t used = mt_details_used(st, packs[i].id, NULL);
                dsum += used;
                if (packs[i].total_us - packs[i].remaining_us != used)
                    FAIL("pack %s: total − remaining ≠ Σ details", packs[i].id);
            }
            meter_free(packs);
        }
        CHECK_EQ_I64(dsum, s.covered, "Σ details of every pack = Σ covered");
    }
    q = mt_query_all();
    q.job = "job-3";
    meter_job_row *jr = NULL;
    if (CHECK_RC(st, meter_jobs(st, &q, &jr, &n), METER_OK, "jobs of job-3")) {
        if (CHECK_EQ_I64(n, 1, "job-3: one record")) {
            char *node_id = NULL, *node = NULL;
            meter_setting_get(st, "node_id", &node_id);
            meter_setting_get(st, "node", &node);
            CHECK_EQ_STR(jr[0].job, "job-3", "job");
            CHECK_EQ_STR(jr[0].output, "out0", "output");
            CHECK_EQ_STR(jr[0].ttype, "Standard.H265.FHD", "ttype");
            CHECK_EQ_STR(jr[0].codec, "H265", "canonical codec");
            CHECK(jr[0].width == 1920 && jr[0].height == 1080, "size");
            CHECK_EQ_I64(jr[0].duration_us, S(45), "duration");
            CHECK_EQ_I64(jr[0].billed_us, S(900), "billed");
            CHECK_EQ_I64(jr[0].covered_us, S(900), "covered");
            CHECK_EQ_I64(jr[0].overage_us, 0, "overage");
            CHECK_EQ_INT(jr[0].cls, METER_CLASS_GENERAL, "class");
            CHECK_EQ_STR(jr[0].state, "manual", "meter_record rows are manual");
            CHECK_EQ_I64(jr[0].recorded_at, now, "recorded_at = now");
            CHECK_EQ_STR(jr[0].node, node, "node = the node setting");
            CHECK(node_id && !strncmp(jr[0].id, node_id, strlen(node_id)) &&
                  !strncmp(jr[0].id + strlen(node_id), "-u", 2),
                  "id '<node_id>-u<seq>' (%s)", jr[0].id);
            meter_free(node_id);
            meter_free(node);
        }
        meter_free(jr);
    }
    CHECK_VERIFY(st, "verify after FIFO deductions");
    meter_close(st);
}

static void ties(const char *dir)
{
    meter_store *st = mt_open(tap_path(dir, "ties.db"));
    tap_set_now_ms(tap_utc(2028, 3, 10, 0, 0, 0));
    /* equal start and end: the id decides */
    mt_add_pack(st, "tie-b", METER_CLASS_GENERAL, 1, tap_utc(2028, 1, 5, 0, 0, 0));
    mt_add_pack(st, "tie-a", METER_CLASS_GENERAL, 1, tap_utc(2028, 1, 5, 0, 0, 0));
    usage(st, "t1", METER_CLASS_GENERAL, "h264", 640, 480, S(30),
          "Standard.H264.SD", S(30), S(30));
    CHECK_EQ_I64(mt_remaining(st, "tie-a"), S(30), "same end: tie-a first");
    CHECK_EQ_I64(mt_remaining(st, "tie-b"), S(60), "tie-b untouched");
    usage(st, "t2", METER_CLASS_GENERAL, "h264", 640, 480, S(45),
          "Standard.H264.SD", S(45), S(45));
    CHECK_EQ_I64(mt_remaining(st, "tie-a"), 0, "split: rest of tie-a");
    CHECK_EQ_I64(mt_remaining(st, "tie-b"), S(45), "split: 15 s of tie-b");
    /* Feb 28 and Feb 29 starts: whether or not their ends coincide, the
     * earlier start pays first (end first, then start) — never the id. */
    mt_add_pack(st, "lp-a", METER_CLASS_GENERAL, 1, tap_utc(2028, 2, 29, 0, 0, 0));
    mt_add_pack(st, "lp-b", METER_CLASS_GENERAL, 1, tap_utc(2028, 2, 28, 0, 0, 0));
    usage(st, "t3", METER_CLASS_GENERAL, "h264", 640, 480, S(45 + 10),
          "Standard.H264.SD", S(55), S(55));
    CHECK_EQ_I64(mt_remaining(st, "tie-b"), 0, "tie-b (earliest end) used up");
    CHECK_EQ_I64(mt_remaining(st, "lp-b"), S(50), "Feb 28 start paid next");
    CHECK_EQ_I64(mt_remaining(st, "lp-a"), S(60), "Feb 29 start untouched");
    /* equal ends, different starts: only packs assigned by the ledger
     * (meter_pack_apply) can have any end, so they show the start tiebreak */
    meter_remote_pack ra, rb;
    memset(&ra, 0, sizeof ra);
    memset(&rb, 0, sizeof rb);
    snprintf(ra.id, sizeof ra.id, "ap-a");
    snprintf(rb.id, sizeof rb.id, "ap-b");
    ra.type = rb.type = METER_CLASS_GENERAL;
    ra.total_us = rb.total_us = US_PER_MIN;
    ra.start = tap_utc(2028, 1, 10, 0, 0, 0);
    rb.start = tap_utc(2028, 1, 8, 0, 0, 0);
    ra.end = rb.end = tap_utc(2029, 1, 20, 0, 0, 0);   /* before lp-* end */
    CHECK_RC(st, meter_pack_apply(st, &ra), METER_OK, "apply ap-a");
    CHECK_RC(st, meter_pack_apply(st, &rb), METER_OK, "apply ap-b");
    usage(st, "t4", METER_CLASS_GENERAL, "h264", 640, 480, S(30),
          "Standard.H264.SD", S(30), S(30));
    CHECK_EQ_I64(mt_remaining(st, "ap-b"), S(30),
                 "same end: the earlier start (ap-b) pays, not the lower id");
    CHECK_EQ_I64(mt_remaining(st, "ap-a"), S(60), "ap-a untouched");
    CHECK_VERIFY(st, "verify after ties");
    meter_close(st);
}

static void rounding(const char *dir)
{
    meter_store *st = mt_open(tap_path(dir, "round.db"));
    tap_set_now("2026-06-15T12:00:00Z");
    mt_add_pack(st, "R", METER_CLASS_GENERAL, 100, 0);
    char *v = NULL;
    CHECK(meter_setting_get(st, "rounding", &v) == METER_OK && v &&
          !strcmp(v, "exact"), "rounding defaults to exact (%s)", v ? v : "?");
    meter_free(v);
    usage(st, "r-exact", METER_CLASS_GENERAL, "h264", 1280, 720, S(61),
          "Standard.H264.HD", S(122), S(122));
    CHECK_RC(st, meter_setting_set(st, "rounding", "ceil-minute"), METER_OK,
             "set ceil-minute");
    v = NULL;
    CHECK(meter_setting_get(st, "rounding", &v) == METER_OK && v &&
          !strcmp(v, "ceil-minute"), "rounding reads back ceil-minute");
    meter_free(v);
    usage(st, "r-ceil", METER_CLASS_GENERAL, "h264", 1280, 720, S(61),
          "Standard.H264.HD", 4 * US_PER_MIN, 4 * US_PER_MIN);
    usage(st, "r-ceil2", METER_CLASS_GENERAL, "h264", 1280, 720, 1,
          "Standard.H264.HD", 2 * US_PER_MIN, 2 * US_PER_MIN);
    usage(st, "r-ceil3", METER_CLASS_GENERAL, "aac", 0, 0, S(120), "Audio",
          S(30), S(30));
    usage(st, "r-ceil4", METER_CLASS_GENERAL, "h264", 7680, 4320, S(90),
          "Standard.H264.8K", 2 * US_PER_MIN, 0);
    CHECK_RC(st, meter_setting_set(st, "rounding", "ceil"), METER_EINVAL,
             "rounding 'ceil' refused");
    CHECK_RC(st, meter_setting_set(st, "rounding", ""), METER_EINVAL,
             "rounding '' refused");
    v = NULL;
    CHECK(meter_setting_get(st, "rounding", &v) == METER_OK && v &&
          !strcmp(v, "ceil-minute"), "a refused value changed nothing");
    meter_free(v);
    CHECK_RC(st, meter_setting_set(st, "rounding", "exact"), METER_OK,
             "back to exact");
    usage(st, "r-exact2", METER_CLASS_GENERAL, "h264", 1280, 720, S(61),
          "Standard.H264.HD", S(122), S(122));
    CHECK_EQ_I64(mt_remaining(st, "R"), 100 * US_PER_MIN -
                 (S(122) + 4 * US_PER_MIN + 2 * US_PER_MIN + S(30) + S(122)),
                 "pack paid the rounded amounts");
    CHECK_VERIFY(st, "verify after rounding");
    meter_close(st);
}

static void day_offset(const char *dir)
{
    meter_store *st = mt_open(tap_path(dir, "offset.db"));
    tap_set_now("2026-06-16T12:00:00Z");
    mt_add_pack(st, "O", METER_CLASS_GENERAL, 100, 0);
    CHECK_RC(st, meter_setting_set(st, "day_offset", "+08:00"), METER_OK,
             "day_offset +08:00");
    tap_set_now("2026-06-16T15:59:00Z");   /* 23:59 on the 16th at +08 */
    usage(st, "o1", METER_CLASS_GENERAL, "h264", 640, 480, S(10), NULL, S(10),
          S(10));
    tap_set_now("2026-06-16T16:01:00Z");   /* 00:01 on the 17th at +08 */
    usage(st, "o2", METER_CLASS_GENERAL, "h264", 640, 480, S(20), NULL, S(20),
          S(20));
    meter_query q = mt_query_all();
    meter_usage_row *rows = NULL;
    size_t n = 0;
    if (CHECK_RC(st, meter_usage_details(st, &q, &rows, &n), METER_OK,
                 "details with an offset")) {
        int d16 = 0, d17 = 0;
        for (size_t i = 0; i < n; ++i) {
            if (!strcmp(rows[i].day, "2026-06-16") && rows[i].used_us == S(10))
                d16 = 1;
            if (!strcmp(rows[i].day, "2026-06-17") && rows[i].used_us == S(20))
                d17 = 1;
        }
        CHECK(n == 2 && d16 && d17,
              "+08:00 days: 10 s on the 16th, 20 s on the 17th (%zu rows)", n);
        meter_free(rows);
    }
    meter_close(st);
}

static void bad_input(const char *dir)
{
    meter_store *st = mt_open(tap_path(dir, "bad.db"));
    tap_set_now("2026-06-15T12:00:00Z");
    mt_add_pack(st, "K", METER_CLASS_GENERAL, 10, 0);
    char longname[200];
    memset(longname, 'j', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    struct { meter_usage_in in; const char *what; } c[] = {
        { mt_in("j", "o", METER_CLASS_GENERAL, "h264", 640, 480, 0), "0 us" },
        { mt_in("j", "o", METER_CLASS_GENERAL, "h264", 640, 480, -1), "-1 us" },
        { mt_in("j", "o", METER_CLASS_GENERAL, "h264", 640, 480,
                METER_DURATION_MAX_US + 1), "above max duration" },
        { mt_in(NULL, "o", METER_CLASS_GENERAL, "h264", 640, 480, 5), "no job" },
        { mt_in("", "o", METER_CLASS_GENERAL, "h264", 640, 480, 5), "job ''" },
        { mt_in("j", NULL, METER_CLASS_GENERAL, "h264", 640, 480, 5),
          "no output" },
        { mt_in(longname, "o", METER_CLASS_GENERAL, "h264", 640, 480, 5),
          "199-byte job" },
        { mt_in("j", "o", METER_CLASS_GENERAL, "vp9", 640, 480, 5),
          "unknown codec" },
        { mt_in("j", "o", METER_CLASS_GENERAL, "h264", 0, 480, 5), "width 0" },
        { mt_in("j", "o", METER_CLASS_GENERAL, "h264", 640, -480, 5),
          "negative height" },
        { mt_in("j", "o", (meter_class)9, "h264", 640, 480, 5), "class 9" },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; ++i) {
        meter_usage_result r;
        CHECK_RC(st, meter_record(st, &c[i].in, &r), METER_EINVAL,
                 "record with %s refused", c[i].what);
        CHECK_MSG(st, "message for %s: %s", c[i].what, meter_errmsg(st));
    }
    mt_sums s;
    if (mt_job_sums(st, NULL, &s) == METER_OK)
        CHECK_EQ_I64(s.n, 0, "no record written by refused input");
    CHECK_EQ_I64(mt_remaining(st, "K"), 10 * US_PER_MIN, "pack untouched");
    meter_usage_in ok = mt_in("j", "o", METER_CLASS_GENERAL, "h264", 640, 480,
                              METER_DURATION_MAX_US);
    meter_usage_result r;
    if (CHECK_RC(st, meter_record(st, &ok, &r), METER_OK,
                 "record of the max duration")) {
        CHECK_EQ_I64(r.billed_us, METER_DURATION_MAX_US, "max billed exactly");
        CHECK_EQ_I64(r.covered_us, 10 * US_PER_MIN, "pack covered its 10 min");
        CHECK_EQ_I64(r.overage_us, METER_DURATION_MAX_US - 10 * US_PER_MIN,
                     "rest overage");
    }
    CHECK_RC(st, meter_record(st, &ok, NULL), METER_OK, "out may be NULL");
    CHECK_VERIFY(st, "verify after bad input");
    meter_close(st);
}

int main(void)
{
    const char *dir = tap_tmpdir("test_deduct");
    fifo(dir);
    ties(dir);
    rounding(dir);
    day_offset(dir);
    bad_input(dir);
    return done_testing();
}
