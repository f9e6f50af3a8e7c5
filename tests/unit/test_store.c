/*
 * test_store — opening and refusing databases, and the settings.
 *
 * Refusals: a text file, an empty file (without CREATE), a corrupt ffmeter
 * file, another application's SQLite database and a database of a newer
 * schema version are refused with METER_EFOREIGN / METER_EVERSION and stay
 * byte-identical; a missing directory and a missing file are errors that
 * create nothing.
 *
 * Read-only: tests run as root in CI, and root ignores file modes, so a
 * chmod 0444 alone proves nothing.  Two things are checked instead:
 *   1. METER_OPEN_READONLY: reads work, every write fails cleanly (EDB)
 *      and changes nothing;
 *   2. a 0444 file opened by a forked child that has dropped to an
 *      unprivileged uid when started as root (uid 65534, "nobody"): the open
 *      or the first write fails with a message, and the file is unchanged.
 */
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "mtest.h"

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        BAIL("write %s", path);
}

/* Opening `path` is refused with `want` (0: any error), *out stays NULL, the
 * message is one line, and the file (if any) is byte-identical after. */
static void refused(const char *path, unsigned flags, int want,
                    const char *what)
{
    size_t len0 = 0, len1 = 0;
    unsigned char *before = mt_slurp(path, &len0);
    int existed = mt_exists(path);
    meter_store *st = (meter_store *)&len0;   /* must be reset to NULL */
    char err[METER_ERRMAX] = "";
    int rc = meter_open(path, flags, &st, err);
    if (want)
        CHECK_RC_ERR(err, rc, want, "%s: refused", what);
    else
        CHECK(rc < 0, "%s: refused (rc %d)", what, rc);
    CHECK(st == NULL, "%s: *out is NULL", what);
    if (rc == METER_OK && st)
        meter_close(st);
    CHECK(err[0] && !strchr(err, '\n'), "%s: message '%s'", what, err);
    if (existed) {
        unsigned char *after = mt_slurp(path, &len1);
        CHECK(after && len0 == len1 && (len0 == 0 ||
                                        memcmp(before, after, len0) == 0),
              "%s: file byte-identical (%zu → %zu bytes)", what, len0, len1);
        free(after);
    } else {
        CHECK(!mt_exists(path), "%s: no file created", what);
    }
    free(before);
}

static void fresh(const char *dir)
{
    const char *path = tap_path(dir, "new.db");
    CHECK(meter_schema_version() >= 1, "schema version ≥ 1 (%d)",
          meter_schema_version());
    meter_store *st = mt_open(path);
    CHECK_EQ_I64(mt_sql_int(path, "PRAGMA user_version"), meter_schema_version(),
                 "user_version = meter_schema_version()");
    CHECK(meter_errmsg(st) != NULL, "errmsg never NULL");
    mt_add_pack(st, "keep", METER_CLASS_GENERAL, 10, 0);
    meter_close(st);

    /* WAL is a property of the file: visible to a plain SQLite connection */
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    const char *mode = "";
    char modebuf[16] = "";
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL) ==
        SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
        snprintf(modebuf, sizeof modebuf, "%s", sqlite3_column_text(s, 0));
        mode = modebuf;
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    CHECK_EQ_STR(mode, "wal", "journal mode WAL");

    /* reopening without CREATE sees the data; CREATE on an existing store
     * opens it without re-initialising */
    st = NULL;
    char err[METER_ERRMAX] = "";
    int rc = meter_open(path, 0, &st, err);
    if (CHECK_RC_ERR(err, rc, METER_OK, "reopen without CREATE")) {
        CHECK_EQ_I64(mt_remaining(st, "keep"), 10 * US_PER_MIN, "data kept");
        meter_close(st);
    }
    st = mt_open(path);
    CHECK_EQ_I64(mt_remaining(st, "keep"), 10 * US_PER_MIN,
                 "CREATE on an existing store keeps data");

    /* two stores on one file see each other's writes */
    meter_store *st2 = NULL;
    rc = meter_open(path, 0, &st2, err);
    if (CHECK_RC_ERR(err, rc, METER_OK, "second store on the same file")) {
        mt_add_pack(st2, "other", METER_CLASS_TSC, 5, 0);
        CHECK_EQ_I64(mt_remaining(st, "other"), 5 * US_PER_MIN,
                     "first store sees the second's pack");
        meter_close(st2);
    }
    meter_close(st);

    refused(tap_path(dir, "absent.db"), 0, 0, "missing file without CREATE");
    refused(tap_path(dir, "no/such/dir/meter.db"), METER_OPEN_CREATE, 0,
            "missing directory");
    CHECK(!mt_exists(tap_path(dir, "no")), "missing directory not created");

    st = (meter_store *)&rc;
    rc = meter_open(NULL, METER_OPEN_CREATE, &st, err);
    CHECK(rc == METER_EINVAL && st == NULL, "NULL path refused (rc %d)", rc);
    rc = meter_open("", METER_OPEN_CREATE, &st, err);
    CHECK(rc < 0 && st == NULL, "empty path refused (rc %d)", rc);
}

static void foreign(const char *dir)
{
    /* not SQLite at all */
    const char *txt = tap_path(dir, "notes.txt");
    char text[8192];
    for (size_t i = 0; i < sizeof text; ++i)
        text[i] = "this is not a database\n"[i % 23];
    write_file(txt, text, sizeof text);
    refused(txt, 0, METER_EFOREIGN, "text file");
    refused(txt, METER_OPEN_CREATE, METER_EFOREIGN, "text file with CREATE");

    /* empty: not an ffmeter store unless CREATE asks for one */
    const char *empty = tap_path(dir, "empty.db");
    write_file(empty, "", 0);
    refused(empty, 0, 0, "empty file without CREATE");

    /* another application's database */
    const char *other = tap_path(dir, "other.db");
    mt_sql(other, "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);"
               "INSERT INTO customers(name) VALUES ('Ada'), ('Linus');");
    refused(other, 0, METER_EFOREIGN, "foreign SQLite db");
    refused(other, METER_OPEN_CREATE, METER_EFOREIGN,
            "foreign SQLite db with CREATE");
    CHECK(!mt_exists(tap_path(dir, "other.db-wal")), "no WAL file left beside it");

    /* an ffmeter store from a newer schema version */
    const char *newer = tap_path(dir, "newer.db");
    meter_store *st = mt_open(newer);
    mt_add_pack(st, "n1", METER_CLASS_GENERAL, 10, 0);
    meter_close(st);
    char stmt[64];
    snprintf(stmt, sizeof stmt, "PRAGMA user_version = %d",
             meter_schema_version() + 1);
    mt_sql(newer, stmt);
    refused(newer, 0, METER_EVERSION, "newer schema version");
    refused(newer, METER_OPEN_CREATE, METER_EVERSION,
            "newer schema version with CREATE");
    CHECK_EQ_I64(mt_sql_int(newer, "PRAGMA user_version"),
                 meter_schema_version() + 1, "user_version left as it was");

    /* a corrupt ffmeter store: schema page overwritten */
    const char *bad = tap_path(dir, "corrupt.db");
    st = mt_open(bad);
    mt_add_pack(st, "c1", METER_CLASS_GENERAL, 10, 0);
    meter_close(st);
    if (mt_exists(tap_path(dir, "corrupt.db-wal")))
        tap_diag("note: corrupt.db-wal still present after close");
    size_t len = 0;
    unsigned char *img = mt_slurp(bad, &len);
    if (img && len > 4096) {
        for (size_t i = 100; i < 4096; ++i)   /* keep the 100-byte header */
            img[i] = (unsigned char)(i * 37 + 11);
        write_file(bad, img, len);
        refused(bad, 0, METER_EFOREIGN, "corrupt file");
    } else {
        FAIL("corrupt-file fixture: store smaller than one page (%zu)", len);
    }
    free(img);

    /* a truncated header */
    const char *trunc = tap_path(dir, "trunc.db");
    write_file(trunc, "SQLite format 3", 15);
    refused(trunc, 0, METER_EFOREIGN, "truncated SQLite header");
}

/* Counts packs, or -1. */
static int64_t npacks(meter_store *st)
{
    meter_pack *rows = NULL;
    size_t n = 0;
    if (meter_pack_list(st, NULL, &rows, &n) != METER_OK)
        return -1;
    meter_free(rows);
    return (int64_t)n;
}

static void read_only(const char *dir)
{
    const char *path = tap_path(dir, "ro.db");
    tap_set_now("2026-06-15T12:00:00Z");
    meter_store *st = mt_open(path);
    mt_add_pack(st, "ro1", METER_CLASS_GENERAL, 10, 0);
    meter_close(st);

    st = NULL;
    char err[METER_ERRMAX] = "";
    int rc = meter_open(path, METER_OPEN_READONLY, &st, err);
    if (!CHECK_RC_ERR(err, rc, METER_OK, "open READONLY"))
        return;
    CHECK_EQ_I64(npacks(st), 1, "read-only: list works");
    CHECK_EQ_I64(mt_remaining(st, "ro1"), 10 * US_PER_MIN, "read-only: get");
    CHECK_RC(st, meter_pack_add(st, "ro2", METER_CLASS_GENERAL, 5, 0, NULL),
             METER_EDB, "read-only: pack add fails");
    CHECK_MSG(st, "read-only message: %s", meter_errmsg(st));
    CHECK_RC(st, meter_pack_freeze(st, "ro1"), METER_EDB,
             "read-only: freeze fails");
    meter_usage_result r;
    CHECK_RC(st, mt_record(st, "j", METER_CLASS_GENERAL, "h264", 640, 480,
                           US_PER_S, &r), METER_EDB, "read-only: record fails");
    CHECK_RC(st, meter_setting_set(st, "rounding", "ceil-minute"), METER_EDB,
             "read-only: setting fails");
    CHECK_RC(st, meter_rate_set(st, METER_CLASS_GENERAL, "Standard.H264.HD",
                                "3"), METER_EDB, "read-only: rate set fails");
    meter_close(st);

    st = mt_open(path);
    CHECK_EQ_I64(npacks(st), 1, "after read-only: still one pack");
    meter_pack p = mt_pack(st, "ro1");
    CHECK(!p.frozen && p.remaining_us == 10 * US_PER_MIN,
          "after read-only: ro1 unchanged");
    mt_sums s;
    if (mt_job_sums(st, NULL, &s) == METER_OK)
        CHECK_EQ_I64(s.n, 0, "after read-only: no usage record");
    char *v = NULL;
    CHECK(meter_setting_get(st, "rounding", &v) == METER_OK && v &&
          !strcmp(v, "exact"), "after read-only: rounding still exact");
    meter_free(v);
    meter_close(st);

    /* A 0444 file opened by a child without root's override (see the top).
     * The fixture lives in its own world-writable directory under /tmp:
     * $TESTS_TMP may be private (0700) to its owner, and SQLite needs to
     * create the -shm/-wal files beside a WAL database even to read it, so
     * this way the open can succeed and the write is what gets refused. */
    const char *rodir = tap_tmpdir_at("/tmp", "test_store_ro");
    chmod(rodir, 0777);
    const char *ro = tap_path(rodir, "ro.db");
    st = mt_open(ro);
    mt_add_pack(st, "ro1", METER_CLASS_GENERAL, 10, 0);
    meter_close(st);
    size_t len0 = 0;
    unsigned char *before = mt_slurp(ro, &len0);
    chmod(ro, 0444);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(3);
        meter_store *c = NULL;
        char e[METER_ERRMAX] = "";
        int crc = meter_open(ro, 0, &c, e);
        if (crc != METER_OK)
            _exit(e[0] && c == NULL ? 10 : 4);  /* refused with a message */
        crc = meter_pack_add(c, "ro3", METER_CLASS_GENERAL, 5, 0, NULL);
        int good = crc == METER_EDB && meter_errmsg(c)[0];
        int64_t n = npacks(c);
        meter_close(c);
        _exit(good && n == 1 ? 0 : 5);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == 3) {
        /* e.g. a user namespace without uid 65534: as root the file mode
         * would not apply, so this half cannot show anything here */
        tap_skip("0444 file: cannot drop root privileges in this environment");
        free(before);
        chmod(ro, 0644);
        return;
    }
    CHECK(code == 0 || code == 10,
          "0444 file: the open or the first write refused with a message "
          "(child status %d)", code);
    tap_diag("0444 file: %s", code == 0 ? "opened, the write failed (EDB), "
             "reads still worked" : code == 10 ? "the open was refused"
             : "unexpected");
    size_t len1 = 0;
    unsigned char *after = mt_slurp(ro, &len1);
    CHECK(before && after && len0 == len1 && !memcmp(before, after, len0),
          "0444 file unchanged");
    free(before);
    free(after);
    chmod(ro, 0644);
}

static void settings(const char *dir)
{
    const char *path = tap_path(dir, "settings.db");
    meter_store *st = mt_open(path);
    char *v = NULL;
    char host[256] = "";
    gethostname(host, sizeof host - 1);

    CHECK(meter_setting_get(st, "node", &v) == METER_OK && v &&
          !strcmp(v, host), "node defaults to the hostname (%s)", v ? v : "?");
    meter_free(v);
    char *node_id = NULL;
    CHECK(meter_setting_get(st, "node_id", &node_id) == METER_OK && node_id &&
          strlen(node_id) >= 8, "node_id set at creation (%s)",
          node_id ? node_id : "?");
    CHECK(meter_setting_set(st, "node_id", "forged") < 0,
          "node_id is read-only");
    v = NULL;
    CHECK(meter_setting_get(st, "node_id", &v) == METER_OK && v && node_id &&
          !strcmp(v, node_id), "node_id unchanged");
    meter_free(v);

    static const struct { const char *key, *def; } defs[] = {
        { "rounding", "exact" },
        { "settlement", "realtime" },
        { "day_offset", "+00:00" },
    };
    for (int i = 0; i < 3; ++i) {
        v = NULL;
        CHECK(meter_setting_get(st, defs[i].key, &v) == METER_OK && v &&
              !strcmp(v, defs[i].def), "%s defaults to %s (%s)", defs[i].key,
              defs[i].def, v ? v : "?");
        meter_free(v);
    }

    static const struct { const char *key, *val; int ok; } sets[] = {
        { "node", "farm-01", 1 },
        { "node", "", 0 },
        { "rounding", "ceil-minute", 1 },
        { "rounding", "floor", 0 },
        { "settlement", "daily", 1 },
        { "settlement", "Daily!", 0 },
        { "day_offset", "+08:00", 1 },
        { "day_offset", "-05:30", 1 },
        { "day_offset", "+25:00", 0 },
        { "day_offset", "8", 0 },
        { "day_offset", "+08:61", 0 },
        { "day_offset", "", 0 },
        { "colour", "blue", 0 },
        { "", "x", 0 },
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; ++i) {
        int rc = meter_setting_set(st, sets[i].key, sets[i].val);
        if (sets[i].ok)
            CHECK_RC(st, rc, METER_OK, "set %s=%s", sets[i].key, sets[i].val);
        else
            CHECK(rc < 0 && meter_errmsg(st)[0],
                  "set %s='%s' refused (rc %d: %s)", sets[i].key, sets[i].val,
                  rc, meter_errmsg(st));
    }
    char longnode[300];
    memset(longnode, 'n', sizeof longnode - 1);
    longnode[sizeof longnode - 1] = '\0';
    CHECK(meter_setting_set(st, "node", longnode) < 0, "299-byte node refused");
    CHECK(meter_setting_set(st, "rounding", NULL) < 0, "NULL value refused");
    v = (char *)"x";
    CHECK(meter_setting_get(st, "colour", &v) < 0, "get unknown key refused");
    meter_close(st);

    /* they live in the database */
    st = mt_open(path);
    static const struct { const char *key, *val; } now[] = {
        { "node", "farm-01" },
        { "rounding", "ceil-minute" },
        { "settlement", "daily" },
        { "day_offset", "-05:30" },
    };
    for (int i = 0; i < 4; ++i) {
        v = NULL;
        CHECK(meter_setting_get(st, now[i].key, &v) == METER_OK && v &&
              !strcmp(v, now[i].val), "after reopen %s = %s (%s)", now[i].key,
              now[i].val, v ? v : "?");
        meter_free(v);
    }
    v = NULL;
    CHECK(meter_setting_get(st, "node_id", &v) == METER_OK && v && node_id &&
          !strcmp(v, node_id), "node_id stable across opens");
    meter_free(v);
    /* records carry the node name */
    tap_set_now("2026-06-15T12:00:00Z");
    CHECK_RC(st, meter_setting_set(st, "settlement", "realtime"), METER_OK,
             "realtime");
    meter_usage_result r;
    mt_record(st, "jn", METER_CLASS_GENERAL, "h264", 640, 480, US_PER_S, &r);
    meter_query q = mt_query_all();
    meter_job_row *rows = NULL;
    size_t n = 0;
    if (meter_jobs(st, &q, &rows, &n) == METER_OK) {
        CHECK(n == 1 && !strcmp(rows[0].node, "farm-01"),
              "record's node = farm-01");
        meter_free(rows);
    }
    meter_close(st);

    /* a second store gets another node_id */
    st = mt_open(tap_path(dir, "settings2.db"));
    v = NULL;
    CHECK(meter_setting_get(st, "node_id", &v) == METER_OK && v && node_id &&
          strcmp(v, node_id) != 0, "node_id differs between stores");
    meter_free(v);
    meter_close(st);
    meter_free(node_id);
}

static void misc(void)
{
    setenv("METER_DB", "/some/where/m.db", 1);
    CHECK_EQ_STR(meter_default_db_path(), "/some/where/m.db",
                 "default path from METER_DB");
    unsetenv("METER_DB");
    CHECK_EQ_STR(meter_default_db_path(), "/var/lib/ffmeter/meter.db",
                 "default path without METER_DB");
    static const int codes[] = { METER_OK, METER_EINVAL, METER_ENOTFOUND,
                                 METER_EEXIST, METER_EREFUSED, METER_EDB,
                                 METER_EVERSION, METER_EFOREIGN, METER_ENOMEM,
                                 METER_EBUSY, METER_EIO, METER_ENOMINUTES,
                                 METER_EFINALIZED };
    int named = 1, distinct = 1;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; ++i) {
        const char *a = meter_strerror(codes[i]);
        named = named && a && a[0];
        for (size_t j = 0; a && j < i; ++j)
            distinct = distinct && strcmp(a, meter_strerror(codes[j])) != 0;
    }
    CHECK(named, "every code has a name");
    CHECK(distinct, "names are distinct");
    CHECK(meter_strerror(-999) && meter_strerror(-999)[0],
          "an unknown code still gets a name");
    meter_free(NULL);
    PASS("meter_free(NULL) is fine");
}

int main(void)
{
    const char *dir = tap_tmpdir("test_store");
    tap_set_now("2026-06-15T12:00:00Z");
    fresh(dir);
    foreign(dir);
    read_only(dir);
    settings(dir);
    misc();
    return done_testing();
}
