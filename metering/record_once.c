/*
 * record_once.c — a usage entered by hand (`meterctl record`), billed once
 * per idempotency key, so that a scheduler may repeat the call.
 *
 * A manual record is billed as a session of one segment, through the same
 * code that finalizes a metered output (meter_session_bill_tx), in state
 * and session status "manual".  Its session row is what makes it once:
 *   - with a key, the session id is "<node_id>-m:<key>": a second record
 *     with the key finds that row, and the id's uniqueness (the primary
 *     key, checked by close_row) is the guarantee;
 *   - without one, the job and output are the key, under the rule of the
 *     filter's idempotent=1 (meter_session_billed_before): a job and output
 *     already billed in full, by hand or by a metered output that reached
 *     its end, bills nothing.
 * Everything runs in one BEGIN IMMEDIATE transaction, so two records with
 * one key racing from two processes bill once.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static int check_key(meter_store *st, const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > METER_KEY_MAX)
        return meter_fail(st, METER_EINVAL, "record key '%.80s' must be 1 to %d characters",
                          key, METER_KEY_MAX);
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)key[i]) && !strchr("._-:", key[i]))
            return meter_fail(st, METER_EINVAL, "record key '%.80s' may hold only letters, "
                              "digits, '.', '_', '-' and ':'", key);
    return METER_OK;
}

/* Refuses bad input before the key is looked up, so that a repeat with a
 * bad codec or a time in the future is an error, not "already recorded". */
static int check_usage(meter_store *st, const meter_usage_in *in)
{
    if (in->cls != METER_CLASS_GENERAL && in->cls != METER_CLASS_TSC)
        return meter_fail(st, METER_EINVAL, "unknown class (general or tsc)");
    /* (the session keeps the codec as given, in a bounded field) */
    if (in->codec && strlen(in->codec) >= sizeof ((struct meter_session_state *)0)->codec)
        return meter_fail(st, METER_EINVAL, "codec '%.40s...' is too long", in->codec);
    if (in->width < 0 || in->height < 0)
        return meter_fail(st, METER_EINVAL, "negative picture size %dx%d", in->width,
                          in->height);
    meter_spec spec;
    return meter_usage_check(st, in, &spec);
}

/* The keyed session id "<node_id>-m:<key>". */
static int keyed_id(meter_store *st, const char *key, char id[METER_ID_MAX])
{
    char *node_id = NULL;
    int rc = meter_setting_get(st, "node_id", &node_id);
    if (rc == METER_OK)
        snprintf(id, METER_ID_MAX, "%s-m:%s", node_id, key);
    meter_free(node_id);
    return rc;
}

/* A keyed record that exists: the same usage (a repeat) or another one
 * under the same key (refused, METER_EEXIST).  *exists = 0 when the key is
 * new. */
static int compare_keyed(meter_store *st, const char *id, const char *key,
                         const meter_usage_in *in, int *exists)
{
    *exists = 0;
    sqlite3_stmt *q = meter_prepare(st,
        "SELECT s.job, s.output, s.class, s.codec, g.width, g.height, g.duration_us, s.account"
        " FROM sessions s LEFT JOIN session_segments g ON g.session_id = s.id AND g.idx = 0"
        " WHERE s.id = ?1");
    if (!q)
        return METER_EDB;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(q);
    if (step != SQLITE_ROW) {
        sqlite3_finalize(q);
        return step == SQLITE_DONE ? METER_OK : meter_fail_db(st, "read sessions");
    }
    *exists = 1;
    char job[METER_NAME_MAX], output[METER_NAME_MAX], codec[32], account[METER_NAME_MAX];
    char want[METER_NAME_MAX];
    meter_col_text(q, 0, job, sizeof job);
    meter_col_text(q, 7, account, sizeof account);
    meter_col_text(q, 1, output, sizeof output);
    meter_col_text(q, 3, codec, sizeof codec);
    int cls = sqlite3_column_int(q, 2), w = sqlite3_column_int(q, 4),
        h = sqlite3_column_int(q, 5);
    int64_t dur = sqlite3_column_int64(q, 6);
    sqlite3_finalize(q);
    int rc = meter_resolve_account(st, in->account, "account", want);
    if (rc != METER_OK)
        return rc;
    if (strcmp(account, want) != 0)
        return meter_fail(st, METER_EEXIST, "record key '%s' is taken by a usage of account "
                          "'%.80s', not '%.80s': nothing billed", key, account, want);
    if (strcmp(job, in->job) || strcmp(output, in->output) || cls != (int)in->cls ||
        strcmp(codec, in->codec) || w != in->width || h != in->height || dur != in->duration_us)
        return meter_fail(st, METER_EEXIST, "record key '%s' is taken by another usage (job "
                          "'%.40s', output '%.40s', %s, %s, %dx%d, %lld µs): nothing billed",
                          key, job, output, meter_class_name((meter_class)cls), codec, w, h,
                          (long long)dur);
    return METER_OK;
}

/* out for a record that exists: the id and type of its first usage record
 * and the amounts of all of them (a metered output has one per size).  A
 * record that billed nothing (an empty metered output) gives its session
 * id. */
static int describe(meter_store *st, const char *session_id, meter_usage_result *out)
{
    memset(out, 0, sizeof *out);
    out->settled = 1;
    sqlite3_stmt *q = meter_prepare(st,
        "SELECT u.id, u.ttype, u.billed_us,"
        " coalesce((SELECT sum(amount_us) FROM deductions d WHERE d.charge_id = u.id"
        "           AND d.pack_id IS NOT NULL), 0),"
        " coalesce((SELECT sum(amount_us) FROM deductions d WHERE d.charge_id = u.id"
        "           AND d.pack_id IS NULL), 0),"
        " CASE WHEN u.daily = 0 THEN 1 ELSE"
        "   EXISTS (SELECT 1 FROM settled_usage su WHERE su.usage_seq = u.seq) END"
        " FROM usage u WHERE u.session_id = ?1 ORDER BY u.seq");
    if (!q)
        return METER_EDB;
    sqlite3_bind_text(q, 1, session_id, -1, SQLITE_STATIC);
    int step, rows = 0;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        if (rows++ == 0) {
            meter_col_text(q, 0, out->id, sizeof out->id);
            meter_col_text(q, 1, out->ttype, sizeof out->ttype);
        }
        out->billed_us += sqlite3_column_int64(q, 2);
        out->covered_us += sqlite3_column_int64(q, 3);
        out->overage_us += sqlite3_column_int64(q, 4);
        out->settled &= sqlite3_column_int(q, 5);
    }
    sqlite3_finalize(q);
    if (step != SQLITE_DONE)
        return meter_fail_db(st, "read usage");
    if (rows == 0)
        meter_copy(out->id, sizeof out->id, session_id);
    return METER_OK;
}

/* Bills the record as a one-segment session with this id. */
static int bill(meter_store *st, const meter_usage_in *in, const char *id, unsigned flags)
{
    struct meter_session_state s;
    memset(&s, 0, sizeof s);
    int rc = meter_get_node(st, s.node);
    if (rc == METER_OK)
        rc = meter_resolve_account(st, in->account, "account", s.account);
    if (rc != METER_OK)
        return rc;
    meter_copy(s.id, sizeof s.id, id);
    meter_copy(s.job, sizeof s.job, in->job);
    meter_copy(s.output, sizeof s.output, in->output);
    meter_copy(s.codec, sizeof s.codec, in->codec);
    meter_hostname(s.host);
    meter_boot_id(s.boot_id);
    s.cls = in->cls;
    s.flags = flags;
    s.pid = (int)getpid();
    s.proc_start = meter_proc_start(s.pid);
    meter_time at = in->at ? in->at : meter_now();
    s.opened_at = at - in->duration_us / 1000;  /* started_at, as meter_record */
    s.updated_at = at;
    if (meter_state_push(&s, in->width, in->height, in->duration_us) != METER_OK)
        return meter_fail(st, METER_ENOMEM, "out of memory");
    rc = meter_session_bill_tx(st, &s, "manual", at, NULL);
    free(s.seg);
    return rc;
}

static int record_once_tx(meter_store *st, const meter_usage_in *in, const char *key,
                          meter_usage_result *out, int *already)
{
    char id[METER_ID_MAX], earlier[METER_ID_MAX] = "";
    int rc, exists = 0;
    if ((rc = check_usage(st, in)) != METER_OK)
        return rc;
    if (key) {
        if ((rc = keyed_id(st, key, id)) != METER_OK ||
            (rc = compare_keyed(st, id, key, in, &exists)) != METER_OK)
            return rc;
        if (exists)
            meter_copy(earlier, sizeof earlier, id);
    } else if ((rc = meter_session_billed_before(st, in->job, in->output, "", earlier)) !=
               METER_OK) {
        return rc;
    }
    if (earlier[0]) {
        *already = 1;
        return describe(st, earlier, out);
    }
    if (!key && (rc = meter_next_id(st, 'j', NULL, id)) != METER_OK)
        return rc;
    /* Unkeyed records carry the IDEMPOTENT flag, as the filter's sessions
     * do: bill_tx applies the job+output rule once more, under the same
     * lock. */
    if ((rc = bill(st, in, id, key ? 0 : METER_SESSION_IDEMPOTENT)) != METER_OK)
        return rc;
    return describe(st, id, out);
}

int meter_record_once(meter_store *st, const meter_usage_in *in, const char *key,
                      meter_usage_result *out, int *already)
{
    meter_usage_result local;
    int dummy;
    if (!out)
        out = &local;
    if (!already)
        already = &dummy;
    *already = 0;
    if (!in)
        return meter_fail(st, METER_EINVAL, "no usage given");
    int rc;
    if (key && (rc = check_key(st, key)) != METER_OK)
        return rc;
    if ((rc = meter_tx_begin(st)) != METER_OK)
        return rc;
    rc = meter_tx_end(st, record_once_tx(st, in, key, out, already));
    if (rc != METER_OK)
        *already = 0;
    return rc;
}
