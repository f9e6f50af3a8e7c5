/*
 * test_pack_rules — the one copy of the pack rules (metering/pack_rules.c)
 * that the node and the ledger both run: the status order, the validity
 * year, the refund window and freeze rules at their exact boundaries, and
 * the id syntax.  Expected times come from libc's timegm (tap_utc).
 */
#include "mtest.h"

static meter_pack_state fresh(meter_time start)
{
    return (meter_pack_state){ .start = start, .end = meter_pack_end(start),
                               .total_us = 10 * METER_US_PER_MIN,
                               .remaining_us = 10 * METER_US_PER_MIN };
}

static void status_order(void)
{
    meter_time t0 = tap_utc(2026, 3, 1, 0, 0, 0);
    meter_pack_state p = fresh(t0);
    CHECK_EQ_STR(meter_pack_status(&p, t0), "valid", "valid from its first millisecond");
    CHECK_EQ_STR(meter_pack_status(&p, t0 - 1), "pending", "pending before its start");
    CHECK_EQ_STR(meter_pack_status(&p, p.end - 1), "valid", "valid to its last millisecond");
    CHECK_EQ_STR(meter_pack_status(&p, p.end), "expired", "expired at its end");
    p.remaining_us = 0;
    CHECK_EQ_STR(meter_pack_status(&p, t0), "exhausted", "exhausted at 0 remaining");
    p.remaining_us = -1;   /* never stored, but no status of its own either */
    CHECK_EQ_STR(meter_pack_status(&p, t0), "exhausted", "exhausted below 0 too");
    CHECK_EQ_STR(meter_pack_status(&p, t0 - 1), "exhausted", "exhausted beats pending");
    CHECK_EQ_STR(meter_pack_status(&p, p.end), "expired", "expired beats exhausted");
    p.frozen = 1;
    CHECK_EQ_STR(meter_pack_status(&p, p.end), "frozen", "frozen beats expired");
    p.refunded_at = t0 + 1;
    CHECK_EQ_STR(meter_pack_status(&p, p.end), "refunded", "refunded beats frozen");
}

static void validity(void)
{
    CHECK_EQ_I64(meter_pack_end(tap_utc(2026, 3, 1, 12, 0, 0) + 123),
                 tap_utc(2027, 3, 1, 12, 0, 0) + 123, "one calendar year, to the millisecond");
    CHECK_EQ_I64(meter_pack_end(tap_utc(2028, 2, 29, 0, 0, 0)), tap_utc(2029, 3, 1, 0, 0, 0),
                 "Feb 29 + 1 year is Mar 1");
    CHECK_EQ_I64(meter_pack_end(tap_utc(2027, 3, 1, 0, 0, 0)), tap_utc(2028, 3, 1, 0, 0, 0),
                 "a year across Feb 29 has 366 days");
}

static void refunds(void)
{
    char err[METER_ERRMAX];
    meter_time t0 = tap_utc(2026, 3, 1, 8, 0, 0);
    meter_pack_state p = fresh(t0);
    meter_time last = meter_pack_refundable_until(t0);
    CHECK_EQ_I64(last, tap_utc(2026, 3, 6, 8, 0, 0), "refundable for 5 × 24 h");
    CHECK_EQ_INT(meter_pack_may_refund(&p, "p", last, err), METER_OK, "at the last instant");
    CHECK_EQ_INT(meter_pack_may_refund(&p, "p", last + 1, err), METER_EREFUSED,
                 "one millisecond later: refused");
    CHECK(strstr(err, "2026-03-06T08:00:00") != NULL && !strchr(err, '\n'),
          "…naming when the window ended: %s", err);
    p.deductions = 1;
    CHECK_EQ_INT(meter_pack_may_refund(&p, "p", t0, err), METER_EREFUSED, "used: refused");
    p.deductions = 0;
    p.remaining_us -= 1;
    CHECK_EQ_INT(meter_pack_may_refund(&p, "p", t0, err), METER_EREFUSED,
                 "one µs used, with no deduction row: refused");
    p = fresh(t0);
    p.refunded_at = t0;
    CHECK_EQ_INT(meter_pack_may_refund(&p, "p", t0, err), METER_EEXIST, "twice: a conflict");
    p = fresh(t0);
    p.frozen = 1;
    CHECK_EQ_INT(meter_pack_may_refund(&p, "p", t0, err), METER_OK, "a frozen unused pack may");
}

static void freezes(void)
{
    char err[METER_ERRMAX];
    meter_pack_state p = fresh(tap_utc(2026, 3, 1, 0, 0, 0));
    CHECK_EQ_INT(meter_pack_may_freeze(&p, "p", 1, err), METER_OK, "freeze a valid pack");
    CHECK_EQ_INT(meter_pack_may_freeze(&p, "p", 0, err), METER_EEXIST, "unfreeze: not frozen");
    p.frozen = 1;
    CHECK_EQ_INT(meter_pack_may_freeze(&p, "p", 1, err), METER_EEXIST, "already frozen");
    CHECK(strstr(err, "already frozen") != NULL, "…says so: %s", err);
    CHECK_EQ_INT(meter_pack_may_freeze(&p, "p", 0, err), METER_OK, "unfreeze a frozen pack");
    p.refunded_at = 1;
    CHECK_EQ_INT(meter_pack_may_freeze(&p, "p", 0, err), METER_EREFUSED, "refunded: refused");
    CHECK_EQ_INT(meter_pack_may_freeze(&p, "p", 1, err), METER_EREFUSED, "…either way");
}

static void ids(void)
{
    char id[METER_NAME_MAX];
    CHECK_EQ_INT(meter_pack_id_make(tap_utc(2026, 3, 1, 23, 59, 0), "0a1b2c3d", id), METER_OK,
                 "generate an id");
    CHECK_EQ_STR(id, "pk-20260301-0a1b2c3d", "pk-<start day, UTC>-<tail>");
    CHECK(meter_pack_id_valid("pk-a.b_c:d"), "letters, digits, '.', '_', '-', ':'");
    CHECK(!meter_pack_id_valid("-"), "'-' is the overage marker");
    CHECK(!meter_pack_id_valid(""), "empty");
    CHECK(!meter_pack_id_valid(NULL), "NULL");
    CHECK(!meter_pack_id_valid("pk 1"), "a blank");
    CHECK(!meter_pack_id_valid("pk/1"), "a slash");
    char longid[METER_NAME_MAX + 1];
    memset(longid, 'p', METER_NAME_MAX);
    longid[METER_NAME_MAX - 1] = '\0';
    CHECK(meter_pack_id_valid(longid), "%d bytes", METER_NAME_MAX - 1);
    longid[METER_NAME_MAX - 1] = 'p';
    longid[METER_NAME_MAX] = '\0';
    CHECK(!meter_pack_id_valid(longid), "%d bytes", METER_NAME_MAX);
}

int main(void)
{
    status_order();
    validity();
    refunds();
    freezes();
    ids();
    return done_testing();
}
