/*
 * util.c — errors, transactions, statement helpers and record ids.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

const char *meter_strerror(int code)
{
    switch (code) {
    case METER_OK:         return "success";
    case METER_EINVAL:     return "invalid argument";
    case METER_ENOTFOUND:  return "not found";
    case METER_EEXIST:     return "already exists";
    case METER_EREFUSED:   return "refused by a billing rule";
    case METER_EDB:        return "database error";
    case METER_EVERSION:   return "database from a newer ffmeter";
    case METER_EFOREIGN:   return "not an ffmeter database";
    case METER_ENOMEM:     return "out of memory";
    case METER_EBUSY:      return "database busy";
    case METER_EIO:        return "I/O error";
    case METER_ENOMINUTES: return "no pack minutes left";
    case METER_EFINALIZED: return "session already finalized";
    }
    return "unknown error";
}

void meter_free(void *p)
{
    free(p);
}

int meter_fail(meter_store *st, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
    return code;
}

int meter_fail_buf(char *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, METER_ERRMAX, fmt, ap);
        va_end(ap);
    }
    return code;
}

int meter_fail_db(meter_store *st, const char *what)
{
    int rc = sqlite3_extended_errcode(st->db);
    int code;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:   code = METER_EBUSY; break;
    case SQLITE_NOMEM:    code = METER_ENOMEM; break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:   code = METER_EFOREIGN; break;
    case SQLITE_CONSTRAINT:
        code = (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
                   ? METER_EEXIST : METER_EDB;
        break;
    default:              code = METER_EDB; break;
    }
    if ((rc & 0xff) == SQLITE_READONLY)
        return meter_fail(st, code, "%s: database '%s' is read-only", what, st->path);
    if ((rc & 0xff) == SQLITE_CORRUPT)
        return meter_fail(st, code, "%s: database '%s' is corrupt (%s)", what,
                          st->path, sqlite3_errmsg(st->db));
    return meter_fail(st, code, "%s: %s", what, sqlite3_errmsg(st->db));
}

int meter_tx_begin(meter_store *st)
{
    if (st->readonly)
        return meter_fail(st, METER_EDB, "database '%s' is read-only", st->path);
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return meter_fail_db(st, "begin transaction");
    return METER_OK;
}

int meter_tx_end(meter_store *st, int rc)
{
    if (rc == METER_OK) {
        if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
            return METER_OK;
        rc = meter_fail_db(st, "commit");
    }
    /* Keep the first error's message: ROLLBACK's own status is not news. */
    if (!sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

sqlite3_stmt *meter_prepare(meter_store *st, const char *sql)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
        meter_fail_db(st, "prepare");
        return NULL;
    }
    return s;
}

int meter_exec_stmt(meter_store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(s);
    int code = METER_OK;
    if (rc != SQLITE_DONE)
        code = meter_fail_db(st, what);
    sqlite3_finalize(s);
    return code;
}

int meter_exec(meter_store *st, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int code = meter_fail_db(st, "exec");
        sqlite3_free(msg);
        return code;
    }
    return METER_OK;
}

int meter_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        if (cap) {
            memcpy(dst, src, cap - 1);
            dst[cap - 1] = '\0';
        }
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

void meter_col_text(sqlite3_stmt *s, int col, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    meter_copy(dst, cap, t ? (const char *)t : "");
}

int meter_next_id(meter_store *st, char kind, int64_t *seq, char id[METER_ID_MAX])
{
    sqlite3_stmt *s = meter_prepare(st,
        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'seq' "
        "RETURNING CAST(value AS INTEGER), (SELECT value FROM meta WHERE key = 'node_id')");
    if (!s)
        return METER_EDB;
    if (sqlite3_step(s) != SQLITE_ROW) {
        int code = meter_fail_db(st, "allocate record id");
        sqlite3_finalize(s);
        return code;
    }
    int64_t n = sqlite3_column_int64(s, 0);
    const char *node_id = (const char *)sqlite3_column_text(s, 1);
    snprintf(id, METER_ID_MAX, "%s-%c%lld", node_id ? node_id : "0", kind, (long long)n);
    sqlite3_finalize(s);
    if (seq)
        *seq = n;
    return METER_OK;
}

int meter_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, n, u;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            n = 1, u = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 2, u = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 3, u = c & 0x07;
        else
            return 0;   /* a continuation byte first, or no UTF-8 lead byte */
        for (unsigned i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;   /* cut short (a NUL ends it here too) */
            u = (u << 6) | (p[i] & 0x3F);
        }
        /* overlong forms, UTF-16 surrogates and beyond U+10FFFF */
        if ((n == 2 && u < 0x800) || (n == 3 && u < 0x10000) || u > 0x10FFFF ||
            (u >= 0xD800 && u <= 0xDFFF))
            return 0;
        p += n + 1;
    }
    return 1;
}

int meter_check_name(char *err, const char *what, const char *s)
{
    if (!s || !*s)
        return meter_fail_buf(err, METER_EINVAL, "%s is missing", what);
    size_t n = strlen(s);
    if (n >= METER_NAME_MAX)
        return meter_fail_buf(err, METER_EINVAL, "%s is too long (%zu bytes, at most %d)",
                              what, n, METER_NAME_MAX - 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return meter_fail_buf(err, METER_EINVAL, "%s contains a control character", what);
    /* names travel to the ledger in JSON, which carries UTF-8 only */
    if (!meter_utf8_valid(s))
        return meter_fail_buf(err, METER_EINVAL, "%s is not valid UTF-8", what);
    return METER_OK;
}

int meter_check_record_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= METER_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-:", s[i]))
            return 0;
    return 1;
}

/* The one definition of the name syntax of accounts (and of node names on
 * the wire: sync/protocol.c may call it). */
int meter_account_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= METER_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-:", s[i]))
            return 0;
    return 1;
}

int meter_outbox_add(meter_store *st, const char *kind, const char *record_id,
                     meter_time at)
{
    sqlite3_stmt *s = meter_prepare(st,
        "INSERT INTO outbox(kind, record_id, created_at) VALUES(?1, ?2, ?3)");
    if (!s)
        return METER_EDB;
    sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, record_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, at);
    return meter_exec_stmt(st, s, "enqueue for sync");
}

void meter_hostname(char buf[METER_NAME_MAX])
{
    if (gethostname(buf, METER_NAME_MAX) != 0 || !buf[0])
        meter_copy(buf, METER_NAME_MAX, "localhost");
    buf[METER_NAME_MAX - 1] = '\0';
}

/* Field 22 of /proc/PID/stat: the process's start time in clock ticks since
 * boot.  A pid with a different start time is a different process. */
int64_t meter_proc_start(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: skip to
     * the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p + 1, ' ');
    }
    if (!p)
        return -1;
    return strtoll(p + 1, NULL, 10);
}

int meter_grow(void *arrp, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return METER_OK;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*(void **)arrp, nc * elem);
    if (!p)
        return METER_ENOMEM;
    *(void **)arrp = p;
    *cap = nc;
    return METER_OK;
}

void meter_boot_id(char buf[40])
{
    buf[0] = '\0';
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f)
        return;
    if (!fgets(buf, 40, f))
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
}

int meter_process_alive(const char *boot_id, int pid, int64_t proc_start)
{
    char now_boot[40];
    meter_boot_id(now_boot);
    if (now_boot[0] && boot_id[0] && strcmp(now_boot, boot_id) != 0)
        return 0;  /* the machine rebooted since: every process of then is gone */
    if (pid <= 0)
        return 1;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 0;
    int64_t started = meter_proc_start(pid);
    if (started >= 0 && proc_start >= 0 && started != proc_start)
        return 0;  /* the pid was reused by another process */
    return 1;
}

int meter_error_transient(int code)
{
    return code == METER_EDB || code == METER_EBUSY || code == METER_EIO ||
           code == METER_ENOMEM;
}

int meter_collect(meter_store *st, sqlite3_stmt *s, size_t elem,
                  void (*read)(sqlite3_stmt *, void *row, void *ctx), void *ctx,
                  void **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (meter_grow(rows, &cap, *n, elem) != METER_OK) {
            rc = SQLITE_NOMEM;
            break;
        }
        void *row = (char *)*rows + *n * elem;
        memset(row, 0, elem);
        read(s, row, ctx);
        (*n)++;
    }
    int code = rc == SQLITE_DONE ? METER_OK
             : rc == SQLITE_NOMEM ? meter_fail(st, METER_ENOMEM, "out of memory")
             : meter_fail_db(st, "query");
    sqlite3_finalize(s);
    if (code != METER_OK) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    return code;
}
