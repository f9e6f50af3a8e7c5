/*
 * faultvfs.c — an LD_PRELOAD shim that makes SQLite's writes fail on cue,
 * for the fault tests (tests/faults/): a disk that fills up, an I/O error,
 * a slow disk.  Not part of any shipped program.
 *
 * Loaded into a process that uses the system's libsqlite3 (meterctl,
 * ffmpeg with the filters, meter-ledgerd), its constructor registers a VFS
 * "faultvfs" as the default.  It wraps the real default VFS ("unix") and
 * forwards everything; it only counts the write operations on matching
 * files and fails the chosen ones.  Settings, from the environment:
 *
 *   FAULTVFS_MATCH    count only files whose path contains this text
 *                     (default: every file SQLite opens)
 *   FAULTVFS_OPS      which operations count, a comma list of write, sync,
 *                     truncate (default: write)
 *   FAULTVFS_FAIL_AT  the Nth counted operation fails (1 is the first; 0 or
 *                     unset: none fails)
 *   FAULTVFS_FAILS    how many counted operations fail from the Nth on, or
 *                     "all": a disk that stays full (default 1)
 *   FAULTVFS_ERROR    full: a failing write answers SQLITE_FULL (default);
 *                     ioerr: SQLITE_IOERR_WRITE.  A failing sync answers
 *                     SQLITE_IOERR_FSYNC, a truncate SQLITE_IOERR_TRUNCATE.
 *   FAULTVFS_SYNC_DELAY_MS
 *                     every sync of a matching file first sleeps this long
 *                     (a slow disk: widens the moment a commit is in flight)
 *   FAULTVFS_LOG      a file that gets two lines per counted operation,
 *                     "PID N OP FILE begin" before and "PID N OP FILE ok|FAIL"
 *                     after it (each one write(2) with O_APPEND, so several
 *                     processes can share the file); FILE is the base name
 *   FAULTVFS_CONTROL  a file that holds the FAIL_AT, FAILS, ERROR and OPS
 *                     settings instead, as FAULTVFS_KEY=VALUE lines, for a
 *                     process that runs on (the ledger): it is read again
 *                     whenever it changes, and the count restarts then.  No
 *                     such file: nothing fails.
 *
 * The count is per process.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { OP_WRITE = 1, OP_SYNC = 2, OP_TRUNCATE = 4 };

struct settings {
    unsigned ops;
    long long fail_at;
    long long fails;    /* -1: all from fail_at on */
    int full;
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct settings cur;
static long long counted;
static const char *match, *control, *logpath;
static long sync_delay_ms;
static struct stat control_seen;
static int control_present;

/* A file: our header, then the real VFS's file object. */
struct fault_file {
    sqlite3_file base;
    int counts;          /* matches FAULTVFS_MATCH */
    const char *name;    /* base name, for the log */
    sqlite3_file *real;  /* points just past this struct */
};

static void parse_setting(struct settings *s, const char *key, const char *val)
{
    if (!strcmp(key, "FAULTVFS_FAIL_AT"))
        s->fail_at = strtoll(val, NULL, 10);
    else if (!strcmp(key, "FAULTVFS_FAILS"))
        s->fails = !strcmp(val, "all") ? -1 : strtoll(val, NULL, 10);
    else if (!strcmp(key, "FAULTVFS_ERROR"))
        s->full = strcmp(val, "ioerr") != 0;
    else if (!strcmp(key, "FAULTVFS_OPS")) {
        s->ops = 0;
        if (strstr(val, "write"))
            s->ops |= OP_WRITE;
        if (strstr(val, "sync"))
            s->ops |= OP_SYNC;
        if (strstr(val, "truncate"))
            s->ops |= OP_TRUNCATE;
    }
}

static void defaults(struct settings *s)
{
    s->ops = OP_WRITE;
    s->fail_at = 0;
    s->fails = 1;
    s->full = 1;
}

/* FAULTVFS_CONTROL changed (or appeared, or went): read it again and
 * restart the count.  With the lock held. */
static void reload_control(void)
{
    struct stat sb;
    int present = stat(control, &sb) == 0;
    if (present == control_present &&
        (!present || (sb.st_ino == control_seen.st_ino && sb.st_size == control_seen.st_size &&
                      sb.st_mtim.tv_sec == control_seen.st_mtim.tv_sec &&
                      sb.st_mtim.tv_nsec == control_seen.st_mtim.tv_nsec)))
        return;
    control_present = present;
    control_seen = sb;
    defaults(&cur);
    counted = 0;
    FILE *f = present ? fopen(control, "r") : NULL;
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            parse_setting(&cur, line, eq + 1);
        }
    }
    fclose(f);
}

static void log_line(long long n, const char *op, const char *name, const char *what)
{
    if (!logpath)
        return;
    char buf[512];
    int len = snprintf(buf, sizeof buf, "%d %lld %s %s %s\n", (int)getpid(), n, op, name, what);
    int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (len > 0 && write(fd, buf, (size_t)len) < 0)
        (void)0;  /* a log line lost is no reason to fail the write */
    close(fd);
}

/* Counts an operation: its number (0: not counted), and in *fail the
 * SQLite error it must answer instead of running (0: run it). */
static long long count_op(const struct fault_file *f, unsigned op, int *fail)
{
    *fail = 0;
    if (!f->counts)
        return 0;
    pthread_mutex_lock(&lock);
    if (control)
        reload_control();
    long long n = 0;
    if (cur.ops & op) {
        n = ++counted;
        if (cur.fail_at > 0 && n >= cur.fail_at &&
            (cur.fails < 0 || n < cur.fail_at + cur.fails))
            *fail = op == OP_SYNC ? SQLITE_IOERR_FSYNC
                  : op == OP_TRUNCATE ? SQLITE_IOERR_TRUNCATE
                  : cur.full ? SQLITE_FULL : SQLITE_IOERR_WRITE;
    }
    pthread_mutex_unlock(&lock);
    return n;
}

/* ------------------------------------------------------------ io methods -- */

static int f_close(sqlite3_file *p)
{
    struct fault_file *f = (struct fault_file *)p;
    return f->real->pMethods->xClose(f->real);
}

static int f_read(sqlite3_file *p, void *buf, int amt, sqlite3_int64 off)
{
    struct fault_file *f = (struct fault_file *)p;
    return f->real->pMethods->xRead(f->real, buf, amt, off);
}

static int f_write(sqlite3_file *p, const void *buf, int amt, sqlite3_int64 off)
{
    struct fault_file *f = (struct fault_file *)p;
    int fail;
    long long n = count_op(f, OP_WRITE, &fail);
    if (n)
        log_line(n, "write", f->name, "begin");
    int rc = fail ? fail : f->real->pMethods->xWrite(f->real, buf, amt, off);
    if (n)
        log_line(n, "write", f->name, fail ? "FAIL" : "ok");
    return rc;
}

static int f_truncate(sqlite3_file *p, sqlite3_int64 size)
{
    struct fault_file *f = (struct fault_file *)p;
    int fail;
    long long n = count_op(f, OP_TRUNCATE, &fail);
    if (n)
        log_line(n, "truncate", f->name, "begin");
    int rc = fail ? fail : f->real->pMethods->xTruncate(f->real, size);
    if (n)
        log_line(n, "truncate", f->name, fail ? "FAIL" : "ok");
    return rc;
}

static int f_sync(sqlite3_file *p, int flags)
{
    struct fault_file *f = (struct fault_file *)p;
    int fail;
    long long n = count_op(f, OP_SYNC, &fail);
    if (n)
        log_line(n, "sync", f->name, "begin");
    if (f->counts && sync_delay_ms > 0) {
        struct timespec ts = { sync_delay_ms / 1000, (sync_delay_ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    int rc = fail ? fail : f->real->pMethods->xSync(f->real, flags);
    if (n)
        log_line(n, "sync", f->name, fail ? "FAIL" : "ok");
    return rc;
}

static int f_file_size(sqlite3_file *p, sqlite3_int64 *size)
{
    struct fault_file *f = (struct fault_file *)p;
    return f->real->pMethods->xFileSize(f->real, size);
}

static int f_lock(sqlite3_file *p, int l)
{
    struct fault_file *f = (struct fault_file *)p;
    return f->real->pMethods->xLock(f->real, l);
}

static int f_unlock(sqlite3_file *p, int l)
{
    struct fault_file *f = (struct fault_file *)p;
    return f->real->pMethods->xUnlock(f->real, l);
}

static int f_check_reserved(sqlite3_file *p, int *out)
{
    struct fault_file *f = (struct fault_file *)p;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int f_file_control(sqlite3_file *p, int op, void *arg)
{
    struct fault_file *f = (struct fault_file *)p;
    return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int f_sector_size(sqlite3_file *p)
{
    struct fault_file *f = (struct fault_file *)p;
    return f->real->pMethods->xSectorSize(f->real);
}

static int f_device_characteristics(sqlite3_file *p)
{
    struct fault_file *f = (struct fault_file *)p;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int f_shm_map(sqlite3_file *p, int pg, int pgsz, int extend, void volatile **pp)
{
    struct fault_file *f = (struct fault_file *)p;
    return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int f_shm_lock(sqlite3_file *p, int offset, int n, int flags)
{
    struct fault_file *f = (struct fault_file *)p;
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void f_shm_barrier(sqlite3_file *p)
{
    struct fault_file *f = (struct fault_file *)p;
    f->real->pMethods->xShmBarrier(f->real);
}

static int f_shm_unmap(sqlite3_file *p, int del)
{
    struct fault_file *f = (struct fault_file *)p;
    return f->real->pMethods->xShmUnmap(f->real, del);
}

static int f_fetch(sqlite3_file *p, sqlite3_int64 off, int amt, void **pp)
{
    struct fault_file *f = (struct fault_file *)p;
    return f->real->pMethods->xFetch(f->real, off, amt, pp);
}

static int f_unfetch(sqlite3_file *p, sqlite3_int64 off, void *ptr)
{
    struct fault_file *f = (struct fault_file *)p;
    return f->real->pMethods->xUnfetch(f->real, off, ptr);
}

/* Version 3 methods; a real file with an older table never gets the newer
 * calls (see f_open). */
static const sqlite3_io_methods fault_methods = {
    3, f_close, f_read, f_write, f_truncate, f_sync, f_file_size, f_lock, f_unlock,
    f_check_reserved, f_file_control, f_sector_size, f_device_characteristics,
    f_shm_map, f_shm_lock, f_shm_barrier, f_shm_unmap, f_fetch, f_unfetch,
};
static const sqlite3_io_methods fault_methods_v1 = {
    1, f_close, f_read, f_write, f_truncate, f_sync, f_file_size, f_lock, f_unlock,
    f_check_reserved, f_file_control, f_sector_size, f_device_characteristics,
    0, 0, 0, 0, 0, 0,
};
static const sqlite3_io_methods fault_methods_v2 = {
    2, f_close, f_read, f_write, f_truncate, f_sync, f_file_size, f_lock, f_unlock,
    f_check_reserved, f_file_control, f_sector_size, f_device_characteristics,
    f_shm_map, f_shm_lock, f_shm_barrier, f_shm_unmap, 0, 0,
};

/* ------------------------------------------------------------------- vfs -- */

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *p, int flags, int *out)
{
    (void)vfs;
    struct fault_file *f = (struct fault_file *)p;
    f->real = (sqlite3_file *)(f + 1);
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out);
    /* A failed open leaves pMethods NULL: SQLite then does not close it. */
    if (!f->real->pMethods) {
        p->pMethods = NULL;
        return rc;
    }
    f->counts = name && (!match || strstr(name, match));
    const char *slash = name ? strrchr(name, '/') : NULL;
    f->name = slash ? slash + 1 : name ? name : "(temp)";
    int v = f->real->pMethods->iVersion;
    p->pMethods = v >= 3 ? &fault_methods : v == 2 ? &fault_methods_v2 : &fault_methods_v1;
    return rc;
}

static int f_delete(sqlite3_vfs *v, const char *n, int sync)
{
    (void)v;
    return real_vfs->xDelete(real_vfs, n, sync);
}

static int f_access(sqlite3_vfs *v, const char *n, int flags, int *out)
{
    (void)v;
    return real_vfs->xAccess(real_vfs, n, flags, out);
}

static int f_full_pathname(sqlite3_vfs *v, const char *n, int size, char *out)
{
    (void)v;
    return real_vfs->xFullPathname(real_vfs, n, size, out);
}

static void *f_dl_open(sqlite3_vfs *v, const char *n)
{
    (void)v;
    return real_vfs->xDlOpen(real_vfs, n);
}

static void f_dl_error(sqlite3_vfs *v, int n, char *msg)
{
    (void)v;
    real_vfs->xDlError(real_vfs, n, msg);
}

static void (*f_dl_sym(sqlite3_vfs *v, void *h, const char *s))(void)
{
    (void)v;
    return real_vfs->xDlSym(real_vfs, h, s);
}

static void f_dl_close(sqlite3_vfs *v, void *h)
{
    (void)v;
    real_vfs->xDlClose(real_vfs, h);
}

static int f_randomness(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int f_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return real_vfs->xSleep(real_vfs, us);
}

static int f_current_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int f_get_last_error(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xGetLastError(real_vfs, n, out);
}

static int f_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

__attribute__((constructor)) static void faultvfs_init(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs || real_vfs->iVersion < 2) {
        fprintf(stderr, "faultvfs: no usable default SQLite VFS\n");
        return;
    }
    match = getenv("FAULTVFS_MATCH");
    if (match && !*match)
        match = NULL;
    logpath = getenv("FAULTVFS_LOG");
    control = getenv("FAULTVFS_CONTROL");
    const char *d = getenv("FAULTVFS_SYNC_DELAY_MS");
    sync_delay_ms = d ? strtol(d, NULL, 10) : 0;
    defaults(&cur);
    if (!control) {
        static const char *const keys[] = {
            "FAULTVFS_FAIL_AT", "FAULTVFS_FAILS", "FAULTVFS_ERROR", "FAULTVFS_OPS",
        };
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
            const char *v = getenv(keys[i]);
            if (v)
                parse_setting(&cur, keys[i], v);
        }
    }
    fault_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(struct fault_file) + real_vfs->szOsFile,
        .mxPathname = real_vfs->mxPathname,
        .zName = "faultvfs",
        .xOpen = f_open,
        .xDelete = f_delete,
        .xAccess = f_access,
        .xFullPathname = f_full_pathname,
        .xDlOpen = f_dl_open,
        .xDlError = f_dl_error,
        .xDlSym = f_dl_sym,
        .xDlClose = f_dl_close,
        .xRandomness = f_randomness,
        .xSleep = f_sleep,
        .xCurrentTime = f_current_time,
        .xGetLastError = f_get_last_error,
        .xCurrentTimeInt64 = f_current_time_int64,
    };
    if (sqlite3_vfs_register(&fault_vfs, 1) != SQLITE_OK)
        fprintf(stderr, "faultvfs: cannot register the VFS\n");
}
