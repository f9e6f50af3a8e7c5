/*
 * session.c — metering one output of a running job (the filter's API).
 *
 * Lifecycle: open → segment… (per frame, in memory) → checkpoint (every few
 * seconds of output) → finalize (EOF) or detach (uninit without EOF).
 *
 * The process keeps a registry of sessions not yet finalized.  It serves
 * two purposes: a graph re-init opens the same job/output again and
 * resumes the detached session, and an exit handler finalizes whatever is
 * left when the process exits (as interrupted).  Each session owns its own
 * store and a mutex, so sessions on different filtergraph threads never
 * share a SQLite connection.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct meter_session {
    pthread_mutex_t lock;
    struct meter_session_state state;
    meter_store *st;           /* NULL while spooled */
    char db[4096];
    char spool_dir[4096];
    char err[METER_ERRMAX];
    int finalized;
    int detached;
    int already_billed;
    int new_segment;           /* resumed: the next report starts a segment */
    int64_t available_us;      /* ENFORCE: pack-µs usable at the last check */
    struct meter_session *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static meter_session *registry;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static unsigned spool_counter;

static char default_job[METER_NAME_MAX];
static pthread_once_t default_job_once = PTHREAD_ONCE_INIT;

static void make_default_job(void)
{
    char host[METER_NAME_MAX];
    meter_hostname(host);
    snprintf(default_job, sizeof default_job, "%.80s-%d-%lld", host, (int)getpid(),
             (long long)meter_now());
}

const char *meter_default_job(void)
{
    pthread_once(&default_job_once, make_default_job);
    return default_job;
}

static int finalize_locked(meter_session *s, int interrupted, meter_session_summary *out);

/* At exit, whatever was not finalized is billed as interrupted.  A session
 * busy on another thread is left to the reaper (its last checkpoint). */
static void finalize_at_exit(void)
{
    pthread_mutex_lock(&registry_lock);
    meter_session *list = registry;
    registry = NULL;
    pthread_mutex_unlock(&registry_lock);
    meter_session *next;
    for (meter_session *s = list; s; s = next) {
        next = s->next;
        if (pthread_mutex_trylock(&s->lock) != 0)
            continue;
        if (!s->finalized)
            finalize_locked(s, 1, NULL);
        int owned = s->detached;  /* its owner gave it up: ours to free */
        pthread_mutex_unlock(&s->lock);
        if (owned) {
            meter_close(s->st);
            free(s->state.seg);
            pthread_mutex_destroy(&s->lock);
            free(s);
        }
    }
}

static void register_exit_handler(void)
{
    atexit(finalize_at_exit);
}

static void registry_remove(meter_session *s)
{
    pthread_mutex_lock(&registry_lock);
    for (meter_session **p = &registry; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    pthread_mutex_unlock(&registry_lock);
}

/* With registry_lock held: a detached session to resume, and how many
 * attached ones already use this job/output (then the label gets "#N"). */
static meter_session *registry_find(const char *db, const char *job, const char *output,
                                    int *attached)
{
    *attached = 0;
    for (meter_session *s = registry; s; s = s->next) {
        if (strcmp(s->db, db) || strcmp(s->state.job, job) || strcmp(s->state.output, output))
            continue;
        if (s->detached && !s->finalized)
            return s;
        if (!s->finalized)
            (*attached)++;
    }
    return NULL;
}

static int fail(meter_session *s, int code, const char *fmt, const char *arg)
{
    snprintf(s->err, sizeof s->err, fmt, arg);
    return code;
}

/* Whether a finished session already billed this job and output. */
static int billed_before(meter_store *st, const char *job, const char *output, int *yes)
{
    sqlite3_stmt *q = meter_prepare(st, "SELECT 1 FROM sessions WHERE job = ?1 AND output = ?2"
                                        " AND status <> 'running' LIMIT 1");
    if (!q)
        return METER_EDB;
    sqlite3_bind_text(q, 1, job, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, output, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    *yes = rc == SQLITE_ROW;
    sqlite3_finalize(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? METER_OK : meter_fail_db(st, "read sessions");
}

/* Writes the running session's row (inside a transaction). */
static int insert_running(meter_session *s)
{
    meter_store *st = s->st;
    struct meter_session_state *x = &s->state;
    int rc = meter_next_id(st, 'j', NULL, x->id);
    if (rc == METER_OK)
        rc = meter_get_node(st, x->node);
    if (rc != METER_OK)
        return rc;
    sqlite3_stmt *w = meter_prepare(st,
        "INSERT INTO sessions(id, job, output, node, host, pid, proc_start, class, codec, flags,"
        " status, opened_at, updated_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
        " 'running', ?11, ?11)");
    if (!w)
        return METER_EDB;
    sqlite3_bind_text(w, 1, x->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(w, 2, x->job, -1, SQLITE_STATIC);
    sqlite3_bind_text(w, 3, x->output, -1, SQLITE_STATIC);
    sqlite3_bind_text(w, 4, x->node, -1, SQLITE_STATIC);
    sqlite3_bind_text(w, 5, x->host, -1, SQLITE_STATIC);
    sqlite3_bind_int(w, 6, x->pid);
    sqlite3_bind_int64(w, 7, x->proc_start);
    sqlite3_bind_int(w, 8, (int)x->cls);
    sqlite3_bind_text(w, 9, x->codec, -1, SQLITE_STATIC);
    sqlite3_bind_int(w, 10, (int)x->flags);
    sqlite3_bind_int64(w, 11, x->opened_at);
    return meter_exec_stmt(st, w, "open session");
}

/* Opens the store and prepares the session row; with SPOOL a database
 * failure leaves s->st NULL instead of failing. */
static int attach_store(meter_session *s)
{
    struct meter_session_state *x = &s->state;
    int rc = meter_open(s->db, 0, &s->st, s->err);
    if (rc == METER_OK) {
        meter_reap(s->st, NULL);  /* best effort: bill dead jobs' last checkpoints */
        int yes = 0;
        if ((x->flags & METER_SESSION_IDEMPOTENT) &&
            (rc = billed_before(s->st, x->job, x->output, &yes)) == METER_OK && yes)
            s->already_billed = 1;
        if (rc == METER_OK && (x->flags & METER_SESSION_ENFORCE)) {
            rc = meter_available(s->st, x->cls, &s->available_us);
            if (rc == METER_OK && s->available_us == 0 && !s->already_billed) {
                snprintf(s->err, sizeof s->err, "no valid %s pack has minutes left "
                         "(enforce is on)", meter_class_name(x->cls));
                meter_close(s->st);
                s->st = NULL;
                return METER_ENOMINUTES;
            }
        }
        if (rc == METER_OK && (rc = meter_tx_begin(s->st)) == METER_OK)
            rc = meter_tx_end(s->st, insert_running(s));
        if (rc != METER_OK) {
            snprintf(s->err, sizeof s->err, "%s", meter_errmsg(s->st));
            meter_close(s->st);
            s->st = NULL;
        }
    }
    if (rc != METER_OK && (x->flags & METER_SESSION_SPOOL)) {
        /* Keep transcoding: the usage goes to a spool file instead. */
        fprintf(stderr, "libmeter: %s; spooling usage to %s\n", s->err, s->spool_dir);
        meter_copy(x->node, sizeof x->node, x->host);
        snprintf(x->id, sizeof x->id, "%.40s-%d-%lld-%u", x->host, x->pid,
                 (long long)x->opened_at, __atomic_add_fetch(&spool_counter, 1,
                                                             __ATOMIC_RELAXED));
        return METER_OK;
    }
    return rc;
}

int meter_session_open(const meter_session_opts *o, meter_session **out,
                       char err[METER_ERRMAX])
{
    *out = NULL;
    if (!o)
        return meter_fail_buf(err, METER_EINVAL, "no session options");
    const char *db = o->db ? o->db : meter_default_db_path();
    const char *job = o->job;
    if (!job || !*job)
        job = getenv("METER_JOB");
    if (!job || !*job)
        job = meter_default_job();
    int rc;
    if ((rc = meter_check_name(err, "job", job)) != METER_OK ||
        (rc = meter_check_name(err, "output", o->output)) != METER_OK)
        return rc;
    meter_spec spec;
    /* Validate class and codec now (16×16 stands in for the size). */
    if ((rc = meter_classify(NULL, o->cls, o->codec, 16, 16, &spec, NULL)) != METER_OK) {
        /* A codec added to the rate table only is checked against the db. */
        meter_store *st;
        if (meter_open(db, METER_OPEN_READONLY, &st, NULL) == METER_OK) {
            rc = meter_classify(st, o->cls, o->codec, 16, 16, &spec, err);
            meter_close(st);
        } else {
            rc = meter_classify(NULL, o->cls, o->codec, 16, 16, &spec, err);
        }
        if (rc != METER_OK)
            return rc;
    }

    pthread_once(&exit_once, register_exit_handler);
    pthread_mutex_lock(&registry_lock);
    int attached;
    meter_session *s = registry_find(db, job, o->output, &attached);
    if (s) {
        /* A re-initialised graph: continue the detached session. */
        s->detached = 0;
        s->new_segment = 1;
        pthread_mutex_unlock(&registry_lock);
        *out = s;
        return METER_OK;
    }
    pthread_mutex_unlock(&registry_lock);

    s = calloc(1, sizeof *s);
    if (!s)
        return meter_fail_buf(err, METER_ENOMEM, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    struct meter_session_state *x = &s->state;
    meter_copy(s->db, sizeof s->db, db);
    const char *spool = o->spool_dir ? o->spool_dir : getenv("METER_SPOOL");
    if (spool && *spool)
        meter_copy(s->spool_dir, sizeof s->spool_dir, spool);
    else
        snprintf(s->spool_dir, sizeof s->spool_dir, "%.4000s.spool", db);
    meter_copy(x->job, sizeof x->job, job);
    if (attached)  /* two outputs share a label in one process: keep apart */
        snprintf(x->output, sizeof x->output, "%.100s#%d", o->output, attached + 1);
    else
        meter_copy(x->output, sizeof x->output, o->output);
    x->cls = o->cls;
    meter_copy(x->codec, sizeof x->codec, o->codec);
    x->flags = o->flags;
    x->pid = (int)getpid();
    x->proc_start = meter_proc_start(x->pid);
    meter_hostname(x->host);
    x->opened_at = x->updated_at = meter_now();

    if ((rc = attach_store(s)) != METER_OK) {
        meter_fail_buf(err, rc, "%s", s->err);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return rc;
    }
    pthread_mutex_lock(&registry_lock);
    s->next = registry;
    registry = s;
    pthread_mutex_unlock(&registry_lock);
    *out = s;
    return METER_OK;
}

/* ENFORCE: the current segment's rate, read once when the segment starts. */
static void cache_rate(meter_session *s, struct meter_seg *g)
{
    meter_spec spec;
    meter_rate rate;
    g->rate_num = g->rate_den = 0;
    if (s->st && meter_classify(s->st, s->state.cls, s->state.codec, g->width, g->height,
                                &spec, NULL) == METER_OK &&
        meter_rate_lookup(s->st, s->state.cls, spec.ttype, &rate) == METER_OK) {
        g->rate_num = rate.num;
        g->rate_den = rate.den;
    }
}

static int64_t estimated_billed(const meter_session *s)
{
    int64_t sum = 0;
    for (int i = 0; i < s->state.nseg; i++) {
        const struct meter_seg *g = &s->state.seg[i];
        if (g->rate_den > 0)
            sum += (int64_t)((__int128)g->duration_us * g->rate_num / g->rate_den);
    }
    return sum;
}

int meter_session_segment(meter_session *s, int width, int height, int64_t duration_us)
{
    if (width < 0 || height < 0 || duration_us < 0 || duration_us > METER_DURATION_MAX_US)
        return METER_EINVAL;
    pthread_mutex_lock(&s->lock);
    int rc = METER_OK;
    struct meter_session_state *x = &s->state;
    struct meter_seg *g = x->nseg ? &x->seg[x->nseg - 1] : NULL;
    if (s->finalized) {
        rc = METER_EFINALIZED;
    } else if (!g || s->new_segment || g->width != width || g->height != height) {
        rc = meter_state_push(x, width, height, duration_us);
        if (rc == METER_OK) {
            s->new_segment = 0;
            g = &x->seg[x->nseg - 1];
            if (x->flags & METER_SESSION_ENFORCE)
                cache_rate(s, g);
        }
    } else {
        g->duration_us = duration_us;
    }
    if (rc == METER_OK && (x->flags & METER_SESSION_ENFORCE) && s->st && !s->already_billed &&
        estimated_billed(s) > s->available_us)
        rc = METER_ENOMINUTES;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int checkpoint_locked(meter_session *s)
{
    struct meter_session_state *x = &s->state;
    x->updated_at = meter_now();
    int rc = METER_ENOTFOUND;
    if (s->st) {
        if ((rc = meter_tx_begin(s->st)) == METER_OK) {
            sqlite3_stmt *w = meter_prepare(s->st,
                "UPDATE sessions SET updated_at = ?2 WHERE id = ?1 AND status = 'running'");
            if (!w)
                rc = METER_EDB;
            else {
                sqlite3_bind_text(w, 1, x->id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(w, 2, x->updated_at);
                rc = meter_exec_stmt(s->st, w, "checkpoint");
            }
            if (rc == METER_OK)
                rc = meter_session_save_segments(s->st, x);
            rc = meter_tx_end(s->st, rc);
        }
        if (rc == METER_OK && (x->flags & METER_SESSION_ENFORCE))
            meter_available(s->st, x->cls, &s->available_us);
        if (rc != METER_OK)
            snprintf(s->err, sizeof s->err, "%s", meter_errmsg(s->st));
    }
    if (rc != METER_OK && (x->flags & METER_SESSION_SPOOL)) {
        x->final = 0;
        rc = meter_spool_write(s->spool_dir, x, s->err);
    }
    return rc;
}

int meter_session_checkpoint(meter_session *s)
{
    pthread_mutex_lock(&s->lock);
    int rc = s->finalized ? METER_EFINALIZED : checkpoint_locked(s);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int finalize_locked(meter_session *s, int interrupted, meter_session_summary *out)
{
    struct meter_session_state *x = &s->state;
    meter_session_summary sum;
    memset(&sum, 0, sizeof sum);
    meter_copy(sum.job, sizeof sum.job, x->job);
    meter_copy(sum.output, sizeof sum.output, x->output);
    const char *status = interrupted ? "interrupted" : "done";
    int rc;
    if (s->already_billed) {
        /* Idempotent job id billed before: close the row, bill nothing. */
        struct meter_session_state empty = *x;
        empty.nseg = 0;
        if ((rc = meter_tx_begin(s->st)) == METER_OK)
            rc = meter_tx_end(s->st, meter_session_bill_tx(s->st, &empty, status, NULL));
        sum.already_billed = 1;
        for (int i = 0; i < x->nseg; i++)
            sum.duration_us += x->seg[i].duration_us;
    } else {
        if (!s->st && meter_open(s->db, 0, &s->st, NULL) != METER_OK)
            s->st = NULL;  /* still unavailable: spool below */
        rc = METER_EDB;
        if (s->st) {
            if ((rc = meter_tx_begin(s->st)) == METER_OK)
                rc = meter_tx_end(s->st, meter_session_bill_tx(s->st, x, status, &sum));
            if (rc != METER_OK)
                snprintf(s->err, sizeof s->err, "%s", meter_errmsg(s->st));
        }
        if (rc != METER_OK && rc != METER_EFINALIZED && (x->flags & METER_SESSION_SPOOL)) {
            x->final = 1;
            x->interrupted = interrupted;
            x->updated_at = meter_now();
            rc = meter_spool_write(s->spool_dir, x, s->err);
            if (rc == METER_OK) {
                sum.spooled = 1;
                for (int i = 0; i < x->nseg; i++)
                    sum.duration_us += x->seg[i].duration_us;
            }
        } else if (rc == METER_OK) {
            meter_spool_remove(s->spool_dir, x->id);  /* an older checkpoint */
        }
    }
    if (rc == METER_OK || rc == METER_EFINALIZED) {
        s->finalized = 1;
        registry_remove(s);
    }
    if (out)
        *out = sum;
    return rc;
}

int meter_session_finalize(meter_session *s, int interrupted, meter_session_summary *out)
{
    pthread_mutex_lock(&s->lock);
    int rc = s->finalized ? fail(s, METER_EFINALIZED, "session %s is already finalized",
                                 s->state.id)
                          : finalize_locked(s, interrupted, out);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void meter_session_detach(meter_session *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    int finalized = s->finalized;
    if (!finalized) {
        checkpoint_locked(s);
        s->detached = 1;
    }
    pthread_mutex_unlock(&s->lock);
    if (finalized)
        meter_session_close(s);
}

void meter_session_close(meter_session *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    int finalized = s->finalized;
    pthread_mutex_unlock(&s->lock);
    if (!finalized) {
        meter_session_detach(s);
        return;
    }
    registry_remove(s);
    meter_close(s->st);
    free(s->state.seg);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int meter_session_spooled(const meter_session *s)
{
    return s->st == NULL;
}

const char *meter_session_id(const meter_session *s)
{
    return s->state.id;
}

const char *meter_session_errmsg(const meter_session *s)
{
    return s->err[0] ? s->err : "no error";
}
