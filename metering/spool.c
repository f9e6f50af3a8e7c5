/*
 * spool.c — usage that could not reach the database, kept in files.
 *
 * A session that cannot write its database (on_error=spool) writes its
 * state to "<dir>/<session id>.spool": at every checkpoint (final 0) and at
 * the end (final 1).  Files are written to a temporary name, fsync'd and
 * renamed, so a file is always whole; the last line "end" proves it.
 * meter_import_spool() bills each file in one transaction and then removes
 * it; a session already billed is skipped, so importing twice is harmless.
 * meter_spool_probe() tells a session, when it opens, whether the directory
 * can take its files at all: a session whose usage could go nowhere is not
 * opened (session.c).
 *
 * Format, one "key value" per line (values are names without control
 * characters, so a line cannot break them):
 *   ffmeter-spool 2 / id / job / output / node / host / [account] / class /
 *   codec / flags / pid / proc_start / boot_id / opened_at / updated_at /
 *   final / interrupted / segment W H DURATION_US (repeated) / end
 * account is written when the session knew it (an option or
 * $METER_ACCOUNT); without it the store's `account` setting applies when
 * the file is billed.  Version 1 files (before accounts, no account line)
 * are still read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define SPOOL_MAGIC "ffmeter-spool 2"
#define SPOOL_MAGIC_V1 "ffmeter-spool 1"

static void spool_path(char *buf, size_t cap, const char *dir, const char *id,
                       const char *suffix)
{
    snprintf(buf, cap, "%s/%s.spool%s", dir, id, suffix);
}

int meter_spool_write(const char *dir, const struct meter_session_state *s,
                      char err[METER_ERRMAX])
{
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        return meter_fail_buf(err, METER_EIO, "cannot create spool directory '%s': %s", dir,
                              strerror(errno));
    char tmp[4400], path[4400];
    spool_path(tmp, sizeof tmp, dir, s->id, ".tmp");
    spool_path(path, sizeof path, dir, s->id, "");
    FILE *f = fopen(tmp, "w");
    if (!f)
        return meter_fail_buf(err, METER_EIO, "cannot write spool file '%s': %s", tmp,
                              strerror(errno));
    fprintf(f, "%s\nid %s\njob %s\noutput %s\nnode %s\nhost %s\nclass %s\ncodec %s\n"
               "flags %u\npid %d\nproc_start %" PRId64 "\nboot_id %s\nopened_at %" PRId64 "\n"
               "updated_at %" PRId64 "\nfinal %d\ninterrupted %d\n",
            SPOOL_MAGIC, s->id, s->job, s->output, s->node, s->host, meter_class_name(s->cls),
            s->codec, s->flags, s->pid, s->proc_start, s->boot_id, s->opened_at, s->updated_at,
            s->final, s->interrupted);
    if (s->account[0])
        fprintf(f, "account %s\n", s->account);
    for (int i = 0; i < s->nseg; i++)
        fprintf(f, "segment %d %d %" PRId64 "\n", s->seg[i].width, s->seg[i].height,
                s->seg[i].duration_us);
    fprintf(f, "end\n");
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return meter_fail_buf(err, METER_EIO, "cannot write spool file '%s': %s", path,
                              strerror(e));
    }
    return METER_OK;
}

int meter_spool_probe(const char *dir, char err[METER_ERRMAX])
{
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        return meter_fail_buf(err, METER_EIO, "cannot create spool directory '%s': %s", dir,
                              strerror(errno));
    /* Permission bits do not tell the whole truth (root, ACLs, a read-only
     * mount, a full disk of inodes): create a file the way a spool file is
     * created.  Its name does not end in ".spool", so an importer never
     * takes a probe left by a crash for usage. */
    static atomic_uint probes;
    char path[4400];
    snprintf(path, sizeof path, "%s/.probe-%d-%u", dir, (int)getpid(),
             atomic_fetch_add(&probes, 1));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return meter_fail_buf(err, METER_EIO, "cannot write in spool directory '%s': %s", dir,
                              strerror(errno));
    close(fd);
    unlink(path);
    return METER_OK;
}

void meter_spool_remove(const char *dir, const char *session_id)
{
    char path[4400];
    spool_path(path, sizeof path, dir, session_id, "");
    unlink(path);
}

/* A time of a spool file: epoch milliseconds, 0 … METER_TIME_MAX_MS (it
 * dates the usage records, which the ledger takes only in that range). */
static int read_time(const char *val, meter_time *out)
{
    char *end;
    errno = 0;
    long long t = strtoll(val, &end, 10);
    if (end == val || *end || errno || t < 0 || t > METER_TIME_MAX_MS)
        return METER_EINVAL;
    *out = t;
    return METER_OK;
}

/* Parses one spool file; METER_EINVAL names the first bad line. */
int meter_spool_read(meter_store *st, const char *path, struct meter_session_state *s)
{
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "r");
    if (!f)
        return meter_fail(st, METER_EIO, "cannot read spool file '%s': %s", path,
                          strerror(errno));
    char line[512];
    int lineno = 0, ended = 0, rc = METER_OK, version = 1;
    int64_t total = 0;   /* Σ segments: at most METER_DURATION_MAX_US */
    while (rc == METER_OK && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        if (lineno == 1) {
            if (strcmp(line, SPOOL_MAGIC) == 0)
                version = 2;
            else if (strcmp(line, SPOOL_MAGIC_V1) != 0)
                rc = METER_EINVAL;
            continue;
        }
        char *val = strchr(line, ' ');
        if (strcmp(line, "end") == 0) {
            ended = 1;
            break;
        }
        if (!val) {
            rc = METER_EINVAL;
            break;
        }
        *val++ = '\0';
        int w, h;
        int64_t d;
        /* (the id goes to the ledger as the usage's session_id) */
        if (!strcmp(line, "id")) rc = meter_check_record_id(val) ? meter_copy(s->id, sizeof s->id, val) : METER_EINVAL;
        else if (!strcmp(line, "job")) rc = meter_check_name(NULL, "job", val) ? METER_EINVAL : meter_copy(s->job, sizeof s->job, val);
        else if (!strcmp(line, "output")) rc = meter_check_name(NULL, "output", val) ? METER_EINVAL : meter_copy(s->output, sizeof s->output, val);
        else if (!strcmp(line, "node")) rc = meter_copy(s->node, sizeof s->node, val) ? METER_EINVAL : 0;
        else if (!strcmp(line, "host")) rc = meter_copy(s->host, sizeof s->host, val) ? METER_EINVAL : 0;
        else if (!strcmp(line, "account") && version >= 2) rc = meter_account_valid(val) ? meter_copy(s->account, sizeof s->account, val) : METER_EINVAL;
        else if (!strcmp(line, "class")) rc = meter_class_parse(val, &s->cls);
        else if (!strcmp(line, "codec")) rc = meter_copy(s->codec, sizeof s->codec, val) ? METER_EINVAL : 0;
        else if (!strcmp(line, "flags")) s->flags = (unsigned)strtoul(val, NULL, 10);
        else if (!strcmp(line, "pid")) s->pid = atoi(val);
        else if (!strcmp(line, "proc_start")) s->proc_start = strtoll(val, NULL, 10);
        else if (!strcmp(line, "boot_id")) rc = meter_copy(s->boot_id, sizeof s->boot_id, val) ? METER_EINVAL : 0;
        else if (!strcmp(line, "opened_at")) rc = read_time(val, &s->opened_at);
        else if (!strcmp(line, "updated_at")) rc = read_time(val, &s->updated_at);
        else if (!strcmp(line, "final")) s->final = atoi(val);
        else if (!strcmp(line, "interrupted")) s->interrupted = atoi(val);
        else if (!strcmp(line, "segment")) {
            if (sscanf(val, "%d %d %" SCNd64, &w, &h, &d) != 3 || w < 0 || h < 0 || d < 0 ||
                d > METER_DURATION_MAX_US - total)
                rc = METER_EINVAL;
            else if ((rc = meter_state_push(s, w, h, d)) == METER_OK)
                total += d;
        } else
            rc = METER_EINVAL;
    }
    fclose(f);
    if (rc == METER_OK && (!ended || !s->id[0] || !s->job[0] || !s->output[0]))
        rc = METER_EINVAL;
    if (rc != METER_OK) {
        free(s->seg);
        s->seg = NULL;
        return meter_fail(st, rc == METER_ENOMEM ? rc : METER_EINVAL,
                          "spool file '%s' is malformed (line %d)", path, lineno);
    }
    return METER_OK;
}

/* A checkpoint-only file of a process that still runs is not ours yet. */
static int still_running(const struct meter_session_state *s)
{
    char host[METER_NAME_MAX];
    meter_hostname(host);
    if (s->final || strcmp(host, s->host) != 0)
        return 0;
    return meter_process_alive(s->boot_id, s->pid, s->proc_start);
}

static int import_one(meter_store *st, const char *dir, const char *name, int *imported)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct meter_session_state s;
    int rc = meter_spool_read(st, path, &s);
    if (rc != METER_OK)
        return rc;
    meter_copy(s.spool_dir, sizeof s.spool_dir, dir);
    if (still_running(&s)) {
        free(s.seg);
        return METER_OK;
    }
    const char *status = s.final && !s.interrupted ? "done" : "interrupted";
    if ((rc = meter_tx_begin(st)) == METER_OK) {
        /* Billed at the time of its last state, not of the import: a pack
         * bought since cannot pay for it. */
        rc = meter_session_bill_tx(st, &s, status, s.updated_at ? s.updated_at : meter_now(),
                                   NULL);
        if (rc == METER_EFINALIZED) {
            meter_tx_end(st, rc);  /* billed before: only the file remains */
            rc = METER_OK;
        } else if ((rc = meter_tx_end(st, rc)) == METER_OK && imported) {
            (*imported)++;
        }
    }
    free(s.seg);
    if (rc == METER_OK && unlink(path) != 0)
        rc = meter_fail(st, METER_EIO, "imported '%s' but cannot remove it: %s", path,
                        strerror(errno));
    return rc;
}

int meter_import_spool(meter_store *st, const char *dir, int *imported)
{
    if (imported)
        *imported = 0;
    DIR *d = opendir(dir);
    if (!d)
        return meter_fail(st, METER_EIO, "cannot open spool directory '%s': %s", dir,
                          strerror(errno));
    /* A bad file does not stop the others; the first problem is returned. */
    int first = METER_OK;
    char first_msg[METER_ERRMAX] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= 6 || strcmp(e->d_name + n - 6, ".spool") != 0)
            continue;
        int rc = import_one(st, dir, e->d_name, imported);
        if (rc != METER_OK && first == METER_OK) {
            first = rc;
            snprintf(first_msg, sizeof first_msg, "%s", meter_errmsg(st));
        }
        if (rc != METER_OK && meter_error_transient(rc) && rc != METER_EIO)
            break;  /* the database is in trouble: the rest would fail too */
    }
    closedir(d);
    return first == METER_OK ? METER_OK : meter_fail(st, first, "%s", first_msg);
}
