/*
 * test_migrate — a schema-1 database made by the release before accounts
 * (tests/unit/fixtures/v1.db, made by make_v1_db.sh with e1be755's
 * meterctl and libmeter) opened by this libmeter: migrated to version 2 in
 * one transaction, every row in account "default", balances and records
 * unchanged, verify clean, the running session kept, and new usage still
 * deducting.  A migration that fails half-way leaves version 1 untouched.
 *
 * The fixture's numbers (make_v1_db.sh): gen-a 100 min used up (0 left),
 * gen-b 5 min used up, tsc-a 50 min with 49 left (2 940 000 000 µs),
 * gen-r 10 min refunded; 6 usage records, 8 deductions (one overage of
 * 570 000 000 µs), 2 settlements, 7 pack events, one running session.
 */
#include "mtest.h"

#define S(x) ((int64_t)(x) * US_PER_S)

static void copy_file(const char *from, const char *to)
{
    size_t n;
    unsigned char *b = mt_slurp(from, &n);
    if (!b)
        BAIL("cannot read the fixture %s", from);
    FILE *f = fopen(to, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0)
        BAIL("cannot write %s", to);
    free(b);
}

static const char *fixture(void)
{
    static char path[PATH_MAX];
    const char *src = getenv("SRCDIR");
    snprintf(path, sizeof path, "%s/tests/unit/fixtures/v1.db", src && *src ? src : ".");
    return path;
}

static int64_t count(const char *db, const char *table, const char *where)
{
    char q[256];
    snprintf(q, sizeof q, "SELECT count(*) FROM %s%s%s", table, where ? " WHERE " : "",
             where ? where : "");
    return mt_sql_int(db, q);
}

static void migrated(const char *dir)
{
    const char *db = tap_path(dir, "v1.db");
    copy_file(fixture(), db);
    CHECK_EQ_I64(mt_sql_int(db, "PRAGMA user_version"), 1, "the fixture is schema 1");
    int64_t usage = count(db, "usage", NULL), deds = count(db, "deductions", NULL),
            events = count(db, "pack_events", NULL), outbox = count(db, "outbox", NULL);
    CHECK_EQ_I64(usage, 6, "fixture: 6 usage records");
    CHECK_EQ_I64(deds, 8, "fixture: 8 deductions");
    CHECK_EQ_I64(events, 7, "fixture: 7 pack events");

    meter_store *st = NULL;
    char err[METER_ERRMAX] = "";
    tap_set_now("2026-03-04T12:00:00Z");
    if (!CHECK_RC_ERR(err, meter_open(db, 0, &st, err), METER_OK, "v1 database opens"))
        return;
    CHECK_EQ_INT(meter_schema_version(), 2, "this libmeter is schema 2");
    CHECK_EQ_I64(mt_sql_int(db, "PRAGMA user_version"), 2, "migrated to version 2");

    static const char *const tables[] = {
        "packs", "pack_events", "usage", "deductions", "settlements", "sessions",
    };
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        CHECK(count(db, tables[i], NULL) > 0, "%s has rows", tables[i]);
        CHECK_EQ_I64(count(db, tables[i], "account <> 'default'"), 0,
                     "every row of %s is in account default", tables[i]);
    }
    CHECK_EQ_I64(count(db, "packs", "lease_id IS NOT NULL OR source_id IS NOT NULL OR "
                                    "expires_at IS NOT NULL"), 0, "no pack is a lease slice");
    CHECK_EQ_I64(count(db, "leases", NULL), 0, "no leases");
    CHECK_EQ_I64(count(db, "usage", NULL), usage, "usage kept");
    CHECK_EQ_I64(count(db, "deductions", NULL), deds, "deductions kept");
    CHECK_EQ_I64(count(db, "pack_events", NULL), events, "pack events kept");
    CHECK_EQ_I64(count(db, "outbox", NULL), outbox, "outbox kept");

    CHECK_VERIFY(st, "verify finds nothing after the migration");

    /* balances unchanged */
    CHECK_EQ_I64(mt_remaining(st, "gen-a"), 0, "gen-a still used up");
    CHECK_EQ_I64(mt_remaining(st, "gen-b"), 0, "gen-b still used up");
    CHECK_EQ_I64(mt_remaining(st, "tsc-a"), 2940000000, "tsc-a still 49 min");
    CHECK_EQ_I64(mt_remaining(st, "gen-r"), 600000000, "gen-r still 10 min");
    meter_pack p = mt_pack(st, "gen-r");
    CHECK_EQ_STR(p.status, "refunded", "gen-r still refunded");
    CHECK_EQ_STR(p.account, "default", "gen-r in account default");
    CHECK_EQ_STR(p.lease_id, "", "gen-r is an own pack");
    CHECK_EQ_I64(p.expires_at, 0, "gen-r has no lease expiry");
    int64_t avail = -1;
    CHECK_RC(st, meter_available_account(st, "default", METER_CLASS_TSC, &avail), METER_OK,
             "available tsc of default");
    CHECK_EQ_I64(avail, 2940000000, "available tsc = tsc-a's 49 min");

    /* settings of version 2 have their defaults */
    static const char *const keys[][2] = {
        { "account", "default" }, { "lease_accounts", "" }, { "lease_policy", "continue" },
        { "lease_minutes", "10" }, { "node", "fixture-node" }, { "settlement", "realtime" },
    };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        char *v = NULL;
        CHECK_RC(st, meter_setting_get(st, keys[i][0], &v), METER_OK, "get %s", keys[i][0]);
        CHECK_EQ_STR(v ? v : "(null)", keys[i][1], "setting %s", keys[i][0]);
        meter_free(v);
    }

    /* the records as the ledger will get them: account default */
    meter_sync_record *recs = NULL;
    size_t n = 0;
    CHECK_RC(st, meter_outbox_fetch(st, 1000, &recs, &n), METER_OK, "outbox fetch");
    CHECK_EQ_I64((int64_t)n, outbox, "every outbox record fetched");
    int bad = 0, overage = 0;
    for (size_t i = 0; i < n; i++) {
        bad += strcmp(recs[i].account, "default") != 0 || recs[i].lease_id[0] != '\0';
        overage += !strcmp(recs[i].kind, "deduction") && !recs[i].pack_id[0];
    }
    CHECK_EQ_INT(bad, 0, "every fetched record: account default, no lease");
    CHECK_EQ_INT(overage, 1, "the overage row is fetched as overage");
    meter_free(recs);

    /* the running session survived, in account default */
    meter_query q = mt_query_all();
    meter_session_row *ss = NULL;
    CHECK_RC(st, meter_sessions(st, &q, &ss, &n), METER_OK, "sessions");
    int running = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ss[i].status, "running")) {
            running++;
            CHECK_EQ_STR(ss[i].job, "killed-job", "the running session's job");
            CHECK_EQ_STR(ss[i].account, "default", "the running session's account");
            CHECK_EQ_I64(ss[i].duration_us, S(45), "its checkpointed 45 s");
        }
    CHECK_EQ_INT(running, 1, "one running session");
    meter_free(ss);

    /* jobs and usage details report the account */
    meter_job_row *jobs = NULL;
    CHECK_RC(st, meter_jobs(st, &q, &jobs, &n), METER_OK, "jobs");
    CHECK_EQ_I64((int64_t)n, usage, "every usage in jobs");
    for (size_t i = 0; i < n; i++)
        if (strcmp(jobs[i].account, "default"))
            FAIL("job %s in account %s", jobs[i].id, jobs[i].account);
    meter_free(jobs);
    q.account = "default";
    meter_usage_row *det = NULL;
    CHECK_RC(st, meter_usage_details(st, &q, &det, &n), METER_OK, "usage details of default");
    CHECK(n > 0, "usage details rows of default");
    meter_free(det);
    q.account = "acme";
    CHECK_RC(st, meter_usage_details(st, &q, &det, &n), METER_OK, "usage details of acme");
    CHECK_EQ_I64((int64_t)n, 0, "no usage details of acme");
    meter_free(det);

    /* new usage still deducts: 60 s of TSC H.264 HD at 2/1 = 120 s from tsc-a */
    meter_usage_in in = mt_in("after", "720p", METER_CLASS_TSC, "h264", 1280, 720, S(60));
    meter_usage_result r;
    CHECK_RC(st, meter_record(st, &in, &r), METER_OK, "record after the migration");
    CHECK_EQ_I64(r.billed_us, S(120), "billed 120 s");
    CHECK_EQ_I64(r.covered_us, S(120), "covered by tsc-a");
    CHECK_EQ_I64(mt_remaining(st, "tsc-a"), 2940000000 - S(120), "tsc-a lost 120 s");
    CHECK_EQ_I64(count(db, "usage", "job = 'after' AND account = 'default'"), 1,
                 "the new usage is in account default");
    /* and a new general pack of default pays general usage */
    mt_add_pack(st, "gen-new", METER_CLASS_GENERAL, 10, tap_utc(2026, 3, 4, 0, 0, 0));
    in = mt_in("after2", "720p", METER_CLASS_GENERAL, "h264", 1280, 720, S(30));
    CHECK_RC(st, meter_record(st, &in, &r), METER_OK, "general record after the migration");
    CHECK_EQ_I64(r.covered_us, S(60), "60 s from gen-new");
    CHECK_VERIFY(st, "verify still clean");
    meter_close(st);

    /* opening again: nothing more to migrate */
    CHECK_RC_ERR(err, meter_open(db, 0, &st, err), METER_OK, "opens again");
    CHECK_EQ_I64(mt_sql_int(db, "PRAGMA user_version"), 2, "still version 2");
    meter_close(st);
}

/* A v1 database whose migration cannot complete (an object the migration
 * creates is there already) is left at version 1, without one new column. */
static void half_way(const char *dir)
{
    const char *db = tap_path(dir, "broken.db");
    copy_file(fixture(), db);
    mt_sql(db, "CREATE TABLE leases(x)");
    meter_store *st = NULL;
    char err[METER_ERRMAX] = "";
    int rc = meter_open(db, 0, &st, err);
    CHECK(rc != METER_OK, "a migration that fails fails the open");
    CHECK(strstr(err, "version 2") != NULL, "the message names the migration: %s", err);
    CHECK_EQ_I64(mt_sql_int(db, "PRAGMA user_version"), 1, "still version 1");
    CHECK_EQ_I64(mt_sql_int(db, "SELECT count(*) FROM pragma_table_info('packs')"
                                " WHERE name = 'account'"), 0, "packs has no account column");
    CHECK_EQ_I64(mt_sql_int(db, "SELECT count(*) FROM meta WHERE key = 'account'"), 0,
                 "no account setting");
    meter_close(st);
}

int main(void)
{
    const char *dir = tap_tmpdir("test_migrate");
    migrated(dir);
    half_way(dir);
    return done_testing();
}
