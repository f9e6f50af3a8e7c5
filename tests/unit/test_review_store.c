/*
 * test_review_store — regression tests for the review fixes to the store,
 * recording and verify:
 *
 *   8. a database in WAL mode with a -wal file its own application left
 *      un-checkpointed is refused (foreign, or newer schema) and neither
 *      the main file nor the -wal file changes: our close must not
 *      checkpoint someone else's WAL into their file;
 *   9. meter_record refuses usage more than a minute in the future
 *      (METER_EINVAL, "future"): it could drain a pack not started yet;
 *  10. meter_verify reports a settlement deduction taken from a pack that
 *      started after the end of the day it settles (in the store's
 *      day_offset); daily settlement rows count under the usage day.
 *
 * Faults for 10 are injected with plain SQLite behind libmeter's back, as
 * in test_verify (they know the packs table's column names).
 */
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "mtest.h"

#define S(x) ((int64_t)(x) * US_PER_S)
#define MIN(x) ((int64_t)(x) * US_PER_MIN)

static const char *DIR_;

/* -------------------------------------------- 8. a foreign file's WAL -- */

/* Writes `stmt` to path in WAL mode and leaves the WAL un-checkpointed:
 * how = 0 closes with SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, how = 1 dies in a
 * forked child with the connection open (a crashed application). */
static int leave_wal(const char *path, const char *stmt, int how)
{
    if (how == 0) {
        sqlite3 *db = NULL;
        int rc = sqlite3_open(path, &db);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, stmt, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            tap_diag("leave_wal: %s", db ? sqlite3_errmsg(db) : "open");
        sqlite3_close(db);
        return rc;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        sqlite3 *db = NULL;
        if (sqlite3_open(path, &db) != SQLITE_OK ||
            sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db, stmt, NULL, NULL, NULL) != SQLITE_OK)
            _exit(2);
        raise(SIGKILL);
        _exit(3);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? SQLITE_OK : SQLITE_ERROR;
}

/* meter_open (with and without CREATE) refuses path with `want`, and the
 * main file and its -wal stay byte-identical. */
static void refused_wal_intact(const char *path, int want, const char *what)
{
    char wal[PATH_MAX];
    snprintf(wal, sizeof wal, "%s-wal", path);
    size_t m0 = 0, w0 = 0;
    unsigned char *main0 = mt_slurp(path, &m0), *wal0 = mt_slurp(wal, &w0);
    if (!CHECK(main0 && wal0 && w0 > 0, "8: %s: a -wal file with frames is left (%zu bytes)",
               what, w0)) {
        free(main0);
        free(wal0);
        return;
    }
    static const unsigned flags[2] = { 0, METER_OPEN_CREATE };
    for (int i = 0; i < 2; ++i) {
        meter_store *st = NULL;
        char err[METER_ERRMAX] = "";
        int rc = meter_open(path, flags[i], &st, err);
        CHECK_RC_ERR(err, rc, want, "8: %s: refused%s", what, i ? " with CREATE" : "");
        CHECK(st == NULL, "8: %s: *out NULL", what);
        if (st)
            meter_close(st);
        size_t m1 = 0, w1 = 0;
        unsigned char *main1 = mt_slurp(path, &m1), *wal1 = mt_slurp(wal, &w1);
        CHECK(main1 && m0 == m1 && !memcmp(main0, main1, m0),
              "8: %s: main file byte-identical%s (%zu → %zu bytes)", what,
              i ? " after CREATE" : "", m0, m1);
        CHECK(wal1 && w0 == w1 && !memcmp(wal0, wal1, w0),
              "8: %s: -wal file byte-identical%s (%zu → %zu bytes)", what,
              i ? " after CREATE" : "", w0, w1);
        free(main1);
        free(wal1);
    }
    free(main0);
    free(wal0);
}

static void foreign_wal(void)
{
    tap_set_now("2026-06-15T12:00:00Z");
    for (int how = 0; how < 2; ++how) {
        const char *what = how ? "foreign WAL db, writer killed" : "foreign WAL db, no ckpt on close";
        const char *path = tap_path(DIR_, how ? "fw_killed.db" : "fw_closed.db");
        int rc = leave_wal(path, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);", how);
        if (!CHECK_EQ_INT(rc, SQLITE_OK, "8: %s: fixture", what))
            continue;
        refused_wal_intact(path, METER_EFOREIGN, what);
        /* the owner's data (in the WAL) is all still there */
        CHECK_EQ_I64(mt_sql_int(path, "SELECT count(*) FROM t"), 3,
                     "8: %s: the owner still reads its 3 rows", what);
    }

    /* an ffmeter file of a newer schema whose version change sits in the
     * WAL: refused as newer, nothing written back */
    const char *newer = tap_path(DIR_, "newer_wal.db");
    meter_store *st = mt_open(newer);
    mt_add_pack(st, "n1", METER_CLASS_GENERAL, 10, 0);
    meter_close(st);
    char stmt[64];
    snprintf(stmt, sizeof stmt, "PRAGMA user_version = %d", meter_schema_version() + 1);
    if (CHECK_EQ_INT(leave_wal(newer, stmt, 0), SQLITE_OK, "8: newer schema in the WAL: fixture"))
        refused_wal_intact(newer, METER_EVERSION, "newer schema in the WAL");
}

/* ----------------------------------------------- 9. usage from the future -- */

static void future_usage(void)
{
    const int64_t now = tap_utc(2026, 6, 15, 12, 0, 0);
    tap_set_now_ms(now);
    const char *path = tap_path(DIR_, "future.db");
    meter_store *st = mt_open(path);
    mt_add_pack(st, "P", METER_CLASS_GENERAL, 100, tap_utc(2026, 6, 1, 0, 0, 0));
    mt_add_pack(st, "F", METER_CLASS_GENERAL, 100, now + MS_PER_DAY);  /* pending */
    meter_usage_in in = mt_in("J9", "o", METER_CLASS_GENERAL, "h264", 640, 480, S(60));
    meter_usage_result r;

    static const struct { int64_t ahead_ms; const char *what; } bad[] = {
        { 2 * MS_PER_DAY, "2 days ahead (while pack F is valid then)" },
        { MS_PER_H, "1 h ahead" },
        { 61000, "61 s ahead" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        in.at = now + bad[i].ahead_ms;
        CHECK_RC(st, meter_record(st, &in, &r), METER_EINVAL, "9: %s refused", bad[i].what);
        CHECK(strstr(meter_errmsg(st), "future") != NULL, "9: %s: message says future (%s)",
              bad[i].what, meter_errmsg(st));
    }
    mt_sums s;
    if (mt_job_sums(st, NULL, &s) == METER_OK)
        CHECK_EQ_I64(s.n, 0, "9: nothing recorded");
    CHECK_EQ_I64(mt_remaining(st, "F"), MIN(100), "9: pending pack F untouched");
    CHECK_EQ_I64(mt_remaining(st, "P"), MIN(100), "9: pack P untouched");

    /* within a minute of clock skew, and the past, are fine */
    in.at = now + 30000;
    CHECK_RC(st, meter_record(st, &in, &r), METER_OK, "9: 30 s ahead accepted (clock skew)");
    in.at = now - MS_PER_H;
    CHECK_RC(st, meter_record(st, &in, &r), METER_OK, "9: 1 h ago accepted");
    CHECK_EQ_I64(mt_remaining(st, "P"), MIN(100) - S(120), "9: P paid both (60 s SD each)");
    CHECK_EQ_I64(mt_remaining(st, "F"), MIN(100), "9: F still untouched");
    CHECK_VERIFY(st, "9: verify");
    meter_close(st);
}

/* ------------------------------- 10. settlement from a later pack: verify -- */

typedef struct seen {
    int calls;
    int named;                 /* reports naming both pack and day */
    const char *pack, *day;
} seen;

static void on_report(void *ctx, const char *problem)
{
    seen *s = ctx;
    s->calls++;
    if (problem && strstr(problem, s->pack) && strstr(problem, s->day))
        s->named++;
    printf("#   reported: %s\n", problem ? problem : "(null)");
}

/* A daily store with day_offset `off`: 60 s SD recorded at `usage_at`,
 * settled a day later from pack PK (bought 10 days before).  Checks the
 * settlement's rows count under the usage day. */
static void make_settled(const char *path, const char *off, int64_t usage_at,
                         const char *day)
{
    tap_set_now_ms(usage_at);
    meter_store *st = mt_open(path);
    if (meter_setting_set(st, "settlement", "daily") != METER_OK ||
        meter_setting_set(st, "day_offset", off) != METER_OK)
        BAIL("settings: %s", meter_errmsg(st));
    mt_add_pack(st, "PK", METER_CLASS_GENERAL, 100, usage_at - 10 * MS_PER_DAY);
    meter_usage_result r;
    if (mt_record(st, "J10", METER_CLASS_GENERAL, "h264", 640, 480, S(60), &r) != METER_OK)
        BAIL("record: %s", meter_errmsg(st));
    tap_set_now_ms(usage_at + MS_PER_DAY);
    meter_settle_result sr;
    if (meter_settle(st, &sr) != METER_OK || sr.covered_us != S(60))
        BAIL("settle: %s", meter_errmsg(st));
    meter_query q = mt_query_all();
    meter_usage_row *rows = NULL;
    size_t n = 0;
    if (meter_usage_details(st, &q, &rows, &n) == METER_OK)
        CHECK(n == 1 && !strcmp(rows[0].day, day) && !strcmp(rows[0].pack_id, "PK"),
              "10 (%s): the settlement's row counts under the usage day %s (got %s)", off,
              day, n ? rows[0].day : "no row");
    meter_free(rows);
    meter_close(st);
}

/* Moves PK's start to `start` on a fresh settled store; verify must report
 * (or, for `expect` 0, not report) the settlement deduction. */
static void later_pack(const char *file, const char *off, int64_t usage_at, const char *day,
                       int64_t start, int expect, const char *what)
{
    const char *path = tap_path(DIR_, file);
    make_settled(path, off, usage_at, day);
    char stmt[160], err[256];
    snprintf(stmt, sizeof stmt, "UPDATE packs SET start_at = %" PRId64 " WHERE id = 'PK'",
             start);
    if (!CHECK_EQ_INT(mt_sql_err(path, stmt, err, sizeof err), SQLITE_OK,
                      "10 (%s): %s: fault injected (%s)", off, what, err))
        return;
    meter_store *st = NULL;
    char oerr[METER_ERRMAX];
    if (!CHECK_RC_ERR(oerr, meter_open(path, 0, &st, oerr), METER_OK, "10: reopen"))
        return;
    seen s = { 0, 0, "PK", day };
    size_t v = 0;
    CHECK_RC(st, meter_verify(st, on_report, &s, &v), METER_OK, "10 (%s): %s: verify runs",
             off, what);
    if (expect) {
        CHECK_EQ_I64(v, 1, "10 (%s): %s: one violation reported", off, what);
        CHECK_EQ_INT(s.named, 1, "10 (%s): %s: the report names pack PK and day %s", off,
                     what, day);
    } else {
        CHECK_EQ_I64(v, 0, "10 (%s): %s: nothing reported", off, what);
    }
    meter_close(st);
}

static void settle_later_pack(void)
{
    /* UTC days: usage 2026-03-01 10:00Z, day ends 2026-03-02 00:00Z;
     * settled 2026-03-02 10:00Z, so any start up to then is inside the
     * pack's validity for that deduction: only the day rule can catch it */
    const int64_t u = tap_utc(2026, 3, 1, 10, 0, 0);
    const int64_t end = tap_utc(2026, 3, 2, 0, 0, 0);
    later_pack("s_utc_before.db", "+00:00", u, "2026-03-01", end - 1, 0,
               "start 1 ms before the day's end");
    later_pack("s_utc_at.db", "+00:00", u, "2026-03-01", end, 1,
               "start at the day's end");
    later_pack("s_utc_after.db", "+00:00", u, "2026-03-01", end + MS_PER_H, 1,
               "start an hour into D+1");

    /* +08:00: 2026-03-01T10:00Z is 18:00 local on 03-01; the day ends at
     * 2026-03-02T00:00+08:00 = 2026-03-01T16:00Z */
    const int64_t end8 = tap_utc(2026, 3, 1, 16, 0, 0);
    later_pack("s_p8_before.db", "+08:00", u, "2026-03-01", end8 - 1, 0,
               "start 1 ms before the local day's end");
    later_pack("s_p8_after.db", "+08:00", u, "2026-03-01", end8 + MS_PER_H, 1,
               "start after the local day's end");

    /* -05:30: 2026-03-01T10:00Z is 04:30 local on 03-01; the day ends at
     * 2026-03-02T00:00-05:30 = 2026-03-02T05:30Z */
    const int64_t endm = tap_utc(2026, 3, 2, 5, 30, 0);
    later_pack("s_m5_before.db", "-05:30", u, "2026-03-01", endm - 1, 0,
               "start 1 ms before the local day's end");
    later_pack("s_m5_after.db", "-05:30", u, "2026-03-01", endm, 1,
               "start at the local day's end");
}

int main(void)
{
    DIR_ = tap_tmpdir("test_review_store");
    foreign_wal();
    future_usage();
    settle_later_pack();
    return done_testing();
}
