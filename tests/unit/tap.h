/*
 * tap.h — a small header-only TAP producer for the unit tests.
 *
 * Plan-less TAP: every check prints "ok N - name" or "not ok N - name"; a
 * failure adds "#" diagnostic lines with file:line and the values that
 * differed.  done_testing() prints the trailing plan "1..N" and returns the
 * exit status (0 when every check passed), so a test's main ends with
 *     return done_testing();
 *
 * Checks return 1 when they passed, so a test can guard what depends on
 * them:  if (CHECK_EQ_INT(rc, 0, "open")) { ... }.
 *
 * Temp dirs come from tap_tmpdir() (under $TESTS_TMP, else $TMPDIR, else
 * /tmp) and are removed by done_testing() or tap_bail() — only in the
 * process that made them, so forked children never delete their parent's
 * files.  Set TESTS_KEEP=1 to keep them for a post-mortem.
 *
 * The test clock: tap_set_now()/tap_set_now_ms() set env METER_NOW, the one
 * documented way to set libmeter's "now".
 *
 * Not thread-safe: make checks from the main thread only.
 */
#ifndef TAP_H
#define TAP_H

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define TAP_MAX_DIRS 16

static int tap_count_;
static int tap_fails_;
static pid_t tap_owner_;                       /* pid that made the dirs */
static char tap_dirs_[TAP_MAX_DIRS][PATH_MAX];
static int tap_ndirs_;

/* Prints the "ok"/"not ok" line; name is a printf format. */
static inline int tap_vresult(int ok, const char *file, int line,
                              const char *fmt, va_list ap)
{
    ++tap_count_;
    if (!ok)
        ++tap_fails_;
    printf("%sok %d - ", ok ? "" : "not ", tap_count_);
    vprintf(fmt, ap);
    printf("\n");
    if (!ok)
        printf("#   Failed at %s:%d\n", file, line);
    fflush(stdout);
    return ok;
}

static inline int tap_result(int ok, const char *file, int line,
                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_vresult(ok, file, line, fmt, ap);
    va_end(ap);
    return ok;
}

/* A "#" diagnostic line (printf format). */
static inline void tap_diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static inline int tap_check_(int ok, const char *expr, const char *file,
                             int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_vresult(ok, file, line, fmt, ap);
    va_end(ap);
    if (!ok)
        printf("#   condition: %s\n", expr);
    return ok;
}

static inline int tap_eq_i64_(int64_t got, int64_t exp, const char *gs,
                              const char *es, const char *file, int line,
                              const char *fmt, ...)
{
    va_list ap;
    int ok = got == exp;
    va_start(ap, fmt);
    tap_vresult(ok, file, line, fmt, ap);
    va_end(ap);
    if (!ok) {
        printf("#   %s\n#        got: %" PRId64 "\n", gs, got);
        printf("#   %s\n#   expected: %" PRId64 "\n", es, exp);
    }
    return ok;
}

static inline int tap_eq_str_(const char *got, const char *exp,
                              const char *gs, const char *es,
                              const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    int ok = got && exp ? strcmp(got, exp) == 0 : got == exp;
    va_start(ap, fmt);
    tap_vresult(ok, file, line, fmt, ap);
    va_end(ap);
    if (!ok) {
        printf("#   %s\n#        got: %s%s%s\n", gs, got ? "\"" : "",
               got ? got : "(null)", got ? "\"" : "");
        printf("#   %s\n#   expected: %s%s%s\n", es, exp ? "\"" : "",
               exp ? exp : "(null)", exp ? "\"" : "");
    }
    return ok;
}

#define OK(cond, ...) \
    tap_result(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define CHECK(cond, ...) \
    tap_check_(!!(cond), #cond, __FILE__, __LINE__, __VA_ARGS__)
#define CHECK_EQ_I64(got, exp, ...) \
    tap_eq_i64_((int64_t)(got), (int64_t)(exp), #got, #exp, __FILE__, \
                __LINE__, __VA_ARGS__)
#define CHECK_EQ_INT(got, exp, ...) CHECK_EQ_I64(got, exp, __VA_ARGS__)
#define CHECK_EQ_STR(got, exp, ...) \
    tap_eq_str_((got), (exp), #got, #exp, __FILE__, __LINE__, __VA_ARGS__)
/* A case that cannot run here: "ok N # SKIP reason" (the runner counts it
 * as skipped, never as passed). */
static inline void tap_skip(const char *fmt, ...)
{
    va_list ap;
    ++tap_count_;
    printf("ok %d # SKIP ", tap_count_);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

#define PASS(...) OK(1, __VA_ARGS__)
#define FAIL(...) OK(0, __VA_ARGS__)

/* ------------------------------------------------------------ temp dirs -- */

static inline int tap_rm_one_(const char *path, const struct stat *sb, int flag,
                       struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    /* Undo a test's chmod so removal works for non-root users too. */
    chmod(path, 0700);
    remove(path);
    return 0;
}

static inline void tap_cleanup_(void)
{
    if (getpid() != tap_owner_ || getenv("TESTS_KEEP"))
        return;
    for (int i = 0; i < tap_ndirs_; ++i) {
        chmod(tap_dirs_[i], 0700);
        nftw(tap_dirs_[i], tap_rm_one_, 16, FTW_DEPTH | FTW_PHYS);
    }
    tap_ndirs_ = 0;
}

/* Ends the test early with a failed check (setup that everything else needs
 * did not work). */
static inline void tap_bail_(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_vresult(0, file, line, fmt, ap);
    va_end(ap);
    printf("Bail out! setup failed\n1..%d\n", tap_count_);
    fflush(stdout);
    tap_cleanup_();
    exit(1);
}
#define BAIL(...) tap_bail_(__FILE__, __LINE__, __VA_ARGS__)

/* Makes a fresh directory "<base>/<prefix>.XXXXXX", removed at the end like
 * the others.  The returned string lives until the end of the test.  Bails
 * out when it cannot. */
static inline const char *tap_tmpdir_at(const char *base, const char *prefix)
{
    if (mkdir(base, 0755) != 0 && errno != EEXIST)
        BAIL("mkdir %s: %s", base, strerror(errno));
    if (tap_ndirs_ == TAP_MAX_DIRS)
        BAIL("too many temp dirs");
    char *d = tap_dirs_[tap_ndirs_];
    snprintf(d, PATH_MAX, "%s/%s.XXXXXX", base, prefix);
    if (!mkdtemp(d))
        BAIL("mkdtemp %s: %s", d, strerror(errno));
    tap_owner_ = getpid();
    ++tap_ndirs_;
    return d;
}

/* A fresh directory under $TESTS_TMP, else $TMPDIR, else /tmp. */
static inline const char *tap_tmpdir(const char *prefix)
{
    const char *base = getenv("TESTS_TMP");
    if (!base || !*base)
        base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    return tap_tmpdir_at(base, prefix);
}

/* snprintf into a static rotating buffer: tap_path(dir, "a.db"). */
static inline const char *tap_path(const char *dir, const char *name)
{
    static char bufs[8][PATH_MAX];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, PATH_MAX, "%s/%s", dir, name);
    return b;
}

/* ---------------------------------------------------------------- clock -- */

/* Sets libmeter's "now" (env METER_NOW) to an ISO 8601 string. */
static inline void tap_set_now(const char *iso)
{
    setenv("METER_NOW", iso, 1);
}

/* Sets libmeter's "now" to epoch milliseconds. */
static inline void tap_set_now_ms(int64_t ms)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, ms);
    setenv("METER_NOW", buf, 1);
}

/* Epoch milliseconds of a UTC calendar time, computed with libc's timegm —
 * independent of libmeter's own time code. */
static inline int64_t tap_utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return (int64_t)timegm(&tm) * 1000;
}

/* ------------------------------------------------------------------ end -- */

/* Prints the plan, removes the temp dirs, returns the exit status. */
static inline int done_testing(void)
{
    printf("1..%d\n", tap_count_);
    if (tap_fails_)
        printf("# %d of %d checks failed\n", tap_fails_, tap_count_);
    fflush(stdout);
    tap_cleanup_();
    return tap_fails_ ? 1 : 0;
}

#endif /* TAP_H */
