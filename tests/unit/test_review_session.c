/*
 * test_review_session — regression tests for the review fixes to live
 * sessions:
 *
 *   5. resume needs the same class and codec: two outputs of one process
 *      with the same label but different class/codec both detach; opening
 *      again with B's class/codec must not continue A's session (A's class
 *      would pay for B's output), and A's own re-open still resumes A;
 *   6. ceil-minute rounds once per output: a session with several segments
 *      is rounded up to whole minutes once, the round-up billed with its
 *      longest segment at that segment's rate — not every segment rounded;
 *   7. METER_SESSION_SPOOL spools only on transient failures: a foreign
 *      SQLite file and a file of a newer schema fail meter_session_open
 *      (and stay untouched, no spool file); a missing database spools.
 *
 * Expected amounts from billing-rules.md §3: H.264 SD 1, HD 2, FHD 4 and
 * H.265 FHD 20 pack minutes per output minute, the same for general and TSC.
 */
#include <dirent.h>
#include <sqlite3.h>

#include "mtest.h"

#define S(x) ((int64_t)(x) * US_PER_S)
#define MIN(x) ((int64_t)(x) * US_PER_MIN)

static const char *DIR_;

/* ------------------------------------------- 5. resume: class and codec -- */

static void resume_class_codec(void)
{
    tap_set_now("2026-06-15T12:00:00Z");
    const char *db = tap_path(DIR_, "resume.db");
    meter_store *st = mt_open(db);
    mt_add_pack(st, "G", METER_CLASS_GENERAL, 1000, tap_utc(2026, 6, 1, 0, 0, 0));
    mt_add_pack(st, "T", METER_CLASS_TSC, 1000, tap_utc(2026, 6, 1, 0, 0, 0));
    const char *L = "Parsed_meter_0";
    meter_session *a, *b, *b2, *a2;
    char err[METER_ERRMAX];
    if (!CHECK_RC_ERR(err, mt_open_session(db, "J5", L, METER_CLASS_GENERAL, "h264", 0, NULL,
                                           &a, err), METER_OK, "5: open A (general h264)") ||
        !CHECK_RC_ERR(err, mt_open_session(db, "J5", L, METER_CLASS_TSC, "hevc", 0, NULL,
                                           &b, err), METER_OK, "5: open B (tsc hevc), same label"))
        return;
    char ida[METER_ID_MAX], idb[METER_ID_MAX];
    snprintf(ida, sizeof ida, "%s", meter_session_id(a));
    snprintf(idb, sizeof idb, "%s", meter_session_id(b));
    CHECK(strcmp(ida, idb) != 0, "5: A and B are two sessions");
    CHECK(meter_session_segment(a, 1920, 1080, S(1)) == METER_OK &&
          meter_session_segment(b, 1920, 1080, S(1)) == METER_OK, "5: 1 s FHD each");
    meter_session_detach(a);   /* both graphs re-init */
    meter_session_detach(b);

    int64_t g0 = mt_remaining(st, "G"), t0 = mt_remaining(st, "T");
    if (!CHECK_RC_ERR(err, mt_open_session(db, "J5", L, METER_CLASS_TSC, "hevc", 0, NULL, &b2,
                                           err), METER_OK, "5: B's new instance opens first"))
        return;
    CHECK(b2 != a && strcmp(meter_session_id(b2), ida) != 0,
          "5: B's re-open did not resume A's session (%s)", meter_session_id(b2));
    /* meter.h: the same db, job, output, class, codec and flags as a
     * detached session resumes it — B's re-open is exactly B's open */
    CHECK_EQ_STR(meter_session_id(b2), idb, "5: B's re-open resumed B");
    CHECK_EQ_INT(meter_session_segment(b2, 1920, 1080, S(60)), METER_OK, "5: B 60 s FHD");
    meter_session_summary sum;
    memset(&sum, 0, sizeof sum);
    if (CHECK_EQ_INT(meter_session_finalize(b2, 0, &sum), METER_OK, "5: finalize B")) {
        tap_diag("B's new instance is labelled '%s'", sum.output);
        CHECK_EQ_STR(sum.ttype, "TESHD-10.H265.FHD", "5: B billed as TSC H.265 FHD");
        CHECK_EQ_I64(sum.billed_us, sum.duration_us * 20, "5: B billed at 1:20 (%" PRId64
                     " µs for %" PRId64 " µs)", sum.billed_us, sum.duration_us);
        CHECK(strstr(sum.packs, "T") && !strstr(sum.packs, "G"),
              "5: B paid by the TSC pack only (%s)", sum.packs);
    }
    meter_session_close(b2);
    CHECK_EQ_I64(mt_remaining(st, "G"), g0, "5: the general pack paid nothing for B");
    CHECK_EQ_I64(mt_remaining(st, "T"), t0 - sum.billed_us, "5: T paid B's bill");

    /* A's own re-open resumes A, still general H.264 */
    if (!CHECK_RC_ERR(err, mt_open_session(db, "J5", L, METER_CLASS_GENERAL, "h264", 0, NULL, &a2,
                                           err), METER_OK, "5: A's new instance opens"))
        return;
    CHECK_EQ_STR(meter_session_id(a2), ida, "5: A's re-open resumed A");
    meter_session_segment(a2, 1920, 1080, S(2));
    memset(&sum, 0, sizeof sum);
    t0 = mt_remaining(st, "T");
    if (CHECK_EQ_INT(meter_session_finalize(a2, 0, &sum), METER_OK, "5: finalize A")) {
        CHECK_EQ_STR(sum.ttype, "Standard.H264.FHD", "5: A billed as general H.264 FHD");
        CHECK_EQ_I64(sum.duration_us, S(1 + 2), "5: A has its own 1 s + 2 s only");
        CHECK_EQ_I64(sum.billed_us, S(12), "5: A 3 s FHD ×4 = 12 s");
    }
    meter_session_close(a2);
    CHECK_EQ_I64(mt_remaining(st, "G"), g0 - S(12), "5: G paid A");
    CHECK_EQ_I64(mt_remaining(st, "T"), t0, "5: T paid nothing for A");

    /* no usage of J5 went to the wrong class */
    size_t n = 0;
    meter_job_row *jr = mt_job_rows(st, "J5", &n);
    int wrong = 0;
    for (size_t i = 0; i < n; ++i)
        wrong += (jr[i].cls == METER_CLASS_GENERAL) != !strcmp(jr[i].codec, "H264");
    CHECK(n >= 2 && wrong == 0, "5: every J5 record has its own class/codec pair "
          "(%zu records, %d mixed)", n, wrong);
    meter_free(jr);
    CHECK_VERIFY(st, "5: verify");
    meter_close(st);
}

/* ------------------------------------------ 6. ceil-minute per output -- */

static const meter_job_row *find_rec(const meter_job_row *r, size_t n, int w, int64_t dur,
                                     int nth)
{
    for (size_t i = 0; i < n; ++i)
        if (r[i].width == w && r[i].duration_us == dur && nth-- == 0)
            return &r[i];
    return NULL;
}

static void ceil_minute(void)
{
    tap_set_now("2026-06-15T12:00:00Z");
    const char *db = tap_path(DIR_, "ceil.db");
    meter_store *st = mt_open(db);
    mt_add_pack(st, "P", METER_CLASS_GENERAL, 1000, tap_utc(2026, 6, 1, 0, 0, 0));
    CHECK_RC(st, meter_setting_set(st, "rounding", "ceil-minute"), METER_OK,
             "6: rounding ceil-minute");
    meter_session *s;
    char err[METER_ERRMAX];
    meter_session_summary sum;
    size_t n = 0;

    /* SD 10 s, HD 10 s, SD 10 s: 30 s, rounded once to 60 s; the 30 s
     * round-up goes with a longest (SD) segment at 1:1 — 70 s, not each
     * segment rounded to a minute (60 + 120 + 60 s = 4 pack minutes) */
    int64_t p0 = mt_remaining(st, "P");
    if (!CHECK_RC_ERR(err, mt_open_session(db, "J6a", "o", METER_CLASS_GENERAL, "h264", 0, NULL,
                                           &s, err), METER_OK, "6a: open"))
        return;
    meter_session_segment(s, 640, 360, S(10));
    meter_session_segment(s, 1280, 720, S(10));
    meter_session_segment(s, 640, 360, S(10));
    memset(&sum, 0, sizeof sum);
    if (CHECK_EQ_INT(meter_session_finalize(s, 0, &sum), METER_OK, "6a: finalize")) {
        CHECK_EQ_I64(sum.duration_us, S(30), "6a: 30 s measured");
        CHECK_EQ_I64(sum.billed_us, S(10 + 20 + 10 + 30),
                     "6a: billed 70 s = SD 10 + HD 20 + SD 10 + 30 s round-up at SD");
        CHECK(sum.billed_us != MIN(4), "6a: not 4 pack minutes");
    }
    meter_session_close(s);
    CHECK_EQ_I64(mt_remaining(st, "P"), p0 - S(70), "6a: P paid 70 s");
    meter_job_row *jr = mt_job_rows(st, "J6a", &n);
    if (CHECK_EQ_I64(n, 3, "6a: three records (SD, HD, SD)")) {
        int64_t tot = 0;
        for (size_t i = 0; i < n; ++i)
            tot += jr[i].billed_us;
        CHECK_EQ_I64(tot, S(70), "6a: records sum to 70 s");
        const meter_job_row *hd = find_rec(jr, n, 1280, S(10), 0);
        CHECK(hd && hd->billed_us == S(20), "6a: the HD record is exact: 10 s ×2 = 20 s (%"
              PRId64 ")", hd ? hd->billed_us : -1);
    }
    meter_free(jr);

    /* SD 10 s, HD 25 s, SD 10 s: 45 s → 60 s; the 15 s round-up at the HD
     * rate of the longest segment: 10 + (25 + 15) × 2 + 10 = 100 s */
    p0 = mt_remaining(st, "P");
    if (!CHECK_RC_ERR(err, mt_open_session(db, "J6b", "o", METER_CLASS_GENERAL, "h264", 0, NULL,
                                           &s, err), METER_OK, "6b: open"))
        return;
    meter_session_segment(s, 640, 360, S(10));
    meter_session_segment(s, 1280, 720, S(25));
    meter_session_segment(s, 640, 360, S(10));
    memset(&sum, 0, sizeof sum);
    if (CHECK_EQ_INT(meter_session_finalize(s, 0, &sum), METER_OK, "6b: finalize")) {
        CHECK_EQ_I64(sum.billed_us, S(100), "6b: billed 100 s (round-up at HD ×2)");
        CHECK_EQ_STR(sum.ttype, "Standard.H264.HD", "6b: ttype of the longest segment");
    }
    meter_session_close(s);
    CHECK_EQ_I64(mt_remaining(st, "P"), p0 - S(100), "6b: P paid 100 s");
    jr = mt_job_rows(st, "J6b", &n);
    if (CHECK_EQ_I64(n, 3, "6b: three records")) {
        const meter_job_row *hd = find_rec(jr, n, 1280, S(25), 0);
        const meter_job_row *sd1 = find_rec(jr, n, 640, S(10), 0);
        const meter_job_row *sd2 = find_rec(jr, n, 640, S(10), 1);
        CHECK(hd && hd->billed_us == S(80), "6b: HD record 25 s + 15 s round-up ×2 = 80 s");
        CHECK(sd1 && sd2 && sd1->billed_us == S(10) && sd2->billed_us == S(10),
              "6b: SD records exact, 10 s each");
    }
    meter_free(jr);

    /* whole minutes in all: nothing to round up */
    if (!CHECK_RC_ERR(err, mt_open_session(db, "J6c", "o", METER_CLASS_GENERAL, "h264", 0, NULL,
                                           &s, err), METER_OK, "6c: open"))
        return;
    meter_session_segment(s, 640, 360, S(30));
    meter_session_segment(s, 1280, 720, S(30));
    memset(&sum, 0, sizeof sum);
    if (CHECK_EQ_INT(meter_session_finalize(s, 0, &sum), METER_OK, "6c: finalize"))
        CHECK_EQ_I64(sum.billed_us, S(30 + 60), "6c: 60 s in all, billed exact 90 s");
    meter_session_close(s);

    /* one segment of 61 s: two minutes */
    if (!CHECK_RC_ERR(err, mt_open_session(db, "J6d", "o", METER_CLASS_GENERAL, "h264", 0, NULL,
                                           &s, err), METER_OK, "6d: open"))
        return;
    meter_session_segment(s, 640, 360, S(61));
    memset(&sum, 0, sizeof sum);
    if (CHECK_EQ_INT(meter_session_finalize(s, 0, &sum), METER_OK, "6d: finalize"))
        CHECK_EQ_I64(sum.billed_us, MIN(2), "6d: 61 s SD → 2 min");
    meter_session_close(s);

    /* meter_record: each call is one output, rounded on its own */
    meter_usage_result r;
    CHECK_RC(st, mt_record(st, "J6e", METER_CLASS_GENERAL, "h264", 640, 360, S(10), &r),
             METER_OK, "6e: record 10 s SD");
    CHECK_EQ_I64(r.billed_us, MIN(1), "6e: meter_record 10 s SD → 1 min");
    CHECK_VERIFY(st, "6: verify");
    meter_close(st);
}

/* ------------------------------------------ 7. spool only when transient -- */

/* With SPOOL, opening a session on `db` is refused with `want`, writes no
 * spool file and leaves the file byte-identical. */
static void refused_with_spool(const char *db, const char *spool, int want, const char *what)
{
    size_t len0 = 0, len1 = 0;
    unsigned char *before = mt_slurp(db, &len0);
    meter_session *s;
    char err[METER_ERRMAX];
    int rc = mt_open_session(db, "J7", "o", METER_CLASS_GENERAL, "h264", METER_SESSION_SPOOL, spool,
                             &s, err);
    CHECK_RC_ERR(err, rc, want, "7: %s: meter_session_open fails with SPOOL", what);
    CHECK(s == NULL && err[0], "7: %s: no session, a message: %s", what, err);
    if (rc == METER_OK && s) {
        meter_session_segment(s, 640, 360, S(5));
        meter_session_finalize(s, 0, NULL);
        meter_session_close(s);
    }
    CHECK_EQ_INT(mt_count_spool_files(spool), 0, "7: %s: no spool file", what);
    unsigned char *after = mt_slurp(db, &len1);
    CHECK(before && after && len0 == len1 && !memcmp(before, after, len0),
          "7: %s: file byte-identical (%zu → %zu bytes)", what, len0, len1);
    free(before);
    free(after);
}

static void spool_transient(void)
{
    tap_set_now("2026-06-15T12:00:00Z");
    const char *spool = tap_path(DIR_, "spool7");
    mkdir(spool, 0700);

    const char *foreign = tap_path(DIR_, "foreign7.db");
    mt_sql(foreign, "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);"
                 "INSERT INTO customers(name) VALUES ('Ada'), ('Linus');");
    refused_with_spool(foreign, spool, METER_EFOREIGN, "foreign SQLite file");

    const char *newer = tap_path(DIR_, "newer7.db");
    meter_store *st = mt_open(newer);
    mt_add_pack(st, "n1", METER_CLASS_GENERAL, 10, 0);
    meter_close(st);
    char stmt[64];
    snprintf(stmt, sizeof stmt, "PRAGMA user_version = %d", meter_schema_version() + 1);
    mt_sql(newer, stmt);
    refused_with_spool(newer, spool, METER_EVERSION, "newer schema version");

    /* a database that is not there (yet): transient, spooled */
    const char *missing = tap_path(DIR_, "missing7.db");
    meter_session *s;
    char err[METER_ERRMAX];
    int rc = mt_open_session(missing, "J7m", "o", METER_CLASS_GENERAL, "h264", METER_SESSION_SPOOL,
                             spool, &s, err);
    if (CHECK_RC_ERR(err, rc, METER_OK, "7: missing database: the session opens")) {
        CHECK_EQ_INT(meter_session_spooled(s), 1, "7: missing database: spooled");
        meter_session_segment(s, 640, 360, S(5));
        meter_session_summary sum;
        memset(&sum, 0, sizeof sum);
        CHECK_EQ_INT(meter_session_finalize(s, 0, &sum), METER_OK,
                     "7: missing database: finalize");
        CHECK_EQ_INT(sum.spooled, 1, "7: missing database: final record spooled");
        meter_session_close(s);
    }
    CHECK_EQ_INT(mt_count_spool_files(spool), 1, "7: missing database: one spool file");
    CHECK(!mt_exists(missing), "7: missing database: not created by the session");

    /* without SPOOL a missing database is an error */
    rc = mt_open_session(missing, "J7n", "o", METER_CLASS_GENERAL, "h264", 0, spool, &s, err);
    CHECK(rc != METER_OK && s == NULL, "7: without SPOOL a missing database fails (%d)", rc);
}

int main(void)
{
    DIR_ = tap_tmpdir("test_review_session");
    unsetenv("METER_JOB");
    unsetenv("METER_SPOOL");
    resume_class_codec();
    ceil_minute();
    spool_transient();
    return done_testing();
}
