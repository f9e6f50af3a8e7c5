/*
 * test_accounts — accounts through libmeter: account names, the account
 * settings, packs of an account, usage charged only to its account's packs
 * (realtime and daily), the queries' account filter and columns, the
 * outbox's account on every kind, sessions with the account option and
 * $METER_ACCOUNT, spool files with and without an account (and a version-1
 * spool file), assigned packs, and verify catching an account mix-up.
 *
 * Numbers: general H.264 HD (720p) bills 2 pack-s per output s, TSC H.264
 * HD 2 as well (billing-rules.md §3).
 */
#include <unistd.h>

#include "mtest.h"

#define S(x) ((int64_t)(x) * US_PER_S)

static void names(void)
{
    CHECK(meter_account_valid("default"), "default is an account name");
    CHECK(meter_account_valid("acme.eu-1:tenant_2"), "letters, digits, . _ - : are fine");
    CHECK(!meter_account_valid(""), "empty is not");
    CHECK(!meter_account_valid(NULL), "NULL is not");
    CHECK(!meter_account_valid("a b"), "a space is not");
    CHECK(!meter_account_valid("acme/x"), "a slash is not");
    CHECK(!meter_account_valid("caf\xc3\xa9"), "non-ASCII is not");
    char longest[METER_NAME_MAX];
    memset(longest, 'a', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    CHECK(meter_account_valid(longest), "%d bytes are fine", METER_NAME_MAX - 1);
    char too_long[METER_NAME_MAX + 1];
    memset(too_long, 'a', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    CHECK(!meter_account_valid(too_long), "%d bytes are too many", METER_NAME_MAX);
}

static void expect_setting(meter_store *st, const char *key, const char *want)
{
    char *v = NULL;
    CHECK_RC(st, meter_setting_get(st, key, &v), METER_OK, "get %s", key);
    CHECK_EQ_STR(v ? v : "(null)", want, "%s is '%s'", key, want);
    meter_free(v);
}

static void settings(const char *dir)
{
    meter_store *st = mt_open(tap_path(dir, "settings.db"));
    expect_setting(st, "account", "default");
    expect_setting(st, "lease_accounts", "");
    expect_setting(st, "lease_policy", "continue");
    expect_setting(st, "lease_minutes", "10");

    static const struct { const char *key, *value; int rc; const char *stored; } cases[] = {
        { "account", "acme", METER_OK, "acme" },
        { "account", "a b", METER_EINVAL, NULL },
        { "account", "", METER_EINVAL, NULL },
        { "lease_accounts", "acme", METER_OK, "acme" },
        { "lease_accounts", "acme,beta:tsc,x:y:general", METER_OK, "acme,beta:tsc,x:y:general" },
        { "lease_accounts", "ns:acme", METER_OK, "ns:acme" },
        { "lease_accounts", "", METER_OK, "" },
        { "lease_accounts", "acme,", METER_EINVAL, NULL },
        { "lease_accounts", ",acme", METER_EINVAL, NULL },
        { "lease_accounts", "acme,,b", METER_EINVAL, NULL },
        { "lease_accounts", "a b", METER_EINVAL, NULL },
        { "lease_accounts", ":tsc", METER_EINVAL, NULL },
        { "lease_policy", "stop", METER_OK, "stop" },
        { "lease_policy", "continue", METER_OK, "continue" },
        { "lease_policy", "halt", METER_EINVAL, NULL },
        { "lease_minutes", "30", METER_OK, "30" },
        { "lease_minutes", "0", METER_EINVAL, NULL },
        { "lease_minutes", "-5", METER_EINVAL, NULL },
        { "lease_minutes", "10000001", METER_EINVAL, NULL },
        { "lease_minutes", "5x", METER_EINVAL, NULL },
        { "lease_minutes", "", METER_EINVAL, NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = meter_setting_set(st, cases[i].key, cases[i].value);
        CHECK_RC(st, rc, cases[i].rc, "set %s '%s'", cases[i].key, cases[i].value);
        if (rc != METER_OK)
            CHECK_MSG(st, "one-line message for %s '%s'", cases[i].key, cases[i].value);
        else
            expect_setting(st, cases[i].key, cases[i].stored);
    }
    meter_close(st);
}

static meter_usage_result record_in(meter_store *st, const char *job, const char *account,
                                    meter_class cls, int64_t dur)
{
    meter_usage_in in = mt_in(job, "720p", cls, "h264", 1280, 720, dur);
    in.account = account;
    meter_usage_result r;
    memset(&r, 0, sizeof r);
    CHECK_RC(st, meter_record(st, &in, &r), METER_OK, "record %s for %s", job,
             account ? account : "(store's)");
    return r;
}

static void charging(const char *dir)
{
    const char *db = tap_path(dir, "charge.db");
    meter_store *st = mt_open(db);
    tap_set_now("2026-06-15T12:00:00Z");
    meter_time start = tap_utc(2026, 6, 1, 0, 0, 0);
    meter_pack p;
    CHECK_RC(st, meter_pack_add_account(st, "acme", "acme-1", METER_CLASS_GENERAL, 1, start,
                                        &p), METER_OK, "pack of acme");
    CHECK_EQ_STR(p.account, "acme", "the pack is acme's");
    /* default's pack ends first: FIFO would take it if accounts mixed */
    mt_add_pack(st, "def-1", METER_CLASS_GENERAL, 10, tap_utc(2026, 1, 1, 0, 0, 0));
    CHECK_EQ_STR(mt_pack(st, "def-1").account, "default", "meter_pack_add: store's account");
    CHECK_RC(st, meter_pack_add_account(st, "bad name", "x", METER_CLASS_GENERAL, 1, 0, NULL),
             METER_EINVAL, "a bad account is refused");
    CHECK_RC(st, meter_pack_add_account(st, "", "x", METER_CLASS_GENERAL, 1, 0, NULL),
             METER_EINVAL, "an empty account is refused");
    CHECK_EQ_I64(mt_sql_int(db, "SELECT count(*) FROM packs WHERE id = 'x'"), 0,
                 "nothing written for a refused pack");

    /* 20 s of 720p = 40 s, from acme-1 alone */
    meter_usage_result r = record_in(st, "a1", "acme", METER_CLASS_GENERAL, S(20));
    CHECK_EQ_I64(r.covered_us, S(40), "acme's usage covered by acme-1");
    CHECK_EQ_I64(mt_remaining(st, "acme-1"), S(20), "acme-1 has 20 s left");
    CHECK_EQ_I64(mt_remaining(st, "def-1"), S(600), "def-1 untouched");
    /* 20 s more = 40 s: 20 s from acme-1, 20 s overage — never def-1 */
    r = record_in(st, "a2", "acme", METER_CLASS_GENERAL, S(20));
    CHECK_EQ_I64(r.covered_us, S(20), "acme-1's last 20 s");
    CHECK_EQ_I64(r.overage_us, S(20), "the rest is acme's overage");
    CHECK_EQ_I64(mt_remaining(st, "def-1"), S(600), "def-1 still untouched");
    /* default's usage: def-1 only */
    r = record_in(st, "d1", NULL, METER_CLASS_GENERAL, S(10));
    CHECK_EQ_I64(r.covered_us, S(20), "default's usage from def-1");
    CHECK_EQ_I64(mt_remaining(st, "def-1"), S(580), "def-1 lost 20 s");
    /* an account with no pack at all: all overage */
    r = record_in(st, "b1", "beta", METER_CLASS_GENERAL, S(5));
    CHECK_EQ_I64(r.overage_us, S(10), "beta has no packs: overage");
    CHECK_EQ_I64(mt_sql_int(db, "SELECT count(*) FROM deductions d JOIN packs p"
                                " ON p.id = d.pack_id WHERE d.account <> p.account"), 0,
                 "no deduction from another account's pack");

    meter_usage_in bad = mt_in("x1", "720p", METER_CLASS_GENERAL, "h264", 1280, 720, S(1));
    bad.account = "no/slash";
    CHECK_RC(st, meter_record(st, &bad, NULL), METER_EINVAL, "a bad account refused");
    CHECK_EQ_I64(mt_sql_int(db, "SELECT count(*) FROM usage WHERE job = 'x1'"), 0,
                 "nothing recorded for it");

    int64_t us = -1;
    CHECK_RC(st, meter_available_account(st, "acme", METER_CLASS_GENERAL, &us), METER_OK,
             "available of acme");
    CHECK_EQ_I64(us, 0, "acme has none left");
    CHECK_RC(st, meter_available(st, METER_CLASS_GENERAL, &us), METER_OK, "available");
    CHECK_EQ_I64(us, S(580), "the store's account (default) has def-1's 580 s");

    /* the store's account setting decides for NULL */
    CHECK_RC(st, meter_setting_set(st, "account", "acme"), METER_OK, "account = acme");
    mt_add_pack(st, "acme-2", METER_CLASS_GENERAL, 1, start);
    CHECK_EQ_STR(mt_pack(st, "acme-2").account, "acme", "meter_pack_add follows the setting");
    r = record_in(st, "a3", NULL, METER_CLASS_GENERAL, S(5));
    CHECK_EQ_I64(r.covered_us, S(10), "NULL account: acme's acme-2 pays");
    CHECK_EQ_I64(mt_remaining(st, "acme-2"), S(50), "acme-2 lost 10 s");
    CHECK_RC(st, meter_available(st, METER_CLASS_GENERAL, &us), METER_OK, "available");
    CHECK_EQ_I64(us, S(50), "meter_available follows the setting");

    /* pack list filter and columns */
    meter_pack_filter f = { .type = -1, .account = "acme" };
    meter_pack *packs = NULL;
    size_t n = 0;
    CHECK_RC(st, meter_pack_list(st, &f, &packs, &n), METER_OK, "pack list of acme");
    CHECK_EQ_I64((int64_t)n, 2, "acme has 2 packs");
    for (size_t i = 0; i < n; i++)
        CHECK_EQ_STR(packs[i].account, "acme", "listed pack %s is acme's", packs[i].id);
    meter_free(packs);
    f.account = NULL;
    CHECK_RC(st, meter_pack_list(st, &f, &packs, &n), METER_OK, "pack list of all");
    CHECK_EQ_I64((int64_t)n, 3, "3 packs in all");
    meter_free(packs);

    /* jobs and usage details */
    meter_query q = mt_query_all();
    q.account = "acme";
    meter_job_row *jobs = NULL;
    CHECK_RC(st, meter_jobs(st, &q, &jobs, &n), METER_OK, "jobs of acme");
    CHECK_EQ_I64((int64_t)n, 3, "acme has 3 usage records");
    for (size_t i = 0; i < n; i++)
        CHECK_EQ_STR(jobs[i].account, "acme", "job %s is acme's", jobs[i].job);
    meter_free(jobs);
    meter_usage_row *det = NULL;
    CHECK_RC(st, meter_usage_details(st, &q, &det, &n), METER_OK, "usage details of acme");
    int64_t used = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ_STR(det[i].account, "acme", "details row of %s is acme's",
                     det[i].pack_id[0] ? det[i].pack_id : "overage");
        used += det[i].used_us;
    }
    CHECK_EQ_I64(used, S(90), "acme's details sum to 40 + 40 + 10 s");
    meter_free(det);
    q.account = "beta";
    CHECK_RC(st, meter_usage_details(st, &q, &det, &n), METER_OK, "usage details of beta");
    CHECK(n == 1 && det[0].pack_id[0] == '\0' && det[0].used_us == S(10),
          "beta: one overage row of 10 s");
    meter_free(det);

    /* the outbox: every kind names its account */
    meter_sync_record *recs = NULL;
    CHECK_RC(st, meter_outbox_fetch(st, 1000, &recs, &n), METER_OK, "outbox fetch");
    int wrong = 0, acme_events = 0;
    for (size_t i = 0; i < n; i++) {
        const meter_sync_record *x = &recs[i];
        const char *want = "default";
        if (!strcmp(x->kind, "pack_event"))
            want = !strncmp(x->pack_id, "acme", 4) ? "acme" : "default";
        else if (!strcmp(x->kind, "usage"))
            want = x->job[0] == 'a' ? "acme" : x->job[0] == 'b' ? "beta" : "default";
        else
            want = NULL;  /* deductions: checked against their usage below */
        if (want && strcmp(x->account, want))
            wrong++;
        acme_events += !strcmp(x->kind, "pack_event") && !strcmp(x->account, "acme");
        if (!strcmp(x->kind, "deduction")) {
            char sql[512];
            snprintf(sql, sizeof sql, "SELECT count(*) FROM usage WHERE id = '%s' AND "
                     "account = '%s'", x->charge_id, x->account);
            wrong += mt_sql_int(db, sql) != 1;
        }
        wrong += x->lease_id[0] != '\0';
    }
    CHECK_EQ_INT(wrong, 0, "every outbox record carries its account");
    CHECK_EQ_INT(acme_events, 2, "acme's two purchases go out as acme's");
    meter_free(recs);

    CHECK_VERIFY(st, "verify clean with three accounts");
    meter_close(st);

    /* verify catches a deduction moved to another account */
    mt_sql(db, "DROP TRIGGER deductions_append_only_u;"
               " UPDATE deductions SET account = 'beta' WHERE pack_id = 'acme-1'");
    st = mt_open(db);
    CHECK(mt_verify(st) >= 2, "verify reports a deduction of another account than its pack "
          "and its charge");
    meter_close(st);
}

static void daily(const char *dir)
{
    meter_store *st = mt_open(tap_path(dir, "daily.db"));
    tap_set_now("2026-06-10T08:00:00Z");
    mt_add_pack(st, "def-1", METER_CLASS_GENERAL, 10, tap_utc(2026, 6, 1, 0, 0, 0));
    CHECK_RC(st, meter_pack_add_account(st, "acme", "acme-1", METER_CLASS_GENERAL, 10,
                                        tap_utc(2026, 6, 1, 0, 0, 0), NULL), METER_OK,
             "acme's pack");
    CHECK_RC(st, meter_setting_set(st, "settlement", "daily"), METER_OK, "daily mode");
    record_in(st, "a1", "acme", METER_CLASS_GENERAL, S(30));  /* 60 s */
    record_in(st, "d1", NULL, METER_CLASS_GENERAL, S(15));    /* 30 s */
    record_in(st, "a2", "acme", METER_CLASS_GENERAL, S(5));   /* 10 s */
    tap_set_now("2026-06-11T01:00:00Z");
    meter_settle_result sr;
    CHECK_RC(st, meter_settle(st, &sr), METER_OK, "settle");
    CHECK_EQ_INT(sr.days, 2, "one settlement per account (same day and type)");
    CHECK_EQ_I64(sr.covered_us, S(100), "all covered");
    CHECK_EQ_I64(mt_remaining(st, "acme-1"), S(600 - 70), "acme-1 paid acme's 70 s");
    CHECK_EQ_I64(mt_remaining(st, "def-1"), S(600 - 30), "def-1 paid default's 30 s");
    CHECK_VERIFY(st, "verify clean after settling two accounts");
    meter_close(st);
}

static void sessions(const char *dir)
{
    const char *db = tap_path(dir, "sess.db");
    meter_store *st = mt_open(db);
    tap_set_now("2026-06-15T12:00:00Z");
    CHECK_RC(st, meter_pack_add_account(st, "acme", "acme-1", METER_CLASS_GENERAL, 10,
                                        tap_utc(2026, 6, 1, 0, 0, 0), NULL), METER_OK,
             "acme's pack");
    CHECK_RC(st, meter_pack_add_account(st, "beta", "beta-1", METER_CLASS_GENERAL, 10,
                                        tap_utc(2026, 6, 1, 0, 0, 0), NULL), METER_OK,
             "beta's pack");
    meter_close(st);

    char err[METER_ERRMAX] = "";
    meter_session *s = NULL;
    meter_session_opts o = { .db = db, .job = "j1", .output = "720p",
                             .cls = METER_CLASS_GENERAL, .codec = "h264",
                             .account = "acme" };
    unsetenv("METER_ACCOUNT");
    if (CHECK_RC_ERR(err, meter_session_open(&o, &s, err), METER_OK, "session for acme")) {
        meter_session_segment(s, 1280, 720, S(10));
        meter_session_summary sum;
        CHECK_RC_ERR(meter_session_errmsg(s), meter_session_finalize(s, 0, &sum), METER_OK,
                     "finalize");
        CHECK_EQ_I64(sum.covered_us, S(20), "20 s covered");
        CHECK_EQ_STR(sum.packs, "acme-1", "from acme-1");
        meter_session_close(s);
    }
    /* $METER_ACCOUNT when the option is not given */
    setenv("METER_ACCOUNT", "beta", 1);
    o.account = NULL;
    o.job = "j2";
    if (CHECK_RC_ERR(err, meter_session_open(&o, &s, err), METER_OK, "session, env beta")) {
        meter_session_segment(s, 1280, 720, S(5));
        meter_session_summary sum;
        meter_session_finalize(s, 0, &sum);
        CHECK_EQ_STR(sum.packs, "beta-1", "$METER_ACCOUNT beta: from beta-1");
        meter_session_close(s);
    }
    setenv("METER_ACCOUNT", "no good", 1);
    o.job = "j3";
    CHECK_RC_ERR(err, meter_session_open(&o, &s, err), METER_EINVAL,
                 "a bad $METER_ACCOUNT refuses the open");
    CHECK(strstr(err, "account") != NULL, "the message names the account: %s", err);
    o.account = "also bad!";
    CHECK_RC_ERR(err, meter_session_open(&o, &s, err), METER_EINVAL,
                 "a bad account option refuses the open");
    unsetenv("METER_ACCOUNT");

    st = mt_open(db);
    meter_query q = mt_query_all();
    q.account = "acme";
    meter_session_row *rows = NULL;
    size_t n = 0;
    CHECK_RC(st, meter_sessions(st, &q, &rows, &n), METER_OK, "sessions of acme");
    CHECK(n == 1 && !strcmp(rows[0].job, "j1") && !strcmp(rows[0].account, "acme"),
          "one session of acme: j1");
    meter_free(rows);
    CHECK_EQ_I64(mt_sql_int(db, "SELECT count(*) FROM usage WHERE job = 'j2' AND"
                                " account = 'beta'"), 1, "j2's usage is beta's");
    CHECK_VERIFY(st, "verify clean after sessions of two accounts");
    meter_close(st);
}

/* Writes a spool file by hand. */
static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        BAIL("cannot write %s", path);
}

static void spool(const char *dir)
{
    const char *db = tap_path(dir, "spool.db");
    const char *sdir = tap_path(dir, "spool.d");
    meter_store *st = mt_open(db);
    tap_set_now("2026-06-15T12:00:00Z");
    CHECK_RC(st, meter_pack_add_account(st, "acme", "acme-1", METER_CLASS_GENERAL, 10,
                                        tap_utc(2026, 6, 1, 0, 0, 0), NULL), METER_OK,
             "acme's pack");
    mt_add_pack(st, "def-1", METER_CLASS_GENERAL, 10, tap_utc(2026, 6, 1, 0, 0, 0));

    /* a session spooled from the start (no database there) keeps its account */
    char err[METER_ERRMAX] = "";
    meter_session *s = NULL;
    meter_session_opts o = { .db = tap_path(dir, "missing.db"), .job = "sp1",
                             .output = "720p", .cls = METER_CLASS_GENERAL, .codec = "h264",
                             .flags = METER_SESSION_SPOOL, .spool_dir = sdir,
                             .account = "acme" };
    if (CHECK_RC_ERR(err, meter_session_open(&o, &s, err), METER_OK, "spooled session")) {
        CHECK(meter_session_spooled(s), "it runs spooled");
        meter_session_segment(s, 1280, 720, S(10));
        meter_session_summary sum;
        CHECK_RC_ERR(meter_session_errmsg(s), meter_session_finalize(s, 0, &sum), METER_OK,
                     "finalize to the spool");
        meter_session_close(s);
    }
    /* one without an account learns the store's when imported */
    o.job = "sp2";
    o.account = NULL;
    if (CHECK_RC_ERR(err, meter_session_open(&o, &s, err), METER_OK, "spooled, no account")) {
        meter_session_segment(s, 1280, 720, S(5));
        meter_session_finalize(s, 0, NULL);
        meter_session_close(s);
    }
    CHECK_EQ_INT(mt_count_spool_files(sdir), 2, "two spool files");

    /* a version-1 spool file (before accounts) */
    char path[PATH_MAX], text[1024];
    snprintf(path, sizeof path, "%s/old-1.spool", sdir);
    snprintf(text, sizeof text,
             "ffmeter-spool 1\nid old-1\njob sp-old\noutput 720p\nnode n\nhost gone-host\n"
             "class general\ncodec h264\nflags 0\npid 1\nproc_start 1\nboot_id x\n"
             "opened_at %lld\nupdated_at %lld\nfinal 1\ninterrupted 0\n"
             "segment 1280 720 %lld\nend\n",
             (long long)tap_utc(2026, 6, 15, 11, 0, 0), (long long)tap_utc(2026, 6, 15, 11, 1, 0),
             (long long)S(3));
    write_file(path, text);
    /* and a version-1 file that names an account is malformed */
    snprintf(path, sizeof path, "%s/old-2.spool", sdir);
    write_file(path, "ffmeter-spool 1\nid old-2\njob x\noutput y\naccount acme\nend\n");

    int imported = 0;
    int rc = meter_import_spool(st, sdir, &imported);
    CHECK_RC(st, rc, METER_EINVAL, "the bad file is reported");
    CHECK_EQ_INT(imported, 3, "three files imported");
    CHECK_EQ_I64(mt_sql_int(db, "SELECT count(*) FROM usage WHERE job = 'sp1' AND"
                                " account = 'acme'"), 1, "sp1 billed to acme");
    CHECK_EQ_I64(mt_remaining(st, "acme-1"), S(600 - 20), "acme-1 paid sp1's 20 s");
    CHECK_EQ_I64(mt_sql_int(db, "SELECT count(*) FROM usage WHERE job = 'sp2' AND"
                                " account = 'default'"), 1, "sp2 billed to the store's account");
    CHECK_EQ_I64(mt_sql_int(db, "SELECT count(*) FROM usage WHERE job = 'sp-old' AND"
                                " account = 'default'"), 1, "the v1 file billed to default");
    CHECK_EQ_I64(mt_sql_int(db, "SELECT count(*) FROM sessions WHERE account = ''"), 0,
                 "no session row without an account");
    CHECK_EQ_I64(mt_remaining(st, "def-1"), S(600 - 16), "def-1 paid 10 + 6 s");
    CHECK_VERIFY(st, "verify clean after the imports");
    meter_close(st);
}

static void assigned(const char *dir)
{
    meter_store *st = mt_open(tap_path(dir, "assigned.db"));
    tap_set_now("2026-06-15T12:00:00Z");
    meter_remote_pack rp;
    memset(&rp, 0, sizeof rp);
    snprintf(rp.id, sizeof rp.id, "pk-remote");
    rp.type = METER_CLASS_GENERAL;
    rp.total_us = 10 * US_PER_MIN;
    rp.start = tap_utc(2026, 6, 1, 0, 0, 0);
    rp.end = tap_utc(2027, 6, 1, 0, 0, 0);
    snprintf(rp.account, sizeof rp.account, "acme");
    CHECK_RC(st, meter_pack_apply(st, &rp), METER_OK, "assigned pack of acme");
    CHECK_EQ_STR(mt_pack(st, "pk-remote").account, "acme", "stored in acme");
    rp.frozen = 1;
    CHECK_RC(st, meter_pack_apply(st, &rp), METER_OK, "frozen at the ledger");
    CHECK_EQ_INT(mt_pack(st, "pk-remote").frozen, 1, "frozen here");
    snprintf(rp.account, sizeof rp.account, "beta");
    CHECK_RC(st, meter_pack_apply(st, &rp), METER_EREFUSED, "another account is a conflict");
    rp.account[0] = '\0';
    rp.frozen = 0;
    CHECK_RC(st, meter_pack_apply(st, &rp), METER_OK, "no account given: the pack's stands");
    snprintf(rp.id, sizeof rp.id, "pk-remote2");
    CHECK_RC(st, meter_pack_apply(st, &rp), METER_OK, "a new pack without an account");
    CHECK_EQ_STR(mt_pack(st, "pk-remote2").account, "default", "takes the store's account");
    CHECK_VERIFY(st, "verify clean with assigned packs");
    meter_close(st);
}

int main(void)
{
    const char *dir = tap_tmpdir("test_accounts");
    names();
    settings(dir);
    charging(dir);
    daily(dir);
    sessions(dir);
    spool(dir);
    assigned(dir);
    return done_testing();
}
