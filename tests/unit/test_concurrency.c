/*
 * test_concurrency — many writers on one database file.
 *
 * 8 real processes (fork; each opens its own store after the fork) record
 * 200 usages each at the same moment while the packs run out part-way
 * through.  Afterwards: exactly 1600 records, Σ billed equal to the sum
 * worked out here, every pack at exactly zero (never below), Σ covered equal
 * to what the packs held, Σ covered + Σ overage = Σ billed, unique record
 * ids, and meter_verify clean.  Then two threads of one process, each with
 * its own session, meter two outputs at once.
 */
#include <pthread.h>
#include <sys/wait.h>

#include "mtest.h"

#define NPROC 8
#define NREC 200

/* What record j of process i is, and what it bills (billing-rules.md §3). */
typedef struct kind {
    meter_class cls;
    const char *codec;
    int w, h;
    int64_t dur, billed;
} kind;

static kind kind_of(int i, int j)
{
    static const kind k[4] = {
        { METER_CLASS_GENERAL, "h264", 640, 480, 1000000, 1000000 },  /* ×1 */
        { METER_CLASS_GENERAL, "libx264", 1280, 720, 1000000, 2000000 },
        { METER_CLASS_GENERAL, "aac", 0, 0, 2000000, 500000 },       /* ×1/4 */
        { METER_CLASS_TSC, "h264", 854, 480, 1000000, 1000000 },
    };
    return k[(i + j) % 4];
}

static int child(const char *path, int i, int go_fd)
{
    char b;
    if (read(go_fd, &b, 1) < 0)   /* returns 0 once the parent closes it */
        return 2;
    close(go_fd);
    meter_store *st = NULL;
    char err[METER_ERRMAX] = "";
    if (meter_open(path, 0, &st, err) != METER_OK) {
        fprintf(stderr, "child %d: open: %s\n", i, err);
        return 3;
    }
    char job[32];
    snprintf(job, sizeof job, "proc-%d", i);
    for (int j = 0; j < NREC; ++j) {
        kind k = kind_of(i, j);
        meter_usage_in in = mt_in(job, "o", k.cls, k.codec, k.w, k.h, k.dur);
        meter_usage_result r;
        int rc = meter_record(st, &in, &r);
        if (rc != METER_OK) {
            fprintf(stderr, "child %d record %d: %d %s\n", i, j, rc,
                    meter_errmsg(st));
            meter_close(st);
            return 4;
        }
        if (r.billed_us != k.billed || r.covered_us + r.overage_us != k.billed) {
            fprintf(stderr, "child %d record %d: billed %" PRId64 " covered %"
                    PRId64 " overage %" PRId64 "\n", i, j, r.billed_us,
                    r.covered_us, r.overage_us);
            meter_close(st);
            return 5;
        }
    }
    meter_close(st);
    return 0;
}

static int idcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void processes(const char *path)
{
    meter_store *st = mt_open(path);
    /* 15 general minutes and 2 TSC minutes: far less than the demand */
    mt_add_pack(st, "c1", METER_CLASS_GENERAL, 5, tap_utc(2026, 1, 1, 0, 0, 0));
    mt_add_pack(st, "c2", METER_CLASS_GENERAL, 5, tap_utc(2026, 2, 1, 0, 0, 0));
    mt_add_pack(st, "c3", METER_CLASS_GENERAL, 5, tap_utc(2026, 3, 1, 0, 0, 0));
    mt_add_pack(st, "t1", METER_CLASS_TSC, 2, tap_utc(2026, 1, 1, 0, 0, 0));
    meter_close(st);   /* no SQLite connection may cross a fork */

    int64_t want_billed = 0, want_general = 0, want_tsc = 0;
    for (int i = 0; i < NPROC; ++i)
        for (int j = 0; j < NREC; ++j) {
            kind k = kind_of(i, j);
            want_billed += k.billed;
            if (k.cls == METER_CLASS_GENERAL)
                want_general += k.billed;
            else
                want_tsc += k.billed;
        }
    CHECK(want_general > 15 * US_PER_MIN && want_tsc > 2 * US_PER_MIN,
          "fixture: demand exceeds the packs (%" PRId64 " / %" PRId64 " us)",
          want_general, want_tsc);

    int go[2];
    if (pipe(go) != 0)
        BAIL("pipe");
    fflush(stdout);
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; ++i) {
        pids[i] = fork();
        if (pids[i] < 0)
            BAIL("fork");
        if (pids[i] == 0) {
            close(go[1]);
            _exit(child(path, i, go[0]));
        }
    }
    close(go[0]);
    close(go[1]);   /* all children start now */
    int all_ok = 1;
    for (int i = 0; i < NPROC; ++i) {
        int status = 0;
        waitpid(pids[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            all_ok = 0;
            tap_diag("child %d: status %d", i,
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
    }
    CHECK(all_ok, "%d processes recorded %d usages each without an error",
          NPROC, NREC);

    st = mt_open(path);
    mt_sums s;
    if (mt_job_sums(st, NULL, &s) == METER_OK) {
        CHECK_EQ_I64(s.n, NPROC * NREC, "record count exact");
        CHECK_EQ_I64(s.billed, want_billed, "Σ billed exact");
        CHECK_EQ_I64(s.covered, 17 * US_PER_MIN,
                     "Σ covered = the 17 minutes the packs held");
        CHECK_EQ_I64(s.covered + s.overage, s.billed,
                     "Σ covered + Σ overage = Σ billed");
        CHECK_EQ_I64(s.unbalanced, 0, "per record covered + overage = billed");
    }
    for (int i = 0; i < NPROC; ++i) {
        char job[32];
        snprintf(job, sizeof job, "proc-%d", i);
        meter_query q = mt_query_all();
        q.job = job;
        mt_sums js;
        if (mt_job_sums(st, &q, &js) == METER_OK && js.n != NREC)
            FAIL("%s: %" PRId64 " records", job, js.n);
    }
    PASS("per process record counts checked");
    static const char *const packs[] = { "c1", "c2", "c3", "t1" };
    for (int i = 0; i < 4; ++i) {
        meter_pack p = mt_pack(st, packs[i]);
        CHECK_EQ_I64(p.remaining_us, 0, "pack %s exactly used up", packs[i]);
        CHECK_EQ_I64(mt_details_used(st, packs[i], NULL), p.total_us,
                     "pack %s: details sum = total", packs[i]);
    }

    meter_query q = mt_query_all();
    meter_job_row *rows = NULL;
    size_t n = 0;
    if (meter_jobs(st, &q, &rows, &n) == METER_OK) {
        char **v = malloc((n ? n : 1) * sizeof *v);
        for (size_t i = 0; i < n; ++i)
            v[i] = rows[i].id;
        qsort(v, n, sizeof *v, idcmp);
        size_t dup = 0;
        for (size_t i = 1; i < n; ++i)
            dup += strcmp(v[i - 1], v[i]) == 0;
        CHECK_EQ_I64(dup, 0, "record ids unique");
        free(v);
        meter_free(rows);
    }
    CHECK_VERIFY(st, "verify after concurrent writers");
    meter_close(st);
}

/* ------------------------------------------------------------ threads -- */

typedef struct thr {
    const char *path;
    int idx;
    int rc;
    char err[METER_ERRMAX];
    meter_session_summary sum;
} thr;

static void *thread_main(void *arg)
{
    thr *t = arg;
    meter_session_opts o;
    char job[32];
    memset(&o, 0, sizeof o);
    snprintf(job, sizeof job, "thr-%d", t->idx);
    o.db = t->path;
    o.job = job;
    o.output = "o";
    o.cls = METER_CLASS_GENERAL;
    o.codec = "h264";
    meter_session *s = NULL;
    t->rc = meter_session_open(&o, &s, t->err);
    if (t->rc != METER_OK)
        return NULL;
    /* 1280x720 for 10 s in 100 ms steps, checkpointing every second */
    for (int k = 1; k <= 100 && t->rc == METER_OK; ++k) {
        t->rc = meter_session_segment(s, 1280, 720, k * INT64_C(100000));
        if (t->rc == METER_OK && k % 10 == 0)
            t->rc = meter_session_checkpoint(s);
    }
    if (t->rc == METER_OK)
        t->rc = meter_session_finalize(s, 0, &t->sum);
    if (t->rc != METER_OK)
        snprintf(t->err, sizeof t->err, "%s", meter_session_errmsg(s));
    meter_session_close(s);
    return NULL;
}

static void threads(const char *path)
{
    thr t[2];
    pthread_t th[2];
    memset(t, 0, sizeof t);
    for (int i = 0; i < 2; ++i) {
        t[i].path = path;
        t[i].idx = i;
        if (pthread_create(&th[i], NULL, thread_main, &t[i]) != 0)
            BAIL("pthread_create");
    }
    for (int i = 0; i < 2; ++i)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; ++i) {
        CHECK_RC_ERR(t[i].err, t[i].rc, METER_OK, "thread %d session", i);
        CHECK_EQ_I64(t[i].sum.duration_us, 10 * US_PER_S,
                     "thread %d: 10 s metered", i);
        CHECK_EQ_I64(t[i].sum.billed_us, 20 * US_PER_S,
                     "thread %d: billed 20 s (HD ×2)", i);
        CHECK_EQ_INT(t[i].sum.segments, 1, "thread %d: one segment", i);
    }
    meter_store *st = mt_open(path);
    for (int i = 0; i < 2; ++i) {
        char job[32];
        snprintf(job, sizeof job, "thr-%d", i);
        meter_query q = mt_query_all();
        q.job = job;
        mt_sums s;
        if (mt_job_sums(st, &q, &s) == METER_OK) {
            CHECK_EQ_I64(s.n, 1, "%s: one record", job);
            CHECK_EQ_I64(s.duration, 10 * US_PER_S, "%s: duration", job);
            CHECK_EQ_I64(s.billed, 20 * US_PER_S, "%s: billed", job);
        }
    }
    CHECK_VERIFY(st, "verify after threads");
    meter_close(st);
}

int main(void)
{
    const char *dir = tap_tmpdir("test_concurrency");
    const char *path = tap_path(dir, "conc.db");
    tap_set_now("2026-06-15T12:00:00Z");
    processes(path);
    threads(path);
    return done_testing();
}
