/*
 * test_settle — daily settlement (billing-rules.md §2 "Settlement timing"):
 * usage on day D waits for `settle` on D+1, is deducted per (day, class,
 * ttype), a pack bought on D+1 never pays day D (a pack bought during D
 * does), settle is idempotent, day_offset moves the day boundary, and
 * switching back to realtime still settles the daily-mode leftovers.
 */
#include "mtest.h"

#define MIN(x) ((int64_t)(x) * US_PER_MIN)
#define S(x) ((int64_t)(x) * US_PER_S)

/* 2026-06-10 (day D) at h:m UTC, plus whole days. */
static int64_t at(int day_plus, int h, int m)
{
    return tap_utc(2026, 6, 10, h, m, 0) + day_plus * MS_PER_DAY;
}

static void daily_record(meter_store *st, const char *job, meter_class c,
                         const char *codec, int w, int h, int64_t dur,
                         int64_t billed)
{
    meter_usage_result r;
    int rc = mt_record(st, job, c, codec, w, h, dur, &r);
    if (!CHECK_RC(st, rc, METER_OK, "record %s", job))
        return;
    CHECK_EQ_I64(r.billed_us, billed, "%s billed", job);
    CHECK_EQ_INT(r.settled, 0, "%s not settled yet", job);
    CHECK_EQ_I64(r.covered_us, 0, "%s nothing deducted yet", job);
}

static int settle(meter_store *st, meter_settle_result *r, const char *what)
{
    memset(r, 0x55, sizeof *r);
    return CHECK_RC(st, meter_settle(st, r), METER_OK, "settle: %s", what);
}

static void expect_settle(const meter_settle_result *r, int days,
                          int64_t billed, int64_t covered, int64_t overage,
                          const char *what)
{
    CHECK_EQ_INT(r->days, days, "%s: groups", what);
    CHECK_EQ_I64(r->billed_us, billed, "%s: billed", what);
    CHECK_EQ_I64(r->covered_us, covered, "%s: covered", what);
    CHECK_EQ_I64(r->overage_us, overage, "%s: overage", what);
}

/* After settlement: every record settled, Σ billed as worked out, and the
 * deduction records (usage details: pack rows and overage rows) account for
 * it exactly.  Daily usage is charged per (day, class, ttype) group, so the
 * per-record covered/overage of meter_jobs are not used here. */
static void balanced(meter_store *st, int64_t billed, int64_t covered,
                     const char *what)
{
    mt_sums s;
    int64_t packs = -1, overage = -1;
    if (mt_job_sums(st, NULL, &s) != METER_OK ||
        mt_details_totals(st, &packs, &overage) != METER_OK)
        return;
    CHECK_EQ_I64(s.unsettled, 0, "%s: every record settled", what);
    CHECK_EQ_I64(s.billed, billed, "%s: Σ billed", what);
    CHECK_EQ_I64(packs, covered, "%s: Σ deducted from packs", what);
    CHECK_EQ_I64(overage, billed - covered, "%s: Σ overage rows", what);
}

/* Day D's usage, settled on D+1 when a new pack has just been bought. */
static void purchase_boundary(const char *dir)
{
    meter_store *st = mt_open(tap_path(dir, "s1.db"));
    meter_settle_result r;
    tap_set_now_ms(tap_utc(2026, 6, 1, 0, 0, 0));
    mt_add_pack(st, "P1", METER_CLASS_GENERAL, 7, 0);
    CHECK_RC(st, meter_setting_set(st, "settlement", "daily"), METER_OK,
             "settlement daily");
    char *v = NULL;
    CHECK(meter_setting_get(st, "settlement", &v) == METER_OK && v &&
          !strcmp(v, "daily"), "settlement reads back daily");
    meter_free(v);

    tap_set_now_ms(at(0, 10, 0));
    daily_record(st, "d1", METER_CLASS_GENERAL, "h264", 640, 480, MIN(2),
                 MIN(2));
    tap_set_now_ms(at(0, 14, 0));
    daily_record(st, "d2", METER_CLASS_GENERAL, "h264", 640, 480, MIN(1),
                 MIN(1));
    daily_record(st, "d3", METER_CLASS_GENERAL, "hevc", 1280, 720, S(30),
                 MIN(5));
    daily_record(st, "d4", METER_CLASS_TSC, "h264", 640, 480, MIN(1), MIN(1));
    CHECK_EQ_I64(mt_remaining(st, "P1"), MIN(7), "P1 untouched before settle");
    int64_t avail = -1;
    meter_available(st, METER_CLASS_GENERAL, &avail);
    CHECK_EQ_I64(avail, MIN(7), "available unchanged before settle");

    mt_sums s;
    if (mt_job_sums(st, NULL, &s) == METER_OK) {
        CHECK_EQ_I64(s.n, 4, "4 records");
        CHECK_EQ_I64(s.unsettled, 4, "all 4 unsettled");
    }

    /* the same day: nothing to settle yet */
    tap_set_now_ms(at(0, 23, 0));
    if (settle(st, &r, "day D itself"))
        expect_settle(&r, 0, 0, 0, 0, "settle on D");
    CHECK_EQ_I64(mt_remaining(st, "P1"), MIN(7), "P1 untouched on day D");

    /* D+1: a new pack, then settlement */
    tap_set_now_ms(at(1, 1, 0));
    mt_add_pack(st, "P2", METER_CLASS_GENERAL, 100, 0);
    if (settle(st, &r, "D+1"))
        /* groups: (D, general, H264.SD) 3 min, (D, general, H265.HD) 5 min,
         * (D, tsc, H264.SD) 1 min; P1's 7 min pay, P2 (bought D+1) must not */
        expect_settle(&r, 3, MIN(9), MIN(7), MIN(2), "settle on D+1");
    meter_pack p1 = mt_pack(st, "P1"), p2 = mt_pack(st, "P2");
    CHECK_EQ_I64(p1.remaining_us, 0, "P1 used up");
    CHECK_EQ_I64(p1.deductions, 2,
                 "P1: one deduction per (day, class, ttype) group");
    CHECK_EQ_I64(p2.remaining_us, MIN(100), "P2 (bought on D+1) untouched");
    CHECK_EQ_I64(p2.deductions, 0, "P2 has no deductions");
    balanced(st, MIN(9), MIN(7), "after settle");

    size_t nrows = 0;
    CHECK_EQ_I64(mt_details_used(st, "P1", &nrows), MIN(7),
                 "P1 details sum 7 min");
    CHECK_EQ_I64(nrows, 2, "P1: one details row per ttype");
    CHECK_EQ_I64(mt_details_used(st, "", NULL), MIN(2), "overage rows 2 min");

    /* idempotent */
    if (settle(st, &r, "again"))
        expect_settle(&r, 0, 0, 0, 0, "second settle");
    tap_set_now_ms(at(2, 9, 0));
    if (settle(st, &r, "again a day later"))
        expect_settle(&r, 0, 0, 0, 0, "third settle");
    CHECK_EQ_I64(mt_remaining(st, "P2"), MIN(100), "P2 still untouched");
    balanced(st, MIN(9), MIN(7), "after repeated settles");
    CHECK_VERIFY(st, "verify after daily settlement");
    meter_close(st);
}

/* A pack bought during day D pays all of D, even usage before its purchase
 * ("start before that day's end"). */
static void bought_same_day(const char *dir)
{
    meter_store *st = mt_open(tap_path(dir, "s2.db"));
    meter_settle_result r;
    tap_set_now_ms(at(0, 0, 0));
    CHECK_RC(st, meter_setting_set(st, "settlement", "daily"), METER_OK,
             "daily");
    tap_set_now_ms(at(0, 9, 0));
    daily_record(st, "b1", METER_CLASS_GENERAL, "h264", 640, 480, MIN(1),
                 MIN(1));
    tap_set_now_ms(at(0, 12, 0));
    mt_add_pack(st, "Q", METER_CLASS_GENERAL, 10, 0);
    tap_set_now_ms(at(0, 13, 0));
    daily_record(st, "b2", METER_CLASS_GENERAL, "h264", 640, 480, MIN(1),
                 MIN(1));
    tap_set_now_ms(at(1, 0, 30));
    mt_add_pack(st, "Q2", METER_CLASS_GENERAL, 10, 0);
    if (settle(st, &r, "D+1"))
        expect_settle(&r, 1, MIN(2), MIN(2), 0, "one group, all covered");
    CHECK_EQ_I64(mt_remaining(st, "Q"), MIN(8), "Q (bought on D) paid 2 min");
    CHECK_EQ_I64(mt_remaining(st, "Q2"), MIN(10), "Q2 (bought on D+1) not");
    CHECK_EQ_I64(mt_pack(st, "Q").deductions, 1,
                 "one deduction for the day's 2 records of one type");
    balanced(st, MIN(2), MIN(2), "bought same day");
    CHECK_VERIFY(st, "verify");
    meter_close(st);
}

/* Several days settle separately; realtime again still settles leftovers. */
static void days_and_switch(const char *dir)
{
    meter_store *st = mt_open(tap_path(dir, "s3.db"));
    meter_settle_result r;
    tap_set_now_ms(tap_utc(2026, 6, 1, 0, 0, 0));
    mt_add_pack(st, "M", METER_CLASS_GENERAL, 100, 0);
    CHECK_RC(st, meter_setting_set(st, "settlement", "daily"), METER_OK,
             "daily");
    tap_set_now_ms(at(0, 10, 0));
    daily_record(st, "m1", METER_CLASS_GENERAL, "h264", 640, 480, MIN(1),
                 MIN(1));
    tap_set_now_ms(at(1, 10, 0));
    daily_record(st, "m2", METER_CLASS_GENERAL, "h264", 640, 480, MIN(2),
                 MIN(2));
    tap_set_now_ms(at(1, 11, 0));
    if (settle(st, &r, "on D+1"))
        expect_settle(&r, 1, MIN(1), MIN(1), 0, "only day D");
    CHECK_EQ_I64(mt_remaining(st, "M"), MIN(99), "M paid day D");
    mt_sums s;
    if (mt_job_sums(st, NULL, &s) == METER_OK)
        CHECK_EQ_I64(s.unsettled, 1, "D+1's record still unsettled");
    tap_set_now_ms(at(2, 0, 0) + 1000);
    if (settle(st, &r, "on D+2"))
        expect_settle(&r, 1, MIN(2), MIN(2), 0, "day D+1");
    CHECK_EQ_I64(mt_remaining(st, "M"), MIN(97), "M paid day D+1");

    tap_set_now_ms(at(2, 10, 0));
    daily_record(st, "m3", METER_CLASS_GENERAL, "h264", 640, 480, MIN(3),
                 MIN(3));
    tap_set_now_ms(at(2, 11, 0));
    CHECK_RC(st, meter_setting_set(st, "settlement", "realtime"), METER_OK,
             "back to realtime");
    meter_usage_result u;
    int rc = mt_record(st, "m4", METER_CLASS_GENERAL, "h264", 640, 480, MIN(4),
                       &u);
    CHECK(rc == METER_OK && u.settled == 1 && u.covered_us == MIN(4),
          "realtime record deducted at once");
    CHECK_EQ_I64(mt_remaining(st, "M"), MIN(93), "M paid m4 at once");
    if (settle(st, &r, "realtime, same day as m3"))
        expect_settle(&r, 0, 0, 0, 0, "today's daily usage waits");
    tap_set_now_ms(at(3, 1, 0));
    if (settle(st, &r, "realtime, the day after m3"))
        expect_settle(&r, 1, MIN(3), MIN(3), 0, "leftover of daily mode");
    CHECK_EQ_I64(mt_remaining(st, "M"), MIN(90), "M paid m3");
    balanced(st, MIN(10), MIN(10), "days and switch");
    CHECK_VERIFY(st, "verify");
    meter_close(st);
}

/* The billing day starts at midnight of day_offset. */
static void offset_day(const char *dir)
{
    meter_store *st = mt_open(tap_path(dir, "s4.db"));
    meter_settle_result r;
    tap_set_now_ms(tap_utc(2026, 6, 1, 0, 0, 0));
    mt_add_pack(st, "O", METER_CLASS_GENERAL, 100, 0);
    CHECK_RC(st, meter_setting_set(st, "settlement", "daily"), METER_OK,
             "daily");
    CHECK_RC(st, meter_setting_set(st, "day_offset", "+08:00"), METER_OK,
             "day_offset +08:00");
    tap_set_now_ms(at(0, 15, 0));        /* 23:00 on the 10th at +08 */
    daily_record(st, "o1", METER_CLASS_GENERAL, "h264", 640, 480, MIN(1),
                 MIN(1));
    tap_set_now_ms(at(0, 15, 30));       /* still the 10th at +08 */
    if (settle(st, &r, "23:30 local"))
        expect_settle(&r, 0, 0, 0, 0, "same local day");
    tap_set_now_ms(at(0, 17, 0));        /* 01:00 on the 11th at +08 */
    if (settle(st, &r, "01:00 local next day"))
        expect_settle(&r, 1, MIN(1), MIN(1), 0, "next local day settles");
    CHECK_EQ_I64(mt_remaining(st, "O"), MIN(99), "O paid");
    CHECK_VERIFY(st, "verify");
    meter_close(st);
}

/* Only packs valid at settlement pay: not frozen, not expired by then. */
static void valid_now(const char *dir)
{
    meter_store *st = mt_open(tap_path(dir, "s5.db"));
    meter_settle_result r;
    tap_set_now_ms(at(0, 0, 0));
    /* ends 2026-06-10T12:00Z: valid at 10:00 on D, expired on D+1 */
    mt_add_pack(st, "E", METER_CLASS_GENERAL, 10, tap_utc(2025, 6, 10, 12, 0, 0));
    mt_add_pack(st, "F", METER_CLASS_GENERAL, 10, tap_utc(2026, 1, 1, 0, 0, 0));
    CHECK_RC(st, meter_setting_set(st, "settlement", "daily"), METER_OK,
             "daily");
    tap_set_now_ms(at(0, 10, 0));
    daily_record(st, "v1", METER_CLASS_GENERAL, "h264", 640, 480, MIN(2),
                 MIN(2));
    tap_set_now_ms(at(1, 2, 0));
    CHECK_RC(st, meter_pack_freeze(st, "F"), METER_OK, "freeze F");
    if (settle(st, &r, "with E expired and F frozen"))
        expect_settle(&r, 1, MIN(2), 0, MIN(2), "all overage");
    CHECK_EQ_I64(mt_remaining(st, "E"), MIN(10), "expired E untouched");
    CHECK_EQ_I64(mt_remaining(st, "F"), MIN(10), "frozen F untouched");
    balanced(st, MIN(2), 0, "valid now");
    CHECK_VERIFY(st, "verify");

    CHECK_RC(st, meter_setting_set(st, "settlement", "weekly"), METER_EINVAL,
             "settlement 'weekly' refused");
    meter_close(st);
}

int main(void)
{
    const char *dir = tap_tmpdir("test_settle");
    purchase_boundary(dir);
    bought_same_day(dir);
    days_and_switch(dir);
    offset_day(dir);
    valid_now(dir);
    return done_testing();
}
