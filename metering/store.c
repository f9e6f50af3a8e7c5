/*
 * store.c — opening a database safely, and the settings kept in it.
 *
 * Opening never writes to a file before it is known to be an ffmeter
 * database of a version we understand: identity and version are read first,
 * and only then are WAL mode and migrations applied.  A foreign, corrupt or
 * newer file is refused untouched.
 */
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

const char *meter_default_db_path(void)
{
    const char *env = getenv("METER_DB");
    return env && *env ? env : "/var/lib/ffmeter/meter.db";
}

const char *meter_errmsg(const meter_store *st)
{
    return st && st->err[0] ? st->err : "no error";
}

/* Count of schema objects, or a negative METER_E code (not SQLite, corrupt). */
static int count_objects(meter_store *st, int *n)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM sqlite_master", -1, &s, NULL) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW) {
        int rc = sqlite3_errcode(st->db);
        sqlite3_finalize(s);
        if (rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT)
            return meter_fail(st, METER_EFOREIGN, "'%s' is not an ffmeter database "
                              "(not an SQLite file, or corrupt)", st->path);
        return meter_fail_db(st, "read schema");
    }
    *n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return METER_OK;
}

static int read_int_pragma(meter_store *st, const char *sql, int *out)
{
    sqlite3_stmt *s = meter_prepare(st, sql);
    if (!s)
        return METER_EDB;
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        int code = meter_fail_db(st, "read pragma");
        sqlite3_finalize(s);
        return code;
    }
    *out = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return METER_OK;
}

static int is_ffmeter(meter_store *st, int *yes)
{
    *yes = 0;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db,
            "SELECT value FROM meta WHERE key = 'app'", -1, &s, NULL) != SQLITE_OK) {
        /* No meta table: someone else's database. */
        sqlite3_finalize(s);
        return METER_OK;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(s, 0);
        *yes = v && strcmp((const char *)v, METER_APP_ID) == 0;
    } else if (rc != SQLITE_DONE) {
        int code = meter_fail_db(st, "read meta");
        sqlite3_finalize(s);
        return code;
    }
    sqlite3_finalize(s);
    return METER_OK;
}

/* Creates the schema in an empty database.  Another process may have done
 * it between our look and our lock: then there is nothing to do. */
static int initialise(meter_store *st)
{
    int rc = meter_tx_begin(st);
    if (rc != METER_OK)
        return rc;
    int nobj = 0;
    rc = count_objects(st, &nobj);
    if (rc != METER_OK || nobj > 0)
        return meter_tx_end(st, rc);
    rc = meter_schema_migrate(st, 0);
    if (rc == METER_OK) {
        char host[METER_NAME_MAX];
        meter_hostname(host);
        sqlite3_stmt *s = meter_prepare(st,
            "INSERT INTO meta(key, value) VALUES "
            "('app', 'ffmeter'), ('node', ?1), ('node_id', lower(hex(randomblob(8)))),"
            "('rounding', 'exact'), ('settlement', 'realtime'),"
            "('day_offset', '+00:00'), ('seq', '0')");
        if (!s)
            rc = METER_EDB;
        else {
            sqlite3_bind_text(s, 1, host, -1, SQLITE_TRANSIENT);
            rc = meter_exec_stmt(st, s, "initialise database");
        }
    }
    if (rc == METER_OK)
        rc = meter_exec(st, "PRAGMA application_id = " METER_APP_ID_INT);
    return meter_tx_end(st, rc);
}

/* Is this ours, and of a version we read?  application_id marks ffmeter
 * files; the meta row is the fallback for files made before it existed.
 * The version is judged first for our files, so a newer schema is
 * "upgrade ffmeter", not "foreign". */
static int check_identity(meter_store *st, int *version)
{
    int app = 0, rc;
    *version = 0;
    if ((rc = read_int_pragma(st, "PRAGMA application_id", &app)) != METER_OK ||
        (rc = read_int_pragma(st, "PRAGMA user_version", version)) != METER_OK)
        return rc;
    int ours = app == (int)strtol(METER_APP_ID_INT, NULL, 0);
    if (!ours && app == 0 && (rc = is_ffmeter(st, &ours)) != METER_OK)
        return rc;
    if (!ours)
        return meter_fail(st, METER_EFOREIGN,
                          "'%s' is not an ffmeter database (another application's "
                          "SQLite file)", st->path);
    if (*version > meter_schema_version())
        return meter_fail(st, METER_EVERSION,
                          "'%s' has schema version %d, newer than this ffmeter's %d: "
                          "upgrade ffmeter", st->path, *version, meter_schema_version());
    if (*version < 1)
        return meter_fail(st, METER_EFOREIGN, "'%s' has no schema version: not an "
                          "ffmeter database", st->path);
    return METER_OK;
}

/* Migrates forward under the write lock, re-reading the version there:
 * another process may have migrated meanwhile. */
static int migrate(meter_store *st)
{
    int rc = meter_tx_begin(st), version = 0;
    if (rc == METER_OK)
        rc = read_int_pragma(st, "PRAGMA user_version", &version);
    if (rc == METER_OK && version < meter_schema_version())
        rc = meter_schema_migrate(st, version);
    return meter_tx_end(st, rc);
}

/* Waiting for the write lock: short sleeps with jitter, up to the busy
 * timeout.  SQLite's default handler backs off to 100 ms sleeps, so under
 * many writers one waiter can lose the race for seconds; retrying every
 * 1–4 ms keeps the tail short and fair enough. */
static int busy_wait(void *unused, int count)
{
    (void)unused;
    static _Thread_local struct timespec started;
    static _Thread_local unsigned seed;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (count == 0) {
        started = now;
        seed ^= (unsigned)now.tv_nsec ^ (unsigned)getpid();
    }
    int64_t waited_ms = (int64_t)(now.tv_sec - started.tv_sec) * 1000 +
                        (now.tv_nsec - started.tv_nsec) / 1000000;
    if (waited_ms >= METER_BUSY_TIMEOUT_MS)
        return 0;
    struct timespec nap = {0, (long)(1 + rand_r(&seed) % 4) * 1000000L};
    nanosleep(&nap, NULL);
    return 1;
}

static int open_checked(meter_store *st, unsigned flags, int existed)
{
    int want_ro = (flags & METER_OPEN_READONLY) != 0;
    int oflags = want_ro ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    if ((flags & METER_OPEN_CREATE) && !existed)
        oflags |= SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(st->path, &st->db, oflags, NULL) != SQLITE_OK)
        return meter_fail(st, METER_EDB, "cannot open '%s': %s", st->path,
                          st->db ? sqlite3_errmsg(st->db) : "out of memory");
    /* A WAL left beside the file (by its own application) must not be
     * checkpointed into it by our close until the file is known to be ours:
     * a refused file stays byte for byte as it was.  Without such a WAL the
     * close has nothing to copy and tidies up the -wal/-shm it made. */
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", st->path);
    if (access(wal, F_OK) == 0)
        sqlite3_db_config(st->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_handler(st->db, busy_wait, NULL);
    /* READWRITE silently falls back to read-only for a write-protected file. */
    st->readonly = want_ro || sqlite3_db_readonly(st->db, "main") == 1;

    int nobj = 0, version = 0, rc = count_objects(st, &nobj);
    if (rc != METER_OK)
        return rc;
    if (nobj == 0) {
        if (!(flags & METER_OPEN_CREATE))
            return meter_fail(st, METER_EFOREIGN,
                              "'%s' is empty, not an ffmeter database (create one with "
                              "'meterctl init')", st->path);
        if (st->readonly)
            return meter_fail(st, METER_EDB, "cannot create '%s': read-only", st->path);
        if (meter_exec(st, "PRAGMA journal_mode = WAL") != METER_OK)
            return meter_fail(st, METER_EDB, "cannot enable WAL on '%s': %s", st->path, st->err);
        if ((rc = initialise(st)) != METER_OK)
            return rc;
    }
    if ((rc = check_identity(st, &version)) != METER_OK)
        return rc;
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
    if (version < meter_schema_version()) {
        if (st->readonly)
            return meter_fail(st, METER_EDB, "'%s' needs a schema upgrade (version %d → %d) "
                              "but is read-only", st->path, version, meter_schema_version());
        if ((rc = migrate(st)) != METER_OK)
            return rc;
    }
    if (!st->readonly && meter_exec(st, "PRAGMA journal_mode = WAL") != METER_OK)
        return meter_fail(st, METER_EDB, "cannot enable WAL on '%s': %s", st->path, st->err);
    /* FULL: a committed deduction survives power loss, not just a crash. */
    return meter_exec(st, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON");
}

int meter_open(const char *path, unsigned flags, meter_store **out, char err[METER_ERRMAX])
{
    *out = NULL;
    if (!path)
        path = meter_default_db_path();
    if (!*path)
        return meter_fail_buf(err, METER_EINVAL, "empty database path");
    meter_store *st = calloc(1, sizeof *st);
    if (!st)
        return meter_fail_buf(err, METER_ENOMEM, "out of memory");
    if (meter_copy(st->path, sizeof st->path, path) != 0) {
        free(st);
        return meter_fail_buf(err, METER_EINVAL, "database path too long");
    }

    int rc;
    struct stat sb;
    int existed = stat(path, &sb) == 0;
    if (existed && S_ISDIR(sb.st_mode)) {
        rc = meter_fail(st, METER_EINVAL, "'%s' is a directory, not a database file", path);
    } else if (!existed && errno != ENOENT) {
        rc = meter_fail(st, METER_EDB, "cannot open '%s': %s", path, strerror(errno));
    } else if (!existed && !(flags & METER_OPEN_CREATE)) {
        rc = meter_fail(st, METER_ENOTFOUND, "no ffmeter database at '%s' (create one with "
                        "'meterctl init')", path);
    } else {
        if (!existed) {
            char dir[4096];
            meter_copy(dir, sizeof dir, path);
            const char *d = dirname(dir);
            if (stat(d, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
                rc = meter_fail(st, METER_EINVAL, "directory '%s' does not exist", d);
                goto done;
            }
        }
        rc = open_checked(st, flags, existed);
    }
done:
    if (rc != METER_OK) {
        meter_fail_buf(err, rc, "%s", st->err);
        meter_close(st);
        return rc;
    }
    *out = st;
    return METER_OK;
}

void meter_close(meter_store *st)
{
    if (!st)
        return;
    sqlite3_close_v2(st->db);
    free(st);
}

/* ------------------------------------------------------------ settings -- */

static int get_meta(meter_store *st, const char *key, char *buf, size_t cap)
{
    sqlite3_stmt *s = meter_prepare(st, "SELECT value FROM meta WHERE key = ?1");
    if (!s)
        return METER_EDB;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        meter_col_text(s, 0, buf, cap);
        sqlite3_finalize(s);
        return METER_OK;
    }
    int code = rc == SQLITE_DONE
        ? meter_fail(st, METER_ENOTFOUND, "unknown setting '%s'", key)
        : meter_fail_db(st, "read setting");
    sqlite3_finalize(s);
    return code;
}

static const char *const setting_keys[] = {
    "node", "node_id", "rounding", "settlement", "day_offset", "account", "lease_accounts",
    "lease_policy", "lease_minutes",
};

/* The longest value a setting may have (lease_accounts is a list). */
#define SETTING_MAX 4096

int meter_setting_get(meter_store *st, const char *key, char **value)
{
    *value = NULL;
    int known = 0;
    for (size_t i = 0; i < sizeof setting_keys / sizeof *setting_keys; i++)
        known |= key && strcmp(key, setting_keys[i]) == 0;
    if (!known)
        return meter_fail(st, METER_EINVAL, "unknown setting '%s' (known: node, node_id, "
                          "rounding, settlement, day_offset, account, lease_accounts, "
                          "lease_policy, lease_minutes)", key ? key : "");
    char buf[SETTING_MAX];
    int rc = get_meta(st, key, buf, sizeof buf);
    if (rc != METER_OK)
        return rc;
    *value = strdup(buf);
    return *value ? METER_OK : meter_fail(st, METER_ENOMEM, "out of memory");
}

/* lease_accounts: "" or a comma list of ACCOUNT or ACCOUNT:CLASS, each once. */
static int check_lease_accounts(meter_store *st, const char *value)
{
    if (strlen(value) >= SETTING_MAX)
        return meter_fail(st, METER_EINVAL, "lease_accounts is too long (at most %d bytes)",
                          SETTING_MAX - 1);
    for (const char *p = value; *p;) {
        size_t n = strcspn(p, ",");
        char item[SETTING_MAX], account[METER_NAME_MAX];
        meter_class cls;
        memcpy(item, p, n);
        item[n] = '\0';
        if (meter_lease_item(item, account, &cls) < 0)
            return meter_fail(st, METER_EINVAL, "lease_accounts: '%.80s' is not ACCOUNT or "
                              "ACCOUNT:CLASS (account names: letters, digits, '.', '_', "
                              "'-', ':'; class general or tsc)", item);
        p += n;
        if (*p == ',' && !*++p)
            return meter_fail(st, METER_EINVAL, "lease_accounts ends with a comma");
    }
    return METER_OK;
}

int meter_setting_set(meter_store *st, const char *key, const char *value)
{
    if (!key || !value)
        return meter_fail(st, METER_EINVAL, "setting needs a key and a value");
    char canon[16];
    if (strcmp(key, "node") == 0) {
        int rc = meter_check_name(st->err, "node name", value);
        if (rc != METER_OK)
            return rc;
    } else if (strcmp(key, "rounding") == 0) {
        if (strcmp(value, "exact") != 0 && strcmp(value, "ceil-minute") != 0)
            return meter_fail(st, METER_EINVAL, "rounding must be exact or ceil-minute, "
                              "not '%s'", value);
    } else if (strcmp(key, "settlement") == 0) {
        if (strcmp(value, "realtime") != 0 && strcmp(value, "daily") != 0)
            return meter_fail(st, METER_EINVAL, "settlement must be realtime or daily, "
                              "not '%s'", value);
    } else if (strcmp(key, "day_offset") == 0) {
        int off;
        if (meter_parse_offset(value, &off) != METER_OK)
            return meter_fail(st, METER_EINVAL, "day_offset must look like +08:00, "
                              "not '%s'", value);
        snprintf(canon, sizeof canon, "%c%02d:%02d", off < 0 ? '-' : '+',
                 abs(off) / 60, abs(off) % 60);
        value = canon;
    } else if (strcmp(key, "account") == 0) {
        if (!meter_account_valid(value))
            return meter_fail(st, METER_EINVAL, "invalid account name '%.80s' (1 to %d "
                              "letters, digits, '.', '_', '-', ':')", value, METER_NAME_MAX - 1);
    } else if (strcmp(key, "lease_accounts") == 0) {
        int rc = check_lease_accounts(st, value);
        if (rc != METER_OK)
            return rc;
    } else if (strcmp(key, "lease_policy") == 0) {
        if (strcmp(value, "continue") != 0 && strcmp(value, "stop") != 0)
            return meter_fail(st, METER_EINVAL, "lease_policy must be continue or stop, "
                              "not '%.80s'", value);
    } else if (strcmp(key, "lease_minutes") == 0) {
        char *end;
        errno = 0;
        long long m = strtoll(value, &end, 10);
        if (end == value || *end || errno || m < 1 || m > METER_PACK_MINUTES_MAX ||
            !isdigit((unsigned char)value[0]))
            return meter_fail(st, METER_EINVAL, "lease_minutes must be a whole number of "
                              "minutes from 1 to %lld, not '%.80s'",
                              (long long)METER_PACK_MINUTES_MAX, value);
        snprintf(canon, sizeof canon, "%lld", m);
        value = canon;
    } else if (strcmp(key, "node_id") == 0) {
        return meter_fail(st, METER_EINVAL, "node_id is fixed when the database is created");
    } else {
        return meter_fail(st, METER_EINVAL, "unknown setting '%s' (known: node, rounding, "
                          "settlement, day_offset, account, lease_accounts, lease_policy, "
                          "lease_minutes)", key);
    }
    int rc = meter_tx_begin(st);
    if (rc != METER_OK)
        return rc;
    sqlite3_stmt *s = meter_prepare(st, "UPDATE meta SET value = ?2 WHERE key = ?1");
    if (!s)
        rc = METER_EDB;
    else {
        sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
        rc = meter_exec_stmt(st, s, "save setting");
    }
    return meter_tx_end(st, rc);
}

int meter_get_rounding(meter_store *st, meter_rounding *out)
{
    char v[32] = "";
    int rc = get_meta(st, "rounding", v, sizeof v);
    *out = strcmp(v, "ceil-minute") == 0 ? METER_ROUND_CEIL_MINUTE : METER_ROUND_EXACT;
    return rc;
}

int meter_get_daily(meter_store *st, int *daily)
{
    char v[32] = "";
    int rc = get_meta(st, "settlement", v, sizeof v);
    *daily = rc == METER_OK && strcmp(v, "daily") == 0;
    return rc;
}

int meter_get_day_offset(meter_store *st, int *offset_min)
{
    char v[32];
    *offset_min = 0;
    int rc = get_meta(st, "day_offset", v, sizeof v);
    if (rc == METER_OK && meter_parse_offset(v, offset_min) != METER_OK)
        return meter_fail(st, METER_EDB, "stored day_offset '%s' is invalid", v);
    return rc;
}

int meter_get_node(meter_store *st, char node[METER_NAME_MAX])
{
    return get_meta(st, "node", node, METER_NAME_MAX);
}

int meter_resolve_account(meter_store *st, const char *given, const char *what,
                          char account[METER_NAME_MAX])
{
    if (given && *given) {
        if (!meter_account_valid(given))
            return meter_fail(st, METER_EINVAL, "invalid %s '%.80s' (1 to %d letters, "
                              "digits, '.', '_', '-', ':')", what, given, METER_NAME_MAX - 1);
        return meter_copy(account, METER_NAME_MAX, given) == 0 ? METER_OK : METER_EINVAL;
    }
    return get_meta(st, "account", account, METER_NAME_MAX);
}

int meter_get_setting_text(meter_store *st, const char *key, char *buf, size_t cap)
{
    return get_meta(st, key, buf, cap);
}

int meter_lease_item(const char *item, char account[METER_NAME_MAX], meter_class *cls)
{
    const char *colon = strrchr(item, ':');
    size_t n = strlen(item);
    int has_class = 0;
    if (colon && meter_class_parse(colon + 1, cls) == METER_OK) {
        n = (size_t)(colon - item);
        has_class = 1;
    }
    if (n == 0 || n >= METER_NAME_MAX)
        return -1;
    memcpy(account, item, n);
    account[n] = '\0';
    if (!meter_account_valid(account))
        return -1;
    return has_class;
}
