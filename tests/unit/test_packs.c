/*
 * test_packs — resource packs (billing-rules.md §2): add with generated and
 * given ids, bad sizes refused without a partial write, end = start + one
 * calendar year, the status order refunded > frozen > expired > exhausted >
 * pending > valid, list filters and order, freeze/unfreeze rules, and the
 * refund window (5th day included, unused only).
 */
#include <ctype.h>

#include "mtest.h"

static int64_t NOW;   /* 2026-06-15T12:00:00Z */

static size_t count_packs(meter_store *st, const meter_pack_filter *f)
{
    meter_pack *rows = NULL;
    size_t n = 0;
    if (meter_pack_list(st, f, &rows, &n) != METER_OK) {
        tap_diag("meter_pack_list: %s", meter_errmsg(st));
        return (size_t)-1;
    }
    meter_free(rows);
    return n;
}

static void status_is(meter_store *st, const char *id, const char *want,
                      const char *why)
{
    meter_pack p = mt_pack(st, id);
    CHECK_EQ_STR(p.status, want, "%s: %s", id, why);
}

/* Uses up a 1-minute general pack with exactly 60 s of H.264 SD. */
static void exhaust(meter_store *st, const char *id)
{
    meter_usage_result r;
    int rc = mt_record(st, "job-exhaust", METER_CLASS_GENERAL, "h264", 640, 480,
                       60 * US_PER_S, &r);
    CHECK_RC(st, rc, METER_OK, "record 60 s to exhaust %s", id);
    CHECK_EQ_I64(mt_remaining(st, id), 0, "%s used up", id);
}

static void adding(meter_store *st)
{
    meter_pack p;
    memset(&p, 0, sizeof p);
    int rc = meter_pack_add(st, NULL, METER_CLASS_GENERAL, 100, 0, &p);
    if (CHECK_RC(st, rc, METER_OK, "add with a generated id")) {
        /* "pk-YYYYMMDD-xxxxxxxx" with the purchase date */
        int shape = strlen(p.id) == 20 && !strncmp(p.id, "pk-20260615-", 12);
        for (int i = 12; shape && i < 20; ++i)
            shape = isalnum((unsigned char)p.id[i]);
        CHECK(shape, "generated id looks like pk-20260615-xxxxxxxx (%s)", p.id);
        CHECK_EQ_INT(p.type, METER_CLASS_GENERAL, "type");
        CHECK_EQ_I64(p.total_us, 100 * US_PER_MIN, "total 100 min in µs");
        CHECK_EQ_I64(p.remaining_us, 100 * US_PER_MIN, "remaining = total");
        CHECK_EQ_I64(p.start, NOW, "start 0 = now");
        CHECK_EQ_I64(p.end, tap_utc(2027, 6, 15, 12, 0, 0), "end = now + 1 year");
        CHECK_EQ_INT(p.frozen, 0, "not frozen");
        CHECK_EQ_I64(p.refunded_at, 0, "not refunded");
        CHECK_EQ_I64(p.deductions, 0, "no deductions");
        CHECK_EQ_STR(p.status, "valid", "status valid");
        meter_pack g = mt_pack(st, p.id);
        CHECK_EQ_I64(g.total_us, p.total_us, "get returns the added pack");
    }
    meter_pack q;
    rc = meter_pack_add(st, NULL, METER_CLASS_GENERAL, 100, 0, &q);
    CHECK(rc == METER_OK && strcmp(p.id, q.id) != 0,
          "two generated ids differ (%s, %s)", p.id, q.id);

    rc = meter_pack_add(st, "pack-A", METER_CLASS_TSC, 3000, 0, &p);
    if (CHECK_RC(st, rc, METER_OK, "add with a given id")) {
        CHECK_EQ_STR(p.id, "pack-A", "given id kept");
        CHECK_EQ_INT(p.type, METER_CLASS_TSC, "tsc type");
        CHECK_EQ_I64(p.total_us, 3000 * US_PER_MIN, "3000 min");
    }
    CHECK_RC(st, meter_pack_add(st, "pack-A", METER_CLASS_TSC, 5, 0, NULL),
             METER_EEXIST, "duplicate id refused");
    CHECK_MSG(st, "duplicate message: %s", meter_errmsg(st));
    CHECK_RC(st, meter_pack_add(st, "pack-A", METER_CLASS_GENERAL, 5, 0, NULL),
             METER_EEXIST, "duplicate id of another type refused");
    CHECK_EQ_I64(mt_pack(st, "pack-A").total_us, 3000 * US_PER_MIN,
                 "the first pack-A unchanged");

    size_t before = count_packs(st, NULL);
    static const int64_t bad_min[] = { 0, -1, -100, 10000001,
                                       INT64_C(1) << 40, INT64_MIN };
    for (size_t i = 0; i < sizeof bad_min / sizeof bad_min[0]; ++i) {
        rc = meter_pack_add(st, NULL, METER_CLASS_GENERAL, bad_min[i], 0, NULL);
        CHECK_RC(st, rc, METER_EINVAL, "minutes %" PRId64 " refused",
                 bad_min[i]);
        CHECK_MSG(st, "message: %s", meter_errmsg(st));
    }
    CHECK_RC(st, meter_pack_add(st, "bad-type", (meter_class)3, 10, 0, NULL),
             METER_EINVAL, "type 3 refused");
    CHECK_RC(st, meter_pack_add(st, "", METER_CLASS_GENERAL, 10, 0, NULL),
             METER_EINVAL, "empty id refused");
    char longid[300];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    CHECK_RC(st, meter_pack_add(st, longid, METER_CLASS_GENERAL, 10, 0, NULL),
             METER_EINVAL, "300-byte id refused");
    CHECK_RC(st, meter_pack_add(st, "neg-start", METER_CLASS_GENERAL, 10, -5,
                                NULL), METER_EINVAL, "negative start refused");
    CHECK_EQ_I64(count_packs(st, NULL), before, "refusals added nothing");

    rc = meter_pack_add(st, "min-1", METER_CLASS_GENERAL, 1, 0, &p);
    CHECK(rc == METER_OK && p.total_us == US_PER_MIN, "1 minute accepted");
    rc = meter_pack_add(st, "max-1e7", METER_CLASS_GENERAL, 10000000, 0, &p);
    CHECK(rc == METER_OK && p.total_us == 10000000 * US_PER_MIN,
          "10^7 minutes accepted (%d)", rc);
    /* the largest pack must not count as available forever: freeze it */
    CHECK_RC(st, meter_pack_freeze(st, "max-1e7"), METER_OK, "freeze max");
    CHECK_RC(st, meter_pack_freeze(st, "min-1"), METER_OK, "freeze min");

    CHECK_RC(st, meter_pack_get(st, "no-such", &p), METER_ENOTFOUND,
             "get unknown id");
}

static void validity(meter_store *st)
{
    meter_pack p;
    int64_t s = tap_utc(2026, 3, 10, 12, 34, 56) + 789;
    int rc = meter_pack_add(st, "y1", METER_CLASS_GENERAL, 5, s, &p);
    if (CHECK_RC(st, rc, METER_OK, "add with a start")) {
        CHECK_EQ_I64(p.start, s, "start kept to the ms");
        CHECK_EQ_I64(p.end, tap_utc(2027, 3, 10, 12, 34, 56) + 789,
                     "end = same instant one year later");
    }
    /* a calendar year across 29 Feb 2028 is 366 days */
    rc = meter_pack_add(st, "y2", METER_CLASS_GENERAL, 5,
                        tap_utc(2027, 6, 1, 0, 0, 0), &p);
    if (CHECK_RC(st, rc, METER_OK, "add starting 2027-06-01"))
        CHECK_EQ_I64(p.end - p.start, 366 * MS_PER_DAY,
                     "2027-06-01 → 2028-06-01 is 366 days");
    rc = meter_pack_add(st, "y3", METER_CLASS_GENERAL, 5,
                        tap_utc(2025, 6, 1, 0, 0, 0), &p);
    if (CHECK_RC(st, rc, METER_OK, "add starting 2025-06-01"))
        CHECK_EQ_I64(p.end - p.start, 365 * MS_PER_DAY,
                     "2025-06-01 → 2026-06-01 is 365 days");
}

static void statuses(meter_store *st)
{
    /* pending: a start in the future */
    mt_add_pack(st, "s-pend", METER_CLASS_GENERAL, 10, NOW + MS_PER_DAY);
    status_is(st, "s-pend", "pending", "start tomorrow is pending");

    /* expired: strictly after the end; valid just before it */
    int64_t s = tap_utc(2025, 6, 15, 12, 0, 0);   /* ends at NOW */
    mt_add_pack(st, "s-exp", METER_CLASS_GENERAL, 10, s + 1000);
    status_is(st, "s-exp", "valid", "1 s before its end is valid");
    tap_set_now_ms(NOW + 1001);
    status_is(st, "s-exp", "expired", "1 ms after its end is expired");
    tap_set_now_ms(NOW);

    /* exhausted (this is the earliest-ending valid general pack with
     * minutes, so the record takes from it first) */
    mt_add_pack(st, "s-exh", METER_CLASS_GENERAL, 1, s + 500);
    exhaust(st, "s-exh");
    status_is(st, "s-exh", "exhausted", "no minutes left is exhausted");

    /* frozen > exhausted, frozen > pending */
    CHECK_RC(st, meter_pack_freeze(st, "s-exh"), METER_OK, "freeze exhausted");
    status_is(st, "s-exh", "frozen", "frozen beats exhausted");
    CHECK_RC(st, meter_pack_freeze(st, "s-pend"), METER_OK, "freeze pending");
    status_is(st, "s-pend", "frozen", "frozen beats pending");
    CHECK_RC(st, meter_pack_unfreeze(st, "s-pend"), METER_OK, "unfreeze pend");
    status_is(st, "s-pend", "pending", "unfrozen pending is pending again");

    /* expired > exhausted: the exhausted pack's year ends */
    mt_add_pack(st, "s-exh2", METER_CLASS_GENERAL, 1, s + 600);
    exhaust(st, "s-exh2");
    tap_set_now_ms(NOW + 1001);
    status_is(st, "s-exh2", "expired", "expired beats exhausted");
    /* frozen > expired */
    CHECK_RC(st, meter_pack_freeze(st, "s-exp"), METER_OK, "freeze expired");
    status_is(st, "s-exp", "frozen", "frozen beats expired");
    tap_set_now_ms(NOW);

    /* refunded > frozen: refunding a frozen, unused pack */
    mt_add_pack(st, "s-ref", METER_CLASS_GENERAL, 10, NOW - MS_PER_DAY);
    CHECK_RC(st, meter_pack_freeze(st, "s-ref"), METER_OK, "freeze s-ref");
    CHECK_RC(st, meter_pack_refund(st, "s-ref"), METER_OK,
             "refund a frozen unused pack");
    status_is(st, "s-ref", "refunded", "refunded beats frozen");
    meter_pack p = mt_pack(st, "s-ref");
    CHECK_EQ_I64(p.refunded_at, NOW, "refunded_at = now");

    /* refunded > pending */
    mt_add_pack(st, "s-ref2", METER_CLASS_GENERAL, 10, NOW + 3 * MS_PER_DAY);
    CHECK_RC(st, meter_pack_refund(st, "s-ref2"), METER_OK,
             "refund a pack not started yet");
    status_is(st, "s-ref2", "refunded", "refunded beats pending");

    /* status filter agrees with the computed status */
    meter_pack_filter f = { NULL, -1, "refunded", NULL };
    meter_pack *rows = NULL;
    size_t n = 0;
    if (CHECK_RC(st, meter_pack_list(st, &f, &rows, &n), METER_OK,
                 "list refunded")) {
        int all = n == 2;
        for (size_t i = 0; i < n; ++i)
            all = all && !strcmp(rows[i].status, "refunded");
        CHECK(all, "status filter 'refunded' gives the 2 refunded packs (%zu)",
              n);
        meter_free(rows);
    }
}

static void listing(const char *dir)
{
    meter_store *st = mt_open(tap_path(dir, "list.db"));
    /* insert out of order; deduction order is end, start, id */
    mt_add_pack(st, "c", METER_CLASS_GENERAL, 10, tap_utc(2026, 3, 1, 0, 0, 0));
    mt_add_pack(st, "b", METER_CLASS_GENERAL, 10, tap_utc(2026, 1, 1, 0, 0, 0));
    mt_add_pack(st, "a-2", METER_CLASS_TSC, 10, tap_utc(2026, 2, 1, 0, 0, 0));
    mt_add_pack(st, "a-1", METER_CLASS_GENERAL, 10, tap_utc(2026, 2, 1, 0, 0, 0));
    mt_add_pack(st, "z", METER_CLASS_TSC, 10, tap_utc(2025, 12, 1, 0, 0, 0));
    mt_add_pack(st, "old", METER_CLASS_GENERAL, 10, tap_utc(2025, 1, 1, 0, 0, 0));
    mt_add_pack(st, "fut", METER_CLASS_TSC, 10, tap_utc(2026, 8, 1, 0, 0, 0));

    static const char *const order[] = { "old", "z", "b", "a-1", "a-2", "c",
                                         "fut" };
    meter_pack *rows = NULL;
    size_t n = 0;
    if (CHECK_RC(st, meter_pack_list(st, NULL, &rows, &n), METER_OK, "list")) {
        int same = n == 7;
        for (size_t i = 0; same && i < n; ++i)
            same = !strcmp(rows[i].id, order[i]);
        if (!CHECK(same, "list in (end, start, id) order"))
            for (size_t i = 0; i < n; ++i)
                tap_diag("row %zu: %s", i, rows[i].id);
        meter_free(rows);
    }

    meter_pack_filter f = { "a-", -1, NULL, NULL };
    CHECK_EQ_I64(count_packs(st, &f), 2, "id substring 'a-'");
    f.id_like = "-1";
    CHECK_EQ_I64(count_packs(st, &f), 1, "id substring '-1'");
    f.id_like = "nothing";
    CHECK_EQ_I64(count_packs(st, &f), 0, "id substring without match");
    f.id_like = NULL;
    f.type = METER_CLASS_TSC;
    CHECK_EQ_I64(count_packs(st, &f), 3, "type tsc");
    f.type = METER_CLASS_GENERAL;
    CHECK_EQ_I64(count_packs(st, &f), 4, "type general");
    f.type = -1;
    f.status = "expired";
    CHECK_EQ_I64(count_packs(st, &f), 1, "status expired ('old')");
    f.status = "pending";
    CHECK_EQ_I64(count_packs(st, &f), 1, "status pending ('fut')");
    f.status = "valid";
    CHECK_EQ_I64(count_packs(st, &f), 5, "status valid");
    f.type = METER_CLASS_TSC;
    CHECK_EQ_I64(count_packs(st, &f), 2, "tsc and valid");
    f.type = -1;
    f.status = "bogus";
    rows = NULL;
    int rc = meter_pack_list(st, &f, &rows, &n);
    CHECK(rc == METER_EINVAL, "unknown status filter refused (rc %d)", rc);
    if (rc == METER_OK)
        meter_free(rows);
    meter_close(st);
}

static void freezing(meter_store *st)
{
    mt_add_pack(st, "f1", METER_CLASS_GENERAL, 10, NOW - MS_PER_DAY);
    meter_pack p = mt_pack(st, "f1");
    CHECK_RC(st, meter_pack_freeze(st, "f1"), METER_OK, "freeze");
    p = mt_pack(st, "f1");
    CHECK(p.frozen && !strcmp(p.status, "frozen"), "frozen flag and status");
    CHECK_RC(st, meter_pack_freeze(st, "f1"), METER_EEXIST,
             "freezing a frozen pack refused");
    CHECK_MSG(st, "reason: %s", meter_errmsg(st));
    CHECK_RC(st, meter_pack_unfreeze(st, "f1"), METER_OK, "unfreeze");
    p = mt_pack(st, "f1");
    CHECK(!p.frozen && !strcmp(p.status, "valid"), "unfrozen is valid again");
    CHECK_RC(st, meter_pack_unfreeze(st, "f1"), METER_EEXIST,
             "unfreezing an unfrozen pack refused");
    CHECK_MSG(st, "reason: %s", meter_errmsg(st));
    CHECK_RC(st, meter_pack_refund(st, "f1"), METER_OK, "refund f1");
    CHECK_RC(st, meter_pack_freeze(st, "f1"), METER_EREFUSED,
             "freezing a refunded pack refused");
    CHECK_RC(st, meter_pack_unfreeze(st, "f1"), METER_EREFUSED,
             "unfreezing a refunded pack refused");
    CHECK_RC(st, meter_pack_freeze(st, "nope"), METER_ENOTFOUND,
             "freeze unknown");
    CHECK_RC(st, meter_pack_unfreeze(st, "nope"), METER_ENOTFOUND,
             "unfreeze unknown");
    CHECK_RC(st, meter_pack_refund(st, "nope"), METER_ENOTFOUND,
             "refund unknown");
}

static void refunds(const char *dir)
{
    meter_store *st = mt_open(tap_path(dir, "refund.db"));
    int64_t s = tap_utc(2026, 6, 1, 8, 0, 0);
    tap_set_now_ms(s);
    mt_add_pack(st, "r1", METER_CLASS_GENERAL, 10, s);
    mt_add_pack(st, "r2", METER_CLASS_GENERAL, 10, s);
    mt_add_pack(st, "r3", METER_CLASS_GENERAL, 10, s);
    mt_add_pack(st, "r4", METER_CLASS_TSC, 10, s);

    /* used: a TSC deduction from r4, then a refund inside the window */
    tap_set_now_ms(s + MS_PER_DAY);
    meter_usage_result r;
    int rc = mt_record(st, "job-r4", METER_CLASS_TSC, "h264", 640, 480,
                       1 * US_PER_S, &r);
    CHECK(rc == METER_OK && r.covered_us == US_PER_S, "1 s taken from r4");
    CHECK_RC(st, meter_pack_refund(st, "r4"), METER_EREFUSED,
             "refund of a used pack refused");
    CHECK_MSG(st, "reason: %s", meter_errmsg(st));
    char used_msg[METER_ERRMAX];
    snprintf(used_msg, sizeof used_msg, "%s", meter_errmsg(st));
    meter_pack p = mt_pack(st, "r4");
    CHECK(!strcmp(p.status, "valid") && p.remaining_us == 10 * US_PER_MIN -
          US_PER_S, "refused refund changed nothing");

    tap_set_now_ms(s + 4 * MS_PER_DAY + 23 * MS_PER_H);
    CHECK_RC(st, meter_pack_refund(st, "r1"), METER_OK, "refund at 4d23h");
    tap_set_now_ms(s + 5 * MS_PER_DAY);
    CHECK_RC(st, meter_pack_refund(st, "r2"), METER_OK,
             "refund at exactly 5 days");
    CHECK_RC(st, meter_pack_refund(st, "r1"), METER_EEXIST,
             "refunding twice refused");
    tap_set_now_ms(s + 5 * MS_PER_DAY + 1);
    CHECK_RC(st, meter_pack_refund(st, "r3"), METER_EREFUSED,
             "refund at 5 days + 1 ms refused");
    CHECK_MSG(st, "reason: %s", meter_errmsg(st));
    CHECK(strcmp(used_msg, meter_errmsg(st)) != 0,
          "the two refusals name different reasons ('%s' / '%s')", used_msg,
          meter_errmsg(st));
    tap_set_now_ms(s + 6 * MS_PER_DAY);
    CHECK_RC(st, meter_pack_refund(st, "r3"), METER_EREFUSED,
             "refund on day 6 refused");
    p = mt_pack(st, "r3");
    CHECK(!strcmp(p.status, "valid") && p.refunded_at == 0,
          "refused refund left r3 valid");

    /* refunded packs pay for nothing: r1 and r2 are general and refunded */
    rc = mt_record(st, "job-after", METER_CLASS_GENERAL, "h264", 640, 480,
                   10 * US_PER_S, &r);
    if (CHECK_RC(st, rc, METER_OK, "record after refunds")) {
        CHECK_EQ_I64(r.covered_us, 10 * US_PER_S, "covered by r3 only");
        CHECK_EQ_I64(mt_remaining(st, "r3"), 10 * US_PER_MIN - 10 * US_PER_S,
                     "r3 paid");
        CHECK_EQ_I64(mt_pack(st, "r1").deductions, 0, "r1 untouched");
        CHECK_EQ_I64(mt_pack(st, "r2").deductions, 0, "r2 untouched");
    }
    int64_t avail = -1;
    CHECK_RC(st, meter_available(st, METER_CLASS_GENERAL, &avail), METER_OK,
             "available general");
    CHECK_EQ_I64(avail, 10 * US_PER_MIN - 10 * US_PER_S,
                 "available = r3's remainder only");
    CHECK_VERIFY(st, "verify after refunds");
    meter_close(st);
}

int main(void)
{
    const char *dir = tap_tmpdir("test_packs");
    NOW = tap_utc(2026, 6, 15, 12, 0, 0);
    tap_set_now_ms(NOW);
    meter_store *st = mt_open(tap_path(dir, "packs.db"));
    adding(st);
    validity(st);
    statuses(st);
    freezing(st);
    CHECK_VERIFY(st, "verify after pack operations");
    meter_close(st);
    listing(dir);
    refunds(dir);
    return done_testing();
}
