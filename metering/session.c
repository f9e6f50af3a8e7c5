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
 *
 * Locking: registry_lock guards the list and is never taken while a
 * session's lock is held; `detached` and `finalized` are atomics so the
 * registry can read them without the session's lock.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
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
    char err[METER_ERRMAX];
    atomic_int finalized;
    atomic_int detached;
    int new_segment;           /* resumed: the next report starts a segment */
    int64_t available_us;      /* ENFORCE: pack-µs usable at the last check */
    int open_anyway;           /* ENFORCE in farm mode: run on without minutes
                                  (policy continue, ledger unreachable) */
    char want_account[METER_NAME_MAX];  /* the option or $METER_ACCOUNT; ""
                                           = the store's setting */
    struct meter_session *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static meter_session *registry;
static int exiting;            /* set by the exit handler: nothing is freed */
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static atomic_uint spool_counter;

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

static void free_session(meter_session *s)
{
    meter_close(s->st);
    free(s->state.seg);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* At exit, whatever was not finalized is billed as interrupted.  Sessions
 * are not freed here (a filter thread may still hold one), except detached
 * ones, which their owner gave up.  A session busy on another thread is left
 * to the reaper (its last checkpoint). */
static void finalize_at_exit(void)
{
    pthread_mutex_lock(&registry_lock);
    meter_session *list = registry;
    registry = NULL;
    exiting = 1;
    pthread_mutex_unlock(&registry_lock);
    meter_session *next;
    for (meter_session *s = list; s; s = next) {
        next = s->next;
        if (pthread_mutex_trylock(&s->lock) != 0)
            continue;
        if (!s->finalized)
            finalize_locked(s, 1, NULL);
        int owned = s->detached;
        pthread_mutex_unlock(&s->lock);
        if (owned)
            free_session(s);
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

/* With registry_lock held: a detached session of the same output (and the
 * same class, codec and flags) to resume, and how many live ones already use
 * this job/output label (then the new one gets "#N"). */
static meter_session *registry_find(const char *db, const char *job, const char *output,
                                    const meter_session_opts *o, const char *account,
                                    int *in_use)
{
    *in_use = 0;
    for (meter_session *s = registry; s; s = s->next) {
        if (strcmp(s->db, db) || strcmp(s->state.job, job) ||
            strncmp(s->state.output, output, strlen(output)) ||
            (s->state.output[strlen(output)] && s->state.output[strlen(output)] != '#'))
            continue;
        if (s->finalized)
            continue;
        /* The label may carry a "#N" it was given when opened beside a
         * namesake: still the same output, when class, codec and flags
         * agree. */
        if (s->detached && s->state.cls == o->cls && !strcmp(s->state.codec, o->codec) &&
            s->state.flags == o->flags && !strcmp(s->want_account, account))
            return s;
        (*in_use)++;
    }
    return NULL;
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
        "INSERT INTO sessions(id, job, output, node, host, pid, proc_start, boot_id, class,"
        " codec, flags, status, opened_at, updated_at, spool_dir, account) VALUES(?1, ?2, ?3,"
        " ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'running', ?12, ?12, ?13, ?14)");
    if (!w)
        return METER_EDB;
    sqlite3_bind_text(w, 1, x->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(w, 2, x->job, -1, SQLITE_STATIC);
    sqlite3_bind_text(w, 3, x->output, -1, SQLITE_STATIC);
    sqlite3_bind_text(w, 4, x->node, -1, SQLITE_STATIC);
    sqlite3_bind_text(w, 5, x->host, -1, SQLITE_STATIC);
    sqlite3_bind_int(w, 6, x->pid);
    sqlite3_bind_int64(w, 7, x->proc_start);
    sqlite3_bind_text(w, 8, x->boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(w, 9, (int)x->cls);
    sqlite3_bind_text(w, 10, x->codec, -1, SQLITE_STATIC);
    sqlite3_bind_int(w, 11, (int)x->flags);
    sqlite3_bind_int64(w, 12, x->opened_at);
    sqlite3_bind_text(w, 13, x->spool_dir, -1, SQLITE_STATIC);
    sqlite3_bind_text(w, 14, x->account, -1, SQLITE_STATIC);
    return meter_exec_stmt(st, w, "open session");
}

/* ENFORCE: the account's minutes now, and whether the farm-mode rule lets
 * a job without them run (meter_enforce_rule). */
static int read_minutes(meter_session *s, int *farm)
{
    int rc = meter_available_account(s->st, s->state.account, s->state.cls, &s->available_us);
    if (rc == METER_OK)
        rc = meter_enforce_rule(s->st, farm, &s->open_anyway);
    return rc;
}

/* ENFORCE at open: refuse when the account has no minutes of the class —
 * in farm mode unless the rule says run on. */
static int check_minutes(meter_session *s)
{
    int farm = 0;
    int rc = read_minutes(s, &farm);
    if (rc != METER_OK)
        snprintf(s->err, sizeof s->err, "%s", meter_errmsg(s->st));
    else if (s->available_us == 0 && !s->open_anyway) {
        if (farm)
            snprintf(s->err, sizeof s->err, "account %.100s has no %s minutes in lease "
                     "slices or own packs, and the ledger is reachable or lease_policy is "
                     "stop (enforce is on)", s->state.account, meter_class_name(s->state.cls));
        else
            snprintf(s->err, sizeof s->err, "no valid %s pack has minutes left (account "
                     "%.100s; enforce is on)", meter_class_name(s->state.cls), s->state.account);
        rc = METER_ENOMINUTES;
    }
    return rc;
}

/* The open is refused: neither the database nor the spool can take the
 * usage.  One line naming both paths and both causes, kept short enough
 * for METER_ERRMAX with ordinary paths: the "create one" hint of a
 * missing database is dropped, and a database message that does not name
 * its file gets the path in front. */
static int nowhere_to_go(meter_session *s, int db_rc, const char *spool_why)
{
    char db_why[METER_ERRMAX];
    if (db_rc == METER_ENOTFOUND)
        meter_fail_buf(db_why, db_rc, "no database at '%s'", s->db);
    else if (!strstr(s->err, s->db))
        meter_fail_buf(db_why, db_rc, "database '%s': %s", s->db, s->err);
    else
        meter_copy(db_why, sizeof db_why, s->err);
    return meter_fail_buf(s->err, METER_EIO, "the usage could go nowhere: %s, and %s", db_why,
                          spool_why);
}

/* Opens the store, validates the codec against its rate table, checks
 * ENFORCE and writes the running row.  With SPOOL a transient database
 * failure leaves s->st NULL (spooled) instead of failing; anything else —
 * a wrong path, a foreign file, a bad codec — fails the open. */
static int attach_store(meter_session *s)
{
    struct meter_session_state *x = &s->state;
    meter_spec spec;
    int rc = meter_open(s->db, 0, &s->st, s->err);
    if (rc == METER_OK) {
        meter_reap(s->st, NULL);  /* best effort: bill dead jobs' last state */
        rc = meter_classify(s->st, x->cls, x->codec, 16, 16, &spec, s->err);
        if (rc == METER_OK && (rc = meter_resolve_account(s->st, s->want_account, "account",
                                                          x->account)) != METER_OK)
            snprintf(s->err, sizeof s->err, "%s", meter_errmsg(s->st));
        if (rc == METER_OK && (x->flags & METER_SESSION_ENFORCE))
            rc = check_minutes(s);
        if (rc == METER_OK) {
            if ((rc = meter_tx_begin(s->st)) == METER_OK)
                rc = meter_tx_end(s->st, insert_running(s));
            if (rc != METER_OK)
                snprintf(s->err, sizeof s->err, "%s", meter_errmsg(s->st));
        }
        if (rc != METER_OK) {
            meter_close(s->st);
            s->st = NULL;
        }
    }
    /* A database that is missing counts as unavailable (a network mount not
     * there yet); a foreign or newer file or a bad codec is a mistake that
     * spooling would only hide. */
    int spoolable = meter_error_transient(rc) || rc == METER_ENOTFOUND;
    if (rc != METER_OK && spoolable && (x->flags & METER_SESSION_SPOOL)) {
        /* Keep transcoding: the usage goes to a spool file instead — but
         * only when the spool can take it now.  Finding out at the end of
         * the job, when the usage has nowhere to go, would leave it billed
         * nowhere (a service user who can write neither the database nor
         * the directory beside it). */
        char why[METER_ERRMAX];
        if (meter_spool_probe(x->spool_dir, why) != METER_OK)
            return nowhere_to_go(s, rc, why);
        meter_copy(x->node, sizeof x->node, x->host);
        /* the store's account, if none was given, is read when billed */
        meter_copy(x->account, sizeof x->account, s->want_account);
        snprintf(x->id, sizeof x->id, "%.40s-%d-%lld-%u", x->host, x->pid,
                 (long long)x->opened_at, atomic_fetch_add(&spool_counter, 1) + 1);
        /* a record id on the wire: a host name with other characters
         * (Linux allows them) must not make the usage unsendable */
        for (char *p = x->id; *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr("._-:", *p))
                *p = '_';
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
    if (!o->codec || !*o->codec || strlen(o->codec) >= sizeof ((struct meter_session_state *)0)->codec)
        return meter_fail_buf(err, METER_EINVAL, "codec is missing or too long");
    if (o->cls != METER_CLASS_GENERAL && o->cls != METER_CLASS_TSC)
        return meter_fail_buf(err, METER_EINVAL, "unknown class (general or tsc)");
    const char *account = o->account;
    if (!account || !*account)
        account = getenv("METER_ACCOUNT");
    if (!account)
        account = "";
    if (*account && !meter_account_valid(account))
        return meter_fail_buf(err, METER_EINVAL, "invalid account '%.80s' (1 to %d letters, "
                              "digits, '.', '_', '-', ':')", account, METER_NAME_MAX - 1);

    pthread_once(&exit_once, register_exit_handler);
    meter_session *s = calloc(1, sizeof *s);
    if (!s)
        return meter_fail_buf(err, METER_ENOMEM, "out of memory");
    pthread_mutex_init(&s->lock, NULL);

    pthread_mutex_lock(&registry_lock);
    int in_use;
    meter_session *old = registry_find(db, job, o->output, o, account, &in_use);
    if (old) {
        /* A re-initialised graph: continue the detached session. */
        atomic_store(&old->detached, 0);
        old->new_segment = 1;
        pthread_mutex_unlock(&registry_lock);
        pthread_mutex_destroy(&s->lock);
        free(s);
        *out = old;
        return METER_OK;
    }
    /* Reserve the label now, under the lock, so two outputs opening at once
     * on two threads cannot take the same one. */
    struct meter_session_state *x = &s->state;
    meter_copy(s->db, sizeof s->db, db);
    meter_copy(x->job, sizeof x->job, job);
    if (in_use)  /* two outputs of one process share a label: keep apart */
        snprintf(x->output, sizeof x->output, "%.100s#%d", o->output, in_use + 1);
    else
        meter_copy(x->output, sizeof x->output, o->output);
    x->cls = o->cls;
    meter_copy(x->codec, sizeof x->codec, o->codec);
    x->flags = o->flags;
    meter_copy(s->want_account, sizeof s->want_account, account);
    s->next = registry;
    registry = s;
    pthread_mutex_unlock(&registry_lock);

    const char *spool = o->spool_dir ? o->spool_dir : getenv("METER_SPOOL");
    if (spool && *spool)
        meter_copy(x->spool_dir, sizeof x->spool_dir, spool);
    else
        snprintf(x->spool_dir, sizeof x->spool_dir, "%.4000s.spool", db);
    x->pid = (int)getpid();
    x->proc_start = meter_proc_start(x->pid);
    meter_boot_id(x->boot_id);
    meter_hostname(x->host);
    x->opened_at = x->updated_at = meter_now();

    if ((rc = attach_store(s)) != METER_OK) {
        meter_fail_buf(err, rc, "%s", s->err);
        registry_remove(s);
        free_session(s);
        return rc;
    }
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
    pthread_mutex_lock(&s->lock);
    int rc = METER_OK;
    struct meter_session_state *x = &s->state;
    struct meter_seg *g = x->nseg ? &x->seg[x->nseg - 1] : NULL;
    if (width < 0 || height < 0 || duration_us < 0 || duration_us > METER_DURATION_MAX_US) {
        snprintf(s->err, sizeof s->err, "invalid segment %dx%d lasting %lld µs", width, height,
                 (long long)duration_us);
        rc = METER_EINVAL;
    } else if (s->finalized) {
        snprintf(s->err, sizeof s->err, "session %s is already finalized", x->id);
        rc = METER_EFINALIZED;
    } else if (!g || s->new_segment || g->width != width || g->height != height) {
        rc = meter_state_push(x, width, height, duration_us);
        if (rc == METER_OK) {
            s->new_segment = 0;
            g = &x->seg[x->nseg - 1];
            if (x->flags & METER_SESSION_ENFORCE)
                cache_rate(s, g);
        } else {
            snprintf(s->err, sizeof s->err, "out of memory");
        }
    } else {
        g->duration_us = duration_us;
    }
    if (rc == METER_OK && (x->flags & METER_SESSION_ENFORCE) && s->st && !s->open_anyway &&
        estimated_billed(s) > s->available_us) {
        snprintf(s->err, sizeof s->err, "the %s packs ran out of minutes",
                 meter_class_name(x->cls));
        rc = METER_ENOMINUTES;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int spool_state(meter_session *s, int final, int interrupted)
{
    struct meter_session_state *x = &s->state;
    x->final = final;
    x->interrupted = interrupted;
    return meter_spool_write(x->spool_dir, x, s->err);
}

static int checkpoint_locked(meter_session *s)
{
    struct meter_session_state *x = &s->state;
    x->updated_at = meter_now();
    int rc = METER_EDB;
    if (!s->st)
        snprintf(s->err, sizeof s->err, "database %.200s is unavailable", s->db);
    if (s->st && (rc = meter_tx_begin(s->st)) == METER_OK) {
        sqlite3_stmt *w = meter_prepare(s->st,
            "UPDATE sessions SET updated_at = ?2 WHERE id = ?1 AND status = 'running'");
        if (!w)
            rc = METER_EDB;
        else {
            sqlite3_bind_text(w, 1, x->id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(w, 2, x->updated_at);
            rc = meter_exec_stmt(s->st, w, "checkpoint");
        }
        /* Someone finalized it under us (a reaper that judged this process
         * dead): say so rather than write to a closed session. */
        if (rc == METER_OK && sqlite3_changes(s->st->db) == 0)
            rc = meter_fail(s->st, METER_EFINALIZED, "session %s was finalized elsewhere",
                            x->id);
        if (rc == METER_OK)
            rc = meter_session_save_segments(s->st, x);
        rc = meter_tx_end(s->st, rc);
        int farm;
        if (rc == METER_OK && (x->flags & METER_SESSION_ENFORCE))
            read_minutes(s, &farm);
        if (rc != METER_OK)
            snprintf(s->err, sizeof s->err, "%s", meter_errmsg(s->st));
    }
    if (rc != METER_OK && meter_error_transient(rc) && (x->flags & METER_SESSION_SPOOL))
        rc = spool_state(s, 0, 0);
    return rc;
}

int meter_session_checkpoint(meter_session *s)
{
    pthread_mutex_lock(&s->lock);
    int rc = s->finalized ? METER_EFINALIZED : checkpoint_locked(s);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Bills the session (or spools it); with s->lock held.  The caller takes
 * it out of the registry afterwards, outside the lock. */
static int finalize_locked(meter_session *s, int interrupted, meter_session_summary *out)
{
    struct meter_session_state *x = &s->state;
    meter_session_summary sum;
    memset(&sum, 0, sizeof sum);
    meter_copy(sum.job, sizeof sum.job, x->job);
    meter_copy(sum.output, sizeof sum.output, x->output);
    const char *status = interrupted ? "interrupted" : "done";
    if (!s->st && meter_open(s->db, 0, &s->st, NULL) != METER_OK)
        s->st = NULL;  /* still unavailable: spool below */
    int rc = METER_EDB;
    if (s->st) {
        if ((rc = meter_tx_begin(s->st)) == METER_OK)
            rc = meter_tx_end(s->st, meter_session_bill_tx(s->st, x, status, meter_now(), &sum));
        if (rc != METER_OK)
            snprintf(s->err, sizeof s->err, "%s", meter_errmsg(s->st));
    } else {
        snprintf(s->err, sizeof s->err, "database %.200s is unavailable", s->db);
    }
    if (rc != METER_OK && meter_error_transient(rc) && (x->flags & METER_SESSION_SPOOL)) {
        x->updated_at = meter_now();
        rc = spool_state(s, 1, interrupted);
        if (rc == METER_OK) {
            /* What a billing transaction that then failed to commit had
             * tallied was rolled back: the summary shows the spooled
             * state alone. */
            memset(&sum, 0, sizeof sum);
            meter_copy(sum.job, sizeof sum.job, x->job);
            meter_copy(sum.output, sizeof sum.output, x->output);
            sum.spooled = 1;
            for (int i = 0; i < x->nseg; i++)
                sum.duration_us += x->seg[i].duration_us;
        }
    } else if (rc == METER_OK) {
        meter_spool_remove(x->spool_dir, x->id);  /* an older checkpoint */
    }
    if (rc == METER_OK || rc == METER_EFINALIZED)
        atomic_store(&s->finalized, 1);
    if (out)
        *out = sum;
    return rc;
}

int meter_session_finalize(meter_session *s, int interrupted, meter_session_summary *out)
{
    pthread_mutex_lock(&s->lock);
    int rc;
    if (s->finalized) {
        snprintf(s->err, sizeof s->err, "session %s is already finalized", s->state.id);
        rc = METER_EFINALIZED;
    } else {
        rc = finalize_locked(s, interrupted, out);
    }
    int done = s->finalized;
    pthread_mutex_unlock(&s->lock);
    if (done)
        registry_remove(s);
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
        atomic_store(&s->detached, 1);
    }
    pthread_mutex_unlock(&s->lock);
    if (finalized)
        meter_session_close(s);
}

void meter_session_close(meter_session *s)
{
    if (!s)
        return;
    if (!s->finalized) {
        meter_session_detach(s);
        return;
    }
    registry_remove(s);
    pthread_mutex_lock(&registry_lock);
    int keep = exiting;  /* the exit handler may be walking it */
    pthread_mutex_unlock(&registry_lock);
    if (!keep)
        free_session(s);
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
