/*
 * test_ledger_store.c — the ledger's storage suite, the same for both
 * backends:
 *
 *   test_ledger_store sqlite              (a fresh file under a temp dir)
 *   test_ledger_store pg CONNINFO         (an empty database; the wrapper
 *                                          tests/ledger/store_pg.sh makes one)
 *
 * Covers migrations, credentials and nonces, packs and their rules (refund
 * on day 5 yes / day 6 no / used no, assign only unused, freeze), batch
 * ingest exactly once (duplicates, rejects, a failed transaction that stores
 * nothing and a retry that is then accepted), concurrent ingest of the same
 * batch through two connections, the usage queries, the audit log, and
 * accounts and leases (grant FIFO and split, idempotent ids, expiry at the
 * exact instant, release, late usage from free minutes then overage,
 * overage settled from pooled packs, never below zero, the hostile node's
 * deductions, leases per node, freeze and refund), verify clean after each.
 * Expected amounts are written out by hand from the records sent.
 */
#include <pthread.h>

#include "store.h"
#include "store_impl.h"
#include "tap.h"

#define MIN_US INT64_C(60000000)
#define DAY_MS INT64_C(86400000)

static const char *backend;
static const char *sqlite_path;
static const char *pg_conninfo;

static int open_store(unsigned flags, ledger_store **st, char err[METER_ERRMAX])
{
    return ledger_store_open(pg_conninfo ? NULL : sqlite_path, pg_conninfo, flags, st, err);
}

#define RC(st, got, exp, ...) rc_check((st), (got), (exp), __FILE__, __LINE__, __VA_ARGS__)
static int rc_check(ledger_store *st, int got, int exp, const char *file, int line,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int rc_check(ledger_store *st, int got, int exp, const char *file, int line,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int ok = tap_vresult(got == exp, file, line, fmt, ap);
    va_end(ap);
    if (!ok)
        printf("#   got %d (%s), expected %d (%s); message: %s\n", got, meter_strerror(got),
               exp, meter_strerror(exp), st ? ledger_store_errmsg(st) : "-");
    return ok;
}

/* ---------------------------------------------------------- records -- */

static meter_sync_record usage_rec(const char *id, const char *node, meter_time at,
                                   int64_t dur, int64_t billed)
{
    meter_sync_record r;
    memset(&r, 0, sizeof r);
    strcpy(r.kind, "usage");
    strcpy(r.id, id);
    strcpy(r.node, node);
    strcpy(r.job, "job-1");
    strcpy(r.output, "out-720p");
    strcpy(r.codec, "H264");
    r.width = 1280;
    r.height = 720;
    r.duration_us = dur;
    r.billed_us = billed;
    r.deductible = 1;
    r.started_at = at - 1000;
    strcpy(r.state, "done");
    r.cls = METER_CLASS_GENERAL;
    strcpy(r.ttype, "Standard.H264.HD");
    strcpy(r.day, "2026-03-02");
    r.at = at;
    return r;
}

static meter_sync_record ded_rec(const char *id, const char *node, const char *pack,
                                 meter_class cls, int64_t amount, int64_t before, meter_time at,
                                 const char *day)
{
    meter_sync_record r;
    memset(&r, 0, sizeof r);
    strcpy(r.kind, "deduction");
    strcpy(r.id, id);
    strcpy(r.node, node);
    strcpy(r.charge_id, "charge-1");
    strcpy(r.pack_id, pack);
    r.cls = cls;
    strcpy(r.ttype, cls == METER_CLASS_TSC ? "TESHD-10.H264.HD" : "Standard.H264.HD");
    strcpy(r.day, day);
    r.amount_us = amount;
    if (pack[0]) {
        r.before_us = before;
        r.after_us = before - amount;
    }
    r.at = at;
    return r;
}

static meter_sync_record settle_rec(const char *id, const char *node, meter_time at)
{
    meter_sync_record r;
    memset(&r, 0, sizeof r);
    strcpy(r.kind, "settlement");
    strcpy(r.id, id);
    strcpy(r.node, node);
    strcpy(r.day, "2026-03-02");
    r.cls = METER_CLASS_GENERAL;
    strcpy(r.ttype, "Standard.H264.HD");
    r.deductible = 1;
    r.billed_us = 5 * MIN_US;
    r.at = at;
    return r;
}

static meter_sync_record event_rec(const char *id, const char *node, const char *pack,
                                   meter_time at)
{
    meter_sync_record r;
    memset(&r, 0, sizeof r);
    strcpy(r.kind, "pack_event");
    strcpy(r.id, id);
    strcpy(r.node, node);
    strcpy(r.pack_id, pack);
    strcpy(r.action, "freeze");
    r.at = at;
    return r;
}

static int64_t count_records(ledger_store *st)
{
    lres r;
    if (store_exec(st, "SELECT count(*) FROM records", NULL, 0, &r) != METER_OK)
        return -1;
    int64_t n = lres_int(&r, 0, 0);
    lres_free(&r);
    return n;
}

static int64_t count_audit(ledger_store *st)
{
    ledger_audit_row *a;
    size_t n;
    if (ledger_audit_list(st, 0, 0, &a, &n) != METER_OK)
        return -1;
    ledger_audit_free(a, n);
    return (int64_t)n;
}

static int64_t pack_used(ledger_store *st, const char *id, meter_time now)
{
    ledger_pack p;
    return ledger_pack_get(st, id, now, &p) == METER_OK ? p.used_us : -1;
}

static int64_t pack_remaining(ledger_store *st, const char *id)
{
    ledger_pack p;
    return ledger_pack_get(st, id, 0, &p) == METER_OK ? p.remaining_us : -1;
}

static const char *outcomes(const ledger_ingest_result *o, size_t n)
{
    static char buf[256];
    size_t k = 0;
    for (size_t i = 0; i < n && k + 2 < sizeof buf; i++)
        buf[k++] = o[i].outcome == LEDGER_ACCEPTED ? 'A'
                 : o[i].outcome == LEDGER_DUPLICATE ? 'D' : 'R';
    buf[k] = '\0';
    return buf;
}

/* ---------------------------------------------------------- sections -- */

static const meter_time T0 = INT64_C(1772323200000);   /* 2026-03-01T00:00:00Z */
static ledger_actor alice = { "alice", "{\"test\": true}" };

static void test_schema(void)
{
    char err[METER_ERRMAX] = "";
    ledger_store *st = NULL;
    if (!RC(NULL, open_store(LEDGER_OPEN_MIGRATE, &st, err), METER_OK, "%s: open and migrate",
            backend)) {
        tap_diag("%s", err);
        BAIL("cannot open the store");
    }
    int v = 0;
    RC(st, ledger_store_schema(st, &v), METER_OK, "read the schema version");
    CHECK_EQ_INT(v, LEDGER_SCHEMA_VERSION, "schema version is current");
    CHECK_EQ_STR(ledger_store_backend(st), strcmp(backend, "pg") ? "sqlite" : "postgresql",
                 "backend name");
    RC(st, ledger_store_ping(st), METER_OK, "ping answers");
    ledger_store_close(st);

    /* migrating again is a no-op; a plain open accepts the current schema */
    RC(NULL, open_store(LEDGER_OPEN_MIGRATE, &st, err), METER_OK, "migrate twice");
    ledger_store_close(st);
    RC(NULL, open_store(0, &st, err), METER_OK, "open without migrating");

    /* a newer schema is refused, with or without migrating */
    store_exec(st, "UPDATE ledger_schema SET version = 99", NULL, 0, NULL);
    ledger_store *st2 = NULL;
    RC(NULL, open_store(0, &st2, err), METER_EVERSION, "newer schema refused (open)");
    CHECK(strstr(err, "newer") != NULL, "the message says newer: %s", err);
    RC(NULL, open_store(LEDGER_OPEN_MIGRATE, &st2, err), METER_EVERSION,
       "newer schema refused (migrate)");
    CHECK(st2 == NULL, "no store handed out");
    lparam cur[] = { P_INT(LEDGER_SCHEMA_VERSION) };
    store_exec(st, "UPDATE ledger_schema SET version = $1", cur, 1, NULL);
    ledger_store_close(st);

    if (!pg_conninfo) {
        /* a file that is another program's database is left alone */
        const char *dir = tap_tmpdir("foreign");
        const char *path = tap_path(dir, "other.db");
        char cmd[PATH_MAX + 128];
        snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'CREATE TABLE t (x); INSERT INTO t VALUES (1);'",
                 path);
        if (system(cmd) == 0) {
            RC(NULL, ledger_store_open(path, NULL, LEDGER_OPEN_MIGRATE, &st2, err),
               METER_EFOREIGN, "a foreign SQLite file is refused");
        } else
            FAIL("create a foreign SQLite file with the sqlite3 CLI");
        RC(NULL, ledger_store_open(tap_path(dir, "missing.db"), NULL, 0, &st2, err), METER_EDB,
           "a missing file is not created without migrate");
    }
}

static void test_credentials(ledger_store *st)
{
    char secret[LEDGER_SECRET_HEX + 1], s2[LEDGER_SECRET_HEX + 1], name[METER_NAME_MAX];
    RC(st, ledger_node_add(st, "node-a", T0, &alice, secret), METER_OK, "add node-a");
    CHECK_EQ_INT((int)strlen(secret), LEDGER_SECRET_HEX, "secret is 64 hex chars");
    CHECK(strspn(secret, "0123456789abcdef") == LEDGER_SECRET_HEX, "secret is hex");
    RC(st, ledger_node_add(st, "node-b", T0, &alice, s2), METER_OK, "add node-b");
    CHECK(strcmp(secret, s2) != 0, "secrets differ");
    RC(st, ledger_node_add(st, "node-a", T0, &alice, s2), METER_EEXIST, "node-a twice refused");
    RC(st, ledger_node_secret(st, "node-a", s2), METER_OK, "read node-a's secret");
    CHECK_EQ_STR(s2, secret, "the stored secret is the one handed out");
    RC(st, ledger_node_secret(st, "node-x", s2), METER_ENOTFOUND, "unknown node");
    RC(st, ledger_node_by_secret(st, secret, name), METER_OK, "find a node by its secret");
    CHECK_EQ_STR(name, "node-a", "…it is node-a");
    RC(st, ledger_node_by_secret(st, "00ff", name), METER_ENOTFOUND, "a wrong secret finds no node");

    char token[LEDGER_SECRET_HEX + 1];
    RC(st, ledger_admin_add(st, "alice", T0, token), METER_OK, "add admin alice");
    RC(st, ledger_admin_by_token(st, token, name), METER_OK, "find alice by her token");
    CHECK_EQ_STR(name, "alice", "…it is alice");
    RC(st, ledger_admin_by_token(st, secret, name), METER_ENOTFOUND,
       "a node secret is not an admin token");
    RC(st, ledger_admin_add(st, "alice", T0, token), METER_EEXIST, "alice twice refused");

    /* nonces: once per node within expiry, shared by every connection */
    RC(st, ledger_node_seen(st, "node-a", "00112233445566778899aabbccddeeff", T0, T0 + 600000),
       METER_OK, "a fresh nonce is taken");
    RC(st, ledger_node_seen(st, "node-a", "00112233445566778899aabbccddeeff", T0 + 1000,
                            T0 + 601000), METER_EEXIST, "the same nonce again is a replay");
    RC(st, ledger_node_seen(st, "node-b", "00112233445566778899aabbccddeeff", T0, T0 + 600000),
       METER_OK, "another node may use the same nonce");
    RC(st, ledger_node_seen(st, "node-a", "00112233445566778899aabbccddeeff", T0 + 600001,
                            T0 + 1200001), METER_OK, "an expired nonce is forgotten");
    RC(st, ledger_node_seen(st, "node-a", NULL, T0 + 700000, 0), METER_OK,
       "a bearer request notes last-seen only");
    ledger_node *nodes;
    size_t n;
    if (RC(st, ledger_node_list(st, &nodes, &n), METER_OK, "list nodes")) {
        CHECK_EQ_INT((int)n, 2, "two nodes");
        if (n == 2) {
            CHECK_EQ_STR(nodes[0].name, "node-a", "sorted by name");
            CHECK_EQ_I64(nodes[0].last_seen, T0 + 700000, "node-a last seen");
            CHECK_EQ_I64(nodes[1].last_seen, T0, "node-b last seen");
        }
        free(nodes);
    }
}

static void test_packs(ledger_store *st)
{
    ledger_pack p;
    RC(st, ledger_pack_add(st, "pk-gen", METER_CLASS_GENERAL, 100, T0, "node-a", NULL, T0, &alice, &p),
       METER_OK, "buy pk-gen for node-a");
    CHECK_EQ_I64(p.total_us, 100 * MIN_US, "total is 100 minutes");
    CHECK_EQ_I64(p.remaining_us, 100 * MIN_US, "remaining = total");
    CHECK_EQ_I64(p.end, INT64_C(1803859200000), "end = start + 1 year (2027-03-01)");
    CHECK_EQ_STR(p.node, "node-a", "assigned to node-a");
    CHECK_EQ_STR(p.status, "valid", "status valid");
    RC(st, ledger_pack_add(st, "pk-tsc", METER_CLASS_TSC, 50, T0, "node-a", NULL, T0, &alice, NULL),
       METER_OK, "buy pk-tsc for node-a");
    RC(st, ledger_pack_add(st, "pk-b", METER_CLASS_GENERAL, 10, T0, "node-b", NULL, T0, &alice, NULL),
       METER_OK, "buy pk-b for node-b");
    /* in an account of its own: overage of account default settles from
     * default's pooled packs, and pk-free is to stay unused */
    RC(st, ledger_account_add(st, "stock", T0, &alice), METER_OK, "add account stock");
    RC(st, ledger_pack_add(st, "pk-free", METER_CLASS_GENERAL, 10, T0, NULL, "stock", T0, &alice,
                           NULL), METER_OK, "buy pk-free unassigned (pooled, account stock)");
    RC(st, ledger_pack_add(st, NULL, METER_CLASS_GENERAL, 5, 0, NULL, NULL, T0 + 3600000, &alice, &p),
       METER_OK, "buy with a generated id");
    CHECK(strncmp(p.id, "pk-20260301-", 12) == 0 && strlen(p.id) == 20,
          "generated id pk-YYYYMMDD-xxxxxxxx: %s", p.id);
    CHECK_EQ_I64(p.start, T0 + 3600000, "start 0 means now");
    ledger_pack leap;
    RC(st, ledger_pack_add(st, "pk-leap", METER_CLASS_GENERAL, 1, INT64_C(1835395200000), NULL, NULL,
                           T0, &alice, &leap), METER_OK, "buy a pack starting 2028-02-29");
    CHECK_EQ_I64(leap.end, INT64_C(1867017600000), "…it ends 2029-03-01");
    CHECK_EQ_STR(leap.status, "pending", "…and is pending before its start");
    RC(st, ledger_pack_add(st, "pk-gen", METER_CLASS_GENERAL, 1, T0, NULL, NULL, T0, &alice, NULL),
       METER_EEXIST, "a taken id is refused");
    RC(st, ledger_pack_add(st, "pk-x", METER_CLASS_GENERAL, 0, T0, NULL, NULL, T0, &alice, NULL),
       METER_EINVAL, "0 minutes refused");
    RC(st, ledger_pack_add(st, "pk-x", METER_CLASS_GENERAL, METER_PACK_MINUTES_MAX + 1, T0,
                           NULL, NULL, T0, &alice, NULL), METER_EINVAL, "too many minutes refused");
    RC(st, ledger_pack_add(st, "pk-x", METER_CLASS_GENERAL, 1, T0, "node-zz", NULL, T0, &alice, NULL),
       METER_ENOTFOUND, "assigning at purchase to an unknown node refused");
    RC(st, ledger_pack_get(st, "pk-x", T0, &p), METER_ENOTFOUND, "…and nothing was bought");
}

static void test_ingest(ledger_store *st)
{
    meter_time at = T0 + DAY_MS + 3600000;   /* 2026-03-02T01:00Z */
    meter_sync_record b1[] = {
        usage_rec("na-u1", "node-a", at, 2 * MIN_US, 4 * MIN_US),
        ded_rec("na-d1", "node-a", "pk-gen", METER_CLASS_GENERAL, 4 * MIN_US, 100 * MIN_US, at,
                "2026-03-02"),
        ded_rec("na-d2", "node-a", "", METER_CLASS_GENERAL, 1 * MIN_US, 0, at, "2026-03-02"),
        settle_rec("na-s1", "node-a", at),
        event_rec("na-e1", "node-a", "pk-gen", at),
    };
    ledger_ingest_result out[16];
    int64_t before = count_records(st);
    RC(st, ledger_ingest(st, "node-a", b1, 5, at + 5000, out), METER_OK, "ingest a batch");
    CHECK_EQ_STR(outcomes(out, 5), "AAAAA", "every record accepted");
    CHECK_EQ_I64(count_records(st), before + 5, "five records stored");
    CHECK_EQ_I64(pack_used(st, "pk-gen", at), 4 * MIN_US, "the deduction's effect on pk-gen");

    RC(st, ledger_ingest(st, "node-a", b1, 5, at + 9000, out), METER_OK, "the same batch again");
    CHECK_EQ_STR(outcomes(out, 5), "DDDDD", "every record a duplicate");
    CHECK_EQ_I64(count_records(st), before + 5, "nothing more stored");
    CHECK_EQ_I64(pack_used(st, "pk-gen", at), 4 * MIN_US, "the effect applied once");

    /* rejects, and a duplicate inside one batch */
    meter_time at2 = at + 60000;
    meter_sync_record b2[] = {
        ded_rec("na-d3", "node-a", "pk-gen", METER_CLASS_GENERAL, 2 * MIN_US, 96 * MIN_US, at2,
                "2026-03-02"),
        ded_rec("na-d3", "node-a", "pk-gen", METER_CLASS_GENERAL, 2 * MIN_US, 96 * MIN_US, at2,
                "2026-03-02"),
        usage_rec("nb-u1", "node-b", at2, MIN_US, MIN_US),                 /* other node */
        ded_rec("na-d4", "node-a", "pk-b", METER_CLASS_GENERAL, MIN_US, 10 * MIN_US, at2,
                "2026-03-02"),                                             /* node-b's pack */
        ded_rec("na-d5", "node-a", "pk-free", METER_CLASS_GENERAL, MIN_US, 10 * MIN_US, at2,
                "2026-03-02"),                                             /* unassigned */
        ded_rec("na-d6", "node-a", "pk-nope", METER_CLASS_GENERAL, MIN_US, 10 * MIN_US, at2,
                "2026-03-02"),                                             /* unknown */
        ded_rec("na-d7", "node-a", "pk-gen", METER_CLASS_TSC, MIN_US, 94 * MIN_US, at2,
                "2026-03-02"),                                             /* wrong class */
        ded_rec("na-d8", "node-a", "pk-tsc", METER_CLASS_TSC, 3 * MIN_US, 50 * MIN_US, at2,
                "2026-03-02"),
        ded_rec("na-d1", "node-a", "pk-gen", METER_CLASS_GENERAL, 4 * MIN_US, 100 * MIN_US, at,
                "2026-03-02"),                                             /* old duplicate */
    };
    RC(st, ledger_ingest(st, "node-a", b2, 9, at2 + 1000, out), METER_OK, "ingest a mixed batch");
    CHECK_EQ_STR(outcomes(out, 9), "ADRRRRRAD", "accepted, in-batch duplicate, rejects, old duplicate");
    CHECK(strstr(out[2].reason, "node-b") != NULL, "reason names the other node: %s", out[2].reason);
    CHECK(strstr(out[3].reason, "not assigned") != NULL, "reason: %s", out[3].reason);
    CHECK(strstr(out[4].reason, "not assigned") != NULL, "reason: %s", out[4].reason);
    CHECK(strstr(out[5].reason, "does not know") != NULL, "reason: %s", out[5].reason);
    CHECK(strstr(out[6].reason, "class") != NULL, "reason: %s", out[6].reason);
    CHECK_EQ_I64(pack_used(st, "pk-gen", at), 6 * MIN_US, "pk-gen used 4 + 2 minutes");
    CHECK_EQ_I64(pack_used(st, "pk-tsc", at), 3 * MIN_US, "pk-tsc used 3 minutes");
    CHECK_EQ_I64(pack_used(st, "pk-b", at), 0, "a rejected deduction has no effect");

    /* A transaction that fails half-way stores nothing and claims no id:
     * the third record breaks a CHECK constraint after two were inserted. */
    meter_time at3 = at + 120000;
    meter_sync_record b3[] = {
        usage_rec("na-u2", "node-a", at3, MIN_US, 2 * MIN_US),
        ded_rec("na-d9", "node-a", "pk-gen", METER_CLASS_GENERAL, 2 * MIN_US, 94 * MIN_US, at3,
                "2026-03-02"),
        usage_rec("na-u99", "node-a", at3, -5, 0),
        usage_rec("na-u3", "node-a", at3, MIN_US, 2 * MIN_US),
    };
    int64_t n_before = count_records(st);
    int rc = ledger_ingest(st, "node-a", b3, 4, at3 + 1000, out);
    CHECK(rc == METER_EDB, "a batch whose transaction fails returns a database error (%d: %s)",
          rc, ledger_store_errmsg(st));
    CHECK(strstr(ledger_store_errmsg(st), "na-u99") != NULL, "the error names the record: %s",
          ledger_store_errmsg(st));
    CHECK_EQ_I64(count_records(st), n_before, "nothing of the failed batch stored");
    CHECK_EQ_I64(pack_used(st, "pk-gen", at), 6 * MIN_US, "no effect of the failed batch");
    b3[2] = b3[3];
    RC(st, ledger_ingest(st, "node-a", b3, 3, at3 + 2000, out), METER_OK, "retry without the bad record");
    CHECK_EQ_STR(outcomes(out, 3), "AAA", "the retry is accepted, not taken for duplicates");
    CHECK_EQ_I64(pack_used(st, "pk-gen", at), 8 * MIN_US, "pk-gen used 4 + 2 + 2 minutes");

    /* node-b's own records */
    meter_sync_record b4[] = {
        usage_rec("nb-u1", "node-b", at2, 3 * MIN_US, 6 * MIN_US),
        ded_rec("nb-d1", "node-b", "pk-b", METER_CLASS_GENERAL, 6 * MIN_US, 10 * MIN_US, at2,
                "2026-03-02"),
    };
    RC(st, ledger_ingest(st, "node-b", b4, 2, at2, out), METER_OK, "node-b ingests");
    CHECK_EQ_STR(outcomes(out, 2), "AA", "node-b's records accepted");

    /* records and the audit log are append-only */
    CHECK(store_exec(st, "UPDATE records SET amount_us = 0 WHERE id = 'na-d1'", NULL, 0, NULL)
              != METER_OK, "records cannot be updated");
    CHECK(store_exec(st, "DELETE FROM records WHERE id = 'na-d1'", NULL, 0, NULL) != METER_OK,
          "records cannot be deleted");
}

/* The PostgreSQL connection dies between two requests: the next
 * transaction reconnects and retries, and the batch lands exactly once. */
static void test_lost_connection(ledger_store *st)
{
    if (!pg_conninfo)
        return;
    char err[METER_ERRMAX];
    ledger_store *killer = NULL;
    if (!RC(NULL, open_store(0, &killer, err), METER_OK, "pg: a second connection"))
        return;
    lres me;
    store_exec(st, "SELECT pg_backend_pid()", NULL, 0, &me);
    lparam p[] = { P_INT(lres_int(&me, 0, 0)) };
    lres_free(&me);
    RC(killer, store_exec(killer, "SELECT pg_terminate_backend($1)", p, 1, NULL), METER_OK,
       "pg: terminate the first connection's backend");
    ledger_store_close(killer);
    meter_time at = T0 + DAY_MS + 7200000;
    meter_sync_record b[] = { usage_rec("na-u777", "node-a", at, MIN_US, 2 * MIN_US) };
    ledger_ingest_result out[1];
    RC(st, ledger_ingest(st, "node-a", b, 1, at, out), METER_OK,
       "pg: ingest over the dead connection reconnects and succeeds");
    CHECK_EQ_STR(outcomes(out, 1), "A", "pg: accepted once");
    RC(st, ledger_ingest(st, "node-a", b, 1, at, out), METER_OK, "pg: and again");
    CHECK_EQ_STR(outcomes(out, 1), "D", "pg: now a duplicate");
}

/* Two connections ingest the same batches at the same time (two ledger
 * instances behind a load balancer receiving a retried batch). */
struct racer {
    ledger_store *st;
    int round;
    int64_t before[2];
    ledger_ingest_result out[8];
    int rc;
    pthread_barrier_t *go;
};

static void race_batch(int round, const int64_t before[2], meter_sync_record b[4])
{
    char id[4][40];
    meter_time at = T0 + 2 * DAY_MS + round * 1000;
    snprintf(id[0], sizeof id[0], "na-u%d", 5000 + round);
    for (int i = 1; i < 4; i++)
        snprintf(id[i], sizeof id[i], "na-d%d", 5000 + 4 * round + i);
    b[0] = usage_rec(id[0], "node-a", at, MIN_US, MIN_US);
    b[1] = ded_rec(id[1], "node-a", "pk-gen", METER_CLASS_GENERAL, 1000, 0, at, "2026-03-03");
    b[2] = ded_rec(id[2], "node-a", "pk-tsc", METER_CLASS_TSC, 1000, 0, at, "2026-03-03");
    b[3] = ded_rec(id[3], "node-a", "", METER_CLASS_GENERAL, 1000, 0, at, "2026-03-03");
    /* each round starts from the balances the ledger holds */
    b[1].before_us = before[0], b[1].after_us = before[0] - 1000;
    b[2].before_us = before[1], b[2].after_us = before[1] - 1000;
}

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    meter_sync_record b[4];
    race_batch(r->round, r->before, b);
    pthread_barrier_wait(r->go);
    r->rc = ledger_ingest(r->st, "node-a", b, 4, T0 + 3 * DAY_MS, r->out);
    return NULL;
}

static void test_concurrent(ledger_store *st)
{
    char err[METER_ERRMAX];
    ledger_store *other = NULL;
    if (!RC(NULL, open_store(0, &other, err), METER_OK, "a second connection"))
        return;
    int64_t gen0 = pack_used(st, "pk-gen", T0), tsc0 = pack_used(st, "pk-tsc", T0);
    int rounds = 20, bad = 0;
    for (int round = 0; round < rounds; round++) {
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        struct racer a = { .st = st, .round = round, .go = &go };
        a.before[0] = pack_remaining(st, "pk-gen");
        a.before[1] = pack_remaining(st, "pk-tsc");
        struct racer b = a;
        b.st = other;
        pthread_t ta, tb;
        pthread_create(&ta, NULL, racer_main, &a);
        pthread_create(&tb, NULL, racer_main, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        pthread_barrier_destroy(&go);
        if (a.rc != METER_OK || b.rc != METER_OK) {
            tap_diag("round %d: rc %d/%d: %s / %s", round, a.rc, b.rc,
                     ledger_store_errmsg(st), ledger_store_errmsg(other));
            bad++;
            continue;
        }
        for (int i = 0; i < 4; i++) {
            int acc = (a.out[i].outcome == LEDGER_ACCEPTED) + (b.out[i].outcome == LEDGER_ACCEPTED);
            int dup = (a.out[i].outcome == LEDGER_DUPLICATE) + (b.out[i].outcome == LEDGER_DUPLICATE);
            if (acc != 1 || dup != 1) {
                tap_diag("round %d record %d: %s / %s", round, i, outcomes(a.out, 4),
                         outcomes(b.out, 4));
                bad++;
            }
        }
    }
    CHECK_EQ_INT(bad, 0, "%d concurrent rounds: each record accepted by exactly one connection",
                 rounds);
    CHECK_EQ_I64(pack_used(st, "pk-gen", T0) - gen0, rounds * 1000, "pk-gen charged once per round");
    CHECK_EQ_I64(pack_used(st, "pk-tsc", T0) - tsc0, rounds * 1000, "pk-tsc charged once per round");
    ledger_store_close(other);
}

static void test_pack_rules(ledger_store *st)
{
    ledger_pack p;
    int64_t audit0 = count_audit(st);
    /* refund: the 5th day included, the 6th not, never once used */
    RC(st, ledger_pack_add(st, "pk-r1", METER_CLASS_GENERAL, 10, T0, NULL, NULL, T0, &alice, NULL),
       METER_OK, "buy pk-r1");
    RC(st, ledger_pack_add(st, "pk-r2", METER_CLASS_GENERAL, 10, T0, NULL, NULL, T0, &alice, NULL),
       METER_OK, "buy pk-r2");
    RC(st, ledger_pack_add(st, "pk-r3", METER_CLASS_GENERAL, 10, T0, NULL, NULL, T0, &alice, NULL),
       METER_OK, "buy pk-r3");
    int64_t audit1 = count_audit(st);
    CHECK_EQ_I64(audit1 - audit0, 3, "three purchases audited");
    RC(st, ledger_pack_refund(st, "pk-r2", T0 + 5 * DAY_MS + 1, &alice, NULL), METER_EREFUSED,
       "refund on day 6 (start + 5 days + 1 ms) refused");
    CHECK(strstr(ledger_store_errmsg(st), "5-day") != NULL, "…naming the window: %s",
          ledger_store_errmsg(st));
    RC(st, ledger_pack_refund(st, "pk-r3", T0 + 6 * DAY_MS, &alice, NULL), METER_EREFUSED,
       "refund a day later still refused");
    RC(st, ledger_pack_refund(st, "pk-gen", T0 + DAY_MS, &alice, NULL), METER_EREFUSED,
       "refund of a used pack refused, inside the window");
    CHECK(strstr(ledger_store_errmsg(st), "used") != NULL, "…naming the use: %s",
          ledger_store_errmsg(st));
    CHECK_EQ_I64(count_audit(st), audit1, "refused actions are not audited");
    RC(st, ledger_pack_refund(st, "pk-r1", T0 + 5 * DAY_MS, &alice, &p), METER_OK,
       "refund at the last millisecond of day 5");
    CHECK_EQ_STR(p.status, "refunded", "status refunded");
    CHECK_EQ_I64(p.refunded_at, T0 + 5 * DAY_MS, "refund time stored");
    RC(st, ledger_pack_refund(st, "pk-r3", T0 + 4 * DAY_MS, &alice, NULL), METER_OK,
       "refund on day 4");
    RC(st, ledger_pack_refund(st, "pk-r1", T0 + 5 * DAY_MS, &alice, NULL), METER_EEXIST,
       "refund twice is a conflict");
    RC(st, ledger_pack_freeze(st, "pk-r1", 1, T0, &alice, NULL), METER_EREFUSED,
       "a refunded pack cannot be frozen");
    RC(st, ledger_pack_assign(st, "pk-r1", "node-a", T0, &alice, NULL), METER_EREFUSED,
       "a refunded pack cannot be assigned");
    RC(st, ledger_pack_refund(st, "pk-none", T0, &alice, NULL), METER_ENOTFOUND,
       "refund of an unknown pack");

    /* freeze / unfreeze */
    RC(st, ledger_pack_freeze(st, "pk-r2", 1, T0, &alice, &p), METER_OK, "freeze pk-r2");
    CHECK(p.frozen && !strcmp(p.status, "frozen"), "pk-r2 frozen");
    RC(st, ledger_pack_freeze(st, "pk-r2", 1, T0, &alice, NULL), METER_EEXIST,
       "freezing a frozen pack is a conflict");
    RC(st, ledger_pack_freeze(st, "pk-r2", 0, T0, &alice, &p), METER_OK, "unfreeze pk-r2");
    CHECK(!p.frozen && !strcmp(p.status, "valid"), "pk-r2 valid again");
    RC(st, ledger_pack_freeze(st, "pk-r2", 0, T0, &alice, NULL), METER_EEXIST,
       "unfreezing an unfrozen pack is a conflict");

    /* the status order is the node's (meter_pack_status): refunded beats
     * frozen, frozen beats expired */
    RC(st, ledger_pack_add(st, "pk-fr", METER_CLASS_GENERAL, 10, T0, NULL, NULL, T0, &alice, NULL),
       METER_OK, "buy pk-fr");
    RC(st, ledger_pack_freeze(st, "pk-fr", 1, T0, &alice, &p), METER_OK, "freeze pk-fr");
    ledger_pack_get(st, "pk-fr", INT64_C(1803859200000), &p);
    CHECK_EQ_STR(p.status, "frozen", "frozen beats expired");
    RC(st, ledger_pack_refund(st, "pk-fr", T0, &alice, &p), METER_OK, "refund frozen pk-fr");
    CHECK_EQ_STR(p.status, "refunded", "refunded beats frozen");
    RC(st, ledger_pack_freeze(st, "pk-fr", 0, T0, &alice, NULL), METER_EREFUSED,
       "a refunded pack cannot be unfrozen");

    /* assign: only while unused */
    RC(st, ledger_pack_assign(st, "pk-free", "node-a", T0, &alice, &p), METER_OK,
       "assign the unassigned pk-free to node-a");
    CHECK_EQ_STR(p.node, "node-a", "pk-free is node-a's");
    RC(st, ledger_pack_assign(st, "pk-free", "node-b", T0, &alice, &p), METER_OK,
       "reassign the unused pk-free to node-b");
    CHECK_EQ_STR(p.node, "node-b", "pk-free is node-b's");
    RC(st, ledger_pack_assign(st, "pk-gen", "node-b", T0, &alice, NULL), METER_EREFUSED,
       "a used pack cannot be reassigned");
    ledger_pack_get(st, "pk-gen", T0, &p);
    CHECK_EQ_STR(p.node, "node-a", "pk-gen stays node-a's");
    RC(st, ledger_pack_assign(st, "pk-r2", "node-zz", T0, &alice, NULL), METER_ENOTFOUND,
       "assign to an unknown node");
    RC(st, ledger_pack_assign(st, "pk-zz", "node-a", T0, &alice, NULL), METER_ENOTFOUND,
       "assign an unknown pack");

    /* statuses at the ledger, computed as on the node */
    RC(st, ledger_pack_add(st, "pk-small", METER_CLASS_GENERAL, 1, T0, "node-a", NULL, T0, &alice, NULL),
       METER_OK, "buy a 1-minute pack");
    meter_sync_record d = ded_rec("na-d900", "node-a", "pk-small", METER_CLASS_GENERAL, MIN_US,
                                  MIN_US, T0 + 1000, "2026-03-01");
    ledger_ingest_result o;
    RC(st, ledger_ingest(st, "node-a", &d, 1, T0 + 2000, &o), METER_OK, "use it up");
    ledger_pack_get(st, "pk-small", T0 + 3000, &p);
    CHECK_EQ_STR(p.status, "exhausted", "status exhausted");
    CHECK_EQ_I64(p.remaining_us, 0, "remaining 0");
    ledger_pack_get(st, "pk-r2", INT64_C(1803859200000), &p);
    CHECK_EQ_STR(p.status, "expired", "status expired at its end");
    ledger_pack_get(st, "pk-r2", INT64_C(1803859200000) - 1, &p);
    CHECK_EQ_STR(p.status, "valid", "valid one millisecond before");

    /* the audit log: who, what, target */
    ledger_audit_row *a;
    size_t n;
    if (RC(st, ledger_audit_list(st, 0, 0, &a, &n), METER_OK, "read the audit log")) {
        int refunds = 0, freezes = 0, assigns = 0, nodes = 0, admins = 0;
        for (size_t i = 0; i < n; i++) {
            refunds += !strcmp(a[i].action, "pack.refund");
            freezes += !strcmp(a[i].action, "pack.freeze") || !strcmp(a[i].action, "pack.unfreeze");
            assigns += !strcmp(a[i].action, "pack.assign");
            nodes += !strcmp(a[i].action, "node.add");
            admins += !strcmp(a[i].action, "admin.add");
        }
        CHECK_EQ_INT(refunds, 3, "three refunds audited");
        CHECK_EQ_INT(freezes, 3, "freezes and unfreeze audited");
        CHECK_EQ_INT(assigns, 2 + 4, "assignments audited (4 at purchase, 2 later)");
        CHECK_EQ_INT(nodes, 2, "node creations audited");
        CHECK_EQ_INT(admins, 1, "admin creation audited");
        int found = 0;
        for (size_t i = 0; i < n; i++)
            if (!strcmp(a[i].action, "pack.refund") && !strcmp(a[i].target, "pk-r1")) {
                found = 1;
                CHECK_EQ_STR(a[i].admin, "alice", "the refund names its admin");
                CHECK_EQ_I64(a[i].at, T0 + 5 * DAY_MS, "…and its time");
                CHECK(a[i].body && strstr(a[i].body, "test"), "…and the request body");
            }
        CHECK(found, "pk-r1's refund is in the log");
        ledger_audit_free(a, n);
    }
    if (RC(st, ledger_audit_list(st, T0 + 4 * DAY_MS, T0 + 5 * DAY_MS, &a, &n), METER_OK,
           "audit log by time")) {
        CHECK_EQ_INT((int)n, 1, "one entry in [day 4, day 5): the day-4 refund");
        ledger_audit_free(a, n);
    }

    /* list and search */
    ledger_pack *rows;
    ledger_pack_filter f = { .type = -1 };
    f.id_like = "PK-R";
    if (RC(st, ledger_pack_list(st, &f, T0 + DAY_MS, &rows, &n), METER_OK, "search PK-R")) {
        CHECK_EQ_INT((int)n, 3, "pk-r1, pk-r2, pk-r3 (case-insensitive substring)");
        if (n == 3)
            CHECK(!strcmp(rows[0].id, "pk-r1") && !strcmp(rows[2].id, "pk-r3"), "ordered by id");
        free(rows);
    }
    f = (ledger_pack_filter){ .type = METER_CLASS_TSC };
    if (RC(st, ledger_pack_list(st, &f, T0 + DAY_MS, &rows, &n), METER_OK, "filter type tsc")) {
        CHECK(n == 1 && !strcmp(rows[0].id, "pk-tsc"), "only pk-tsc");
        free(rows);
    }
    f = (ledger_pack_filter){ .type = -1, .status = "refunded" };
    if (RC(st, ledger_pack_list(st, &f, T0 + DAY_MS, &rows, &n), METER_OK, "filter refunded")) {
        CHECK_EQ_INT((int)n, 3, "three refunded");
        free(rows);
    }
    f = (ledger_pack_filter){ .type = -1, .node = "node-b" };
    if (RC(st, ledger_pack_list(st, &f, T0 + DAY_MS, &rows, &n), METER_OK, "filter node-b")) {
        CHECK(n == 2 && !strcmp(rows[0].id, "pk-b") && !strcmp(rows[1].id, "pk-free"),
              "pk-b and pk-free");
        free(rows);
    }
    f = (ledger_pack_filter){ .type = -1, .status = "bogus" };
    RC(st, ledger_pack_list(st, &f, T0, &rows, &n), METER_EINVAL, "unknown status refused");
}

static void test_queries(ledger_store *st)
{
    ledger_query q = { .type = -1 };
    ledger_detail_row *d;
    size_t n;
    q.node = "node-a";
    q.pack_id = "pk-gen";
    q.ttype = "Standard.H264.HD";
    q.from = T0 + DAY_MS;
    q.to = T0 + 2 * DAY_MS;
    if (RC(st, ledger_usage_details(st, &q, &d, &n), METER_OK, "details of pk-gen on 2026-03-02")) {
        CHECK_EQ_INT((int)n, 1, "one row per day × pack × ttype");
        if (n == 1) {
            CHECK_EQ_STR(d[0].day, "2026-03-02", "day");
            CHECK_EQ_I64(d[0].used_us, 8 * MIN_US, "used 4 + 2 + 2 minutes");
            CHECK_EQ_I64(d[0].before_us, 100 * MIN_US, "before the first: 100 minutes");
            CHECK_EQ_I64(d[0].after_us, 92 * MIN_US, "after the last: 92 minutes");
            CHECK_EQ_I64(d[0].count, 3, "three deductions");
        }
        free(d);
    }
    q = (ledger_query){ .type = -1, .pack_id = "-" };
    if (RC(st, ledger_usage_details(st, &q, &d, &n), METER_OK, "overage rows")) {
        int64_t sum = 0;
        int ok = 1;
        for (size_t i = 0; i < n; i++) {
            sum += d[i].used_us;
            ok &= d[i].pack_id[0] == '\0' && d[i].before_us == -1;
        }
        CHECK(ok && n == 2, "overage rows have no pack and no balance (%zu rows)", n);
        CHECK_EQ_I64(sum, MIN_US + 20 * 1000, "overage: 1 minute + 20 race rounds × 1000 µs");
        free(d);
    }
    q = (ledger_query){ .type = METER_CLASS_TSC };
    if (RC(st, ledger_usage_details(st, &q, &d, &n), METER_OK, "tsc rows")) {
        CHECK_EQ_INT((int)n, 2, "pk-tsc on two days");
        free(d);
    }

    /* raw records, paged */
    meter_sync_record *r;
    meter_time *recv;
    q = (ledger_query){ .type = -1, .node = "node-a", .limit = 2, .to = T0 + 2 * DAY_MS };
    const char *want[] = { "na-u1", "na-u2", "na-u3", "na-u777" };
    int nwant = pg_conninfo ? 4 : 3, got = 0, pages = 0, order_ok = 1;
    char after[METER_ID_MAX] = "";
    for (;;) {
        q.after = after[0] ? after : NULL;
        if (!RC(st, ledger_usage_records(st, &q, &r, &recv, &n), METER_OK, "records page %d",
                pages + 1))
            break;
        pages++;
        for (size_t i = 0; i < n; i++) {
            if (got < nwant && strcmp(r[i].id, want[got]) != 0)
                order_ok = 0;
            got++;
        }
        if (n > 0)
            snprintf(after, sizeof after, "%s", r[n - 1].id);
        if (n > 0 && !strcmp(r[0].id, "na-u1")) {
            CHECK_EQ_I64(r[0].duration_us, 2 * MIN_US, "na-u1 duration read back");
            CHECK_EQ_STR(r[0].ttype, "Standard.H264.HD", "na-u1 ttype read back");
            CHECK(recv[0] > 0, "arrival time kept");
        }
        free(r);
        free(recv);
        if (n < 2)
            break;
    }
    CHECK_EQ_INT(got, nwant, "every usage record of node-a listed once");
    CHECK(order_ok, "oldest first, then by id");
    CHECK_EQ_INT(pages, nwant / 2 + 1, "pages of 2");
    q.after = "no-such-id";
    RC(st, ledger_usage_records(st, &q, &r, &recv, &n), METER_EINVAL, "unknown 'after' refused");
    q.after = NULL;
    q.limit = 5000;
    RC(st, ledger_usage_records(st, &q, &r, &recv, &n), METER_EINVAL, "limit > 1000 refused");

    /* totals per node, by hand from what was sent */
    ledger_total_row *t;
    if (RC(st, ledger_totals(st, NULL, NULL, &t, &n), METER_OK, "totals")) {
        CHECK_EQ_INT((int)n, 2, "two nodes");
        if (n == 2) {
            int lost = pg_conninfo ? 1 : 0;
            CHECK_EQ_STR(t[0].node, "node-a", "node-a first");
            CHECK_EQ_I64(t[0].usage_count, 3 + lost + 20, "node-a usage records");
            CHECK_EQ_I64(t[0].duration_us, (2 + 1 + 1 + lost + 20) * MIN_US, "node-a duration");
            CHECK_EQ_I64(t[0].billed_us, (4 + 2 + 2 + 2 * lost + 20) * MIN_US, "node-a billed");
            /* packs: d1 4 + d3 2 + d8 3 + d9 2 + small 1 minutes, races 2 × 1000 µs each */
            CHECK_EQ_I64(t[0].covered_us, 12 * MIN_US + 20 * 2000, "node-a covered");
            CHECK_EQ_I64(t[0].overage_us, MIN_US + 20 * 1000, "node-a overage");
            CHECK_EQ_I64(t[1].duration_us, 3 * MIN_US, "node-b duration");
            CHECK_EQ_I64(t[1].covered_us, 6 * MIN_US, "node-b covered");
        }
        free(t);
    }
    if (RC(st, ledger_totals(st, "node-b", NULL, &t, &n), METER_OK, "totals of node-b")) {
        CHECK(n == 1 && !strcmp(t[0].node, "node-b") && t[0].records == 2, "node-b only");
        free(t);
    }
}

/* Hardening findings 1 and 3: what a hostile node (with its own valid
 * credentials) can no longer do.  Runs after test_queries, on its own
 * nodes and pack, so the earlier figures stay as they were. */
/* ------------------------------------------------------------ leases -- */

/* verify finds nothing; prints what it found otherwise. */
static void verify_clean(ledger_store *st, meter_time now, const char *when)
{
    char **lines;
    size_t n;
    if (!RC(st, ledger_verify(st, now, &lines, &n), METER_OK, "verify runs (%s)", when))
        return;
    CHECK_EQ_INT((int)n, 0, "verify is clean %s", when);
    for (size_t i = 0; i < n && i < 10; i++)
        tap_diag("%s", lines[i]);
    ledger_verify_free(lines, n);
}

static meter_sync_record lease_ded(const char *id, const char *node, const char *pack,
                                   const char *lease, int64_t amount, meter_time at)
{
    meter_sync_record r = ded_rec(id, node, pack, METER_CLASS_GENERAL, amount, amount, at,
                                  "2026-03-11");
    strcpy(r.account, "acme");
    strcpy(r.lease_id, lease);
    return r;
}

static int64_t acme_reserved(ledger_store *st, meter_time now)
{
    ledger_account *a;
    size_t n;
    int64_t v = -1;
    if (ledger_account_list(st, now, &a, &n) != METER_OK)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(a[i].name, "acme"))
            v = a[i].cls[METER_CLASS_GENERAL].reserved_us;
    free(a);
    return v;
}

/* Σ postings of a deduction from one source ("lease", "free", "overage"). */
static int64_t posted(ledger_store *st, const char *ded, const char *source)
{
    lparam p[] = { P_TEXT(ded), P_TEXT(source) };
    lres r;
    if (store_exec(st, "SELECT COALESCE(SUM(amount_us), 0) FROM postings WHERE deduction_id = $1"
                       " AND source = $2", p, 2, &r) != METER_OK)
        return -1;
    int64_t v = lres_int(&r, 0, 0);
    lres_free(&r);
    return v;
}

static void test_leases(ledger_store *st)
{
    const meter_time TL = T0 + 10 * DAY_MS;      /* 2026-03-11 */
    const ledger_lease_limits lim = { 300000, 600 * MIN_US, 3 };
    ledger_lease *l = calloc(1, sizeof *l);
    ledger_ingest_result out[8];
    int created = 0;
    if (!l)
        BAIL("out of memory");
    RC(st, ledger_account_add(st, "acme", T0, &alice), METER_OK, "add account acme");
    RC(st, ledger_account_add(st, "acme", T0, &alice), METER_EEXIST, "acme twice refused");
    RC(st, ledger_account_add(st, "bad name", T0, &alice), METER_EINVAL, "a bad account name");
    /* FIFO by end: pa1 ends first, then pa2; pa3 is tsc */
    RC(st, ledger_pack_add(st, "pa1", METER_CLASS_GENERAL, 10, T0, NULL, "acme", T0, &alice, NULL),
       METER_OK, "buy pa1 (10 min, pooled, acme)");
    RC(st, ledger_pack_add(st, "pa2", METER_CLASS_GENERAL, 20, T0 + DAY_MS, NULL, "acme", T0,
                           &alice, NULL), METER_OK, "buy pa2 (20 min, a day later)");
    RC(st, ledger_pack_add(st, "pa3", METER_CLASS_TSC, 5, T0, NULL, "acme", T0, &alice, NULL),
       METER_OK, "buy pa3 (tsc)");
    RC(st, ledger_pack_add(st, "pa9", METER_CLASS_GENERAL, 1, T0, NULL, "nope", T0, &alice, NULL),
       METER_ENOTFOUND, "a pack of an unknown account refused");

    /* grant: FIFO, split across packs */
    if (RC(st, ledger_lease_grant(st, "node-a", "na-l1", "acme", METER_CLASS_GENERAL,
                                  15 * MIN_US, &lim, TL, l, &created), METER_OK, "grant na-l1")) {
        CHECK(created == 1 && l->granted_us == 15 * MIN_US && l->nslices == 2 &&
              !strcmp(l->slices[0].pack_id, "pa1") && l->slices[0].granted_us == 10 * MIN_US &&
              !strcmp(l->slices[1].pack_id, "pa2") && l->slices[1].granted_us == 5 * MIN_US,
              "15 minutes: pa1's 10, then 5 of pa2");
        CHECK_EQ_I64(l->expires_at, TL + 300000, "expires at now + ttl");
        CHECK_EQ_STR(l->state, "open", "open");
    }
    CHECK_EQ_I64(acme_reserved(st, TL), 15 * MIN_US, "acme has 15 minutes reserved");
    RC(st, ledger_lease_grant(st, "node-a", "na-l1", "acme", METER_CLASS_GENERAL, 15 * MIN_US,
                              &lim, TL + 10, l, &created), METER_OK, "the same id again");
    CHECK(created == 0 && l->granted_us == 15 * MIN_US, "…the stored lease, not a new one");
    CHECK_EQ_I64(acme_reserved(st, TL), 15 * MIN_US, "…nothing more reserved");
    RC(st, ledger_lease_grant(st, "node-b", "na-l1", "acme", METER_CLASS_GENERAL, MIN_US, &lim,
                              TL, l, &created), METER_ENOTFOUND, "node-b cannot take node-a's id");
    RC(st, ledger_lease_grant(st, "node-b", "nb-l1", "acme", METER_CLASS_GENERAL, 100 * MIN_US,
                              &lim, TL + 1000, l, &created), METER_OK, "node-b asks 100 minutes");
    CHECK(l->granted_us == 15 * MIN_US && l->nslices == 1 && !strcmp(l->slices[0].pack_id, "pa2"),
          "…gets the 15 left (pa2)");
    RC(st, ledger_lease_grant(st, "node-b", "nb-l2", "acme", METER_CLASS_GENERAL, MIN_US, &lim,
                              TL + 1000, l, &created), METER_EREFUSED, "nothing left: refused");
    RC(st, ledger_lease_get(st, "nb-l2", TL, l), METER_ENOTFOUND, "…and nothing stored");
    RC(st, ledger_lease_grant(st, "node-a", "na-l9", "nope", METER_CLASS_GENERAL, MIN_US, &lim,
                              TL, l, &created), METER_ENOTFOUND, "a lease of an unknown account");
    RC(st, ledger_pack_refund(st, "pa1", TL, &alice, NULL), METER_EREFUSED,
       "a pack an open lease holds cannot be refunded");
    verify_clean(st, TL + 1000, "after the grants");

    /* expiry at the exact boundary, by the ledger's clock */
    RC(st, ledger_lease_get(st, "na-l1", TL + 300000 - 1, l), METER_OK, "read na-l1");
    CHECK_EQ_STR(l->state, "open", "open 1 ms before its expiry");
    RC(st, ledger_lease_renew(st, "node-a", "na-l1", &lim, TL + 300000, l), METER_EEXIST,
       "renewing at its expiry: too late");
    CHECK(strstr(ledger_store_errmsg(st), "expired") != NULL, "…the message names the state: %s",
          ledger_store_errmsg(st));
    RC(st, ledger_lease_get(st, "na-l1", TL + 300000, l), METER_OK, "read na-l1 again");
    CHECK(!strcmp(l->state, "expired") && l->resolved_at == TL + 300000,
          "expired at its expiry, resolved_ms = expires_ms");
    if (RC(st, ledger_lease_grant(st, "node-a", "na-l2", "acme", METER_CLASS_GENERAL,
                                  30 * MIN_US, &lim, TL + 300000, l, &created), METER_OK,
           "grant na-l2 at that instant"))
        CHECK(l->granted_us == 15 * MIN_US && !strcmp(l->slices[0].pack_id, "pa1"),
              "…the expired lease's 15 minutes are free again (nb-l1 still holds pa2's 15)");
    verify_clean(st, TL + 300000, "after the expiry");

    /* usage posts against the lease, then the release returns the rest */
    meter_sync_record d1 = lease_ded("na-d100", "node-a", "pa1", "na-l2", 4 * MIN_US, TL + 300100);
    RC(st, ledger_ingest(st, "node-a", &d1, 1, TL + 300200, out), METER_OK, "post 4 min on na-l2");
    CHECK_EQ_STR(outcomes(out, 1), "A", "accepted");
    CHECK_EQ_I64(posted(st, "na-d100", "lease"), 4 * MIN_US, "…from the reservation");
    RC(st, ledger_ingest(st, "node-a", &d1, 1, TL + 300300, out), METER_OK, "the same again");
    CHECK_EQ_STR(outcomes(out, 1), "D", "…a duplicate, posted once");
    CHECK_EQ_I64(posted(st, "na-d100", "lease"), 4 * MIN_US, "…still 4 minutes");
    RC(st, ledger_lease_release(st, "node-b", "na-l2", TL + 300400, l), METER_ENOTFOUND,
       "node-b cannot release node-a's lease");
    RC(st, ledger_lease_release(st, "node-a", "na-l2", TL + 300400, l), METER_OK, "release na-l2");
    CHECK(!strcmp(l->state, "released") && l->resolved_at == TL + 300400, "released");
    RC(st, ledger_lease_release(st, "node-a", "na-l2", TL + 300500, l), METER_OK,
       "release again: idempotent");
    CHECK(!strcmp(l->state, "released") && l->resolved_at == TL + 300400, "…as it was");
    ledger_pack p;
    ledger_pack_get(st, "pa1", TL + 300500, &p);
    CHECK(p.used_us == 4 * MIN_US && p.reserved_us == 0 && p.free_us == 6 * MIN_US,
          "pa1: 4 used, nothing reserved, 6 free (the rest came back)");
    verify_clean(st, TL + 300500, "after the release");

    /* late usage: an expired lease is paid from free minutes, then overage */
    meter_sync_record late[] = {
        lease_ded("na-d101", "node-a", "pa1", "na-l1", 3 * MIN_US, TL + 299000),
        lease_ded("na-d102", "node-a", "pa2", "na-l1", 7 * MIN_US, TL + 299000),
        lease_ded("na-d103", "node-a", "pa2", "na-l1", 1 * MIN_US, TL + 299000),
    };
    RC(st, ledger_ingest(st, "node-a", late, 3, TL + 300600, out), METER_OK, "late usage");
    CHECK_EQ_STR(outcomes(out, 3), "AAA", "accepted");
    CHECK(posted(st, "na-d101", "free") == 3 * MIN_US && posted(st, "na-d101", "lease") == 0,
          "3 min on pa1: from its free minutes");
    /* pa2: 20, nb-l1 reserves 15 until TL + 301000: 5 free */
    CHECK(posted(st, "na-d102", "free") == 5 * MIN_US && posted(st, "na-d102", "overage") == 2 * MIN_US,
          "7 min on pa2: its 5 free, 2 overage");
    CHECK_EQ_I64(posted(st, "na-d103", "overage"), MIN_US, "then nothing free: all overage");
    ledger_pack_get(st, "pa2", TL + 300600, &p);
    CHECK(p.used_us == 5 * MIN_US && p.reserved_us == 15 * MIN_US && p.free_us == 0,
          "pa2 never below zero: used 5 + reserved 15 = total");
    verify_clean(st, TL + 300600, "after late usage");

    /* an overage deduction of the account settles from its pooled packs */
    meter_sync_record ov = ded_rec("na-d104", "node-a", "", METER_CLASS_GENERAL, 2 * MIN_US, 0,
                                   TL + 301500, "2026-03-11");
    strcpy(ov.account, "acme");
    RC(st, ledger_ingest(st, "node-a", &ov, 1, TL + 301500, out), METER_OK, "an overage of acme");
    CHECK(posted(st, "na-d104", "free") == 2 * MIN_US, "settled from pa1 (FIFO), 2 min");
    ledger_pack_get(st, "pa1", TL + 301500, &p);
    CHECK_EQ_I64(p.used_us, 9 * MIN_US, "pa1: 4 + 3 + 2 used");
    verify_clean(st, TL + 301500, "after the overage settlement");

    /* more than granted from the reservation: the rest from free, then overage */
    const meter_time T2 = TL + 400000;
    RC(st, ledger_lease_grant(st, "node-a", "na-l3", "acme", METER_CLASS_GENERAL, MIN_US,
                              &lim, T2, l, &created), METER_OK, "grant na-l3 of 1 min");
    CHECK(l->nslices == 1 && !strcmp(l->slices[0].pack_id, "pa1") && l->granted_us == MIN_US,
          "…pa1's last free minute (FIFO)");
    meter_sync_record over = lease_ded("na-d105", "node-a", "pa1", "na-l3", 5 * MIN_US, T2 + 1);
    RC(st, ledger_ingest(st, "node-a", &over, 1, T2 + 2, out), METER_OK, "post 5 min on na-l3");
    CHECK(posted(st, "na-d105", "lease") == MIN_US && posted(st, "na-d105", "free") == 0 &&
          posted(st, "na-d105", "overage") == 4 * MIN_US,
          "1 from the reservation, nothing free on pa1, 4 overage");

    /* hostile deductions: each rejected, nothing posted */
    meter_sync_record bad[] = {
        lease_ded("nb-d106", "node-b", "pa1", "na-l3", MIN_US, T2 + 3),   /* another node's */
        lease_ded("na-d107", "node-a", "pa3", "na-l3", MIN_US, T2 + 3),   /* no slice of pa3 */
        lease_ded("na-d108", "node-a", "pa1", "na-l77", MIN_US, T2 + 3),  /* unknown lease */
        lease_ded("na-d109", "node-a", "pa1", "", MIN_US, T2 + 3),        /* pooled, no lease */
        usage_rec("na-u110", "node-a", T2 + 3, MIN_US, MIN_US),           /* unknown account */
    };
    bad[1].cls = METER_CLASS_GENERAL;
    strcpy(bad[4].account, "nope");
    RC(st, ledger_ingest(st, "node-b", bad, 1, T2 + 4, out), METER_OK, "node-b posts on na-l3");
    CHECK(out[0].outcome == LEDGER_REJECTED && strstr(out[0].reason, "not a lease of node"),
          "another node's lease: rejected (%s)", out[0].reason);
    RC(st, ledger_ingest(st, "node-a", bad + 1, 4, T2 + 4, out), METER_OK, "node-a's bad ones");
    CHECK_EQ_STR(outcomes(out, 4), "RRRR", "all rejected");
    CHECK(strstr(out[0].reason, "no slice") != NULL, "no slice of the pack: %s", out[0].reason);
    CHECK(strstr(out[1].reason, "not a lease of node") != NULL, "unknown lease: %s",
          out[1].reason);
    CHECK(strstr(out[2].reason, "pooled") != NULL, "pooled pack without lease: %s",
          out[2].reason);
    CHECK(strstr(out[3].reason, "account 'nope'") != NULL, "unknown account: %s", out[3].reason);
    meter_sync_record wrongcls = lease_ded("na-d111", "node-a", "pa1", "na-l3", MIN_US, T2 + 3);
    wrongcls.cls = METER_CLASS_TSC;
    RC(st, ledger_ingest(st, "node-a", &wrongcls, 1, T2 + 4, out), METER_OK, "wrong class");
    CHECK(out[0].outcome == LEDGER_REJECTED && strstr(out[0].reason, "class"),
          "a lease deduction of another class: rejected (%s)", out[0].reason);
    verify_clean(st, T2 + 4, "after the hostile batches");

    /* leases per node */
    RC(st, ledger_lease_grant(st, "node-a", "na-l4", "acme", METER_CLASS_TSC, MIN_US, &lim,
                              T2 + 5, l, &created), METER_OK, "na-l4 (tsc)");
    RC(st, ledger_lease_grant(st, "node-a", "na-l5", "acme", METER_CLASS_GENERAL, MIN_US, &lim,
                              T2 + 5, l, &created), METER_OK, "na-l5");
    RC(st, ledger_lease_grant(st, "node-a", "na-l6", "acme", METER_CLASS_GENERAL, MIN_US, &lim,
                              T2 + 5, l, &created), LEDGER_ELIMIT, "a fourth open lease: limited");
    RC(st, ledger_lease_grant(st, "node-a", "na-l5", "acme", METER_CLASS_GENERAL, MIN_US, &lim,
                              T2 + 6, l, &created), METER_OK, "…a repeat is still answered");
    CHECK(created == 0, "…as a repeat");

    /* freeze: no new grants from the pack; a renewal voids its slice */
    CHECK(!strcmp(l->slices[0].pack_id, "pa2"), "na-l5 holds pa2");
    RC(st, ledger_pack_freeze(st, "pa2", 1, T2 + 7, &alice, NULL), METER_OK, "freeze pa2");
    RC(st, ledger_lease_release(st, "node-a", "na-l4", T2 + 7, l), METER_OK, "release na-l4");
    RC(st, ledger_lease_grant(st, "node-a", "na-l6", "acme", METER_CLASS_GENERAL, MIN_US, &lim,
                              T2 + 8, l, &created), METER_EREFUSED,
       "pa2 frozen, pa1 full: nothing to reserve");
    RC(st, ledger_lease_renew(st, "node-a", "na-l5", &lim, T2 + 9, l), METER_OK, "renew na-l5");
    CHECK(l->slices[0].voided && l->expires_at == T2 + 9 + 300000,
          "…its slice of the frozen pa2 voided, the expiry moved");
    meter_sync_record fz = lease_ded("na-d112", "node-a", "pa2", "na-l5", MIN_US, T2 + 10);
    RC(st, ledger_ingest(st, "node-a", &fz, 1, T2 + 10, out), METER_OK, "post on the voided slice");
    CHECK(posted(st, "na-d112", "overage") == MIN_US, "a frozen pack pays nothing: overage");
    verify_clean(st, T2 + 10, "after the freeze");

    /* refund needs used 0 and reserved 0 */
    RC(st, ledger_pack_add(st, "pa4", METER_CLASS_GENERAL, 5, T2, NULL, "acme", T2, &alice, NULL),
       METER_OK, "buy pa4");
    RC(st, ledger_lease_release(st, "node-a", "na-l5", T2 + 11, l), METER_OK, "release na-l5");
    RC(st, ledger_lease_grant(st, "node-a", "na-l7", "acme", METER_CLASS_GENERAL, MIN_US, &lim,
                              T2 + 11, l, &created), METER_OK, "na-l7 takes pa4");
    RC(st, ledger_pack_refund(st, "pa4", T2 + 12, &alice, NULL), METER_EREFUSED,
       "refunding pa4 while na-l7 holds it: refused");
    CHECK(strstr(ledger_store_errmsg(st), "lease") != NULL, "…naming the leases: %s",
          ledger_store_errmsg(st));
    RC(st, ledger_pack_assign(st, "pa4", "node-a", T2 + 12, &alice, NULL), METER_EREFUSED,
       "a leased pack cannot be assigned");
    RC(st, ledger_lease_release(st, "node-a", "na-l7", T2 + 13, l), METER_OK, "release na-l7");
    RC(st, ledger_pack_refund(st, "pa4", T2 + 14, &alice, NULL), METER_OK,
       "then pa4 is refunded (unused, nothing reserved)");
    verify_clean(st, T2 + 14, "after the refund");

    /* listing */
    ledger_lease *rows;
    size_t n;
    ledger_lease_filter f = { .node = "node-a", .account = "acme", .state = "expired" };
    if (RC(st, ledger_lease_list(st, &f, T2 + 14, &rows, &n), METER_OK, "list expired leases")) {
        CHECK(n == 1 && !strcmp(rows[0].id, "na-l1"), "na-l1 only");
        free(rows);
    }
    f = (ledger_lease_filter){ .node = "node-a", .state = "open" };
    if (RC(st, ledger_lease_list(st, &f, T2 + 14, &rows, &n), METER_OK, "list open leases")) {
        CHECK(n == 1 && !strcmp(rows[0].id, "na-l3") && rows[0].slices[0].posted_us == MIN_US,
              "na-l3, with its slice posted in full");
        free(rows);
    }
    f = (ledger_lease_filter){ .node = "node-a", .state = "open" };
    if (RC(st, ledger_lease_list(st, &f, T2 + 300000, &rows, &n), METER_OK, "…at its expiry"))
        CHECK(n == 0, "none: a lease open past its expiry lists as expired");
    free(rows);
    f = (ledger_lease_filter){ .state = "lost" };
    RC(st, ledger_lease_list(st, &f, T2, &rows, &n), METER_EINVAL, "an unknown state refused");
    free(l);
}

static void test_hostile_node(ledger_store *st)
{
    char secret[LEDGER_SECRET_HEX + 1];
    ledger_actor cli = { "cli", NULL };
    ledger_ingest_result out[4];
    meter_time at = T0 + 5 * DAY_MS;
    RC(st, ledger_node_add(st, "node-v", at, &cli, secret), METER_OK, "victim node-v");
    RC(st, ledger_node_add(st, "node-h", at, &cli, secret), METER_OK, "hostile node-h");
    RC(st, ledger_pack_add(st, "pk-v", METER_CLASS_GENERAL, 100, T0, "node-v", NULL, at, &alice, NULL),
       METER_OK, "node-v's 100-minute pack");
    RC(st, ledger_pack_add(st, "pk-h", METER_CLASS_GENERAL, 10, T0, "node-h", NULL, at, &alice, NULL),
       METER_OK, "node-h's 10-minute pack");

    /* node-v syncs: its first batch binds its prefix "vv" */
    meter_sync_record v1[] = {
        usage_rec("vv-u1", "node-v", at, 20 * MIN_US, 40 * MIN_US),
        ded_rec("vv-d2", "node-v", "pk-v", METER_CLASS_GENERAL, 40 * MIN_US, 100 * MIN_US, at,
                "2026-03-06"),
    };
    RC(st, ledger_ingest(st, "node-v", v1, 2, at, out), METER_OK, "node-v's first batch");
    CHECK_EQ_STR(outcomes(out, 2), "AA", "node-v's records accepted");
    RC(st, ledger_ingest(st, "node-h", (meter_sync_record[]){
           usage_rec("hh-u1", "node-h", at, MIN_US, MIN_US) }, 1, at, out), METER_OK,
       "node-h's first batch");
    CHECK_EQ_STR(outcomes(out, 1), "A", "node-h's own record accepted");

    /* Finding 1: node-h posts node-v's next, not-yet-synced ids (and one
     * that exists).  Rejected, with one answer for both: whether node-v's
     * id exists is not told. */
    meter_sync_record h1[] = {
        usage_rec("vv-u3", "node-h", at, 20 * MIN_US, 40 * MIN_US),
        usage_rec("vv-u1", "node-h", at, 20 * MIN_US, 40 * MIN_US),
        usage_rec("zz-u1", "node-h", at, MIN_US, MIN_US),   /* an unbound prefix */
    };
    RC(st, ledger_ingest(st, "node-h", h1, 3, at, out), METER_OK, "node-h posts foreign ids");
    CHECK_EQ_STR(outcomes(out, 3), "RRR", "foreign ids rejected, not duplicates");
    CHECK(strstr(out[0].reason, "namespace") != NULL, "the reason: %s", out[0].reason);
    char r0[METER_ERRMAX], r1[METER_ERRMAX];
    snprintf(r0, sizeof r0, "%s", out[0].reason);
    snprintf(r1, sizeof r1, "%s", out[1].reason);
    memcpy(strstr(r1, "vv-u1"), "vv-u3", 5);   /* the same id length */
    CHECK_EQ_STR(r0, r1, "an existing and a missing foreign id get the same answer");
    /* node-v's own record then lands: the usage node-v sent is all there */
    meter_sync_record v2[] = { usage_rec("vv-u3", "node-v", at + 1, 20 * MIN_US, 40 * MIN_US) };
    RC(st, ledger_ingest(st, "node-v", v2, 1, at + 1, out), METER_OK, "node-v's next batch");
    CHECK_EQ_STR(outcomes(out, 1), "A", "node-v's record accepted (was taken as a duplicate)");
    ledger_total_row *t;
    size_t n;
    if (RC(st, ledger_totals(st, "node-v", NULL, &t, &n), METER_OK, "node-v's totals")) {
        CHECK(n == 1 && t[0].billed_us == 80 * MIN_US && t[0].usage_count == 2,
              "node-v's usage at the ledger: 80 minutes in 2 records");
        free(t);
    }
    /* a second prefix only an admin binds */
    meter_sync_record h2[] = { usage_rec("h2-u1", "node-h", at, MIN_US, MIN_US) };
    RC(st, ledger_ingest(st, "node-h", h2, 1, at, out), METER_OK, "a new prefix");
    CHECK_EQ_STR(outcomes(out, 1), "R", "a node's second prefix is not bound by use");
    RC(st, ledger_node_bind(st, "node-h", "vv", at, &cli), METER_EEXIST,
       "an admin cannot bind node-v's prefix to node-h");
    RC(st, ledger_node_bind(st, "node-h", "h2", at, &cli), METER_OK, "admin binds h2");
    RC(st, ledger_node_bind(st, "node-h", "bad-prefix", at, &cli), METER_EINVAL,
       "a prefix with '-' is refused");
    RC(st, ledger_ingest(st, "node-h", h2, 1, at, out), METER_OK, "the new prefix again");
    CHECK_EQ_STR(outcomes(out, 1), "A", "accepted once bound");

    /* Finding 3: deductions checked against the ledger's own balance */
    meter_sync_record h3[] = {
        ded_rec("hh-d2", "node-h", "pk-h", METER_CLASS_GENERAL, 5 * MIN_US, 9 * MIN_US, at,
                "2026-03-06"),                              /* wrong before */
        ded_rec("hh-d3", "node-h", "pk-h", METER_CLASS_GENERAL, 11 * MIN_US, 10 * MIN_US, at,
                "2026-03-06"),                              /* below zero */
        ded_rec("hh-d4", "node-h", "pk-h", METER_CLASS_GENERAL, INT64_C(9200000000000000000),
                10 * MIN_US, at, "2026-03-06"),              /* the wrap of the finding */
        ded_rec("hh-d5", "node-h", "pk-h", METER_CLASS_GENERAL, 10 * MIN_US, 10 * MIN_US, at,
                "2026-03-06"),                              /* all of it: fine */
    };
    RC(st, ledger_ingest(st, "node-h", h3, 4, at, out), METER_OK, "node-h's deductions");
    CHECK_EQ_STR(outcomes(out, 4), "RRRA", "a wrong balance and overdrafts rejected");
    CHECK(strstr(out[0].reason, "balance") != NULL, "reason: %s", out[0].reason);
    CHECK(strstr(out[1].reason, "exceeds") != NULL, "reason: %s", out[1].reason);
    ledger_pack p;
    ledger_pack_get(st, "pk-h", at, &p);
    CHECK(p.used_us == 10 * MIN_US && p.remaining_us == 0 && !strcmp(p.status, "exhausted"),
          "pk-h exactly used up: used %" PRId64 ", remaining %" PRId64 ", %s", p.used_us,
          p.remaining_us, p.status);
    RC(st, ledger_ingest(st, "node-h", &h3[3], 1, at, out), METER_OK, "the good one again");
    CHECK_EQ_STR(outcomes(out, 1), "D", "a duplicate, though its balance no longer matches");
}

/* Finding 2: records stored by a ledger from before the wire bounds (or
 * any sum beyond int64) no longer break the totals and details. */
static void test_sum_overflow(ledger_store *st)
{
    meter_time at = T0 + 6 * DAY_MS;
    const char *sql =
        "INSERT INTO records (id, kind, node, at_ms, received_ms, job, output, codec, width,"
        " height, duration_us, billed_us, deductible, daily, started_ms, state, class, ttype,"
        " day) VALUES ($1, 'usage', 'node-h', $2, $2, 'j', 'o', 'H264', 1280, 720, $3, $3,"
        " 1, 0, $2, 'done', 'general', 'Standard.H264.HD', '2026-03-07')";
    const char *ded =
        "INSERT INTO records (id, kind, node, at_ms, received_ms, class, ttype, day,"
        " charge_id, amount_us) VALUES ($1, 'deduction', 'node-h', $2, $2, 'general',"
        " 'Standard.H264.HD', '2026-03-07', 'c', $3)";
    int64_t big = INT64_MAX;
    lparam a[] = { P_TEXT("hh-u100"), P_INT(at), P_INT(big) };
    lparam b[] = { P_TEXT("hh-u101"), P_INT(at), P_INT(big) };
    lparam c[] = { P_TEXT("hh-d102"), P_INT(at), P_INT(big) };
    lparam d[] = { P_TEXT("hh-d103"), P_INT(at), P_INT(big) };
    RC(st, store_exec(st, sql, a, 3, NULL), METER_OK, "an INT64_MAX usage record (old ledger)");
    RC(st, store_exec(st, sql, b, 3, NULL), METER_OK, "and another");
    RC(st, store_exec(st, ded, c, 3, NULL), METER_OK, "an INT64_MAX overage deduction");
    RC(st, store_exec(st, ded, d, 3, NULL), METER_OK, "and another");
    ledger_total_row *t;
    size_t n;
    if (RC(st, ledger_totals(st, NULL, NULL, &t, &n), METER_OK, "all totals still answer")) {
        int seen = 0;
        for (size_t i = 0; i < n; i++) {
            if (!strcmp(t[i].node, "node-h")) {
                seen = 1;
                CHECK(t[i].overflow && t[i].billed_us == INT64_MAX, "node-h: billed beyond "
                      "int64 is flagged (%" PRId64 ")", t[i].billed_us);
            } else if (!strcmp(t[i].node, "node-v")) {
                CHECK(!t[i].overflow && t[i].billed_us == 80 * MIN_US,
                      "node-v's totals exact and unflagged");
            }
        }
        CHECK(seen, "node-h listed");
        free(t);
    }
    ledger_query q = { .type = -1, .node = "node-h", .pack_id = "-" };
    ledger_detail_row *rows;
    if (RC(st, ledger_usage_details(st, &q, &rows, &n), METER_OK, "details still answer")) {
        CHECK(n == 1 && rows[0].overflow && rows[0].used_us == INT64_MAX,
              "the overage row is flagged");
        free(rows);
    }
    /* exact up to the last µs: 2^62 + (2^62 − 1) = INT64_MAX, not flagged */
    const char *sql_e =
        "INSERT INTO records (id, kind, node, at_ms, received_ms, job, output, codec, width,"
        " height, duration_us, billed_us, deductible, daily, started_ms, state, class, ttype,"
        " day) VALUES ($1, 'usage', 'node-e', $2, $2, 'j', 'o', 'H264', 1280, 720, 1, $3,"
        " 1, 0, $2, 'done', 'general', 'Standard.H264.HD', '2026-03-07')";
    lparam e[] = { P_TEXT("ee-u1"), P_INT(at), P_INT(INT64_C(1) << 62) };
    lparam f[] = { P_TEXT("ee-u2"), P_INT(at), P_INT((INT64_C(1) << 62) - 1) };
    RC(st, store_exec(st, sql_e, e, 3, NULL), METER_OK, "2^62 µs");
    RC(st, store_exec(st, sql_e, f, 3, NULL), METER_OK, "2^62 − 1 µs");
    if (RC(st, ledger_totals(st, "node-e", NULL, &t, &n), METER_OK, "node-e's totals")) {
        CHECK(n == 1 && !t[0].overflow && t[0].billed_us == INT64_MAX && t[0].duration_us == 2,
              "a sum of exactly INT64_MAX is exact and not flagged");
        free(t);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "sqlite") && strcmp(argv[1], "pg"))) {
        fprintf(stderr, "usage: test_ledger_store sqlite | pg CONNINFO\n");
        return 2;
    }
    backend = argv[1];
    if (!strcmp(backend, "pg")) {
        pg_conninfo = argc > 2 ? argv[2] : getenv("LEDGER_TEST_PG");
        if (!pg_conninfo || !*pg_conninfo) {
            FAIL("pg: a PostgreSQL conninfo is required (argument or LEDGER_TEST_PG)");
            return done_testing();
        }
    } else
        sqlite_path = tap_path(tap_tmpdir("ledger"), "ledger.db");
    printf("# backend %s\n", backend);

    test_schema();
    char err[METER_ERRMAX];
    ledger_store *st = NULL;
    if (open_store(0, &st, err) != METER_OK)
        BAIL("reopen: %s", err);
    test_credentials(st);
    test_packs(st);
    test_ingest(st);
    test_lost_connection(st);
    test_concurrent(st);
    test_pack_rules(st);
    test_queries(st);
    verify_clean(st, T0 + 5 * DAY_MS, "after the v1 sections");
    test_leases(st);
    test_hostile_node(st);
    test_sum_overflow(st);
    ledger_store_close(st);
    return done_testing();
}
