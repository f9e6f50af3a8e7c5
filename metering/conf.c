/*
 * conf.c — the one reader of "key = value" settings files, shared by
 * meter-ledgerd (ledger/config.c) and the sync client (sync/config.c): the
 * syntax and the file and line in its messages live here, what each key
 * means stays with its caller.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* memset through a volatile pointer: not optimised away before free. */
static void *(*const volatile wipe)(void *, int, size_t) = memset;

int meter_conf_read(const char *path, size_t line_max,
                    int (*set)(void *ctx, const char *key, const char *value,
                               char err[METER_ERRMAX]),
                    void *ctx, char err[METER_ERRMAX])
{
    if (line_max < 2 || line_max > INT_MAX)
        return meter_fail_buf(err, METER_EINVAL, "config file %s: bad line limit %zu", path,
                              line_max);
    FILE *f = fopen(path, "r");
    if (!f)
        return meter_fail_buf(err, METER_EIO, "cannot read config file %s: %s", path,
                              strerror(errno));
    char *line = malloc(line_max);
    if (!line) {
        fclose(f);
        return meter_fail_buf(err, METER_ENOMEM, "out of memory");
    }
    char e[METER_ERRMAX];
    int rc = METER_OK;
    for (int no = 1; rc == METER_OK && fgets(line, (int)line_max, f); no++) {
        if (!strchr(line, '\n') && !feof(f)) {
            rc = meter_fail_buf(err, METER_EINVAL, "%.100s:%d: line too long", path, no);
            break;
        }
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = meter_fail_buf(err, METER_EINVAL, "%.100s:%d: expected 'key = value'", path,
                                no);
            break;
        }
        *eq = '\0';
        e[0] = '\0';
        if (set(ctx, trim(s), trim(eq + 1), e) != 0)
            rc = meter_fail_buf(err, METER_EINVAL, "%.100s:%d: %s", path, no, e);
    }
    if (rc == METER_OK && ferror(f))
        rc = meter_fail_buf(err, METER_EIO, "cannot read config file %s: read error", path);
    fclose(f);
    wipe(line, 0, line_max);
    free(line);
    return rc;
}
