/*
 * test_random — a property test: thousands of random operations (packs with
 * random starts, types and sizes; freeze, unfreeze, refund; usage of random
 * class, codec, size and duration; the clock moving; rounding and
 * settlement switched) against one store, checking as it goes and at the
 * end:
 *   - every usage's billed amount equals duration × ratio worked out here
 *     from billing-rules.md (not asked of libmeter);
 *   - realtime: the packs paid earliest end first (then start, then id),
 *     covered = min(billed, available) for a deductible type, and available
 *     drops by exactly what was covered;
 *   - freeze/unfreeze/refund are accepted or refused exactly by the rules;
 *   - at the end meter_verify reports nothing, Σ covered + Σ overage =
 *     Σ billed, and per pack total − remaining = Σ its usage-details rows.
 * The seed is printed; TEST_SEED=N reruns one sequence, TEST_OPS=N changes
 * the number of operations (default 4000).
 */
#include "mtest.h"

static uint64_t rng;

static uint64_t rnd(void)   /* splitmix64 */
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int64_t rnd_in(int64_t lo, int64_t hi)   /* inclusive */
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static int chance(int percent)
{
    return (int)(rnd() % 100) < percent;
}

#define MAXP 1024
static char ids[MAXP][METER_NAME_MAX];
static int npacks;

static int64_t now_ms;
static int ceil_minute;   /* rounding */
static int daily;         /* settlement */

#define MAXREC 100000
static int64_t n_records, sum_billed_expected;
static char was_daily[MAXREC];   /* per record (job-NNNNNN): daily mode */
static int bad_billed, bad_fifo, bad_rule;   /* counted, reported once */

/* ------------------------------------------------------------ packs -- */

static void op_pack_add(meter_store *st)
{
    static const int64_t sizes[] = { 1, 2, 5, 30, 300, 6000 };
    if (npacks == MAXP)
        return;
    meter_class c = chance(60) ? METER_CLASS_GENERAL : METER_CLASS_TSC;
    int64_t minutes = sizes[rnd() % 6];
    int64_t start = chance(10) ? now_ms + rnd_in(1, 20 * MS_PER_DAY)
                               : now_ms - rnd_in(0, 400 * MS_PER_DAY);
    char given[32];
    snprintf(given, sizeof given, "r%04d", npacks);
    meter_pack p;
    int rc = meter_pack_add(st, chance(50) ? given : NULL, c, minutes, start, &p);
    if (rc != METER_OK) {
        FAIL("pack add: %s", meter_errmsg(st));
        return;
    }
    snprintf(ids[npacks++], METER_NAME_MAX, "%s", p.id);
}

/* Freeze, unfreeze or refund a random pack; the answer must follow the
 * rules exactly. */
static void op_pack_change(meter_store *st)
{
    if (!npacks)
        return;
    const char *id = ids[rnd() % (uint64_t)npacks];
    meter_pack p = mt_pack(st, id);
    int refunded = p.refunded_at != 0;
    int op = (int)(rnd() % 3), rc, want;
    const char *name;
    if (op == 0) {
        name = "freeze";
        rc = meter_pack_freeze(st, id);
        want = refunded ? METER_EREFUSED : p.frozen ? METER_EEXIST : METER_OK;
    } else if (op == 1) {
        name = "unfreeze";
        rc = meter_pack_unfreeze(st, id);
        want = refunded ? METER_EREFUSED : !p.frozen ? METER_EEXIST : METER_OK;
    } else {
        name = "refund";
        rc = meter_pack_refund(st, id);
        want = refunded ? METER_EEXIST
             : p.deductions > 0 || now_ms > p.start + 5 * MS_PER_DAY ? METER_EREFUSED
             : METER_OK;
    }
    if (rc != want && !bad_rule++)
        FAIL("%s %s: rc %d, rules say %d (frozen %d refunded %d deductions %"
             PRId64 " age %" PRId64 " ms): %s", name, id, rc, want, p.frozen,
             refunded, p.deductions, now_ms - p.start, meter_errmsg(st));
}

/* --------------------------------------------------------- usage -- */

typedef struct codec_case {
    const char *name;
    int video;       /* index into mt_video_ratios, or -1 */
    int kind;        /* 0 video, 1 not deductible video, 2 audio, 3 remux */
} codec_case;

static const codec_case codecs[] = {
    { "h264", 0, 0 }, { "libx264", 0, 0 }, { "hevc", 1, 0 },
    { "libx265", 1, 0 }, { "av1", 2, 0 }, { "libsvtav1", 2, 0 },
    { "mvhevc", -1, 1 }, { "aac", -1, 2 }, { "opus", -1, 2 },
    { "copy", -1, 3 },
};

static int rnd_edge(void)
{
    static const int edges[] = { 480, 720, 1080, 1440, 2160, 4320 };
    if (chance(40))
        return edges[rnd() % 6] + (int)rnd_in(-1, 1);
    return (int)rnd_in(2, 4600);
}

/* The valid packs of class c, sorted by (end, start, id) here. */
typedef struct vpack { char id[METER_NAME_MAX]; int64_t end, start, rem; } vpack;

static int vcmp(const void *a, const void *b)
{
    const vpack *x = a, *y = b;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return strcmp(x->id, y->id);
}

static vpack *valid_packs(meter_store *st, meter_class c, size_t *n)
{
    meter_pack_filter f = { NULL, (int)c, "valid", NULL };
    meter_pack *rows = NULL;
    *n = 0;
    if (meter_pack_list(st, &f, &rows, n) != METER_OK) {
        FAIL("pack list: %s", meter_errmsg(st));
        return NULL;
    }
    vpack *v = calloc(*n ? *n : 1, sizeof *v);
    for (size_t i = 0; i < *n; ++i) {
        snprintf(v[i].id, sizeof v[i].id, "%s", rows[i].id);
        v[i].end = rows[i].end;
        v[i].start = rows[i].start;
        v[i].rem = rows[i].remaining_us;
    }
    meter_free(rows);
    qsort(v, *n, sizeof *v, vcmp);
    return v;
}

static void op_record(meter_store *st)
{
    if (n_records == MAXREC)
        return;
    const codec_case *cc = &codecs[rnd() % (sizeof codecs / sizeof codecs[0])];
    meter_class c = chance(60) || cc->kind == 3 ? METER_CLASS_GENERAL
                                                : METER_CLASS_TSC;
    int w = 0, h = 0;
    if (cc->kind <= 1) {
        int e = rnd_edge();
        int lng = e + (int)rnd_in(0, 3000);
        if (chance(50)) { w = lng; h = e; } else { w = e; h = lng; }
    }
    int64_t dur = chance(20) ? rnd_in(1, 1000)
                             : rnd_in(1, 600) * US_PER_S + rnd_in(0, 999999);

    /* the expected ratio, from billing-rules.md */
    int64_t num = 1, den = 0;
    if (cc->kind == 0) {
        int t = mt_tier_of(w, h);
        if (t < 5) {
            num = mt_video_ratios[cc->video].r[t];
            den = 1;
        }
    } else if (cc->kind == 2 && c == METER_CLASS_GENERAL) {
        num = 1; den = 4;
    } else if (cc->kind == 3) {
        num = 1; den = 2;
    }
    int64_t want_billed = mt_expect_billed(dur, num, den, ceil_minute);
    int deductible = den != 0;

    size_t nv = 0;
    vpack *v = NULL;
    int64_t avail0 = 0;
    if (!daily) {
        v = valid_packs(st, c, &nv);
        meter_available(st, c, &avail0);
    }

    char job[32];
    snprintf(job, sizeof job, "job-%06" PRId64, n_records);
    meter_usage_result r;
    int rc = mt_record(st, job, c, cc->name, w, h, dur, &r);
    if (rc != METER_OK) {
        FAIL("record %s %s %dx%d %" PRId64 ": %s", meter_class_name(c),
             cc->name, w, h, dur, meter_errmsg(st));
        free(v);
        return;
    }
    n_records++;
    sum_billed_expected += want_billed;
    if (r.billed_us != want_billed && !bad_billed++)
        FAIL("billed of %s %s %dx%d %" PRId64 " us (%s): got %" PRId64
             ", expected %" PRId64, meter_class_name(c), cc->name, w, h, dur,
             ceil_minute ? "ceil-minute" : "exact", r.billed_us, want_billed);
    was_daily[n_records - 1] = (char)daily;

    if (!daily) {
        /* walk the packs in deduction order, as the rules say */
        int64_t left = deductible ? r.billed_us : 0;
        int ok = 1;
        for (size_t i = 0; i < nv; ++i) {
            int64_t take = v[i].rem < left ? v[i].rem : left;
            left -= take;
            if (take > 0 && mt_remaining(st, v[i].id) != v[i].rem - take) {
                ok = 0;
                if (!bad_fifo)
                    tap_diag("pack %s: remaining %" PRId64 ", expected %"
                             PRId64, v[i].id, mt_remaining(st, v[i].id),
                             v[i].rem - take);
            }
        }
        int64_t want_cov = (deductible ? r.billed_us : 0) - left;
        int64_t avail1 = -1;
        meter_available(st, c, &avail1);
        if (r.covered_us != want_cov || avail1 != avail0 - want_cov ||
            r.covered_us + r.overage_us != r.billed_us || r.settled != 1)
            ok = 0;
        if (!ok && !bad_fifo++)
            FAIL("realtime %s %s (%s) billed %" PRId64 ": covered %" PRId64
                 " (expected %" PRId64 "), available %" PRId64 " → %" PRId64
                 ", settled %d", meter_class_name(c), cc->name, r.ttype,
                 r.billed_us, r.covered_us, want_cov, avail0, avail1,
                 r.settled);
    } else if ((r.settled != 0 || r.covered_us != 0) && !bad_fifo++) {
        FAIL("daily record %s settled %d covered %" PRId64 " before settle",
             r.id, r.settled, r.covered_us);
    }
    free(v);
}

/* ---------------------------------------------------------- the rest -- */

static void op_settle(meter_store *st)
{
    meter_settle_result r;
    int rc = meter_settle(st, &r);
    if (rc != METER_OK)
        FAIL("settle: %s", meter_errmsg(st));
    else if (r.covered_us + r.overage_us != r.billed_us && !bad_rule++)
        FAIL("settle: covered + overage ≠ billed");
}

static void op_setting(meter_store *st)
{
    if (chance(60)) {
        ceil_minute = !ceil_minute;
        if (meter_setting_set(st, "rounding",
                              ceil_minute ? "ceil-minute" : "exact") != METER_OK)
            FAIL("set rounding: %s", meter_errmsg(st));
    } else {
        daily = !daily;
        if (meter_setting_set(st, "settlement",
                              daily ? "daily" : "realtime") != METER_OK)
            FAIL("set settlement: %s", meter_errmsg(st));
    }
}

static void set_clock(int64_t ms)
{
    now_ms = ms;
    tap_set_now_ms(ms);
}

int main(void)
{
    uint64_t seed = 20261126;
    const char *e = getenv("TEST_SEED");
    if (e && *e)
        seed = strtoull(e, NULL, 0);
    long ops = 4000;
    e = getenv("TEST_OPS");
    if (e && *e)
        ops = strtol(e, NULL, 10);
    rng = seed;
    tap_diag("seed %" PRIu64 " (rerun with TEST_SEED=%" PRIu64 "), %ld ops",
             seed, seed, ops);

    const char *dir = tap_tmpdir("test_random");
    set_clock(tap_utc(2026, 1, 1, 0, 0, 0));
    meter_store *st = mt_open(tap_path(dir, "random.db"));
    for (int i = 0; i < 6; ++i)
        op_pack_add(st);

    for (long i = 0; i < ops; ++i) {
        int k = (int)(rnd() % 100);
        if (k < 55)
            op_record(st);
        else if (k < 63)
            op_pack_add(st);
        else if (k < 73)
            op_pack_change(st);
        else if (k < 88)
            set_clock(now_ms + rnd_in(0, 36 * MS_PER_H));
        else if (k < 90)
            set_clock(now_ms + rnd_in(0, 60 * MS_PER_DAY));
        else if (k < 95)
            op_settle(st);
        else
            op_setting(st);
    }
    CHECK_EQ_INT(bad_billed, 0, "every billed amount = duration × ratio");
    CHECK_EQ_INT(bad_fifo, 0, "every realtime deduction earliest end first");
    CHECK_EQ_INT(bad_rule, 0, "freeze/unfreeze/refund follow the rules");

    /* settle whatever daily mode left */
    set_clock(now_ms + 2 * MS_PER_DAY);
    op_settle(st);

    CHECK_VERIFY(st, "meter_verify: no violations");
    /* the raw records: count and Σ billed; covered + overage = billed per
     * realtime record (daily usage is charged per settlement group, so its
     * share shows in the deduction records below instead) */
    meter_query q = mt_query_all();
    meter_job_row *jr = NULL;
    size_t nj = 0;
    int64_t billed = 0, unbalanced = 0, unsettled = 0, ndaily = 0;
    if (CHECK_RC(st, meter_jobs(st, &q, &jr, &nj), METER_OK, "jobs")) {
        for (size_t i = 0; i < nj; ++i) {
            long idx = strtol(jr[i].job + 4, NULL, 10);
            billed += jr[i].billed_us;
            unsettled += !jr[i].settled;
            if (idx >= 0 && idx < MAXREC && was_daily[idx])
                ndaily++;
            else if (jr[i].covered_us + jr[i].overage_us != jr[i].billed_us)
                unbalanced++;
        }
        meter_free(jr);
    }
    tap_diag("%" PRId64 " records, %" PRId64 " of them in daily mode",
             n_records, ndaily);
    CHECK_EQ_I64(nj, n_records, "record count");
    CHECK_EQ_I64(billed, sum_billed_expected, "Σ billed = Σ expected");
    CHECK_EQ_I64(unbalanced, 0, "per realtime record covered + overage = billed");
    CHECK_EQ_I64(unsettled, 0, "every record settled");
    int64_t dpacks = -1, doverage = -1;
    if (mt_details_totals(st, &dpacks, &doverage) == METER_OK)
        CHECK_EQ_I64(dpacks + doverage, sum_billed_expected,
                     "Σ deductions + Σ overage = Σ billed");

    meter_pack *rows = NULL;
    size_t n = 0;
    if (CHECK_RC(st, meter_pack_list(st, NULL, &rows, &n), METER_OK,
                 "list packs")) {
        CHECK_EQ_I64(n, npacks, "every pack listed");
        int64_t used_sum = 0;
        int bad = 0;
        for (size_t i = 0; i < n; ++i) {
            size_t nr = 0;
            int64_t used = mt_details_used(st, rows[i].id, &nr);
            used_sum += rows[i].total_us - rows[i].remaining_us;
            if (rows[i].total_us - rows[i].remaining_us != used ||
                rows[i].remaining_us < 0 ||
                rows[i].remaining_us > rows[i].total_us ||
                (rows[i].refunded_at && rows[i].deductions) ||
                (rows[i].deductions == 0 && nr != 0)) {
                if (!bad++)
                    tap_diag("pack %s: total %" PRId64 " remaining %" PRId64
                             " details %" PRId64 " (%zu rows) deductions %"
                             PRId64, rows[i].id, rows[i].total_us,
                             rows[i].remaining_us, used, nr, rows[i].deductions);
            }
        }
        CHECK_EQ_INT(bad, 0, "per pack: total − remaining = Σ details rows, "
                     "0 ≤ remaining ≤ total, refunded unused");
        CHECK_EQ_I64(used_sum, dpacks, "Σ over packs (total − remaining) = "
                     "Σ deduction rows");
        meter_free(rows);
    }
    meter_close(st);
    return done_testing();
}
