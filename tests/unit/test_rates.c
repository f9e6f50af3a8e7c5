/*
 * test_rates — the rate table (billing-rules.md §3), meter_bill's exact and
 * ceil-minute arithmetic, and operator overrides/extensions through
 * meter_rate_set/unset (kept in the database).
 */
#include "mtest.h"

/* The looked-up rate equals num/den (as a rational) and is deductible. */
static void expect_ratio(meter_store *st, meter_class c, const char *ttype,
                         int64_t num, int64_t den, int overridden)
{
    meter_rate r;
    memset(&r, 0, sizeof r);
    int rc = meter_rate_lookup(st, c, ttype, &r);
    if (!CHECK_RC(st, rc, METER_OK, "lookup %s %s", meter_class_name(c), ttype))
        return;
    if (!CHECK(r.den > 0 && r.num > 0 && r.num * den == num * r.den,
               "%s %s ratio %" PRId64 "/%" PRId64, meter_class_name(c), ttype,
               num, den))
        tap_diag("got %" PRId64 "/%" PRId64, r.num, r.den);
    CHECK_EQ_INT(r.overridden, overridden, "%s %s overridden flag",
                 meter_class_name(c), ttype);
    CHECK_EQ_INT(r.cls, c, "%s %s class", meter_class_name(c), ttype);
    CHECK_EQ_STR(r.ttype, ttype, "%s %s name", meter_class_name(c), ttype);
}

/* No published ratio: ENOTFOUND or a den == 0 row (both "not deductible"). */
static void expect_not_deductible(meter_store *st, meter_class c,
                                  const char *ttype)
{
    meter_rate r;
    memset(&r, 0, sizeof r);
    r.den = 1;
    int rc = meter_rate_lookup(st, c, ttype, &r);
    CHECK(rc == METER_ENOTFOUND || (rc == METER_OK && r.den == 0),
          "%s %s not deductible (rc %d, den %" PRId64 ")",
          meter_class_name(c), ttype, rc, r.den);
}

static void default_table(meter_store *st)
{
    for (int c = 0; c < 2; ++c) {
        const char *pre = c ? "TESHD-10" : "Standard";
        for (int k = 0; k < 3; ++k) {
            for (int t = 0; t < 5; ++t) {
                char tt[METER_TTYPE_MAX];
                snprintf(tt, sizeof tt, "%s.%s.%s", pre,
                         mt_video_ratios[k].codec, mt_tiers[t]);
                expect_ratio(st, (meter_class)c, tt, mt_video_ratios[k].r[t],
                             1, 0);
            }
            char tt[METER_TTYPE_MAX];
            snprintf(tt, sizeof tt, "%s.%s.8K", pre, mt_video_ratios[k].codec);
            expect_not_deductible(st, (meter_class)c, tt);
        }
    }
    expect_ratio(st, METER_CLASS_GENERAL, "Audio", 1, 4, 0);
    expect_ratio(st, METER_CLASS_GENERAL, "Remuxing", 1, 2, 0);
    /* "General pack only": no TSC ratio for audio or remux */
    expect_not_deductible(st, METER_CLASS_TSC, "TESHD-20.Audio");
    expect_not_deductible(st, METER_CLASS_TSC, "Remuxing");

    /* MV-HEVC: whatever its name, not deductible at any tier */
    for (int t = 0; t < 6; ++t) {
        meter_spec sp;
        char err[METER_ERRMAX];
        int w = (int[]){ 640, 1280, 1920, 2560, 3840, 7680 }[t];
        int h = (int[]){ 480, 720, 1080, 1440, 2160, 4320 }[t];
        if (!CHECK_RC_ERR(err, meter_classify(st, METER_CLASS_GENERAL,
                                              "mvhevc", w, h, &sp, err),
                          METER_OK, "classify mvhevc %s", mt_tiers[t]))
            continue;
        expect_not_deductible(st, METER_CLASS_GENERAL, sp.ttype);
    }

    /* the list holds each of these, general rows before tsc rows, each row
     * once, built-in rows in table order (tiers ascending) */
    meter_rate *rows = NULL;
    size_t n = 0;
    if (!CHECK_RC(st, meter_rates_list(st, &rows, &n), METER_OK, "rates list"))
        return;
    int sorted = 1, h264hd = 0, audio = 0, tsc_av1_4k = 0;
    long sd_at = -1, hd_at = -1, fhd_at = -1;
    for (size_t i = 0; i < n; ++i) {
        if (i > 0 && rows[i - 1].cls > rows[i].cls) {
            if (sorted)
                tap_diag("out of order: %d %s before %d %s", rows[i - 1].cls,
                         rows[i - 1].ttype, rows[i].cls, rows[i].ttype);
            sorted = 0;
        }
        for (size_t j = 0; j < i; ++j)
            if (rows[j].cls == rows[i].cls && !strcmp(rows[j].ttype, rows[i].ttype)) {
                tap_diag("listed twice: %d %s", rows[i].cls, rows[i].ttype);
                sorted = 0;
            }
        if (rows[i].cls == METER_CLASS_GENERAL) {
            if (!strcmp(rows[i].ttype, "Standard.H264.SD")) sd_at = (long)i;
            if (!strcmp(rows[i].ttype, "Standard.H264.HD")) hd_at = (long)i;
            if (!strcmp(rows[i].ttype, "Standard.H264.FHD")) fhd_at = (long)i;
        }
        if (rows[i].cls == METER_CLASS_GENERAL &&
            !strcmp(rows[i].ttype, "Standard.H264.HD"))
            h264hd = rows[i].num == 2 * rows[i].den;
        if (rows[i].cls == METER_CLASS_GENERAL && !strcmp(rows[i].ttype, "Audio"))
            audio = rows[i].num * 4 == rows[i].den;
        if (rows[i].cls == METER_CLASS_TSC &&
            !strcmp(rows[i].ttype, "TESHD-10.AV1.4K"))
            tsc_av1_4k = rows[i].num == 160 * rows[i].den;
        if (rows[i].overridden)
            tap_diag("unexpected override in a fresh store: %s",
                     rows[i].ttype);
    }
    CHECK(n >= 32, "list has at least the 32 published rows (%zu)", n);
    CHECK(sorted, "list: general before tsc, each row once");
    CHECK(sd_at >= 0 && sd_at < hd_at && hd_at < fhd_at,
          "built-in rows in table order: SD, HD, FHD (%ld %ld %ld)", sd_at, hd_at, fhd_at);
    CHECK(h264hd && audio && tsc_av1_4k,
          "list carries Standard.H264.HD 2, Audio 1/4, TESHD-10.AV1.4K 160");
    meter_free(rows);

}

static void bill_one(int64_t num, int64_t den, meter_rounding r, int64_t dur,
                     int64_t want, int want_deductible, const char *what)
{
    meter_rate rate;
    memset(&rate, 0, sizeof rate);
    rate.num = num;
    rate.den = den;
    int64_t billed = -1;
    int ded = -1;
    int rc = meter_bill(&rate, r, dur, &billed, &ded);
    if (!CHECK_EQ_INT(rc, METER_OK, "bill %s", what))
        return;
    CHECK_EQ_I64(billed, want, "billed %s", what);
    CHECK_EQ_INT(ded, want_deductible, "deductible flag %s", what);
}

static void billing(void)
{
    const meter_rounding EX = METER_ROUND_EXACT, CM = METER_ROUND_CEIL_MINUTE;
    /* §3 worked examples */
    bill_one(1, 1, EX, US_PER_MIN, US_PER_MIN, 1, "1 min 640x480 H.264 = 1 min");
    bill_one(2, 1, EX, US_PER_MIN, 2 * US_PER_MIN, 1,
             "1 min 1280x720 H.264 = 2 min");
    /* 61 s of H.264 HD */
    bill_one(2, 1, EX, 61 * US_PER_S, 122 * US_PER_S, 1, "61 s x2 exact = 122 s");
    bill_one(2, 1, CM, 61 * US_PER_S, 4 * US_PER_MIN, 1,
             "61 s x2 ceil-minute = 4 min");
    bill_one(2, 1, CM, 60 * US_PER_S, 2 * US_PER_MIN, 1,
             "60 s x2 ceil-minute = 2 min (no round-up of whole minutes)");
    bill_one(2, 1, CM, 60 * US_PER_S + 1, 4 * US_PER_MIN, 1,
             "60 s + 1 us x2 ceil-minute = 4 min");
    bill_one(1, 1, CM, 1, US_PER_MIN, 1, "1 us ceil-minute = 1 min");
    /* fractions round up to the µs, never down */
    bill_one(1, 4, EX, US_PER_MIN, 15 * US_PER_S, 1, "audio 1 min = 15 s");
    bill_one(1, 4, EX, 1, 1, 1, "audio 1 us = ceil(0.25) = 1");
    bill_one(1, 4, EX, 3, 1, 1, "audio 3 us = ceil(0.75) = 1");
    bill_one(1, 4, EX, 5, 2, 1, "audio 5 us = ceil(1.25) = 2");
    bill_one(1, 4, EX, 8, 2, 1, "audio 8 us = 2 exactly");
    bill_one(1, 2, EX, 7, 4, 1, "remux 7 us = ceil(3.5) = 4");
    bill_one(1, 4, CM, 1, 15 * US_PER_S, 1, "audio 1 us ceil-minute = 15 s");
    bill_one(3, 7, EX, 10, 5, 1, "3/7 of 10 us = ceil(4.29) = 5");
    bill_one(3, 7, EX, 14, 6, 1, "3/7 of 14 us = 6 exactly");
    bill_one(160, 1, EX, 1, 160, 1, "AV1 4K 1 us = 160");
    /* the largest inputs stay exact in int64 */
    bill_one(160, 1, EX, METER_DURATION_MAX_US,
             160 * METER_DURATION_MAX_US, 1, "AV1 4K max duration");
    bill_one(1000, 1, EX, METER_DURATION_MAX_US,
             1000 * METER_DURATION_MAX_US, 1, "ratio 1000 x max duration (METER_BILLED_MAX_US)");
    {   /* one µs more than a record may bill: refused, as the ledger would */
        meter_rate rate = { .num = 9000, .den = 1 };
        int64_t billed = -1;
        CHECK_EQ_INT(meter_bill(&rate, EX, METER_DURATION_MAX_US, &billed, NULL), METER_EINVAL,
                     "ratio 9000 x max duration is beyond METER_BILLED_MAX_US: refused");
    }
    bill_one(METER_RATIO_NUM_MAX, 7, EX, 7 * INT64_C(1000000000),
             METER_RATIO_NUM_MAX * INT64_C(1000000000), 1,
             "largest ratio numerator, exact");
    bill_one(1, 3, EX, METER_DURATION_MAX_US,
             mt_ceil_mul(METER_DURATION_MAX_US, 1, 3), 1, "1/3 of max duration");
    /* not deductible: billed at ratio 1 for the overage's size */
    bill_one(0, 0, EX, 61 * US_PER_S, 61 * US_PER_S, 0, "no ratio: 61 s");
    bill_one(0, 0, CM, 61 * US_PER_S, 2 * US_PER_MIN, 0,
             "no ratio ceil-minute: 2 min");

    /* refusals */
    meter_rate rate;
    memset(&rate, 0, sizeof rate);
    rate.num = 2;
    rate.den = 1;
    int64_t b = 0;
    int d = 0;
    CHECK_EQ_INT(meter_bill(&rate, EX, 0, &b, &d), METER_EINVAL,
                 "bill 0 us refused");
    CHECK_EQ_INT(meter_bill(&rate, EX, -5, &b, &d), METER_EINVAL,
                 "bill negative refused");
    CHECK_EQ_INT(meter_bill(&rate, EX, METER_DURATION_MAX_US + 1, &b, &d),
                 METER_EINVAL, "bill above METER_DURATION_MAX_US refused");
    /* meter.h says ratio numerators up to METER_RATIO_NUM_MAX keep every
     * product inside int64, but 10^6 × 10^15 = 10^21 does not fit: such a
     * bill must be refused rather than wrap around. */
    rate.num = METER_RATIO_NUM_MAX;
    b = -1;
    int rc = meter_bill(&rate, EX, METER_DURATION_MAX_US, &b, &d);
    CHECK(rc != METER_OK, "bill of 10^21 us refused, not wrapped (rc %d, "
          "billed %" PRId64 ")", rc, b);
}

static void set_ratio(meter_store *st, const char *ratio, int64_t num,
                      int64_t den)
{
    int rc = meter_rate_set(st, METER_CLASS_GENERAL, "Standard.H264.HD", ratio);
    if (CHECK_RC(st, rc, METER_OK, "set Standard.H264.HD to '%s'", ratio))
        expect_ratio(st, METER_CLASS_GENERAL, "Standard.H264.HD", num, den, 1);
}

static void overrides(meter_store *st, const char *path)
{
    set_ratio(st, "3", 3, 1);
    set_ratio(st, "0.25", 1, 4);
    set_ratio(st, "1/4", 1, 4);
    set_ratio(st, "2.5", 5, 2);
    set_ratio(st, "7/3", 7, 3);

    /* "none": not deductible, and marked as an override */
    int rc = meter_rate_set(st, METER_CLASS_GENERAL, "Standard.H264.HD", "none");
    if (CHECK_RC(st, rc, METER_OK, "set Standard.H264.HD none")) {
        meter_rate r;
        memset(&r, 0, sizeof r);
        rc = meter_rate_lookup(st, METER_CLASS_GENERAL, "Standard.H264.HD", &r);
        CHECK(rc == METER_OK && r.den == 0 && r.overridden,
              "none: den 0, overridden (rc %d den %" PRId64 " ov %d)", rc,
              r.den, r.overridden);
    }

    /* bad ratios change nothing */
    set_ratio(st, "3", 3, 1);
    static const char *const bad[] = { "", "abc", "-1", "-0.5", "1/0", "1/",
                                       "/4", "1.2.3", "2x", " 2", "2 ",
                                       "0x10", "1//4", "2000000",
                                       "99999999999999999999999", "NaN",
                                       "inf", "1/-4" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        rc = meter_rate_set(st, METER_CLASS_GENERAL, "Standard.H264.HD",
                            bad[i]);
        CHECK_RC(st, rc, METER_EINVAL, "ratio '%s' refused", bad[i]);
        CHECK_MSG(st, "ratio '%s' message: %s", bad[i], meter_errmsg(st));
    }
    CHECK_RC(st, meter_rate_set(st, METER_CLASS_GENERAL, "Standard.H264.HD",
                                NULL), METER_EINVAL, "ratio NULL refused");
    expect_ratio(st, METER_CLASS_GENERAL, "Standard.H264.HD", 3, 1, 1);

    /* bad ttypes */
    /* a video ttype is TYPE.CODEC.TIER with one of the six tiers */
    static const char *const badt[] = { "", "Standard.H264",
                                        "Standard..HD", "Standard.H264.XL",
                                        ".H264.HD", "Standard.H264.HD.x",
                                        "Standard.H 264.HD" };
    for (size_t i = 0; i < sizeof badt / sizeof badt[0]; ++i) {
        rc = meter_rate_set(st, METER_CLASS_GENERAL, badt[i], "2");
        CHECK_RC(st, rc, METER_EINVAL, "ttype '%s' refused", badt[i]);
    }
    CHECK_RC(st, meter_rate_set(st, (meter_class)5, "Standard.H264.HD", "2"),
             METER_EINVAL, "class 5 refused");
    /* a codec alias the classifier renames could never be billed under the
     * row (found by tests/fuzz/fuzz_rates: Standard.HEVC.HD was stored) */
    static const struct { meter_class c; const char *t, *msg; } alias[] = {
        { METER_CLASS_GENERAL, "Standard.HEVC.HD", "names that codec H265" },
        { METER_CLASS_GENERAL, "Standard.AVC.SD", "names that codec H264" },
        { METER_CLASS_GENERAL, "Standard.LIBX264.FHD", "names that codec H264" },
        { METER_CLASS_TSC, "TESHD-10.LIBSVTAV1.4K", "names that codec AV1" },
        { METER_CLASS_GENERAL, "Standard.AAC.HD", "bills that codec as Audio" },
        { METER_CLASS_TSC, "TESHD-10.AUDIO.HD", "bills that codec as TESHD-20.Audio" },
        { METER_CLASS_GENERAL, "Standard.COPY.SD", "bills that codec as Remuxing" },
    };
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; ++i) {
        rc = meter_rate_set(st, alias[i].c, alias[i].t, "2");
        CHECK_RC(st, rc, METER_EINVAL, "alias ttype '%s' refused", alias[i].t);
        CHECK(strstr(meter_errmsg(st), alias[i].msg) != NULL,
              "'%s' refused saying '%s' (%s)", alias[i].t, alias[i].msg, meter_errmsg(st));
        meter_rate r;
        CHECK_RC(st, meter_rate_lookup(st, alias[i].c, alias[i].t, &r), METER_ENOTFOUND,
                 "'%s' not stored", alias[i].t);
    }
    /* canonical names stay welcome, also for the built-in codecs */
    CHECK_RC(st, meter_rate_set(st, METER_CLASS_GENERAL, "Standard.MVHEVC.HD", "7"), METER_OK,
             "canonical Standard.MVHEVC.HD taken");
    CHECK_RC(st, meter_rate_unset(st, METER_CLASS_GENERAL, "Standard.MVHEVC.HD"), METER_OK,
             "and unset again");

    /* unset: back to the built-in row */
    rc = meter_rate_unset(st, METER_CLASS_GENERAL, "Standard.H264.HD");
    if (CHECK_RC(st, rc, METER_OK, "unset Standard.H264.HD"))
        expect_ratio(st, METER_CLASS_GENERAL, "Standard.H264.HD", 2, 1, 0);

    /* an override touches one class only */
    rc = meter_rate_set(st, METER_CLASS_TSC, "TESHD-10.H265.4K", "100");
    CHECK_RC(st, rc, METER_OK, "set TSC H265 4K");
    expect_ratio(st, METER_CLASS_TSC, "TESHD-10.H265.4K", 100, 1, 1);
    expect_ratio(st, METER_CLASS_GENERAL, "Standard.H265.4K", 80, 1, 0);

    /* give the unpublished rows a ratio */
    CHECK_RC(st, meter_rate_set(st, METER_CLASS_GENERAL, "Standard.H264.8K",
                                "32"), METER_OK, "configure H264 8K");
    expect_ratio(st, METER_CLASS_GENERAL, "Standard.H264.8K", 32, 1, 1);
    CHECK_RC(st, meter_rate_set(st, METER_CLASS_TSC, "TESHD-20.Audio", "0.5"),
             METER_OK, "configure TSC audio");
    expect_ratio(st, METER_CLASS_TSC, "TESHD-20.Audio", 1, 2, 1);
    CHECK_RC(st, meter_rate_set(st, METER_CLASS_GENERAL, "Remuxing", "none"),
             METER_OK, "remux pay-as-you-go only (mainland reading)");
    expect_not_deductible(st, METER_CLASS_GENERAL, "Remuxing");

    /* extend: a new codec becomes classifiable */
    meter_spec sp;
    char err[METER_ERRMAX];
    CHECK_RC_ERR(err, meter_classify(st, METER_CLASS_GENERAL, "vp9", 1280, 720,
                                     &sp, err),
                 METER_EINVAL, "vp9 unknown before the extension");
    rc = meter_rate_set(st, METER_CLASS_GENERAL, "Standard.VP9.HD", "3");
    CHECK_RC(st, rc, METER_OK, "add Standard.VP9.HD");
    expect_ratio(st, METER_CLASS_GENERAL, "Standard.VP9.HD", 3, 1, 1);
    rc = meter_classify(st, METER_CLASS_GENERAL, "vp9", 1280, 720, &sp, err);
    if (CHECK_RC_ERR(err, rc, METER_OK, "vp9 classifiable after extension"))
        CHECK_EQ_STR(sp.ttype, "Standard.VP9.HD", "vp9 720p ttype");
    rc = meter_classify(st, METER_CLASS_GENERAL, "vp9", 1920, 1080, &sp, err);
    if (CHECK_RC_ERR(err, rc, METER_OK, "vp9 FHD classifiable (tier by edge)"))
        CHECK_EQ_STR(sp.ttype, "Standard.VP9.FHD", "vp9 1080p ttype");
    CHECK_RC_ERR(err, meter_classify(NULL, METER_CLASS_GENERAL, "vp9", 1280,
                                     720, &sp, err),
                 METER_EINVAL, "vp9 unknown to the built-ins (st NULL)");
    /* recording it: HD deducts ×3, FHD has no row → all overage */
    mt_add_pack(st, "p-ext", METER_CLASS_GENERAL, 100, 0);
    meter_usage_result res;
    rc = mt_record(st, "job-vp9", METER_CLASS_GENERAL, "vp9", 1280, 720,
                   10 * US_PER_S, &res);
    if (CHECK_RC(st, rc, METER_OK, "record vp9 HD")) {
        CHECK_EQ_STR(res.ttype, "Standard.VP9.HD", "recorded vp9 ttype");
        CHECK_EQ_I64(res.billed_us, 30 * US_PER_S, "vp9 HD 10 s billed 30 s");
        CHECK_EQ_I64(res.covered_us, 30 * US_PER_S, "vp9 HD covered by pack");
    }
    rc = mt_record(st, "job-vp9", METER_CLASS_GENERAL, "vp9", 1920, 1080,
                   10 * US_PER_S, &res);
    if (CHECK_RC(st, rc, METER_OK, "record vp9 FHD (no rate row)")) {
        CHECK_EQ_I64(res.billed_us, 10 * US_PER_S, "vp9 FHD billed at ratio 1");
        CHECK_EQ_I64(res.covered_us, 0, "vp9 FHD not deducted");
        CHECK_EQ_I64(res.overage_us, 10 * US_PER_S, "vp9 FHD all overage");
    }
    /* configured 8K ratio is deducted */
    rc = mt_record(st, "job-8k", METER_CLASS_GENERAL, "h264", 7680, 4320,
                   10 * US_PER_S, &res);
    if (CHECK_RC(st, rc, METER_OK, "record H264 8K with a configured ratio")) {
        CHECK_EQ_I64(res.billed_us, 320 * US_PER_S, "8K ×32");
        CHECK_EQ_I64(res.covered_us, 320 * US_PER_S, "8K deducted");
    }
    CHECK_EQ_I64(mt_remaining(st, "p-ext"), 100 * US_PER_MIN - 350 * US_PER_S,
                 "pack paid 30 s + 320 s");
    CHECK_VERIFY(st, "verify after extension records");

    /* overrides live in the database */
    meter_close(st);
    st = mt_open(path);
    expect_ratio(st, METER_CLASS_GENERAL, "Standard.VP9.HD", 3, 1, 1);
    expect_ratio(st, METER_CLASS_TSC, "TESHD-10.H265.4K", 100, 1, 1);
    expect_ratio(st, METER_CLASS_GENERAL, "Standard.H264.HD", 2, 1, 0);

    rc = meter_rate_unset(st, METER_CLASS_GENERAL, "Standard.VP9.HD");
    CHECK_RC(st, rc, METER_OK, "unset the added VP9 row");
    meter_rate r;
    CHECK_RC(st, meter_rate_lookup(st, METER_CLASS_GENERAL, "Standard.VP9.HD",
                                   &r), METER_ENOTFOUND,
             "an unset added row is gone");
    CHECK_RC(st, meter_rate_lookup(st, METER_CLASS_GENERAL, "Standard.NOPE.HD",
                                   &r), METER_ENOTFOUND, "unknown ttype");
    meter_close(st);
}

int main(void)
{
    const char *dir = tap_tmpdir("test_rates");
    const char *path = tap_path(dir, "meter.db");
    tap_set_now("2026-06-01T12:00:00Z");
    meter_store *st = mt_open(path);
    default_table(st);
    billing();
    overrides(st, path);
    return done_testing();
}
