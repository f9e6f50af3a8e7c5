/*
 * test_sync_client.c — the client's parts that need no ledger: backoff
 * with jitter, the settings (keys, file, secret file), the lease plan
 * (lease_accounts, sizing by burn rate, when to ask, renew, release), and
 * meter_sync_run's
 * failures before and at the network (a real store in a temp dir; the
 * "ledger" is a closed loopback port).  The full client against a ledger
 * is tests/sync/client.sh.
 */
#include <signal.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "tap.h"
#include "lease_plan.h"

static void test_backoff(void)
{
    const long base = 500, cap = 60000;
    /* rnd = 0 draws the bottom of the range, UINT32_MAX the top */
    for (int a = 0; a < 10; a++)
        CHECK_EQ_I64(sync_backoff_ms(a, base, cap, 0, 0), 0, "attempt %d: jitter can be 0", a);
    CHECK_EQ_I64(sync_backoff_ms(0, base, cap, 0, UINT32_MAX), 500, "attempt 0: up to 0.5 s");
    CHECK_EQ_I64(sync_backoff_ms(1, base, cap, 0, UINT32_MAX), 1000, "attempt 1: up to 1 s");
    CHECK_EQ_I64(sync_backoff_ms(4, base, cap, 0, UINT32_MAX), 8000, "attempt 4: up to 8 s");
    CHECK_EQ_I64(sync_backoff_ms(7, base, cap, 0, UINT32_MAX), 60000,
                 "attempt 7: 64 s capped at 60 s");
    CHECK_EQ_I64(sync_backoff_ms(1000, base, cap, 0, UINT32_MAX), 60000,
                 "attempt 1000: still the cap (no overflow)");
    CHECK_EQ_I64(sync_backoff_ms(2, base, cap, 0, UINT32_MAX / 2), 1000,
                 "the middle of the draw is half the ceiling");
    CHECK_EQ_I64(sync_backoff_ms(0, base, cap, 3000, 0), 3000, "Retry-After is a floor");
    CHECK_EQ_I64(sync_backoff_ms(9, base, cap, 3000, UINT32_MAX), 60000,
                 "a longer backoff wins over a short Retry-After");
    CHECK_EQ_I64(sync_backoff_ms(0, base, cap, INT64_C(86400000), 0),
                 METER_SYNC_RETRY_AFTER_MAX_MS, "a huge Retry-After is cut");
    int inside = 1;
    for (int i = 0; i < 2000; i++) {
        int a = i % 12;
        long ceiling = base << a;
        if (ceiling > cap) ceiling = cap;
        long w = sync_backoff_ms(a, base, cap, 0, sync_random32());
        if (w < 0 || w > ceiling) inside = 0;
    }
    CHECK(inside, "2000 random draws stay within [0, min(cap, base*2^n)]");

    volatile sig_atomic_t stop = 1;
    CHECK_EQ_INT(sync_sleep_ms(60000, &stop), 1, "a set stop flag ends the sleep at once");
    stop = 0;
    CHECK_EQ_INT(sync_sleep_ms(1, &stop), 0, "a short sleep without a stop");
}

static void test_lease_plan(void)
{
    char err[METER_ERRMAX] = "";
    sync_pairs ps = { 0 };
    CHECK_EQ_INT(sync_lease_accounts_parse("", &ps, err), METER_OK, "lease_accounts '' parses");
    CHECK_EQ_INT((int)ps.n, 0, "and names no pair");
    CHECK_EQ_INT(sync_lease_accounts_parse("acme,beta:tsc,team:x:general,a:b", &ps, err),
                 METER_OK, "lease_accounts 'acme,beta:tsc,team:x:general,a:b' parses");
    if (CHECK_EQ_INT((int)ps.n, 6, "six pairs")) {
        CHECK(!strcmp(ps.v[0].account, "acme") && ps.v[0].cls == METER_CLASS_GENERAL &&
              !strcmp(ps.v[1].account, "acme") && ps.v[1].cls == METER_CLASS_TSC,
              "an account alone means both classes");
        CHECK(!strcmp(ps.v[2].account, "beta") && ps.v[2].cls == METER_CLASS_TSC,
              "ACCOUNT:CLASS names one class");
        CHECK(!strcmp(ps.v[3].account, "team:x") && ps.v[3].cls == METER_CLASS_GENERAL,
              "the class is the part after the last ':'");
        CHECK(!strcmp(ps.v[4].account, "a:b") && ps.v[4].cls == METER_CLASS_GENERAL &&
              !strcmp(ps.v[5].account, "a:b") && ps.v[5].cls == METER_CLASS_TSC,
              "a last part that is no class is part of the account (both classes)");
        CHECK(ps.v[0].configured && !ps.v[0].active, "configured, not active");
    }
    CHECK_EQ_INT(sync_pairs_add(&ps, "acme", METER_CLASS_TSC, 0, 1), METER_OK, "add a known pair");
    CHECK_EQ_INT((int)ps.n, 6, "no second copy of a pair");
    CHECK(ps.v[1].configured && ps.v[1].active, "the flags add up");
    sync_pairs_free(&ps);
    CHECK_EQ_INT(sync_lease_accounts_parse("acme,,beta", &ps, err), METER_EINVAL,
                 "an empty item is refused");
    CHECK_EQ_INT(sync_lease_accounts_parse("ac me", &ps, err), METER_EINVAL,
                 "a bad account name is refused");
    CHECK(strstr(err, "ac me") != NULL, "and named (%s)", err);
    sync_pairs_free(&ps);

    const int64_t MIN = METER_US_PER_MIN, W = SYNC_BURN_WINDOW_MS;
    CHECK_EQ_I64(sync_lease_target_us(0, W, 60000, 10 * MIN), 10 * MIN,
                 "no burn: lease_minutes");
    CHECK_EQ_I64(sync_lease_target_us(50 * MIN, W, 60000, 10 * MIN), 10 * MIN,
                 "50 min in 10 min, two 60 s periods = 10 min: lease_minutes still");
    CHECK_EQ_I64(sync_lease_target_us(100 * MIN, W, 60000, 10 * MIN), 20 * MIN,
                 "100 min in 10 min: 20 min for two 60 s periods");
    CHECK_EQ_I64(sync_lease_target_us(100 * MIN, W, 300000, 10 * MIN), 100 * MIN,
                 "the same burn with --watch 300: 100 min");
    CHECK_EQ_I64(sync_lease_target_us(1, W, 60000, 0), 1, "rounded up, at least 1 us");
    CHECK_EQ_I64(sync_lease_target_us(INT64_C(1000000000000000000), W, 86400000, 10 * MIN),
                 METER_PACK_TOTAL_MAX_US, "a huge burn is cut to the largest pack (no overflow)");

    const meter_time now = INT64_C(1795686600000);
    CHECK(sync_lease_wanted(0, 10 * MIN, 0, now, 60000, 0), "nothing held: ask");
    CHECK(sync_lease_wanted(9 * MIN, 10 * MIN, now + 600000, now, 60000, 0), "short: ask");
    CHECK(!sync_lease_wanted(10 * MIN, 10 * MIN, now + 600000, now, 60000, 0),
          "enough, far expiry: do not ask");
    CHECK(sync_lease_wanted(10 * MIN, 10 * MIN, now + 120000, now, 60000, 0),
          "enough, but expiring within two periods: ask");
    CHECK(!sync_lease_wanted(10 * MIN, 10 * MIN, now + 120000, now, 60000, 1),
          "expiring, but renewed in this run (ttl < two periods): do not ask again");

    meter_lease l;
    memset(&l, 0, sizeof l);
    strcpy(l.state, "open");
    l.remaining_us = MIN;
    l.expires_at = now + 121000;
    CHECK(!sync_lease_renew_due(&l, MIN, now, 60000), "expiry beyond two periods: no renewal");
    l.expires_at = now + 120000;
    CHECK(sync_lease_renew_due(&l, MIN, now, 60000), "expiry within two periods: renew");
    CHECK(!sync_lease_renew_due(&l, 0, now, 60000),
          "nothing usable (a voided or expired slice holds the rest): no renewal");
    CHECK(sync_lease_release_due(&l, 0, 1), "nothing usable, remaining on a voided slice: "
          "release");
    l.remaining_us = 0;
    CHECK(!sync_lease_renew_due(&l, 0, now, 60000), "spent: no renewal");
    CHECK(sync_lease_release_due(&l, 0, 1), "spent, nothing unsent: release");
    l.unsent = 2;
    CHECK(!sync_lease_release_due(&l, 0, 1), "spent, deductions still in the outbox: not yet");
    CHECK(!sync_lease_release_due(&l, MIN, 0), "not needed, deductions unsent: not yet");
    l.unsent = 0;
    l.remaining_us = MIN;
    CHECK(!sync_lease_release_due(&l, MIN, 1), "minutes left and needed: keep");
    CHECK(sync_lease_release_due(&l, MIN, 0), "minutes left, not needed: release");
    strcpy(l.state, "requested");
    CHECK(!sync_lease_release_due(&l, 0, 0) && !sync_lease_renew_due(&l, MIN, now, 60000),
          "a requested lease is neither renewed nor released");

    /* refusals in a row: the next round asks after one, then 2, 4, … periods */
    CHECK_EQ_INT(sync_lease_refusal_wait_ms(1, 60000), 30000,
                 "one refusal: half a period, so the next round asks again");
    CHECK_EQ_INT(sync_lease_refusal_wait_ms(2, 60000), 90000,
                 "two: 2 periods less half a period (the next round waits)");
    CHECK_EQ_INT(sync_lease_refusal_wait_ms(3, 60000), 210000, "three: 4 periods less slack");
    CHECK_EQ_INT(sync_lease_refusal_wait_ms(4, 60000), SYNC_REFUSAL_WAIT_MAX_MS,
                 "four: capped at 5 minutes");
    CHECK_EQ_INT(sync_lease_refusal_wait_ms(5, 1000), 15500, "five of 1 s periods: 16 s less slack");
    CHECK_EQ_INT(sync_lease_refusal_wait_ms(60, 1000), SYNC_REFUSAL_WAIT_MAX_MS,
                 "no overflow for long runs of refusals");
}

static int warned;
static void count_log(void *ctx, const char *line)
{
    (void)ctx;
    if (strstr(line, "warning")) warned++;
}

static const char *write_file(const char *dir, const char *name, const char *text, int mode)
{
    static char path[8][PATH_MAX];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, PATH_MAX, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f) BAIL("cannot write %s", p);
    fputs(text, f);
    fclose(f);
    chmod(p, (mode_t)mode);
    return p;
}

static void expect_bad(meter_sync_config *cfg, const char *key, const char *val,
                       const char *want)
{
    char err[METER_ERRMAX] = "";
    int rc = meter_sync_config_set(cfg, key, val, err);
    if (CHECK_EQ_INT(rc, METER_SYNC_ECONFIG, "%s = '%s' is refused", key, val))
        if (!CHECK(strstr(err, want) != NULL, "%s: the message says '%s'", key, want))
            tap_diag("message: %s", err);
}

static void test_config(const char *dir)
{
    meter_sync_config cfg;
    char err[METER_ERRMAX] = "";
    meter_sync_config_init(&cfg);
    CHECK_EQ_INT(cfg.batch, 500, "default batch 500");
    CHECK_EQ_INT(cfg.max_bytes, 1048576, "default max 1 MiB");
    CHECK_EQ_INT(cfg.retries, 5, "default 5 retries");
    CHECK_EQ_INT(cfg.backoff_base_ms, 500, "backoff base 0.5 s");
    CHECK_EQ_INT(cfg.backoff_cap_ms, 60000, "backoff cap 60 s");
    CHECK_EQ_INT(cfg.insecure, 0, "TLS verification on by default");
    CHECK_EQ_INT(meter_sync_config_check(&cfg, err), METER_SYNC_ECONFIG, "no ledger: refused");
    CHECK(strstr(err, "ledger") != NULL, "the message asks for a ledger");

    CHECK_EQ_INT(meter_sync_config_set(&cfg, "ledger", "https://ledger.example:8443//", err),
                 METER_OK, "ledger URL");
    CHECK_EQ_STR(cfg.ledger_url, "https://ledger.example:8443", "trailing slashes dropped");
    CHECK_EQ_INT(meter_sync_config_check(&cfg, err), METER_SYNC_ECONFIG, "no secret: refused");
    CHECK(strstr(err, "secret") != NULL, "the message asks for a secret");
    expect_bad(&cfg, "ledger", "ftp://x", "http");
    expect_bad(&cfg, "ledger", "https://", "no host");
    expect_bad(&cfg, "ledger", "http://a/b?c=d", "query");
    expect_bad(&cfg, "ledger", "http://a b", "blank");
    expect_bad(&cfg, "batch", "0", "out of range");
    expect_bad(&cfg, "batch", "1001", "out of range");
    expect_bad(&cfg, "batch", "12x", "not a whole number");
    expect_bad(&cfg, "batch", "-3", "not a whole number");
    expect_bad(&cfg, "max_bytes", "100", "out of range");
    expect_bad(&cfg, "timeout", "0", "out of range");
    expect_bad(&cfg, "auth", "basic", "hmac or bearer");
    expect_bad(&cfg, "insecure", "maybe", "yes or no");
    expect_bad(&cfg, "node", "node a", "node name");
    expect_bad(&cfg, "cacert", "/nonexistent/ca.pem", "cannot read");
    expect_bad(&cfg, "colour", "blue", "unknown setting 'colour'");

    CHECK_EQ_INT(meter_sync_config_set(&cfg, "batch", "1000", err), METER_OK, "batch 1000");
    CHECK_EQ_INT(cfg.batch, 1000, "batch set");
    CHECK_EQ_INT(meter_sync_config_set(&cfg, "timeout", "7", err), METER_OK, "timeout");
    CHECK_EQ_INT(cfg.timeout_ms, 7000, "timeout in ms");
    CHECK_EQ_INT(meter_sync_config_set(&cfg, "pull", "no", err), METER_OK, "pull no");
    CHECK_EQ_INT(cfg.no_pull, 1, "pull off");
    CHECK_EQ_INT(meter_sync_config_set(&cfg, "auth", "bearer", err), METER_OK, "auth bearer");
    CHECK_EQ_INT(cfg.bearer, 1, "bearer on");

    /* the secret file */
    cfg.log = count_log;
    const char *sf = write_file(dir, "s1", "  top-secret \t\n second line\n", 0600);
    CHECK_EQ_INT(meter_sync_read_secret(&cfg, sf, err), METER_OK, "secret file");
    CHECK_EQ_STR(cfg.secret, "top-secret", "the first line, blanks stripped");
    CHECK_EQ_INT(warned, 0, "a 0600 secret file is not warned about");
    sf = write_file(dir, "s2", "open-secret", 0644);
    CHECK_EQ_INT(meter_sync_read_secret(&cfg, sf, err), METER_OK, "secret without newline");
    CHECK_EQ_STR(cfg.secret, "open-secret", "read");
    CHECK_EQ_INT(warned, 1, "a world-readable secret file is warned about");
    sf = write_file(dir, "s3", "\n", 0600);
    CHECK_EQ_INT(meter_sync_read_secret(&cfg, sf, err), METER_SYNC_ECONFIG, "empty secret");
    CHECK(strstr(err, "empty") != NULL, "says empty");
    char big[METER_SYNC_SECRET_MAX + 10];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sf = write_file(dir, "s4", big, 0600);
    CHECK_EQ_INT(meter_sync_read_secret(&cfg, sf, err), METER_SYNC_ECONFIG, "a too long secret");
    CHECK(strstr(err, "longer") != NULL, "says longer");
    /* a secret of 257 or 258 bytes on a line of its own fits the read
     * buffer but not cfg->secret: it was taken, writing one or two bytes
     * past the end of cfg->secret (found by tests/fuzz/fuzz_sync_config) */
    int bearer_was = cfg.bearer;
    for (int extra = 1; extra <= 2; extra++) {
        char line[METER_SYNC_SECRET_MAX + 8];
        memset(line, 'k', METER_SYNC_SECRET_MAX + extra);
        strcpy(line + METER_SYNC_SECRET_MAX + extra, "\n");
        cfg.bearer = 7;
        sf = write_file(dir, "s4b", line, 0600);
        CHECK_EQ_INT(meter_sync_read_secret(&cfg, sf, err), METER_SYNC_ECONFIG,
                     "a secret %d byte(s) too long, newline-terminated, refused", extra);
        CHECK(strstr(err, "longer") != NULL, "says longer (%s)", err);
        CHECK_EQ_INT(cfg.bearer, 7, "the field after the secret untouched");
    }
    {   /* exactly the limit, between blanks: taken whole */
        char line[METER_SYNC_SECRET_MAX + 8];
        strcpy(line, "  ");
        memset(line + 2, 'm', METER_SYNC_SECRET_MAX);
        strcpy(line + 2 + METER_SYNC_SECRET_MAX, "\n");
        sf = write_file(dir, "s4c", line, 0600);
        CHECK_EQ_INT(meter_sync_read_secret(&cfg, sf, err), METER_OK,
                     "a secret of exactly %d bytes", METER_SYNC_SECRET_MAX);
        CHECK_EQ_INT((int)strlen(cfg.secret), METER_SYNC_SECRET_MAX, "read whole");
    }
    cfg.bearer = bearer_was;
    sf = write_file(dir, "s5", "a\x01" "b\n", 0600);
    CHECK_EQ_INT(meter_sync_read_secret(&cfg, sf, err), METER_SYNC_ECONFIG, "control char");
    CHECK_EQ_INT(meter_sync_read_secret(&cfg, "/nonexistent/secret", err), METER_SYNC_ECONFIG,
                 "a missing secret file");
    CHECK(strstr(err, "/nonexistent/secret") != NULL, "names the file");
    meter_sync_config_clear(&cfg);
    CHECK_EQ_STR(cfg.secret, "", "clear wipes the secret");

    /* the config file */
    char text[1024];
    const char *good_secret = write_file(dir, "node.secret", "from-file\n", 0600);
    snprintf(text, sizeof text,
             "# ffmeter sync\n\n  ledger =  http://127.0.0.1:8080/ \n"
             "secret_file=%s\nbatch = 7\nmax_bytes = 2048\nretries = 0\n"
             "connect_timeout = 2\n   # indented comment\ninsecure = no\n", good_secret);
    const char *conf = write_file(dir, "sync.conf", text, 0644);
    meter_sync_config_init(&cfg);
    CHECK_EQ_INT(meter_sync_config_load(&cfg, conf, err), METER_OK, "config file loads");
    CHECK_EQ_STR(cfg.ledger_url, "http://127.0.0.1:8080", "ledger from the file");
    CHECK_EQ_STR(cfg.secret, "from-file", "secret via secret_file");
    CHECK_EQ_INT(cfg.batch, 7, "batch from the file");
    CHECK_EQ_INT(cfg.max_bytes, 2048, "max_bytes from the file");
    CHECK_EQ_INT(cfg.retries, 0, "retries from the file");
    CHECK_EQ_INT(cfg.connect_timeout_ms, 2000, "connect timeout from the file");
    CHECK_EQ_INT(meter_sync_config_check(&cfg, err), METER_OK, "complete config passes");

    conf = write_file(dir, "bad1.conf", "ledger = http://x\nbatch 5\n", 0644);
    CHECK_EQ_INT(meter_sync_config_load(&cfg, conf, err), METER_SYNC_ECONFIG, "line without =");
    CHECK(strstr(err, "bad1.conf:2:") != NULL, "names file and line");
    conf = write_file(dir, "bad2.conf", "\n\nretries = many\n", 0644);
    CHECK_EQ_INT(meter_sync_config_load(&cfg, conf, err), METER_SYNC_ECONFIG, "bad value");
    CHECK(strstr(err, "bad2.conf:3: retries") != NULL, "names file, line and key");
    CHECK_EQ_INT(meter_sync_config_load(&cfg, "/nonexistent/sync.conf", err),
                 METER_SYNC_ECONFIG, "a missing file");
    meter_sync_config_clear(&cfg);
}

/* A loopback port with nobody listening (bound, then closed). */
static int closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0)
        BAIL("cannot find a free port");
    close(s);
    return ntohs(a.sin_port);
}

static void test_run(const char *dir)
{
    char db[PATH_MAX], err[METER_ERRMAX] = "", url[64];
    snprintf(db, sizeof db, "%s/node.db", dir);
    meter_store *st;
    if (meter_open(db, METER_OPEN_CREATE, &st, err) != METER_OK)
        BAIL("open %s: %s", db, err);
    meter_usage_in in = { .job = "j1", .output = "o", .cls = METER_CLASS_GENERAL,
                          .codec = "h264", .width = 1920, .height = 1080,
                          .duration_us = 60000000 };
    if (meter_record(st, &in, NULL) != METER_OK)
        BAIL("record: %s", meter_errmsg(st));
    meter_sync_status s0;
    meter_sync_status_get(st, &s0);
    CHECK(s0.depth >= 1, "the usage is in the outbox");

    meter_sync_config cfg;
    meter_sync_report rep;
    meter_sync_config_init(&cfg);
    CHECK_EQ_INT(meter_sync_run(st, &cfg, &rep), METER_SYNC_ECONFIG, "no ledger: config error");
    CHECK(rep.error[0] != '\0', "with a message");

    snprintf(url, sizeof url, "http://127.0.0.1:%d", closed_port());
    meter_sync_config_set(&cfg, "ledger", url, err);
    strcpy(cfg.secret, "s");
    cfg.retries = 2;
    cfg.backoff_base_ms = 1;
    cfg.backoff_cap_ms = 5;
    strcpy(cfg.node, "another-node");
    CHECK_EQ_INT(meter_sync_run(st, &cfg, &rep), METER_SYNC_ECONFIG,
                 "a node name other than the store's is refused");
    CHECK(strstr(rep.error, "another-node") != NULL, "the message names it");
    cfg.node[0] = '\0';

    CHECK_EQ_INT(meter_sync_run(st, &cfg, &rep), METER_SYNC_ENET,
                 "connection refused: ledger unreachable");
    CHECK(strstr(rep.error, "gave up after 3 attempts") != NULL,
          "the message counts the attempts");
    CHECK_EQ_INT(rep.retries, 2, "two retries");
    CHECK_EQ_INT(rep.sent, 0, "nothing counted as sent");
    meter_sync_status s1;
    meter_sync_status_get(st, &s1);
    CHECK_EQ_I64(s1.depth, s0.depth, "the outbox keeps every record");
    CHECK_EQ_STR(s1.last_error, rep.error, "status holds the last error");
    CHECK(s1.last_attempt_at > 0, "the attempt is noted");
    CHECK_EQ_I64(s1.last_success_at, 0, "no success noted");

    volatile sig_atomic_t stop = 1;
    cfg.stop = &stop;
    CHECK_EQ_INT(meter_sync_run(st, &cfg, &rep), METER_SYNC_ESTOPPED,
                 "a stop before the run sends nothing");

    cfg.stop = NULL;
    if (meter_setting_set(st, "node", "node with blanks") == METER_OK) {
        CHECK_EQ_INT(meter_sync_run(st, &cfg, &rep), METER_SYNC_ECONFIG,
                     "a node name the wire cannot carry is refused");
        CHECK(strstr(rep.error, "node with blanks") != NULL, "and named");
    }
    meter_close(st);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *dir = tap_tmpdir("sync-client");
    test_backoff();
    test_lease_plan();
    test_config(dir);
    test_run(dir);
    return done_testing();
}
