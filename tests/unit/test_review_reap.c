/*
 * test_review_reap — regression tests for the review fixes to the reaper
 * and to billing on every path (finalize, reap, import):
 *
 *   1. a dead session that left a spool file (the database was locked when
 *      it checkpointed or finalized) is billed from that file, which is
 *      newer than its last database checkpoint; the file is removed;
 *   2. IDEMPOTENT is decided when billing: a rerun killed after a
 *      checkpoint, or finishing after another run finished, bills nothing
 *      ("duplicate"); an interrupted run does not count, a retry bills;
 *   3. a dead session that cannot be billed is marked "failed", the other
 *      dead sessions are still billed, the problem is returned naming the
 *      session, and meter_verify reports it;
 *   4. late billing happens at the time of the session's last state: a pack
 *      bought after that (daily: on D+1; realtime: after the checkpoint)
 *      does not pay, for the reaper and for a spool import;
 *  11. (also in the commit) liveness: a session row of a process that is
 *      alive but from another boot, or whose pid now belongs to another
 *      process, is reaped.
 *
 * Case numbers follow the review's list (5-10 are in test_review_session
 * and test_review_store).  Case 1 waits out libmeter's 10 s busy timeout
 * once (its two children wait at the same time): that is how a database
 * busy at finalize is made, with no other process's timing involved.
 *
 * "Killed" processes are forked children that end with _exit(): no atexit
 * handler runs, exactly as after SIGKILL.  Each case has its own database,
 * since a reap bills every dead session of a file.  Expected amounts are
 * worked out from billing-rules.md §3 (H.264 SD 1, HD 2, FHD 4 pack minutes
 * per output minute).
 */
#include <dirent.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "mtest.h"

#define S(x) ((int64_t)(x) * US_PER_S)
#define MIN(x) ((int64_t)(x) * US_PER_MIN)

static const char *DIR_;

/* ------------------------------------------------------------ helpers -- */

/* The session row of job/output, copied into *out; 0 when there is not
 * exactly one. */
static int session_of(meter_store *st, const char *job, const char *output,
                      meter_session_row *out)
{
    size_t n = 0, hits = 0;
    meter_session_row *r = mt_session_rows(st, job, &n);
    for (size_t i = 0; i < n; ++i)
        if (!strcmp(r[i].output, output)) {
            *out = r[i];
            hits++;
        }
    meter_free(r);
    if (hits != 1)
        tap_diag("%s/%s: %zu session rows", job, output, hits);
    return hits == 1;
}

/* Σ of the usage records of job/output; *n gets how many. */
static int64_t billed_of(meter_store *st, const char *job, const char *output,
                         size_t *nrec)
{
    size_t n = 0;
    int64_t sum = 0;
    meter_job_row *r = mt_job_rows(st, job, &n);
    *nrec = 0;
    for (size_t i = 0; i < n; ++i)
        if (!strcmp(r[i].output, output)) {
            sum += r[i].billed_us;
            (*nrec)++;
        }
    meter_free(r);
    return sum;
}

/* The child's exit code, or -1 when it did not exit normally. */
static int wait_child(pid_t pid)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A pipe pair to step a child: the child says "ready", the parent "go".
 * After the fork the parent closes the child's ends (gate_parent), so a
 * child that dies early makes the parent's read return instead of hang;
 * SIGPIPE is ignored (main) so a "go" to a dead child is only a diag. */
typedef struct gate {
    int ready[2], go[2];
} gate;

static void gate_init(gate *g)
{
    if (pipe(g->ready) != 0 || pipe(g->go) != 0)
        BAIL("pipe: %s", strerror(errno));
}

static void gate_child_ready_wait(gate *g)
{
    char c = 'r';
    if (write(g->ready[1], &c, 1) != 1 || read(g->go[0], &c, 1) != 1)
        _exit(90);
}

static void gate_parent(gate *g)
{
    close(g->ready[1]);
    close(g->go[0]);
}

/* Parent: 1 when the child reached its gate (0 when it died first). */
static int gate_wait_ready(gate *g)
{
    char c;
    return read(g->ready[0], &c, 1) == 1;
}

static void gate_go(gate *g)
{
    char c = 'g';
    if (write(g->go[1], &c, 1) != 1)
        tap_diag("gate: child gone before go");
}

static void gate_close(gate *g)
{
    close(g->ready[0]);
    close(g->go[1]);
}

typedef struct seen {
    int calls;
    int named;
    const char *name;
} seen;

static void on_report(void *ctx, const char *problem)
{
    seen *s = ctx;
    s->calls++;
    if (problem && s->name && strstr(problem, s->name))
        s->named++;
    printf("#   reported: %s\n", problem ? problem : "(null)");
}

/* A session in a forked child that ends as `how` says.  Exit codes:
 * 0 ok, 1 ok and the summary said already_billed, ≥ 2 a failed step. */
enum child_end { END_DONE, END_INTERRUPTED, END_KILLED };

static int run_child(const char *db, const char *job, const char *output,
                     unsigned flags, int64_t dur, enum child_end how)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        BAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        meter_session *s;
        char err[METER_ERRMAX];
        if (mt_open_session(db, job, output, METER_CLASS_GENERAL, "h264", flags, NULL,
                            &s, err) != METER_OK)
            _exit(2);
        if (meter_session_segment(s, 1280, 720, dur) != METER_OK ||
            meter_session_checkpoint(s) != METER_OK)
            _exit(3);
        if (how == END_KILLED)
            _exit(0);   /* no atexit handlers: like a SIGKILL */
        meter_session_summary sum;
        memset(&sum, 0, sizeof sum);
        if (meter_session_finalize(s, how == END_INTERRUPTED, &sum) != METER_OK)
            _exit(4);
        _exit(sum.already_billed ? 1 : 0);
    }
    return wait_child(pid);
}

/* ---------------------------------------------- 1. reap from the spool -- */

/* Child: opens a spooling session on a good database, checkpoints 5 s of
 * FHD, waits while the parent locks the database, then reaches `later`
 * and either checkpoints (final = 0) or finalizes; both must go to the
 * spool file.  Then vanishes without exit handlers. */
static void spool_child(const char *db, const char *spool, const char *job,
                        int final, int64_t later, gate *g)
{
    meter_session *s;
    char err[METER_ERRMAX];
    if (mt_open_session(db, job, "o", METER_CLASS_GENERAL, "h264", METER_SESSION_SPOOL,
                        spool, &s, err) != METER_OK)
        _exit(2);
    if (meter_session_spooled(s))
        _exit(3);           /* the database was fine: must not spool yet */
    if (meter_session_segment(s, 1920, 1080, S(5)) != METER_OK ||
        meter_session_checkpoint(s) != METER_OK)
        _exit(4);
    gate_child_ready_wait(g);
    if (meter_session_segment(s, 1920, 1080, later) != METER_OK)
        _exit(5);
    if (final) {
        meter_session_summary sum;
        memset(&sum, 0, sizeof sum);
        if (meter_session_finalize(s, 0, &sum) != METER_OK)
            _exit(6);
        if (!sum.spooled || sum.duration_us != later)
            _exit(7);
    } else if (meter_session_checkpoint(s) != METER_OK) {
        _exit(8);           /* spooled checkpoint: returns OK */
    }
    _exit(0);
}

static void reap_from_spool(void)
{
    tap_set_now("2026-06-15T12:00:00Z");
    const char *db = tap_path(DIR_, "spool_reap.db");
    const char *spool = tap_path(DIR_, "spool_reap.spool");
    mkdir(spool, 0700);
    meter_store *st = mt_open(db);
    mt_add_pack(st, "P", METER_CLASS_GENERAL, 1000, tap_utc(2026, 6, 1, 0, 0, 0));

    gate gf, gc;
    gate_init(&gf);
    fflush(stdout);
    pid_t pf = fork();
    if (pf == 0)
        spool_child(db, spool, "JSF", 1, S(60), &gf);
    gate_parent(&gf);
    gate_init(&gc);
    pid_t pc = fork();
    if (pc == 0)
        spool_child(db, spool, "JSC", 0, S(20), &gc);
    gate_parent(&gc);
    int ready_f = gate_wait_ready(&gf), ready_c = gate_wait_ready(&gc);
    int ready = ready_f && ready_c;
    CHECK(ready, "1: both children checkpointed 5 s to the database");

    /* Hold the write lock while the children write their later state:
     * each waits out the 10 s busy timeout, gets METER_EBUSY (transient)
     * and writes the spool file instead. */
    sqlite3 *lock = NULL;
    int lrc = sqlite3_open_v2(db, &lock, SQLITE_OPEN_READWRITE, NULL);
    if (lrc == SQLITE_OK)
        lrc = sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    CHECK_EQ_INT(lrc, SQLITE_OK, "1: another connection holds the write lock");
    gate_go(&gf);
    gate_go(&gc);
    int cf = wait_child(pf), cc = wait_child(pc);
    sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(lock);
    gate_close(&gf);
    gate_close(&gc);
    CHECK_EQ_INT(cf, 0, "1: finalize under the lock went to the spool file");
    CHECK_EQ_INT(cc, 0, "1: checkpoint under the lock went to the spool file");
    CHECK_EQ_INT(mt_count_spool_files(spool), 2, "1: two spool files");

    meter_session_row r;
    if (session_of(st, "JSF", "o", &r)) {
        CHECK_EQ_STR(r.status, "running", "1: JSF still running in the db");
        CHECK_EQ_I64(r.duration_us, S(5), "1: the db has only the 5 s checkpoint");
    }
    int64_t rem0 = mt_remaining(st, "P");

    int count = -1;
    CHECK_RC(st, meter_reap(st, &count), METER_OK, "1: reap");
    CHECK_EQ_INT(count, 2, "1: both dead sessions reaped");
    CHECK_EQ_INT(mt_count_spool_files(spool), 0, "1: spool files removed after billing");

    size_t n = 0;
    meter_job_row *jr = mt_job_rows(st, "JSF", &n);
    if (CHECK_EQ_I64(n, 1, "1: JSF billed once")) {
        CHECK_EQ_I64(jr[0].duration_us, S(60), "1: JSF billed the spooled 60 s, not 5 s");
        CHECK_EQ_I64(jr[0].billed_us, S(240), "1: JSF 60 s FHD ×4 = 240 s");
        CHECK_EQ_STR(jr[0].state, "done", "1: JSF record done (it saw EOF)");
    }
    meter_free(jr);
    if (session_of(st, "JSF", "o", &r))
        CHECK_EQ_STR(r.status, "done", "1: JSF session done");

    jr = mt_job_rows(st, "JSC", &n);
    if (CHECK_EQ_I64(n, 1, "1: JSC billed once")) {
        CHECK_EQ_I64(jr[0].duration_us, S(20),
                     "1: JSC billed its spooled 20 s checkpoint, not 5 s");
        CHECK_EQ_I64(jr[0].billed_us, S(80), "1: JSC 20 s FHD ×4 = 80 s");
        CHECK_EQ_STR(jr[0].state, "interrupted", "1: JSC record interrupted");
    }
    meter_free(jr);
    if (session_of(st, "JSC", "o", &r))
        CHECK_EQ_STR(r.status, "interrupted", "1: JSC session interrupted");
    CHECK_EQ_I64(mt_remaining(st, "P"), rem0 - S(320), "1: P paid 240 s + 80 s");

    count = -1;
    CHECK_RC(st, meter_reap(st, &count), METER_OK, "1: reap again");
    CHECK_EQ_INT(count, 0, "1: nothing left to reap");
    int imported = -1;
    CHECK_RC(st, meter_import_spool(st, spool, &imported), METER_OK,
             "1: import of the spool dir");
    CHECK_EQ_INT(imported, 0, "1: nothing imported a second time");
    CHECK_EQ_I64(mt_remaining(st, "P"), rem0 - S(320), "1: P not charged twice");
    CHECK_VERIFY(st, "1: verify");
    meter_close(st);
}

/* ------------------------------------------------------- 2. IDEMPOTENT -- */

static void idempotent(void)
{
    tap_set_now("2026-06-15T12:00:00Z");
    const char *db = tap_path(DIR_, "idem.db");
    meter_store *st = mt_open(db);
    mt_add_pack(st, "P", METER_CLASS_GENERAL, 1000, tap_utc(2026, 6, 1, 0, 0, 0));
    const unsigned I = METER_SESSION_IDEMPOTENT;
    size_t n = 0;

    /* a done run, then a rerun that dies after a checkpoint */
    CHECK_EQ_INT(run_child(db, "JI", "o", I, S(30), END_DONE), 0,
                 "2: first run done, billed");
    int64_t rem = mt_remaining(st, "P");
    CHECK_EQ_I64(billed_of(st, "JI", "o", &n), S(60), "2: JI billed 30 s HD = 60 s");
    CHECK_EQ_INT(run_child(db, "JI", "o", I, S(30), END_KILLED), 0,
                 "2: rerun killed after a checkpoint");
    int count = -1;
    CHECK_RC(st, meter_reap(st, &count), METER_OK, "2: reap the killed rerun");
    CHECK_EQ_I64(billed_of(st, "JI", "o", &n), S(60), "2: JI still billed 60 s");
    CHECK_EQ_I64(n, 1, "2: JI still one usage record");
    CHECK_EQ_I64(mt_remaining(st, "P"), rem, "2: P not charged by the reaped rerun");
    meter_session_row *sr = mt_session_rows(st, "JI", &n);
    int done = 0, dup = 0, running = 0;
    for (size_t i = 0; i < n; ++i) {
        done += !strcmp(sr[i].status, "done");
        dup += !strcmp(sr[i].status, "duplicate");
        running += !strcmp(sr[i].status, "running");
    }
    meter_free(sr);
    CHECK(n == 2 && done == 1 && dup == 1 && running == 0,
          "2: JI sessions: one done, the reaped rerun duplicate "
          "(%zu rows: %d done, %d duplicate, %d running)", n, done, dup, running);

    /* a rerun that completes is a duplicate as well */
    CHECK_EQ_INT(run_child(db, "JI", "o", I, S(30), END_DONE), 1,
                 "2: a completed rerun says already_billed");
    CHECK_EQ_I64(mt_remaining(st, "P"), rem, "2: P not charged by it");

    /* decided when billing, not at open: run A opens before run B
     * finishes, and finishes after it */
    gate g;
    gate_init(&g);
    fflush(stdout);
    pid_t pa = fork();
    if (pa == 0) {
        meter_session *s;
        char err[METER_ERRMAX];
        if (mt_open_session(db, "JR", "o", METER_CLASS_GENERAL, "h264", I, NULL, &s,
                            err) != METER_OK)
            _exit(2);
        if (meter_session_segment(s, 1280, 720, S(30)) != METER_OK ||
            meter_session_checkpoint(s) != METER_OK)
            _exit(3);
        gate_child_ready_wait(&g);
        meter_session_summary sum;
        memset(&sum, 0, sizeof sum);
        if (meter_session_finalize(s, 0, &sum) != METER_OK)
            _exit(4);
        _exit(sum.already_billed ? 1 : 0);
    }
    gate_parent(&g);
    CHECK(gate_wait_ready(&g), "2: run A opened and checkpointed");
    rem = mt_remaining(st, "P");
    CHECK_EQ_INT(run_child(db, "JR", "o", I, S(30), END_DONE), 0,
                 "2: run B opened later, finished first: billed");
    gate_go(&g);
    CHECK_EQ_INT(wait_child(pa), 1,
                 "2: run A finishing after B is a duplicate (decided when billing)");
    gate_close(&g);
    CHECK_EQ_I64(billed_of(st, "JR", "o", &n), S(60), "2: JR billed once, 60 s");
    CHECK_EQ_I64(mt_remaining(st, "P"), rem - S(60), "2: P paid JR once");

    /* an interrupted earlier run does not count: the retry bills in full */
    CHECK_EQ_INT(run_child(db, "JK", "o", I, S(10), END_KILLED), 0,
                 "2: JK first run killed after a 10 s checkpoint");
    count = -1;
    CHECK_RC(st, meter_reap(st, &count), METER_OK, "2: reap JK's first run");
    CHECK_EQ_INT(count, 1, "2: one session reaped");
    CHECK_EQ_I64(billed_of(st, "JK", "o", &n), S(20), "2: JK interrupted: 10 s HD = 20 s");
    rem = mt_remaining(st, "P");
    CHECK_EQ_INT(run_child(db, "JK", "o", I, S(30), END_DONE), 0,
                 "2: JK retry after an interrupted run is not already_billed");
    CHECK_EQ_I64(billed_of(st, "JK", "o", &n), S(20 + 60),
                 "2: JK retry billed in full (20 s + 60 s)");
    CHECK_EQ_I64(mt_remaining(st, "P"), rem - S(60), "2: P paid the retry");

    /* the same with a run finalized as interrupted (exit handler path) */
    CHECK_EQ_INT(run_child(db, "JF", "o", I, S(10), END_INTERRUPTED), 0,
                 "2: JF first run finalized as interrupted");
    CHECK_EQ_INT(run_child(db, "JF", "o", I, S(30), END_DONE), 0,
                 "2: JF retry is not already_billed");
    CHECK_EQ_I64(billed_of(st, "JF", "o", &n), S(20 + 60), "2: JF billed 20 s + 60 s");
    /* and once JF is done, a killed rerun is a duplicate */
    rem = mt_remaining(st, "P");
    CHECK_EQ_INT(run_child(db, "JF", "o", I, S(30), END_KILLED), 0,
                 "2: JF rerun killed");
    CHECK_RC(st, meter_reap(st, NULL), METER_OK, "2: reap JF's rerun");
    CHECK_EQ_I64(mt_remaining(st, "P"), rem, "2: P not charged by JF's reaped rerun");

    /* without IDEMPOTENT a rerun bills again (the flag is what stops it) */
    rem = mt_remaining(st, "P");
    CHECK_EQ_INT(run_child(db, "JI", "o", 0, S(30), END_KILLED), 0,
                 "2: plain rerun of JI killed");
    CHECK_RC(st, meter_reap(st, NULL), METER_OK, "2: reap the plain rerun");
    CHECK_EQ_I64(mt_remaining(st, "P"), rem - S(60), "2: a plain rerun is billed");
    CHECK_VERIFY(st, "2: verify");
    meter_close(st);
}

/* ------------------------------------------- 3. unbillable: "failed" -- */

static void unbillable(void)
{
    tap_set_now("2026-06-15T12:00:00Z");
    const char *db = tap_path(DIR_, "failed.db");
    meter_store *st = mt_open(db);
    mt_add_pack(st, "P", METER_CLASS_GENERAL, 1000, tap_utc(2026, 6, 1, 0, 0, 0));
    if (!CHECK_RC(st, meter_rate_set(st, METER_CLASS_GENERAL, "Standard.VP9.HD", "3"),
                  METER_OK, "3: rate for VP9 HD set"))
        return;

    /* One child: A (vp9, opened first) and B (h264) both checkpoint 30 s
     * HD; the VP9 rate is removed while they run; then the child dies. */
    gate g;
    gate_init(&g);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        meter_session *a, *b;
        char err[METER_ERRMAX];
        if (mt_open_session(db, "J3", "A", METER_CLASS_GENERAL, "vp9", 0, NULL, &a,
                            err) != METER_OK ||
            mt_open_session(db, "J3", "B", METER_CLASS_GENERAL, "h264", 0, NULL, &b,
                            err) != METER_OK)
            _exit(2);
        if (meter_session_segment(a, 1280, 720, S(30)) != METER_OK ||
            meter_session_segment(b, 1280, 720, S(30)) != METER_OK ||
            meter_session_checkpoint(a) != METER_OK ||
            meter_session_checkpoint(b) != METER_OK)
            _exit(3);
        gate_child_ready_wait(&g);
        _exit(0);
    }
    gate_parent(&g);
    CHECK(gate_wait_ready(&g), "3: A (vp9) and B (h264) checkpointed");
    CHECK_RC(st, meter_rate_unset(st, METER_CLASS_GENERAL, "Standard.VP9.HD"),
             METER_OK, "3: VP9 rate removed");
    gate_go(&g);
    CHECK_EQ_INT(wait_child(pid), 0, "3: the child died without exit handlers");
    gate_close(&g);

    meter_session_row ra, rb;
    char ida[METER_ID_MAX] = "?";
    if (session_of(st, "J3", "A", &ra))
        snprintf(ida, sizeof ida, "%s", ra.id);
    int64_t rem = mt_remaining(st, "P");

    int count = -1;
    int rc = meter_reap(st, &count);
    CHECK(rc != METER_OK, "3: reap returns the problem (rc %d: %s)", rc, meter_errmsg(st));
    CHECK(strstr(meter_errmsg(st), ida) != NULL,
          "3: the message names session %s: %s", ida, meter_errmsg(st));
    CHECK_EQ_INT(count, 1, "3: the other dead session (B) was billed");
    if (session_of(st, "J3", "A", &ra))
        CHECK_EQ_STR(ra.status, "failed", "3: A marked failed");
    if (session_of(st, "J3", "B", &rb))
        CHECK_EQ_STR(rb.status, "interrupted", "3: B reaped as interrupted");
    size_t n = 0;
    CHECK_EQ_I64(billed_of(st, "J3", "B", &n), S(60), "3: B billed 30 s HD = 60 s");
    CHECK_EQ_I64(billed_of(st, "J3", "A", &n), 0, "3: A not billed");
    CHECK_EQ_I64(n, 0, "3: A has no usage record");
    CHECK_EQ_I64(mt_remaining(st, "P"), rem - S(60), "3: P paid B");

    /* the failed session no longer blocks the reaper */
    count = -1;
    CHECK_RC(st, meter_reap(st, &count), METER_OK, "3: next reap succeeds");
    CHECK_EQ_INT(count, 0, "3: nothing left to reap");
    CHECK_EQ_INT(run_child(db, "J3b", "o", 0, S(6), END_KILLED), 0,
                 "3: a later job dies too");
    count = -1;
    CHECK_RC(st, meter_reap(st, &count), METER_OK, "3: reap the later job");
    CHECK_EQ_INT(count, 1, "3: the later job reaped");

    /* verify reports the failed session (minutes waiting for an operator) */
    seen s = { 0, 0, ida };
    size_t v = 0;
    CHECK_RC(st, meter_verify(st, on_report, &s, &v), METER_OK, "3: verify runs");
    CHECK(v >= 1, "3: verify reports a violation (%zu)", v);
    CHECK(s.named >= 1, "3: a report names the failed session %s", ida);
    meter_close(st);
}

/* ------------------------------------------------ 4. late billing time -- */

/* A child that opens a session on db (SPOOL when spool != NULL), reports
 * 60 s HD, checkpoints and dies. */
static int killed_at_checkpoint(const char *db, const char *job, const char *spool)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        meter_session *s;
        char err[METER_ERRMAX];
        if (mt_open_session(db, job, "o", METER_CLASS_GENERAL, "h264",
                            spool ? METER_SESSION_SPOOL : 0, spool, &s, err) != METER_OK)
            _exit(2);
        if (!spool != !meter_session_spooled(s))
            _exit(3);
        if (meter_session_segment(s, 1280, 720, S(60)) != METER_OK ||
            meter_session_checkpoint(s) != METER_OK)
            _exit(4);
        _exit(0);
    }
    return wait_child(pid);
}

static void late_daily(void)
{
    const int64_t D = tap_utc(2026, 3, 1, 10, 0, 0);
    tap_set_now_ms(D);
    const char *db = tap_path(DIR_, "late_daily.db");
    meter_store *st = mt_open(db);
    CHECK_RC(st, meter_setting_set(st, "settlement", "daily"), METER_OK, "4d: daily mode");
    mt_add_pack(st, "OLD", METER_CLASS_GENERAL, 1, D - 10 * MS_PER_DAY);
    CHECK_EQ_INT(killed_at_checkpoint(db, "J4", NULL), 0,
                 "4d: session killed on D after a 60 s HD checkpoint");

    tap_set_now_ms(D + MS_PER_DAY - MS_PER_H);   /* D+1 09:00 */
    mt_add_pack(st, "NEW", METER_CLASS_GENERAL, 100, 0);
    tap_set_now_ms(D + 2 * MS_PER_DAY);          /* D+2 10:00 */
    int count = -1;
    CHECK_RC(st, meter_reap(st, &count), METER_OK, "4d: reap on D+2");
    CHECK_EQ_INT(count, 1, "4d: one session reaped");
    size_t n = 0;
    meter_job_row *jr = mt_job_rows(st, "J4", &n);
    if (CHECK_EQ_I64(n, 1, "4d: one usage record")) {
        CHECK_EQ_I64(jr[0].recorded_at, D, "4d: recorded at the checkpoint's time (D)");
        CHECK_EQ_I64(jr[0].billed_us, S(120), "4d: 60 s HD = 120 s");
    }
    meter_free(jr);

    tap_set_now_ms(D + 3 * MS_PER_DAY);          /* D+3 10:00 */
    meter_settle_result sr;
    memset(&sr, 0, sizeof sr);
    if (CHECK_RC(st, meter_settle(st, &sr), METER_OK, "4d: settle on D+3")) {
        CHECK_EQ_I64(sr.billed_us, S(120), "4d: settled 120 s");
        CHECK_EQ_I64(sr.covered_us, S(60), "4d: OLD (bought before D) paid 60 s");
        CHECK_EQ_I64(sr.overage_us, S(60), "4d: the rest is overage");
    }
    CHECK_EQ_I64(mt_remaining(st, "NEW"), MIN(100),
                 "4d: NEW, bought on D+1, did not pay for day D");
    CHECK_EQ_I64(mt_remaining(st, "OLD"), 0, "4d: OLD used up");
    meter_query q = mt_query_all();
    meter_usage_row *rows = NULL;
    size_t k = 0;
    if (CHECK_RC(st, meter_usage_details(st, &q, &rows, &k), METER_OK, "4d: details")) {
        int on_d = 0;
        for (size_t i = 0; i < k; ++i)
            on_d += !strcmp(rows[i].day, "2026-03-01");
        CHECK(k == 2 && on_d == 2,
              "4d: the OLD and overage rows count under day D (%zu rows, %d on D)", k, on_d);
    }
    meter_free(rows);
    CHECK_VERIFY(st, "4d: verify");
    meter_close(st);
}

static void late_realtime(void)
{
    const int64_t T = tap_utc(2026, 4, 10, 10, 0, 0);
    tap_set_now_ms(T);
    const char *db = tap_path(DIR_, "late_rt.db");
    meter_store *st = mt_open(db);
    mt_add_pack(st, "EARLY", METER_CLASS_GENERAL, 1, T - MS_PER_DAY);
    CHECK_EQ_INT(killed_at_checkpoint(db, "J4r", NULL), 0,
                 "4r: session killed at T after a 60 s HD checkpoint");
    tap_set_now_ms(T + MS_PER_H);
    mt_add_pack(st, "LATE", METER_CLASS_GENERAL, 100, 0);
    tap_set_now_ms(T + 2 * MS_PER_H);
    int count = -1;
    CHECK_RC(st, meter_reap(st, &count), METER_OK, "4r: reap at T+2h");
    CHECK_EQ_INT(count, 1, "4r: one session reaped");
    size_t n = 0;
    meter_job_row *jr = mt_job_rows(st, "J4r", &n);
    if (CHECK_EQ_I64(n, 1, "4r: one usage record")) {
        CHECK_EQ_I64(jr[0].recorded_at, T, "4r: recorded at the checkpoint's time");
        CHECK_EQ_I64(jr[0].billed_us, S(120), "4r: 60 s HD = 120 s");
        CHECK_EQ_I64(jr[0].covered_us, S(60), "4r: EARLY paid 60 s");
        CHECK_EQ_I64(jr[0].overage_us, S(60), "4r: the rest is overage");
    }
    meter_free(jr);
    CHECK_EQ_I64(mt_remaining(st, "LATE"), MIN(100),
                 "4r: LATE, bought after the checkpoint, did not pay");
    CHECK_VERIFY(st, "4r: verify");
    meter_close(st);

    /* the same through a spool file: a job that never saw its database
     * (missing at T), imported once the store exists */
    const int64_t U = tap_utc(2026, 4, 20, 10, 0, 0);
    tap_set_now_ms(U);
    const char *db2 = tap_path(DIR_, "late_spool.db");
    const char *spool = tap_path(DIR_, "late_spool.spool");
    mkdir(spool, 0700);
    CHECK_EQ_INT(killed_at_checkpoint(db2, "J4s", spool), 0,
                 "4s: spooled session killed at U after a 60 s HD checkpoint");
    CHECK_EQ_INT(mt_count_spool_files(spool), 1, "4s: one spool file");
    tap_set_now_ms(U + MS_PER_H);
    st = mt_open(db2);
    mt_add_pack(st, "EARLY", METER_CLASS_GENERAL, 1, U - MS_PER_DAY);
    mt_add_pack(st, "LATE", METER_CLASS_GENERAL, 100, 0);
    tap_set_now_ms(U + 2 * MS_PER_H);
    int imported = -1;
    CHECK_RC(st, meter_import_spool(st, spool, &imported), METER_OK, "4s: import");
    CHECK_EQ_INT(imported, 1, "4s: one session imported");
    jr = mt_job_rows(st, "J4s", &n);
    if (CHECK_EQ_I64(n, 1, "4s: one usage record")) {
        CHECK_EQ_I64(jr[0].recorded_at, U, "4s: recorded at the spooled state's time");
        CHECK_EQ_I64(jr[0].covered_us, S(60), "4s: EARLY paid 60 s");
        CHECK_EQ_I64(jr[0].overage_us, S(60), "4s: the rest is overage");
    }
    meter_free(jr);
    CHECK_EQ_I64(mt_remaining(st, "LATE"), MIN(100),
                 "4s: LATE, bought after the spooled checkpoint, did not pay");
    CHECK_VERIFY(st, "4s: verify");
    meter_close(st);
}

/* --------------------------------------------------------- 11. liveness -- */

static int sql_exec(const char *path, const char *stmt)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, stmt, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        tap_diag("sqlite: %s", msg ? msg : db ? sqlite3_errmsg(db) : "open");
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc;
}

/* Sessions of this (live) process whose row says another boot, or
 * another process under the same pid, are gone: the reaper bills them,
 * and the live owner learns it at its next checkpoint.  The rows are
 * changed behind libmeter's back (column names of the sessions table). */
static void liveness(void)
{
    tap_set_now("2026-06-15T12:00:00Z");
    const char *db = tap_path(DIR_, "alive.db");
    meter_store *st = mt_open(db);
    mt_add_pack(st, "P", METER_CLASS_GENERAL, 1000, tap_utc(2026, 6, 1, 0, 0, 0));
    meter_session *a, *b, *c;
    char err[METER_ERRMAX];
    if (!CHECK_RC_ERR(err, mt_open_session(db, "J5", "boot", METER_CLASS_GENERAL, "h264", 0, NULL,
                                           &a, err), METER_OK, "11: open a") ||
        !CHECK_RC_ERR(err, mt_open_session(db, "J5", "pid", METER_CLASS_GENERAL, "h264", 0, NULL,
                                           &b, err), METER_OK, "11: open b") ||
        !CHECK_RC_ERR(err, mt_open_session(db, "J5", "live", METER_CLASS_GENERAL, "h264", 0, NULL,
                                           &c, err), METER_OK, "11: open c"))
        return;
    meter_session_segment(a, 640, 480, S(3));
    meter_session_segment(b, 640, 480, S(4));
    meter_session_segment(c, 640, 480, S(5));
    CHECK(meter_session_checkpoint(a) == METER_OK && meter_session_checkpoint(b) == METER_OK &&
          meter_session_checkpoint(c) == METER_OK, "11: three checkpoints");
    int count = -1;
    CHECK_RC(st, meter_reap(st, &count), METER_OK, "11: reap while all are alive");
    CHECK_EQ_INT(count, 0, "11: live sessions are not reaped");

    /* Without a readable boot id the reaper cannot tell a reboot: then
     * only the pid-reuse half can run here. */
    int have_boot = access("/proc/sys/kernel/random/boot_id", R_OK) == 0;
    char stmt[512];
    if (have_boot) {
        snprintf(stmt, sizeof stmt, "UPDATE sessions SET boot_id = "
                 "'00000000-0000-4000-8000-000000000000' WHERE id = '%s'",
                 meter_session_id(a));
        CHECK_EQ_INT(sql_exec(db, stmt), SQLITE_OK, "11: a's row now says another boot");
    } else {
        tap_skip("11: no /proc/sys/kernel/random/boot_id: reboot case cannot run here");
    }
    snprintf(stmt, sizeof stmt, "UPDATE sessions SET proc_start = proc_start + 1"
             " WHERE id = '%s'", meter_session_id(b));
    CHECK_EQ_INT(sql_exec(db, stmt), SQLITE_OK, "11: b's row now says another process");

    count = -1;
    CHECK_RC(st, meter_reap(st, &count), METER_OK, "11: reap");
    CHECK_EQ_INT(count, 1 + have_boot, "11: a (rebooted) and b (pid reused) reaped, c kept");
    meter_session_row r;
    if (have_boot && session_of(st, "J5", "boot", &r))
        CHECK_EQ_STR(r.status, "interrupted", "11: a interrupted");
    if (session_of(st, "J5", "pid", &r))
        CHECK_EQ_STR(r.status, "interrupted", "11: b interrupted");
    if (session_of(st, "J5", "live", &r))
        CHECK_EQ_STR(r.status, "running", "11: c still running");
    if (have_boot)
        CHECK_EQ_INT(meter_session_checkpoint(a), METER_EFINALIZED,
                     "11: a's owner told at its checkpoint: finalized elsewhere");
    CHECK_EQ_INT(meter_session_finalize(b, 0, NULL), METER_EFINALIZED,
                 "11: b's finalize bills nothing");
    CHECK_EQ_INT(meter_session_finalize(c, 0, NULL), METER_OK, "11: c finalized");
    meter_session_finalize(a, 0, NULL);
    meter_session_close(a);
    meter_session_close(b);
    meter_session_close(c);
    size_t n = 0;
    CHECK_EQ_I64(billed_of(st, "J5", "boot", &n), S(3), "11: a billed once (3 s SD)");
    CHECK_EQ_I64(billed_of(st, "J5", "pid", &n), S(4), "11: b billed once (4 s SD)");
    CHECK_EQ_I64(billed_of(st, "J5", "live", &n), S(5), "11: c billed once (5 s SD)");
    CHECK_VERIFY(st, "11: verify");
    meter_close(st);
}

int main(void)
{
    DIR_ = tap_tmpdir("test_review_reap");
    signal(SIGPIPE, SIG_IGN);
    unsetenv("METER_JOB");
    unsetenv("METER_SPOOL");
    reap_from_spool();
    idempotent();
    unbillable();
    late_daily();
    late_realtime();
    liveness();
    return done_testing();
}
