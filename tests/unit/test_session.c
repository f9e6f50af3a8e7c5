/*
 * test_session — job sessions (meter.h "sessions"): one usage record per
 * segment, a resolution change giving records at their tiers, finalize once
 * (a second call is METER_EFINALIZED and bills nothing), detach and resume
 * in the same process, the idempotent flag, enforce, the exit handler, the
 * reaper for a process that died without exiting, spooling when the
 * database cannot be opened, imported later, and refusing to open when
 * neither the database nor the spool directory can take the usage.
 *
 * Durations passed to meter_session_segment are the current segment's own
 * cumulative duration (meter.h: "the output's current segment has this size
 * and has lasted duration_us so far").
 */
#include <dirent.h>
#include <sys/wait.h>

#include "mtest.h"

#define S(x) ((int64_t)(x) * US_PER_S)

static const char *DB;
/* The main store, in a global so that a forked child calling exit() (the
 * exit-handler case) still reaches it: LeakSanitizer would otherwise call
 * the parent's inherited, never-closed store a leak. */
meter_store *volatile main_store;

/* Opens or bails. */
static meter_session *must_open(const char *job, const char *output,
                                const char *codec, unsigned flags)
{
    meter_session *s;
    char err[METER_ERRMAX];
    int rc = mt_open_session(DB, job, output, METER_CLASS_GENERAL, codec, flags, NULL,
                             &s, err);
    if (rc != METER_OK || !s)
        BAIL("meter_session_open %s/%s: %d %s", job, output, rc, err);
    return s;
}

static int seg(meter_session *s, int w, int h, int64_t d)
{
    int rc = meter_session_segment(s, w, h, d);
    if (rc != METER_OK)
        tap_diag("segment %dx%d %" PRId64 ": %d %s", w, h, d, rc,
                 meter_session_errmsg(s));
    return rc;
}

static const meter_job_row *find_tt(const meter_job_row *r, size_t n,
                                    const char *ttype)
{
    for (size_t i = 0; i < n; ++i)
        if (!strcmp(r[i].ttype, ttype))
            return &r[i];
    return NULL;
}

static void basic(meter_store *st)
{
    int64_t rem0 = mt_remaining(st, "S1");
    meter_session *s = must_open("J1", "720p", "libx264", 0);
    CHECK_EQ_INT(meter_session_spooled(s), 0, "not spooled");
    CHECK(meter_session_id(s) && meter_session_id(s)[0], "session has an id");
    CHECK_EQ_INT(seg(s, 1280, 720, S(10)), METER_OK, "segment 10 s");
    CHECK_EQ_INT(seg(s, 1280, 720, S(30)), METER_OK, "segment 30 s");
    CHECK_EQ_INT(meter_session_checkpoint(s), METER_OK, "checkpoint");
    size_t n = 0;
    meter_session_row *sr = mt_session_rows(st, "J1", &n);
    if (CHECK_EQ_I64(n, 1, "J1: one session row while running")) {
        CHECK_EQ_STR(sr[0].status, "running", "status running");
        CHECK_EQ_I64(sr[0].duration_us, S(30), "checkpointed 30 s");
        CHECK_EQ_INT(sr[0].pid, getpid(), "pid of this process");
        CHECK_EQ_STR(sr[0].output, "720p", "output");
        CHECK_EQ_STR(sr[0].id, meter_session_id(s), "same id");
    }
    meter_free(sr);
    meter_job_row *jr = mt_job_rows(st, "J1", &n);
    CHECK_EQ_I64(n, 0, "nothing billed before finalize");
    meter_free(jr);
    CHECK_EQ_I64(mt_remaining(st, "S1"), rem0, "pack untouched before finalize");

    CHECK_EQ_INT(seg(s, 1280, 720, S(60)), METER_OK, "segment 60 s");
    meter_session_summary sum;
    memset(&sum, 0, sizeof sum);
    int rc = meter_session_finalize(s, 0, &sum);
    if (CHECK_EQ_INT(rc, METER_OK, "finalize")) {
        CHECK_EQ_STR(sum.job, "J1", "summary job");
        CHECK_EQ_STR(sum.output, "720p", "summary output");
        CHECK_EQ_STR(sum.ttype, "Standard.H264.HD", "summary ttype");
        CHECK_EQ_INT(sum.segments, 1, "one segment");
        CHECK_EQ_I64(sum.duration_us, S(60), "60 s");
        CHECK_EQ_I64(sum.billed_us, S(120), "billed 120 s (HD ×2)");
        CHECK_EQ_I64(sum.covered_us, S(120), "covered");
        CHECK_EQ_I64(sum.overage_us, 0, "no overage");
        CHECK(strstr(sum.packs, "S1") != NULL, "packs lists S1 (%s)", sum.packs);
        CHECK_EQ_INT(sum.spooled, 0, "not spooled");
        CHECK_EQ_INT(sum.already_billed, 0, "not billed before");
    }
    memset(&sum, 0, sizeof sum);
    CHECK_EQ_INT(meter_session_finalize(s, 0, &sum), METER_EFINALIZED,
                 "second finalize refused");
    CHECK_EQ_INT(meter_session_finalize(s, 1, NULL), METER_EFINALIZED,
                 "third finalize (interrupted) refused");
    meter_session_close(s);

    jr = mt_job_rows(st, "J1", &n);
    if (CHECK_EQ_I64(n, 1, "J1: exactly one usage record")) {
        CHECK_EQ_STR(jr[0].state, "done", "state done");
        CHECK_EQ_STR(jr[0].output, "720p", "record output");
        CHECK_EQ_I64(jr[0].duration_us, S(60), "record duration");
        CHECK_EQ_I64(jr[0].billed_us, S(120), "record billed");
    }
    meter_free(jr);
    sr = mt_session_rows(st, "J1", &n);
    if (CHECK_EQ_I64(n, 1, "J1: one session row")) {
        CHECK_EQ_STR(sr[0].status, "done", "session done");
        CHECK_EQ_INT(sr[0].segments, 1, "session segments");
        CHECK_EQ_I64(sr[0].duration_us, S(60), "session duration");
    }
    meter_free(sr);
    CHECK_EQ_I64(mt_remaining(st, "S1"), rem0 - S(120), "S1 paid once");
}

static void resolution_change(meter_store *st)
{
    meter_session *s = must_open("J2", "ladder", "h264", 0);
    seg(s, 1280, 720, S(20));
    seg(s, 1920, 1080, S(15));
    meter_session_summary sum;
    memset(&sum, 0, sizeof sum);
    if (CHECK_EQ_INT(meter_session_finalize(s, 0, &sum), METER_OK,
                     "finalize J2")) {
        CHECK_EQ_INT(sum.segments, 2, "two segments");
        CHECK_EQ_I64(sum.duration_us, S(35), "Σ 35 s");
        CHECK_EQ_STR(sum.ttype, "Standard.H264.HD", "ttype of the longest");
        CHECK_EQ_I64(sum.billed_us, S(40 + 60), "HD 20 s ×2 + FHD 15 s ×4");
    }
    meter_session_close(s);
    size_t n = 0;
    meter_job_row *jr = mt_job_rows(st, "J2", &n);
    if (CHECK_EQ_I64(n, 2, "J2: one record per segment")) {
        const meter_job_row *hd = find_tt(jr, n, "Standard.H264.HD");
        const meter_job_row *fhd = find_tt(jr, n, "Standard.H264.FHD");
        CHECK(hd && hd->duration_us == S(20) && hd->billed_us == S(40) &&
              hd->width == 1280 && hd->height == 720, "HD record 20 s → 40 s");
        CHECK(fhd && fhd->duration_us == S(15) && fhd->billed_us == S(60) &&
              fhd->width == 1920 && fhd->height == 1080,
              "FHD record 15 s → 60 s");
    }
    meter_free(jr);

    /* back to an earlier size: a third segment */
    s = must_open("J2b", "o", "h264", 0);
    seg(s, 640, 480, S(5));
    seg(s, 1280, 720, S(5));
    seg(s, 640, 480, S(7));
    memset(&sum, 0, sizeof sum);
    if (CHECK_EQ_INT(meter_session_finalize(s, 0, &sum), METER_OK,
                     "finalize J2b")) {
        CHECK_EQ_INT(sum.segments, 3, "SD, HD, SD: three segments");
        CHECK_EQ_I64(sum.duration_us, S(17), "Σ 17 s");
        CHECK_EQ_I64(sum.billed_us, S(5 + 10 + 7), "billed 22 s");
        CHECK_EQ_STR(sum.ttype, "Standard.H264.SD", "longest segment SD 7 s");
    }
    meter_session_close(s);
    jr = mt_job_rows(st, "J2b", &n);
    CHECK_EQ_I64(n, 3, "J2b: three records");
    meter_free(jr);
}

static void detach_resume(meter_store *st)
{
    meter_session *s = must_open("J3", "a", "h264", 0);
    char id[METER_ID_MAX];
    snprintf(id, sizeof id, "%s", meter_session_id(s));
    seg(s, 1280, 720, S(10));
    CHECK_EQ_INT(meter_session_checkpoint(s), METER_OK, "checkpoint J3/a");
    meter_session_detach(s);

    /* another output of the same job is another session */
    meter_session *b = must_open("J3", "b", "h264", 0);
    CHECK(strcmp(meter_session_id(b), id) != 0, "J3/b is a new session");
    seg(b, 640, 480, S(1));
    CHECK_EQ_INT(meter_session_finalize(b, 0, NULL), METER_OK, "finalize J3/b");
    meter_session_close(b);

    s = must_open("J3", "a", "h264", 0);
    CHECK_EQ_STR(meter_session_id(s), id, "J3/a resumed (same session id)");
    seg(s, 1920, 1080, S(5));
    meter_session_summary sum;
    memset(&sum, 0, sizeof sum);
    if (CHECK_EQ_INT(meter_session_finalize(s, 0, &sum), METER_OK,
                     "finalize resumed J3/a")) {
        CHECK_EQ_INT(sum.segments, 2, "both instances' segments");
        CHECK_EQ_I64(sum.duration_us, S(15), "10 s + 5 s");
        CHECK_EQ_I64(sum.billed_us, S(20 + 20), "HD 10 s ×2 + FHD 5 s ×4");
    }
    meter_session_close(s);
    size_t n = 0;
    meter_session_row *sr = mt_session_rows(st, "J3", &n);
    int a_rows = 0;
    for (size_t i = 0; i < n; ++i)
        if (!strcmp(sr[i].output, "a")) {
            ++a_rows;
            CHECK_EQ_STR(sr[i].status, "done", "J3/a done");
            CHECK_EQ_INT(sr[i].segments, 2, "J3/a two segments");
        }
    CHECK_EQ_INT(a_rows, 1, "J3/a: one session, not two");
    meter_free(sr);
    meter_query q = mt_query_all();
    q.job = "J3";
    mt_sums s3;
    if (mt_job_sums(st, &q, &s3) == METER_OK) {
        CHECK_EQ_I64(s3.n, 3, "J3: 2 records of a + 1 of b");
        CHECK_EQ_I64(s3.duration, S(16), "J3: 16 s in all");
    }
}

static void idempotent(meter_store *st)
{
    int64_t rem0 = mt_remaining(st, "S1");
    meter_session *s = must_open("J1", "720p", "h264", METER_SESSION_IDEMPOTENT);
    seg(s, 1280, 720, S(60));
    meter_session_summary sum;
    memset(&sum, 0, sizeof sum);
    if (CHECK_EQ_INT(meter_session_finalize(s, 0, &sum), METER_OK,
                     "finalize an already billed output")) {
        CHECK_EQ_INT(sum.already_billed, 1, "already_billed");
        CHECK_EQ_I64(sum.covered_us, 0, "nothing deducted");
    }
    meter_session_close(s);
    size_t n = 0;
    meter_job_row *jr = mt_job_rows(st, "J1", &n);
    CHECK_EQ_I64(n, 1, "J1 still one record");
    meter_free(jr);
    CHECK_EQ_I64(mt_remaining(st, "S1"), rem0, "S1 not charged again");

    s = must_open("J4", "x", "h264", METER_SESSION_IDEMPOTENT);
    seg(s, 1280, 720, S(6));
    memset(&sum, 0, sizeof sum);
    if (CHECK_EQ_INT(meter_session_finalize(s, 0, &sum), METER_OK,
                     "finalize a new output with IDEMPOTENT")) {
        CHECK_EQ_INT(sum.already_billed, 0, "new output not billed before");
        CHECK_EQ_I64(sum.billed_us, S(12), "billed normally");
    }
    meter_session_close(s);
    CHECK_EQ_I64(mt_remaining(st, "S1"), rem0 - S(12), "S1 paid J4");
}

static void enforce(const char *dir)
{
    meter_session *s;
    char err[METER_ERRMAX];
    /* the main store has general minutes but no TSC pack */
    int rc = mt_open_session(DB, "J5e", "o", METER_CLASS_TSC, "h264",
                             METER_SESSION_ENFORCE, NULL, &s, err);
    CHECK_RC_ERR(err, rc, METER_ENOMINUTES, "enforce: no TSC minutes");
    CHECK(s == NULL && err[0], "refused with a message: %s", err);
    rc = mt_open_session(DB, "J5e", "o", METER_CLASS_GENERAL, "h264",
                         METER_SESSION_ENFORCE, NULL, &s, err);
    /* closed without finalize: meter_session_close detaches it and the exit
     * handler finalizes it when this test exits (under ASan this also checks
     * that the exit path releases what it finalizes) */
    if (CHECK_RC_ERR(err, rc, METER_OK, "enforce: general minutes exist"))
        meter_session_close(s);

    const char *small = tap_path(dir, "small.db");
    meter_store *st = mt_open(small);
    rc = mt_open_session(small, "J6e", "o", METER_CLASS_GENERAL, "h264",
                         METER_SESSION_ENFORCE, NULL, &s, err);
    CHECK_RC_ERR(err, rc, METER_ENOMINUTES, "enforce: a store without packs");
    mt_add_pack(st, "one", METER_CLASS_GENERAL, 1, 0);
    rc = mt_open_session(small, "J6e", "o", METER_CLASS_GENERAL, "h264",
                         METER_SESSION_ENFORCE, NULL, &s, err);
    if (!CHECK_RC_ERR(err, rc, METER_OK, "enforce with 1 minute"))
        return;
    CHECK_EQ_INT(meter_session_segment(s, 1280, 720, S(20)), METER_OK,
                 "20 s HD = 40 s of 60: fine");
    CHECK_EQ_INT(meter_session_checkpoint(s), METER_OK, "checkpoint");
    CHECK_EQ_INT(meter_session_segment(s, 1280, 720, S(40)), METER_ENOMINUTES,
                 "40 s HD = 80 s of 60: out of minutes");
    meter_session_summary sum;
    memset(&sum, 0, sizeof sum);
    if (CHECK_EQ_INT(meter_session_finalize(s, 0, &sum), METER_OK,
                     "finalize after ENOMINUTES")) {
        CHECK_EQ_I64(sum.duration_us, S(40), "progress kept: 40 s");
        CHECK_EQ_I64(sum.billed_us, S(80), "billed 80 s");
        CHECK_EQ_I64(sum.covered_us, S(60), "pack covered 60 s");
        CHECK_EQ_I64(sum.overage_us, S(20), "overage 20 s");
    }
    meter_session_close(s);
    CHECK_VERIFY(st, "verify small store");
    meter_close(st);
}

static void reap(meter_store *st)
{
    /* a live session of this process must survive the reaper */
    meter_session *live = must_open("J7live", "o", "h264", 0);
    seg(live, 1280, 720, S(2));
    meter_session_checkpoint(live);

    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        meter_session *s;
        char err[METER_ERRMAX];
        if (mt_open_session(DB, "J7dead", "o", METER_CLASS_GENERAL, "h264", 0, NULL, &s,
                            err) != METER_OK)
            _exit(2);
        meter_session_segment(s, 1280, 720, S(7));
        if (meter_session_checkpoint(s) != METER_OK)
            _exit(3);
        meter_session_segment(s, 1280, 720, S(9));   /* never checkpointed */
        _exit(0);   /* no atexit handlers: like a crash */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "child checkpointed a session and vanished");
    size_t n = 0;
    meter_session_row *sr = mt_session_rows(st, "J7dead", &n);
    if (CHECK_EQ_I64(n, 1, "the dead child's session is there")) {
        CHECK_EQ_STR(sr[0].status, "running", "still running before reap");
        CHECK_EQ_INT(sr[0].pid, pid, "pid of the child");
        CHECK_EQ_I64(sr[0].duration_us, S(7), "checkpointed 7 s");
    }
    meter_free(sr);

    int count = -1;
    CHECK_RC(st, meter_reap(st, &count), METER_OK, "reap");
    CHECK_EQ_INT(count, 1, "one session reaped (the live one kept)");
    sr = mt_session_rows(st, "J7dead", &n);
    if (n == 1)
        CHECK_EQ_STR(sr[0].status, "interrupted", "reaped session interrupted");
    meter_free(sr);
    meter_job_row *jr = mt_job_rows(st, "J7dead", &n);
    if (CHECK_EQ_I64(n, 1, "reaped session billed once")) {
        CHECK_EQ_STR(jr[0].state, "interrupted", "record state interrupted");
        CHECK_EQ_I64(jr[0].duration_us, S(7), "the checkpointed duration");
        CHECK_EQ_I64(jr[0].billed_us, S(14), "billed 14 s");
    }
    meter_free(jr);
    sr = mt_session_rows(st, "J7live", &n);
    if (n == 1)
        CHECK_EQ_STR(sr[0].status, "running", "live session not reaped");
    meter_free(sr);
    count = -1;
    CHECK_RC(st, meter_reap(st, &count), METER_OK, "reap again");
    CHECK_EQ_INT(count, 0, "nothing left to reap");
    CHECK_RC(st, meter_reap(st, NULL), METER_OK, "count may be NULL");
    jr = mt_job_rows(st, "J7dead", &n);
    CHECK_EQ_I64(n, 1, "still one record after more reaps");
    meter_free(jr);

    CHECK_EQ_INT(meter_session_finalize(live, 1, NULL), METER_OK,
                 "finalize the live one as interrupted");
    meter_session_close(live);
    jr = mt_job_rows(st, "J7live", &n);
    if (CHECK_EQ_I64(n, 1, "live session one record"))
        CHECK_EQ_STR(jr[0].state, "interrupted", "finalize(…, 1) interrupted");
    meter_free(jr);
}

/* A child that exits normally with sessions open or detached: the exit
 * handler finalizes them as interrupted, with their in-memory progress. */
static void exit_handler(meter_store *st)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        meter_session *a, *d;
        char err[METER_ERRMAX];
        if (mt_open_session(DB, "J8", "open", METER_CLASS_GENERAL, "h264", 0, NULL, &a,
                            err) != METER_OK ||
            mt_open_session(DB, "J8", "detached", METER_CLASS_GENERAL, "h264", 0, NULL,
                            &d, err) != METER_OK)
            _exit(2);
        meter_session_segment(a, 640, 480, S(3));
        meter_session_segment(d, 640, 480, S(4));
        meter_session_detach(d);
        exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child exited");
    size_t n = 0;
    meter_job_row *jr = mt_job_rows(st, "J8", &n);
    if (CHECK_EQ_I64(n, 2, "exit handler finalized both sessions")) {
        for (size_t i = 0; i < n; ++i) {
            int64_t want = !strcmp(jr[i].output, "open") ? S(3) : S(4);
            CHECK_EQ_STR(jr[i].state, "interrupted", "%s: interrupted",
                         jr[i].output);
            CHECK_EQ_I64(jr[i].duration_us, want, "%s: in-memory progress",
                         jr[i].output);
        }
    }
    meter_free(jr);
    int count = -1;
    meter_reap(st, &count);
    CHECK_EQ_INT(count, 0, "nothing left for the reaper");
}

static int count_spool_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        n += l > 6 && !strcmp(e->d_name + l - 6, ".spool");
    }
    closedir(d);
    return n;
}

static void spool(meter_store *st, const char *dir)
{
    const char *sp = tap_path(dir, "spool");
    mkdir(sp, 0700);
    const char *nodb = tap_path(dir, "missing-dir/meter.db");
    meter_session *s;
    char err[METER_ERRMAX];

    int rc = mt_open_session(nodb, "J9", "o", METER_CLASS_GENERAL, "h264", 0, sp, &s,
                             err);
    CHECK(rc < 0 && s == NULL && err[0],
          "without SPOOL an unopenable db is an error (rc %d: %s)", rc, err);

    rc = mt_open_session(nodb, "J9", "o", METER_CLASS_GENERAL, "h264",
                         METER_SESSION_SPOOL, sp, &s, err);
    if (!CHECK_RC_ERR(err, rc, METER_OK, "SPOOL: opens without a db"))
        return;
    CHECK_EQ_INT(meter_session_spooled(s), 1, "session is spooled");
    seg(s, 1280, 720, S(30));
    CHECK_EQ_INT(meter_session_checkpoint(s), METER_OK, "spooled checkpoint");
    meter_session_summary sum;
    memset(&sum, 0, sizeof sum);
    if (CHECK_EQ_INT(meter_session_finalize(s, 0, &sum), METER_OK,
                     "spooled finalize")) {
        CHECK_EQ_INT(sum.spooled, 1, "summary says spooled");
        CHECK_EQ_I64(sum.duration_us, S(30), "spooled duration");
    }
    meter_session_close(s);
    CHECK_EQ_INT(count_spool_files(sp), 1, "one .spool file");

    /* a spooled session whose process vanished after a checkpoint */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        meter_session *c;
        char e[METER_ERRMAX];
        if (mt_open_session(nodb, "J10", "o", METER_CLASS_GENERAL, "h264",
                            METER_SESSION_SPOOL, sp, &c, e) != METER_OK)
            _exit(2);
        meter_session_segment(c, 1280, 720, S(12));
        if (meter_session_checkpoint(c) != METER_OK)
            _exit(3);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "child spooled a checkpoint and vanished");
    CHECK_EQ_INT(count_spool_files(sp), 2, "two .spool files");

    int imported = -1;
    CHECK_RC(st, meter_import_spool(st, sp, &imported), METER_OK, "import");
    CHECK_EQ_INT(imported, 2, "both imported");
    CHECK_EQ_INT(count_spool_files(sp), 0, "spool files removed");
    size_t n = 0;
    meter_job_row *jr = mt_job_rows(st, "J9", &n);
    if (CHECK_EQ_I64(n, 1, "J9 imported: one record")) {
        CHECK_EQ_I64(jr[0].duration_us, S(30), "J9 duration");
        CHECK_EQ_I64(jr[0].billed_us, S(60), "J9 billed");
        CHECK_EQ_I64(jr[0].covered_us + jr[0].overage_us, S(60),
                     "J9 charged");
    }
    meter_free(jr);
    jr = mt_job_rows(st, "J10", &n);
    if (CHECK_EQ_I64(n, 1, "J10 imported from its checkpoint")) {
        CHECK_EQ_I64(jr[0].duration_us, S(12), "J10 checkpointed duration");
        CHECK_EQ_I64(jr[0].billed_us, S(24), "J10 billed");
    }
    meter_free(jr);
    imported = -1;
    CHECK_RC(st, meter_import_spool(st, sp, &imported), METER_OK,
             "import again");
    CHECK_EQ_INT(imported, 0, "nothing imported twice");
    jr = mt_job_rows(st, "J9", &n);
    CHECK_EQ_I64(n, 1, "J9 still one record");
    meter_free(jr);

    /* a spool file whose id or job the ledger could never take is refused
     * before billing, and kept (found by tests/fuzz/fuzz_spool) */
    static const struct { const char *name, *id, *job; } bad[] = {
        { "badid.spool", "bad id", "J11" },
        { "badjob.spool", "s-11", "J11\xff" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", sp, bad[i].name);
        FILE *f = fopen(path, "w");
        if (!f)
            continue;
        fprintf(f, "ffmeter-spool 1\nid %s\njob %s\noutput o\nhost elsewhere\n"
                   "class general\ncodec h264\nfinal 1\nupdated_at %lld\n"
                   "segment 1280 720 1000000\nend\n", bad[i].id, bad[i].job,
                (long long)tap_utc(2026, 6, 15, 11, 0, 0));
        fclose(f);
        imported = -1;
        rc = meter_import_spool(st, sp, &imported);
        CHECK(rc == METER_EINVAL && strstr(meter_errmsg(st), i ? "(line 3)" : "(line 2)") &&
              imported == 0,
              "%s refused naming its line (%d: %s)", bad[i].name, rc, meter_errmsg(st));
        CHECK_EQ_INT(count_spool_files(sp), 1, "%s kept", bad[i].name);
        unlink(path);
    }
    jr = mt_job_rows(st, "J11", &n);
    CHECK_EQ_I64(n, 0, "nothing billed from them");
    meter_free(jr);

    /* times outside what the ledger takes, and segments adding up past
     * METER_DURATION_MAX_US (thousands of them overflowed the sum: UB),
     * are refused naming the line (found by tests/fuzz/fuzz_spool) */
    static const struct { const char *name, *tail; int line; } badt[] = {
        { "negative.spool", "opened_at -5\nupdated_at 1781521200000\n"
                            "segment 1 1 1000000\n", 9 },
        { "year10000.spool", "opened_at 1781521200000\nupdated_at 253402300800000\n"
                             "segment 1 1 1000000\n", 10 },
        { "total.spool", "opened_at 1781521200000\nupdated_at 1781521260000\n"
                         "segment 100 100 1000000000000000\nsegment 101 100 1\n", 12 },
    };
    for (size_t i = 0; i < sizeof badt / sizeof *badt; i++) {
        char path[4200], want[32];
        snprintf(path, sizeof path, "%s/%s", sp, badt[i].name);
        FILE *f = fopen(path, "w");
        if (!f)
            continue;
        fprintf(f, "ffmeter-spool 1\nid s-13\njob J13\noutput o\nhost elsewhere\n"
                   "class general\ncodec h264\nfinal 1\n%send\n", badt[i].tail);
        fclose(f);
        imported = -1;
        rc = meter_import_spool(st, sp, &imported);
        snprintf(want, sizeof want, "(line %d)", badt[i].line);
        CHECK(rc == METER_EINVAL && strstr(meter_errmsg(st), want) && imported == 0,
              "%s refused at line %d (%d: %s)", badt[i].name, badt[i].line, rc,
              meter_errmsg(st));
        unlink(path);
    }
    jr = mt_job_rows(st, "J13", &n);
    CHECK_EQ_I64(n, 0, "nothing billed from them");
    meter_free(jr);

    /* no opened_at and an early updated_at: the start is not put before
     * 1970 (it was: started_at -59900, which the ledger refuses) */
    char path[4200];
    snprintf(path, sizeof path, "%s/early.spool", sp);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("ffmeter-spool 1\nid s-14\njob J14\noutput o\nhost elsewhere\nclass general\n"
              "codec h264\nfinal 1\nupdated_at 100\nsegment 1280 720 60000000\nend\n", f);
        fclose(f);
    }
    CHECK_RC(st, meter_import_spool(st, sp, &imported), METER_OK, "early spool file imported");
    jr = mt_job_rows(st, "J14", &n);
    if (CHECK_EQ_I64(n, 1, "J14 billed once")) {
        CHECK_EQ_I64(jr[0].started_at, 0, "its start is 1970, not before");
        CHECK_EQ_I64(jr[0].recorded_at, 100, "recorded at its last state");
    }
    meter_free(jr);
}

/* Entries of a directory other than . and .. (a probe left behind shows). */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* SPOOL with a database that cannot take the usage and a spool directory
 * that cannot either: the open is refused, naming both, instead of
 * metering into nothing (the usage would be lost at finalize). */
static void nowhere(const char *dir)
{
    meter_session *s;
    char err[METER_ERRMAX];
    /* (own copies: tap_path's buffers rotate, and DB lives in one of them) */
    char nodb[PATH_MAX], notdir[PATH_MAX], ro[PATH_MAX], fresh[PATH_MAX], gone[PATH_MAX];
    snprintf(nodb, sizeof nodb, "%s/nowhere/meter.db", dir);
    snprintf(gone, sizeof gone, "%s/nowhere", dir);
    snprintf(notdir, sizeof notdir, "%s/spool-is-a-file", dir);
    snprintf(ro, sizeof ro, "%s/spool-ro", dir);
    snprintf(fresh, sizeof fresh, "%s/spool-fresh", dir);

    /* no database, and the default spool "<db>.spool" cannot be created:
     * its parent directory does not exist */
    int rc = mt_open_session(nodb, "Jn1", "o", METER_CLASS_GENERAL, "h264",
                             METER_SESSION_SPOOL, NULL, &s, err);
    CHECK_RC_ERR(err, rc, METER_EIO, "nowhere: no db, no spool directory: refused");
    CHECK(s == NULL, "nowhere: no session");
    CHECK(strstr(err, "could go nowhere") && strstr(err, nodb) &&
          strstr(err, "cannot create spool directory") && strstr(err, "meter.db.spool'") &&
          strstr(err, "No such file or directory") && !strchr(err, '\n'),
          "nowhere: one line naming the database, the spool directory and the cause: %s",
          err);
    CHECK(!mt_exists(gone), "nowhere: nothing created");

    /* the spool "directory" is a file: it exists, but takes no file */
    FILE *f = fopen(notdir, "w");
    if (f)
        fclose(f);
    rc = mt_open_session(nodb, "Jn2", "o", METER_CLASS_GENERAL, "h264",
                         METER_SESSION_SPOOL, notdir, &s, err);
    CHECK_RC_ERR(err, rc, METER_EIO, "nowhere: spool is not a directory: refused");
    CHECK(s == NULL && strstr(err, "cannot write in spool directory") && strstr(err, "spool-is-a-file'") &&
          strstr(err, "Not a directory"), "nowhere: says why: %s", err);

    /* permission bits stop only a user who is not root */
    mkdir(ro, 0500);
    if (geteuid() == 0) {
        tap_skip("nowhere: a read-only spool directory (running as root)");
    } else {
        rc = mt_open_session(nodb, "Jn3", "o", METER_CLASS_GENERAL, "h264",
                             METER_SESSION_SPOOL, ro, &s, err);
        CHECK(rc == METER_EIO && s == NULL && strstr(err, "Permission denied"),
              "nowhere: a read-only spool directory: refused (%d: %s)", rc, err);
    }
    chmod(ro, 0700);

    /* a spool directory that can be created is created, probed, and the
     * probe is gone: only the session's own file ends up there */
    rc = mt_open_session(nodb, "Jn4", "o", METER_CLASS_GENERAL, "h264",
                         METER_SESSION_SPOOL, fresh, &s, err);
    if (CHECK_RC_ERR(err, rc, METER_OK, "nowhere: a creatable spool directory: opens")) {
        CHECK_EQ_INT(meter_session_spooled(s), 1, "nowhere: spooled");
        CHECK_EQ_INT(count_entries(fresh), 0, "nowhere: the probe file was removed");
        seg(s, 640, 360, S(4));
        CHECK_EQ_INT(meter_session_finalize(s, 0, NULL), METER_OK, "nowhere: finalize");
        meter_session_close(s);
        CHECK_EQ_INT(count_entries(fresh), 1, "nowhere: one file: the spool file");
        CHECK_EQ_INT(count_spool_files(fresh), 1, "nowhere: it is a .spool file");
    }
}

static void misc(meter_store *st)
{
    meter_session *s;
    char err[METER_ERRMAX];
    int rc = mt_open_session(DB, "Jx", NULL, METER_CLASS_GENERAL, "h264", 0, NULL, &s,
                             err);
    CHECK(rc == METER_EINVAL && !s && err[0], "output NULL refused (%d)", rc);
    rc = mt_open_session(DB, "Jx", "o", METER_CLASS_GENERAL, "vp9", 0, NULL, &s, err);
    CHECK(rc == METER_EINVAL && !s && err[0], "codec vp9 refused (%d)", rc);
    rc = mt_open_session(DB, "Jx", "o", (meter_class)5, "h264", 0, NULL, &s, err);
    CHECK(rc == METER_EINVAL && !s && err[0], "class 5 refused (%d)", rc);
    /* names go to the ledger in JSON: UTF-8 only (found by
     * tests/fuzz/fuzz_filter_opts: billed here, then never sendable) */
    static const char *const bad_utf8[] = { "J\xff", "J\xc0\x80", "J\xed\xa0\x80",
                                            "J\xf4\x90\x80\x80", "J\xe2\x82" };
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
        rc = mt_open_session(DB, bad_utf8[i], "o", METER_CLASS_GENERAL, "h264", 0, NULL, &s,
                             err);
        CHECK(rc == METER_EINVAL && !s && strstr(err, "job is not valid UTF-8"),
              "job %zu (not UTF-8) refused (%d: %s)", i, rc, err);
        rc = mt_open_session(DB, "Jx", bad_utf8[i], METER_CLASS_GENERAL, "h264", 0, NULL, &s,
                             err);
        CHECK(rc == METER_EINVAL && !s && strstr(err, "output is not valid UTF-8"),
              "output %zu (not UTF-8) refused (%d: %s)", i, rc, err);
    }
    s = must_open("J\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xac", "o", "h264", 0);
    meter_session_summary us;
    memset(&us, 0, sizeof us);
    seg(s, 640, 480, S(1));
    CHECK_EQ_INT(meter_session_finalize(s, 0, &us), METER_OK, "a UTF-8 job name is billed");
    meter_session_close(s);

    /* job from $METER_JOB, else meter_default_job() */
    setenv("METER_JOB", "env-job", 1);
    s = must_open(NULL, "o", "aac", 0);
    seg(s, 0, 0, S(60));
    meter_session_summary sum;
    memset(&sum, 0, sizeof sum);
    if (CHECK_EQ_INT(meter_session_finalize(s, 0, &sum), METER_OK,
                     "finalize audio")) {
        CHECK_EQ_STR(sum.job, "env-job", "job from METER_JOB");
        CHECK_EQ_STR(sum.ttype, "Audio", "audio session ttype");
        CHECK_EQ_I64(sum.billed_us, S(15), "60 s audio = 15 s");
    }
    meter_session_close(s);
    unsetenv("METER_JOB");
    const char *dj = meter_default_job();
    CHECK(dj && dj[0] && dj == meter_default_job() &&
          !strcmp(dj, meter_default_job()), "default job stable (%s)",
          dj ? dj : "?");
    s = must_open(NULL, "o2", "h264", 0);
    seg(s, 640, 480, S(1));
    memset(&sum, 0, sizeof sum);
    meter_session_finalize(s, 0, &sum);
    CHECK_EQ_STR(sum.job, dj, "job defaults to meter_default_job()");
    meter_session_close(s);

    /* segments adding up past METER_DURATION_MAX_US: refused, not summed
     * past it (thousands of maximal ones overflowed int64) */
    s = must_open("Jhuge", "o", "h264", 0);
    CHECK_EQ_INT(meter_session_segment(s, 100, 100, INT64_C(1000000000000000)), METER_OK,
                 "a maximal segment");
    CHECK_EQ_INT(meter_session_segment(s, 101, 100, 1), METER_OK, "and one more µs");
    rc = meter_session_finalize(s, 0, NULL);
    CHECK(rc == METER_EINVAL && strstr(meter_session_errmsg(s), "add up to more than"),
          "a session longer than the limit refused (%d: %s)", rc, meter_session_errmsg(s));
    meter_session_close(s);

    /* ten records whose bills each fit (METER_BILLED_MAX_US) but whose sum
     * does not fit int64 (an operator's ratio of 1 000 000 over 11.6 days
     * of output each): refused as a whole, nothing recorded (the sum
     * overflowed: UB) */
    CHECK_RC(st, meter_rate_set(st, METER_CLASS_GENERAL, "Standard.H264.SD", "1000000"),
             METER_OK, "a huge SD ratio");
    CHECK_RC(st, meter_rate_set(st, METER_CLASS_GENERAL, "Standard.H264.HD", "1000000"),
             METER_OK, "a huge HD ratio");
    s = must_open("Jbill", "o", "h264", 0);
    for (int i = 0; i < 10; i++)
        meter_session_segment(s, i % 2 ? 1280 : 640, i % 2 ? 720 : 360,
                              INT64_C(1000000000000));
    rc = meter_session_finalize(s, 0, NULL);
    CHECK(rc == METER_EINVAL && strstr(meter_session_errmsg(s), "bill overflows"),
          "a session whose bills add up past int64 refused (%d: %s)", rc,
          meter_session_errmsg(s));
    meter_session_close(s);
    size_t nb = 0;
    meter_job_row *jb = mt_job_rows(st, "Jbill", &nb);
    CHECK_EQ_I64(nb, 0, "none of its records kept");
    meter_free(jb);
    meter_rate_unset(st, METER_CLASS_GENERAL, "Standard.H264.SD");
    meter_rate_unset(st, METER_CLASS_GENERAL, "Standard.H264.HD");

    /* finalize with no segment at all: nothing to bill, still once */
    s = must_open("Jempty", "o", "h264", 0);
    memset(&sum, 0, sizeof sum);
    CHECK_EQ_INT(meter_session_finalize(s, 0, &sum), METER_OK,
                 "finalize without segments");
    CHECK_EQ_I64(sum.billed_us, 0, "nothing billed");
    meter_session_close(s);
    size_t n = 0;
    meter_job_row *jr = mt_job_rows(st, "Jempty", &n);
    CHECK_EQ_I64(n, 0, "no usage record for an empty output");
    meter_free(jr);
}

int main(void)
{
    const char *dir = tap_tmpdir("test_session");
    DB = tap_path(dir, "session.db");
    unsetenv("METER_JOB");
    tap_set_now("2026-06-15T12:00:00Z");
    meter_store *st = main_store = mt_open(DB);
    mt_add_pack(st, "S1", METER_CLASS_GENERAL, 100, tap_utc(2026, 6, 1, 0, 0, 0));
    basic(st);
    resolution_change(st);
    detach_resume(st);
    idempotent(st);
    enforce(dir);
    reap(st);
    exit_handler(st);
    spool(st, dir);
    nowhere(dir);
    misc(st);
    CHECK_VERIFY(st, "verify after sessions");
    mt_sums s;
    if (mt_job_sums(st, NULL, &s) == METER_OK)
        CHECK_EQ_I64(s.unbalanced, 0, "every record covered + overage = billed");
    meter_close(st);
    return done_testing();
}
