/*
 * test_record_once — meter_record_once (meter.h), what `meterctl record`
 * calls: one usage billed once per idempotency key.
 *
 *   1. no key: the job and output are the key; a repeat bills nothing,
 *      whatever its other values, and describes the first record;
 *   2. the rule is the filter's idempotent=1 one, both ways: a metered
 *      output that ended "done" makes a record a repeat (described by the
 *      session's usage, summed over its sizes; by the session id when it
 *      billed nothing), an interrupted one does not, and an IDEMPOTENT
 *      session after a record bills nothing;
 *   3. a key: same values → a repeat (the time is not compared), other
 *      values → METER_EEXIST, distinct keys bill separately; malformed keys
 *      are refused; bad input is refused even on a repeat;
 *   4. plain meter_record is not idempotent (unchanged);
 *   5. processes racing with one key bill once.
 */
#include <sys/wait.h>

#include "mtest.h"

#define S(x) ((int64_t)(x) * US_PER_S)

static const char *DB;
meter_store *volatile main_store;   /* (see test_session.c: forked children) */

static meter_usage_in hd(const char *job, const char *output, int64_t dur)
{
    return mt_in(job, output, METER_CLASS_GENERAL, "h264", 1280, 720, dur);  /* 1:2 */
}

static int usage_rows(meter_store *st, const char *job)
{
    size_t n = 0;
    meter_job_row *r = mt_job_rows(st, job, &n);
    meter_free(r);
    return (int)n;
}

static void no_key(meter_store *st)
{
    int64_t rem0 = mt_remaining(st, "P");
    meter_usage_in in = hd("J1", "720p", S(60));
    meter_usage_result r1, r2;
    int already = -1;
    CHECK_RC(st, meter_record_once(st, &in, NULL, &r1, &already), METER_OK, "1: first record");
    CHECK_EQ_INT(already, 0, "1: billed now");
    CHECK_EQ_I64(r1.billed_us, S(120), "1: 60 s of HD bills 120 s");
    CHECK_EQ_I64(r1.covered_us, S(120), "1: covered by P");
    CHECK_EQ_STR(r1.ttype, "Standard.H264.HD", "1: type");

    in.duration_us = S(90);   /* other values: the key is the job and output */
    in.at = meter_now() - 60000;
    CHECK_RC(st, meter_record_once(st, &in, NULL, &r2, &already), METER_OK, "1: the repeat");
    CHECK_EQ_INT(already, 1, "1: the repeat is a repeat");
    CHECK_EQ_STR(r2.id, r1.id, "1: it describes the first record");
    CHECK_EQ_I64(r2.billed_us, S(120), "1: with its amounts");
    CHECK_EQ_INT(usage_rows(st, "J1"), 1, "1: one usage record");
    CHECK_EQ_I64(mt_remaining(st, "P"), rem0 - S(120), "1: P paid once");

    CHECK_RC(st, meter_record_once(st, &in, NULL, NULL, NULL), METER_OK,
             "1: out and already may be NULL");
    CHECK_EQ_INT(usage_rows(st, "J1"), 1, "1: still one record");
}

/* A session of job/output through `segs` (pairs of height, seconds) that
 * ends done, or interrupted. */
static void session(const char *job, const char *output, unsigned flags, int interrupted,
                    int nseg, const int *segs, meter_session_summary *sum)
{
    meter_session *s;
    char err[METER_ERRMAX];
    if (mt_open_session(DB, job, output, METER_CLASS_GENERAL, "h264", flags, NULL, &s, err) !=
        METER_OK)
        BAIL("session %s/%s: %s", job, output, err);
    for (int i = 0; i < nseg; i++)
        meter_session_segment(s, segs[2 * i] * 16 / 9, segs[2 * i], S(segs[2 * i + 1]));
    memset(sum, 0, sizeof *sum);
    if (meter_session_finalize(s, interrupted, sum) != METER_OK)
        BAIL("finalize %s/%s: %s", job, output, meter_session_errmsg(s));
    meter_session_close(s);
}

static void with_sessions(meter_store *st)
{
    meter_session_summary sum;
    meter_usage_result r;
    int already = -1;

    /* a metered output that ended done, in two sizes */
    static const int two[] = { 720, 10, 480, 20 };
    session("J2", "o", 0, 0, 2, two, &sum);
    size_t n = 0;
    meter_job_row *rows = mt_job_rows(st, "J2", &n);
    meter_usage_in in = hd("J2", "o", S(30));
    CHECK_RC(st, meter_record_once(st, &in, NULL, &r, &already), METER_OK,
             "2: a record of a metered output");
    CHECK_EQ_INT(already, 1, "2: a metered output that ended done counts");
    if (CHECK_EQ_I64(n, 2, "2: the output has two usage records")) {
        CHECK_EQ_STR(r.id, rows[0].id, "2: described by its first usage record");
        CHECK_EQ_I64(r.billed_us, rows[0].billed_us + rows[1].billed_us,
                     "2: with the amounts of both");
    }
    meter_free(rows);
    CHECK_EQ_INT(usage_rows(st, "J2"), 2, "2: nothing more billed");

    /* an interrupted one does not count: the record bills */
    static const int one[] = { 720, 5 };
    session("J3", "o", METER_SESSION_IDEMPOTENT, 1, 1, one, &sum);
    in = hd("J3", "o", S(30));
    CHECK_RC(st, meter_record_once(st, &in, NULL, &r, &already), METER_OK,
             "2: a record after an interrupted run");
    CHECK_EQ_INT(already, 0, "2: an interrupted run does not count");
    CHECK_EQ_I64(r.billed_us, S(60), "2: the record bills in full");

    /* and the other way: an IDEMPOTENT session after a record */
    session("J3", "o", METER_SESSION_IDEMPOTENT, 0, 1, one, &sum);
    CHECK_EQ_INT(sum.already_billed, 1, "2: an idempotent session after a record bills nothing");
    CHECK_EQ_INT(usage_rows(st, "J3"), 2, "2: J3: the interrupted run and the record");

    /* a metered output that ended done without billing anything */
    session("J4", "empty", 0, 0, 0, NULL, &sum);
    in = hd("J4", "empty", S(30));
    CHECK_RC(st, meter_record_once(st, &in, NULL, &r, &already), METER_OK,
             "2: a record of an empty metered output");
    CHECK(already == 1 && strstr(r.id, "-j") && r.billed_us == 0,
          "2: a repeat, described by the session id (%s)", r.id);
}

static void keys(meter_store *st)
{
    int64_t rem0 = mt_remaining(st, "P");
    meter_usage_in in = hd("J5", "o", S(30));
    meter_usage_result a, b;
    int already = -1;
    CHECK_RC(st, meter_record_once(st, &in, "k-1", &a, &already), METER_OK, "3: key k-1");
    CHECK_EQ_INT(already, 0, "3: billed now");
    in.at = meter_now() - 3600000;   /* the time is not compared */
    CHECK_RC(st, meter_record_once(st, &in, "k-1", &b, &already), METER_OK, "3: k-1 again");
    CHECK(already == 1 && !strcmp(a.id, b.id), "3: a repeat of the first (%s)", b.id);

    in.duration_us = S(31);
    CHECK_RC(st, meter_record_once(st, &in, "k-1", &b, &already), METER_EEXIST,
             "3: k-1 with another duration is refused");
    CHECK(already == 0 && strstr(meter_errmsg(st), "key 'k-1' is taken by another usage") &&
          strstr(meter_errmsg(st), "30000000 µs"),
          "3: the message names the key and the record it holds: %s", meter_errmsg(st));
    in = hd("J5", "o", S(30));
    in.codec = "libx264";    /* the same billing, not the same values */
    CHECK_RC(st, meter_record_once(st, &in, "k-1", NULL, NULL), METER_EEXIST,
             "3: k-1 with the codec spelt otherwise is refused");
    in = hd("J5", "o", S(30));
    in.cls = METER_CLASS_TSC;
    CHECK_RC(st, meter_record_once(st, &in, "k-1", NULL, NULL), METER_EEXIST,
             "3: k-1 with another class is refused");

    in = hd("J5", "o", S(30));
    CHECK_RC(st, meter_record_once(st, &in, "k-2", &b, &already), METER_OK,
             "3: the same usage under another key");
    CHECK(already == 0 && strcmp(a.id, b.id), "3: distinct keys bill separately");
    CHECK_EQ_INT(usage_rows(st, "J5"), 2, "3: J5: two records");
    CHECK_EQ_I64(mt_remaining(st, "P"), rem0 - S(120), "3: P paid for two");

    static const char *const bad[] = {
        "", "with space", "slash/no", "x\n",
        "k123456789k123456789k123456789k123456789k123456789k123456789kkkkk",  /* 65 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_RC(st, meter_record_once(st, &in, bad[i], NULL, NULL), METER_EINVAL,
                 "3: key #%zu refused", i);
    CHECK_RC(st, meter_record_once(st, &in,
                                   "k123456789k123456789k123456789k123456789k123456789k123456789kkkk",
                                   NULL, NULL),
             METER_OK, "3: a key of 64 characters");

    /* bad input is refused even when the record exists */
    in = hd("J5", "o", S(30));
    in.codec = "vp9";
    CHECK_RC(st, meter_record_once(st, &in, "k-1", NULL, &already), METER_EINVAL,
             "3: a repeat with an unknown codec is refused");
    CHECK_RC(st, meter_record_once(st, &in, NULL, NULL, &already), METER_EINVAL,
             "3: unkeyed too");
    in = hd("J5", "o", S(30));
    in.at = meter_now() + MS_PER_H;
    CHECK_RC(st, meter_record_once(st, &in, NULL, NULL, &already), METER_EINVAL,
             "3: a repeat in the future is refused");
    in = hd("J5", "o", 0);
    CHECK_RC(st, meter_record_once(st, &in, NULL, NULL, &already), METER_EINVAL,
             "3: a repeat of no duration is refused");
    CHECK_RC(st, meter_record_once(st, NULL, NULL, NULL, &already), METER_EINVAL,
             "3: no usage");
}

static void plain(meter_store *st)
{
    meter_usage_in in = hd("J6", "o", S(10));
    CHECK_RC(st, meter_record(st, &in, NULL), METER_OK, "4: meter_record");
    CHECK_RC(st, meter_record(st, &in, NULL), METER_OK, "4: meter_record again");
    CHECK_EQ_INT(usage_rows(st, "J6"), 2, "4: meter_record bills every call");
}

static void race(meter_store *st)
{
    enum { N = 6 };
    int64_t rem0 = mt_remaining(st, "P");
    pid_t pids[N];
    fflush(stdout);
    for (int i = 0; i < N; i++) {
        if ((pids[i] = fork()) == 0) {
            meter_store *c = NULL;
            char err[METER_ERRMAX];
            if (meter_open(DB, 0, &c, err) != METER_OK)
                _exit(2);
            /* half race unkeyed for J7/o, half with the key "race" for
             * J7/k (apart: a keyed record of J7/o would count for J7/o) */
            meter_usage_in in = hd("J7", i % 2 ? "k" : "o", S(30));
            int already = -1;
            int rc = meter_record_once(c, &in, i % 2 ? "race" : NULL, NULL, &already);
            meter_close(c);
            _exit(rc != METER_OK ? 3 : already ? 10 : 11);
        }
    }
    int billed = 0, repeats = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        int status = 0;
        waitpid(pids[i], &status, 0);
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        billed += code == 11;
        repeats += code == 10;
        bad += code != 10 && code != 11;
    }
    CHECK_EQ_INT(bad, 0, "5: every racer succeeded");
    CHECK_EQ_INT(billed, 2, "5: one billed per key (J7/o and \"race\")");
    CHECK_EQ_INT(repeats, N - 2, "5: the rest are repeats");
    CHECK_EQ_INT(usage_rows(st, "J7"), 2, "5: two usage records");
    CHECK_EQ_I64(mt_remaining(st, "P"), rem0 - 2 * S(60), "5: P paid twice, not six times");
}

int main(void)
{
    const char *dir = tap_tmpdir("test_record_once");
    static char db[4096];
    snprintf(db, sizeof db, "%s", tap_path(dir, "once.db"));
    DB = db;
    unsetenv("METER_JOB");
    unsetenv("METER_SPOOL");
    tap_set_now("2026-06-15T12:00:00Z");
    meter_store *st = main_store = mt_open(DB);
    mt_add_pack(st, "P", METER_CLASS_GENERAL, 1000, tap_utc(2026, 6, 1, 0, 0, 0));
    no_key(st);
    with_sessions(st);
    keys(st);
    plain(st);
    race(st);
    CHECK_VERIFY(st, "verify");
    mt_sums s;
    if (mt_job_sums(st, NULL, &s) == METER_OK)
        CHECK_EQ_I64(s.unbalanced, 0, "every record covered + overage = billed");
    meter_close(st);
    return done_testing();
}
