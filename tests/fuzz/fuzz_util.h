/*
 * fuzz_util.h — small helpers the libFuzzer harnesses share (header only).
 *
 * Inputs are cut into fields at a separator so seeds stay readable text:
 * fuzz_field() hands out NUL-terminated copies that fuzz_fields_free()
 * releases.  fuzz_check() is the harnesses' own assertion: it reports what
 * went wrong and aborts, which libFuzzer reports as a crash with the input.
 */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sanitizer/common_interface_defs.h>

/* The message goes out through the sanitizers' report channel, which
 * libFuzzer keeps open when -close_fd_mask silences the code under test. */
#define fuzz_check(cond, ...)                                                   \
    do {                                                                        \
        if (!(cond))                                                            \
            fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                  \
    } while (0)

__attribute__((noreturn, format(printf, 4, 5)))
static inline void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    char msg[2048];
    int n = snprintf(msg, sizeof msg, "fuzz check failed at %s:%d: %s: ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof msg)
        vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    __sanitizer_report_error_summary(msg);
    abort();
}

/* A cursor over the input. */
typedef struct fuzz_in {
    const uint8_t *p;
    size_t n;
    char *owned[64];
    int nowned;
} fuzz_in;

static inline void fuzz_in_init(fuzz_in *in, const uint8_t *data, size_t size)
{
    memset(in, 0, sizeof *in);
    in->p = data;
    in->n = size;
}

/* The bytes up to the next `sep` (or the end) as a new NUL-terminated
 * string; NUL bytes inside stay (C functions see the part before them).
 * NULL once the input is used up or after 63 fields (fuzz_rest still
 * works then). */
static inline char *fuzz_field(fuzz_in *in, char sep)
{
    if (!in->n && !in->p)
        return NULL;
    if (in->nowned >= (int)(sizeof in->owned / sizeof *in->owned) - 1)
        return NULL;
    const uint8_t *end = memchr(in->p, sep, in->n);
    size_t len = end ? (size_t)(end - in->p) : in->n;
    char *s = malloc(len + 1);
    if (!s)
        abort();
    memcpy(s, in->p, len);
    s[len] = '\0';
    in->owned[in->nowned++] = s;
    if (end) {
        in->p = end + 1;
        in->n -= len + 1;
    } else {
        in->p = NULL;   /* the last field was taken */
        in->n = 0;
    }
    return s;
}

/* All that is left, NUL-terminated, with its length in *len (NUL bytes
 * inside stay); "" when nothing is left. */
static inline char *fuzz_rest(fuzz_in *in, size_t *len)
{
    size_t n = in->p ? in->n : 0;
    char *s = malloc(n + 1);
    if (!s)
        abort();
    if (n)
        memcpy(s, in->p, n);
    s[n] = '\0';
    in->owned[in->nowned++] = s;   /* fuzz_field leaves a slot for it */
    in->p = NULL;
    in->n = 0;
    if (len)
        *len = n;
    return s;
}

static inline void fuzz_fields_free(fuzz_in *in)
{
    for (int i = 0; i < in->nowned; i++)
        free(in->owned[i]);
    in->nowned = 0;
}

/* An anonymous in-memory file holding data, for readers that take a path:
 * the path is /proc/self/fd/N.  close(fd) afterwards. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, char path[64])
{
    int fd = memfd_create("fuzz-input", 0);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            perror("write memfd");
            abort();
        }
        off += (size_t)w;
    }
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    return fd;
}

/* No harness may wait on a pipe or a terminal: stdin becomes /dev/null (a
 * config value naming /dev/stdin then reads nothing instead of blocking;
 * run-fuzz gives /dev/null as well, and CI has no terminal for /dev/tty). */
static inline void fuzz_detach_stdin(void)
{
    int fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        dup2(fd, 0);
        if (fd != 0)
            close(fd);
    }
}

/* A private temporary directory, one per process, removed by the
 * harness's exit handler; inside $FUZZ_TMPDIR when set (run-fuzz sets it
 * and removes it afterwards, so a crash leaves nothing behind), else on
 * tmpfs when there is one (SQLite's fsyncs cost nothing there). */
static inline const char *fuzz_tmpdir(void)
{
    static char dir[256];
    if (!dir[0]) {
        const char *base = getenv("FUZZ_TMPDIR");
        if (!base || !*base)
            base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/ffmeter-fuzz.XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            abort();
        }
    }
    return dir;
}

static inline int fuzz_rm_one(const char *path, const struct stat *sb, int type,
                              struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    remove(path);
    return 0;
}

/* rm -rf dir (for atexit cleanups of the temporary directory). */
static inline void fuzz_rmtree(const char *dir)
{
    nftw(dir, fuzz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif /* FUZZ_UTIL_H */
