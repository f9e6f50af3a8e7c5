/*
 * bench_record.c — libmeter throughput and latency figures.
 *
 * Prints figures; never passes or fails on time (exit status is non-zero
 * only when a libmeter call fails, i.e. the figures would be meaningless).
 *
 *   1. meter_record(): records/s and p50/p99 latency per record, single
 *      process, for several pack counts (0 = every record is overage);
 *   2. meter_record() from P forked processes against one WAL database;
 *   3. a session's life: open, F × segment, checkpoint, finalize, close;
 *   4. meter_session_segment() per frame, over ~10^7 calls.
 *
 * Databases go in a fresh directory under $BENCH_TMP (else $TMPDIR, else
 * /tmp), removed at the end unless -K is given.  Only meter.h is used: the
 * figures are what a caller of the public API gets.
 */
#include "meter.h"

#include <errno.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* One usage record: 60 s of 1280x720 H.264 (Standard.H264.HD). */
#define REC_WIDTH    1280
#define REC_HEIGHT   720
#define REC_DUR_US   INT64_C(60000000)
#define FRAME_US     INT64_C(33333)   /* ~30 fps */
/* Packs large enough that no run exhausts them (10^7 is the maximum). */
#define PACK_MINUTES INT64_C(1000000)

struct opts {
    long records;          /* -n: records per meter_record run */
    char packs[64];        /* -k: pack counts, comma-separated */
    char procs[64];        /* -p: process counts, comma-separated */
    long sessions;         /* -s: sessions in the lifecycle run */
    long frames;           /* -f: segment calls per lifecycle session */
    long calls;            /* -c: segment calls in the per-frame run */
    int keep;              /* -K: keep the temp directory */
};

static char g_dir[4096];
static int g_failed;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static int64_t pct(const int64_t *v, size_t n, int p)
{
    if (n == 0)
        return 0;
    size_t i = (n * (size_t)p + 99) / 100;
    return v[i ? i - 1 : 0];
}

static double us(int64_t ns) { return (double)ns / 1000.0; }

static void fail(const char *what, int rc, const char *msg)
{
    fprintf(stderr, "bench_record: %s: %s (%s)\n", what, meter_strerror(rc), msg ? msg : "");
    g_failed = 1;
}

/* A fresh database with `packs` general packs. */
static int make_db(const char *name, int packs, char *path, size_t pathsz)
{
    char err[METER_ERRMAX] = "";
    meter_store *st;
    snprintf(path, pathsz, "%s/%s.db", g_dir, name);
    int rc = meter_open(path, METER_OPEN_CREATE, &st, err);
    if (rc) {
        fail("meter_open", rc, err);
        return rc;
    }
    for (int i = 0; i < packs && rc == METER_OK; i++) {
        char id[32];
        snprintf(id, sizeof id, "pk-bench-%04d", i);
        rc = meter_pack_add(st, id, METER_CLASS_GENERAL, PACK_MINUTES, 0, NULL);
        if (rc)
            fail("meter_pack_add", rc, meter_errmsg(st));
    }
    meter_close(st);
    return rc;
}

/* Records n usages, one latency (ns) per record into lat; a failed record
 * stores -1.  Returns the number of failures. */
static long record_loop(meter_store *st, const char *tag, long n, int64_t *lat)
{
    long errors = 0;
    char job[64];
    meter_usage_in in = {
        .job = job, .output = "720p", .cls = METER_CLASS_GENERAL, .codec = "h264",
        .width = REC_WIDTH, .height = REC_HEIGHT, .duration_us = REC_DUR_US, .at = 0,
    };
    for (long i = 0; i < n; i++) {
        snprintf(job, sizeof job, "bench-%s-%ld", tag, i);
        int64_t t0 = now_ns();
        int rc = meter_record(st, &in, NULL);
        int64_t t1 = now_ns();
        if (rc) {
            if (errors++ == 0)
                fprintf(stderr, "bench_record: meter_record (%s): %s\n", tag, meter_errmsg(st));
            lat[i] = -1;
        } else {
            lat[i] = t1 - t0;
        }
    }
    return errors;
}

/* Drops failed entries (-1), sorts, prints one row. */
static void print_row(const char *label, int64_t *lat, long n, int64_t wall_ns, long errors)
{
    long ok = 0;
    for (long i = 0; i < n; i++)
        if (lat[i] >= 0)
            lat[ok++] = lat[i];
    qsort(lat, (size_t)ok, sizeof *lat, cmp_i64);
    printf("  %-12s %8ld %12.0f %10.1f %10.1f %10.1f %7ld\n", label, ok,
           wall_ns > 0 ? (double)ok * 1e9 / (double)wall_ns : 0.0,
           us(pct(lat, (size_t)ok, 50)), us(pct(lat, (size_t)ok, 99)),
           ok ? us(lat[ok - 1]) : 0.0, errors);
}

static void header(const char *first)
{
    printf("  %-12s %8s %12s %10s %10s %10s %7s\n", first, "records", "records/s",
           "p50 us", "p99 us", "max us", "errors");
}

/* ---------------------------------------------------------------- 1 -- */
static void bench_record_single(const struct opts *o)
{
    printf("\n[1] meter_record(), one process: %ld records of 60 s 1280x720 h264 "
           "(realtime deduction; 0 packs = all overage)\n", o->records);
    header("packs");
    int64_t *lat = malloc(sizeof *lat * (size_t)o->records);
    if (!lat) {
        fail("malloc", METER_ENOMEM, NULL);
        return;
    }
    char list[64];
    snprintf(list, sizeof list, "%s", o->packs);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        int packs = atoi(tok);
        char name[32], path[4200], err[METER_ERRMAX] = "";
        meter_store *st;
        snprintf(name, sizeof name, "record-k%d", packs);
        if (make_db(name, packs, path, sizeof path))
            continue;
        int rc = meter_open(path, 0, &st, err);
        if (rc) {
            fail("meter_open", rc, err);
            continue;
        }
        int64_t t0 = now_ns();
        long errors = record_loop(st, name, o->records, lat);
        int64_t wall = now_ns() - t0;
        meter_close(st);
        if (errors)
            g_failed = 1;
        char label[16];
        snprintf(label, sizeof label, "%d", packs);
        print_row(label, lat, o->records, wall, errors);
    }
    free(lat);
}

/* ---------------------------------------------------------------- 2 -- */
/* Each child opens its own store (not timed), says it is ready, waits for
 * the start (EOF on a pipe), records its share and exits.  Latencies go to
 * a shared anonymous mapping.  No SQLite connection crosses the fork. */
static void run_procs(const char *path, int procs, long total, int64_t *lat)
{
    long share = total / procs, rem = total % procs;
    int ready[2], go[2];
    pid_t pid[64];
    long errors = 0;
    int started = 0;

    memset(lat, 0xff, sizeof *lat * (size_t)total);   /* -1: not recorded */
    if (pipe(ready) || pipe(go)) {
        fail("pipe", METER_EIO, strerror(errno));
        return;
    }
    for (int c = 0; c < procs; c++) {
        fflush(stdout);
        pid[c] = fork();
        if (pid[c] < 0) {
            fail("fork", METER_EIO, strerror(errno));
            break;
        }
        if (pid[c] == 0) {
            char err[METER_ERRMAX] = "", tag[32], b;
            meter_store *st;
            close(ready[0]);
            close(go[1]);
            int rc = meter_open(path, 0, &st, err);
            if (rc)
                fprintf(stderr, "bench_record: child meter_open: %s\n", err);
            if (write(ready[1], "r", 1) != 1)
                _exit(3);
            while (read(go[0], &b, 1) > 0)
                ;
            if (rc)
                _exit(2);
            /* child c records share (+1 for the first rem children) */
            long n = share + (c < rem), first = c * share + (c < rem ? c : rem);
            snprintf(tag, sizeof tag, "p%d-c%d", procs, c);
            long e = record_loop(st, tag, n, lat + first);
            meter_close(st);
            _exit(e ? 1 : 0);
        }
        started++;
    }
    close(ready[1]);
    close(go[0]);
    for (int c = 0; c < started; c++) {
        char b;
        if (read(ready[0], &b, 1) != 1)
            break;
    }
    int64_t t0 = now_ns();
    close(go[1]);                       /* start */
    for (int c = 0; c < started; c++) {
        int status;
        waitpid(pid[c], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            g_failed = 1;
    }
    int64_t wall = now_ns() - t0;
    close(ready[0]);
    long n = started * share + (started < rem ? started : rem);
    for (long i = 0; i < n; i++)
        if (lat[i] < 0)
            errors++;
    char label[16];
    snprintf(label, sizeof label, "%d", procs);
    print_row(label, lat, n, wall, errors);
}

static void bench_record_procs(const struct opts *o)
{
    printf("\n[2] meter_record(), P processes on one WAL database, 1 pack: "
           "%ld records in all, split evenly; records/s = all records / wall time\n",
           o->records);
    header("processes");
    size_t bytes = sizeof(int64_t) * (size_t)o->records;
    int64_t *lat = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (lat == MAP_FAILED) {
        fail("mmap", METER_ENOMEM, strerror(errno));
        return;
    }
    char list[64];
    snprintf(list, sizeof list, "%s", o->procs);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        int procs = atoi(tok);
        if (procs < 1 || procs > 64)
            continue;
        char name[32], path[4200];
        snprintf(name, sizeof name, "procs-p%d", procs);
        if (make_db(name, 1, path, sizeof path))
            continue;
        run_procs(path, procs, o->records, lat);
    }
    munmap(lat, bytes);
}

/* ---------------------------------------------------------------- 3 -- */
enum { PH_OPEN, PH_SEG, PH_CKPT, PH_FIN, PH_CLOSE, PH_TOTAL, PH_N };
static const char *const ph_name[PH_N] = {
    "open", "segment x F", "checkpoint", "finalize", "close", "total",
};

static void bench_sessions(const struct opts *o)
{
    printf("\n[3] session life, one process, 1 pack: %ld sessions, each open + %ld x segment "
           "(1280x720, 30 fps) + checkpoint + finalize + close; flags SPOOL (the filter's default)\n",
           o->sessions, o->frames);
    char path[4200], spool[4200];
    if (make_db("sessions", 1, path, sizeof path))
        return;
    snprintf(spool, sizeof spool, "%s/sessions.spool", g_dir);
    int64_t *t[PH_N];
    for (int p = 0; p < PH_N; p++)
        if (!(t[p] = calloc((size_t)o->sessions, sizeof **t))) {
            fail("malloc", METER_ENOMEM, NULL);
            return;
        }
    long done = 0;
    int64_t wall0 = now_ns();
    for (long i = 0; i < o->sessions; i++) {
        char job[64], err[METER_ERRMAX] = "";
        meter_session *s;
        meter_session_opts so = {
            .db = path, .job = job, .output = "720p", .cls = METER_CLASS_GENERAL,
            .codec = "h264", .flags = METER_SESSION_SPOOL, .spool_dir = spool,
        };
        snprintf(job, sizeof job, "bench-sess-%ld", i);
        int64_t a = now_ns();
        int rc = meter_session_open(&so, &s, err);
        int64_t b = now_ns();
        if (rc) {
            fail("meter_session_open", rc, err);
            break;
        }
        for (long f = 1; f <= o->frames; f++)
            rc |= meter_session_segment(s, REC_WIDTH, REC_HEIGHT, f * FRAME_US);
        int64_t c = now_ns();
        if (rc)
            fail("meter_session_segment", rc, meter_session_errmsg(s));
        rc = meter_session_checkpoint(s);
        int64_t d = now_ns();
        if (rc)
            fail("meter_session_checkpoint", rc, meter_session_errmsg(s));
        meter_session_summary sum;
        rc = meter_session_finalize(s, 0, &sum);
        int64_t e = now_ns();
        if (rc)
            fail("meter_session_finalize", rc, meter_session_errmsg(s));
        else if (sum.spooled)
            fprintf(stderr, "bench_record: session %ld went to the spool file\n", i);
        meter_session_close(s);
        int64_t f = now_ns();
        t[PH_OPEN][i] = b - a;
        t[PH_SEG][i] = c - b;
        t[PH_CKPT][i] = d - c;
        t[PH_FIN][i] = e - d;
        t[PH_CLOSE][i] = f - e;
        t[PH_TOTAL][i] = f - a;
        done++;
    }
    int64_t wall = now_ns() - wall0;
    printf("  %-14s %10s %10s %10s %10s\n", "phase", "mean us", "p50 us", "p99 us", "max us");
    for (int p = 0; p < PH_N; p++) {
        int64_t sum = 0;
        for (long i = 0; i < done; i++)
            sum += t[p][i];
        qsort(t[p], (size_t)done, sizeof *t[p], cmp_i64);
        printf("  %-14s %10.1f %10.1f %10.1f %10.1f\n", ph_name[p],
               done ? us(sum) / (double)done : 0.0, us(pct(t[p], (size_t)done, 50)),
               us(pct(t[p], (size_t)done, 99)), done ? us(t[p][done - 1]) : 0.0);
        free(t[p]);
    }
    if (done)
        printf("  => %.0f sessions/s (one after another)\n", (double)done * 1e9 / (double)wall);
}

/* ---------------------------------------------------------------- 4 -- */
/* One long session; calls segment() `calls` times with a growing duration
 * and one size (the per-frame path), timed as a whole loop so the clock's
 * own cost is not in the figure.  Also the same with ENFORCE, which
 * compares the running estimate with the balance on every frame. */

static int segment_run(const char *path, const char *spool, unsigned flags, long calls,
                       double *ns_per_call)
{
    char err[METER_ERRMAX] = "";
    meter_session *s;
    meter_session_opts so = {
        .db = path, .job = flags & METER_SESSION_ENFORCE ? "bench-seg-enforce" : "bench-seg",
        .output = "720p", .cls = METER_CLASS_GENERAL, .codec = "h264",
        .flags = flags, .spool_dir = spool,
    };
    int rc = meter_session_open(&so, &s, err);
    if (rc) {
        fail("meter_session_open", rc, err);
        return rc;
    }
    /* One warm-up call opens the segment (the first call allocates). */
    rc = meter_session_segment(s, REC_WIDTH, REC_HEIGHT, FRAME_US);
    int acc = 0;
    int64_t t0 = now_ns();
    for (long i = 2; i <= calls + 1; i++)
        acc |= meter_session_segment(s, REC_WIDTH, REC_HEIGHT, i * FRAME_US);
    int64_t t1 = now_ns();
    rc |= acc;
    if (rc)
        fail("meter_session_segment", rc, meter_session_errmsg(s));
    *ns_per_call = (double)(t1 - t0) / (double)calls;
    meter_session_summary sum;
    int frc = meter_session_finalize(s, 0, &sum);
    if (frc)
        fail("meter_session_finalize", frc, meter_session_errmsg(s));
    meter_session_close(s);
    return rc | frc;
}

static void bench_segment(const struct opts *o)
{
    printf("\n[4] meter_session_segment() per frame: %ld calls, one size (1280x720), "
           "whole loop timed\n", o->calls);
    char path[4200], spool[4200];
    if (make_db("segment", 1, path, sizeof path))
        return;
    snprintf(spool, sizeof spool, "%s/segment.spool", g_dir);
    printf("  %-22s %10s %14s\n", "session flags", "ns/call", "calls/s");
    static const struct { const char *name; unsigned flags; } runs[] = {
        { "SPOOL", METER_SESSION_SPOOL },
        { "SPOOL|ENFORCE", METER_SESSION_SPOOL | METER_SESSION_ENFORCE },
    };
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        double ns;
        if (segment_run(path, spool, runs[r].flags, o->calls, &ns) == METER_OK)
            printf("  %-22s %10.2f %14.0f\n", runs[r].name, ns, 1e9 / ns);
    }
}

/* --------------------------------------------------------------- main -- */
static int rm_entry(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb; (void)type; (void)ftw;
    return remove(p);
}

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: bench_record [-n RECORDS] [-k PACKS,..] [-p PROCS,..] [-s SESSIONS]\n"
        "                    [-f FRAMES] [-c CALLS] [-q] [-K] [-h]\n"
        "  -n N     records per meter_record run            [2000]\n"
        "  -k LIST  pack counts for the one-process run      [0,1,100]\n"
        "  -p LIST  process counts for the multi-process run [1,2,4,8]\n"
        "  -s N     sessions in the session-life run         [200]\n"
        "  -f N     segment calls per session there          [300 = 10 s at 30 fps]\n"
        "  -c N     segment calls in the per-frame run       [10000000]\n"
        "  -q       quick: -n 200 -s 20 -c 1000000 (a smoke run)\n"
        "  -K       keep the temporary directory\n"
        "Databases go in a new directory under $BENCH_TMP (else $TMPDIR, else /tmp).\n"
        "Prints figures only; exits 1 only if a libmeter call failed.\n");
}

int main(int argc, char **argv)
{
    struct opts o = { .records = 2000, .packs = "0,1,100", .procs = "1,2,4,8",
                      .sessions = 200, .frames = 300, .calls = 10000000, .keep = 0 };
    int ch;
    while ((ch = getopt(argc, argv, "n:k:p:s:f:c:qKh")) != -1) {
        switch (ch) {
        case 'n': o.records = atol(optarg); break;
        case 'k': snprintf(o.packs, sizeof o.packs, "%s", optarg); break;
        case 'p': snprintf(o.procs, sizeof o.procs, "%s", optarg); break;
        case 's': o.sessions = atol(optarg); break;
        case 'f': o.frames = atol(optarg); break;
        case 'c': o.calls = atol(optarg); break;
        case 'q': o.records = 200; o.sessions = 20; o.calls = 1000000; break;
        case 'K': o.keep = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (o.records < 1 || o.sessions < 1 || o.frames < 1 || o.calls < 1) {
        usage(stderr);
        return 2;
    }

    const char *base = getenv("BENCH_TMP");
    if (!base || !*base)
        base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/bench_record.XXXXXX", base);
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "bench_record: mkdtemp %s: %s\n", g_dir, strerror(errno));
        return 1;
    }

    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    double load[3] = { 0, 0, 0 };
    getloadavg(load, 3);
    printf("bench_record: libmeter %s, SQLite %s, %ld CPUs, load average %.2f %.2f %.2f\n",
           METER_VERSION_STRING, sqlite3_libversion(), cpus, load[0], load[1], load[2]);
    printf("bench_record: databases in %s (each write is a transaction: on a disk, "
           "meter_record() waits for fsync)\n", g_dir);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
    printf("bench_record: NOTE built with sanitizers: figures are not representative\n");
#endif
    if (getenv("METER_NOW"))
        printf("bench_record: NOTE METER_NOW is set: every record gets the same time\n");

    bench_record_single(&o);
    bench_record_procs(&o);
    bench_sessions(&o);
    bench_segment(&o);

    if (!o.keep)
        nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else
        printf("\nkept %s\n", g_dir);
    return g_failed ? 1 : 0;
}
