/*
 * test_verify — meter_verify finds broken invariants, and the ledger tables
 * are append-only.
 *
 * The other tests check that verify reports nothing after correct work; a
 * verify that never reports anything would pass them all.  Here a correct
 * store is damaged behind libmeter's back with plain SQLite (the only way to
 * make such faults: libmeter itself refuses to), and verify must report each
 * kind of damage, once per violation, in one line naming the pack.
 * These fault injections know the schema's table and column names (packs,
 * usage, deductions): update them with the schema.
 */
#include <sqlite3.h>

#include "mtest.h"

#define S(x) ((int64_t)(x) * US_PER_S)

typedef struct seen {
    int calls;
    int named;          /* reports that contain `name` */
    int bad_lines;      /* empty or multi-line reports */
    const char *name;
} seen;

static void on_report(void *ctx, const char *problem)
{
    seen *s = ctx;
    s->calls++;
    if (!problem || !problem[0] || strchr(problem, '\n'))
        s->bad_lines++;
    else if (s->name && strstr(problem, s->name))
        s->named++;
    printf("#   reported: %s\n", problem ? problem : "(null)");
}

/* A small correct store: general packs V1 (used up to 8+2 min of 10) and V2
 * (3 of 10), a TSC pack T1 (1 of 10). */
static void make_base(const char *path)
{
    meter_store *st = mt_open(path);
    tap_set_now("2026-06-15T12:00:00Z");
    mt_add_pack(st, "V1", METER_CLASS_GENERAL, 10, tap_utc(2026, 6, 1, 0, 0, 0));
    mt_add_pack(st, "V2", METER_CLASS_GENERAL, 10, tap_utc(2026, 6, 2, 0, 0, 0));
    mt_add_pack(st, "T1", METER_CLASS_TSC, 10, tap_utc(2026, 6, 1, 0, 0, 0));
    meter_usage_result r;
    if (mt_record(st, "j1", METER_CLASS_GENERAL, "h264", 1280, 720, S(240), &r) ||
        mt_record(st, "j2", METER_CLASS_GENERAL, "h264", 640, 480, S(300), &r) ||
        mt_record(st, "j3", METER_CLASS_TSC, "h264", 640, 480, S(60), &r))
        BAIL("base records: %s", meter_errmsg(st));
    meter_close(st);
}

/* Damages a fresh base store with `stmt`; verify must report it. */
static void damaged(const char *dir, const char *file, const char *stmt,
                    const char *name, const char *what)
{
    const char *path = tap_path(dir, file);
    make_base(path);
    char err[256];
    if (mt_sql_err(path, stmt, err, sizeof err) != SQLITE_OK) {
        FAIL("%s: fault injection failed: %s", what, err);
        return;
    }
    meter_store *st = NULL;
    char oerr[METER_ERRMAX];
    if (!CHECK_RC_ERR(oerr, meter_open(path, 0, &st, oerr), METER_OK,
                      "%s: damaged store still opens", what))
        return;
    seen s = { 0, 0, 0, name };
    size_t v = 0;
    CHECK_RC(st, meter_verify(st, on_report, &s, &v), METER_OK,
             "%s: verify runs", what);
    CHECK(v >= 1, "%s: reported (%zu violations)", what, v);
    CHECK_EQ_I64(s.calls, (int64_t)v, "%s: report called once per violation",
                 what);
    CHECK_EQ_INT(s.bad_lines, 0, "%s: each report one non-empty line", what);
    CHECK(s.named >= 1, "%s: a report names %s", what, name);
    /* report may be NULL */
    size_t v2 = 0;
    CHECK(meter_verify(st, NULL, NULL, &v2) == METER_OK && v2 == v,
          "%s: same count without a report callback", what);
    meter_close(st);
}

int main(void)
{
    const char *dir = tap_tmpdir("test_verify");

    /* the undamaged store */
    const char *base = tap_path(dir, "base.db");
    make_base(base);
    meter_store *st = mt_open(base);
    seen s = { 0, 0, 0, NULL };
    size_t v = 99;
    CHECK_RC(st, meter_verify(st, on_report, &s, &v), METER_OK, "verify base");
    CHECK_EQ_I64(v, 0, "base: no violations");
    CHECK_EQ_INT(s.calls, 0, "base: report never called");
    CHECK_EQ_I64(mt_remaining(st, "V1"), 0, "base: V1 used up (8 + 2 min)");
    CHECK_EQ_I64(mt_remaining(st, "V2"), S(420), "base: V2 paid 3 min");
    meter_close(st);

    damaged(dir, "balance.db",
            "UPDATE packs SET remaining_us = remaining_us + 60000000 "
            "WHERE id = 'V2'", "V2", "balance raised by a minute");
    damaged(dir, "lowered.db",
            "UPDATE packs SET remaining_us = remaining_us - 1 WHERE id = 'V2'",
            "V2", "balance lowered by 1 us");
    damaged(dir, "validity.db",
            "UPDATE packs SET start_at = start_at + 30 * 86400000, "
            "end_at = end_at + 30 * 86400000 WHERE id = 'V2'", "V2",
            "deduction before the pack's start");
    damaged(dir, "expired.db",
            "UPDATE packs SET start_at = start_at - 400 * 86400000, "
            "end_at = start_at - 35 * 86400000 WHERE id = 'V2'", "V2",
            "deduction after the pack's end");
    damaged(dir, "class.db", "UPDATE packs SET type = 1 WHERE id = 'V1'", "V1",
            "deduction from a pack of another class");
    damaged(dir, "refunded.db",
            "UPDATE packs SET refunded_at = 1781524800000 WHERE id = 'V1'", "V1",
            "refunded pack with deductions");
    damaged(dir, "deleted.db",
            "DROP TRIGGER IF EXISTS deductions_append_only_d;"
            "DELETE FROM deductions WHERE pack_id = 'V2'", "V2",
            "a deduction row removed");

    /* append-only: plain SQL cannot rewrite or remove ledger rows */
    const char *ao = tap_path(dir, "append.db");
    make_base(ao);
    char err[256];
    static const char *const stmts[] = {
        "UPDATE usage SET billed_us = 0",
        "DELETE FROM usage",
        "UPDATE deductions SET amount_us = 1",
        "DELETE FROM deductions",
    };
    for (int i = 0; i < 4; ++i)
        CHECK(mt_sql_err(ao, stmts[i], err, sizeof err) != SQLITE_OK,
              "refused: %s (%s)", stmts[i], err);
    st = mt_open(ao);
    CHECK_VERIFY(st, "append-only store still verifies");
    mt_sums ms;
    if (mt_job_sums(st, NULL, &ms) == METER_OK)
        CHECK(ms.n == 3 && ms.billed == S(480 + 300 + 60),
              "records intact (%" PRId64 ", %" PRId64 ")", ms.n, ms.billed);
    meter_close(st);
    return done_testing();
}
