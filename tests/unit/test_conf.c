/*
 * test_conf — meter_conf_read, the "key = value" reader of meter-ledgerd's
 * --config file and the sync client's sync.conf: blanks, comments and blank
 * lines skipped, settings in file order, file and line in every message,
 * the line limit, a refusal from set() stopping the read.
 */
#include <stdio.h>

#include "mtest.h"

struct seen {
    int n;
    char keys[8][32], values[8][64];
    const char *refuse;    /* set() refuses this key */
};

static int collect(void *ctx, const char *key, const char *value, char err[METER_ERRMAX])
{
    struct seen *s = ctx;
    if (s->refuse && !strcmp(key, s->refuse)) {
        snprintf(err, METER_ERRMAX, "%s: no", key);
        return -1;
    }
    if (s->n < 8) {
        snprintf(s->keys[s->n], sizeof s->keys[0], "%s", key);
        snprintf(s->values[s->n], sizeof s->values[0], "%s", value);
    }
    s->n++;
    return 0;
}

static const char *write_conf(const char *dir, const char *name, const char *text)
{
    const char *path = tap_path(dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        BAIL("cannot write %s", path);
    return path;
}

int main(void)
{
    const char *dir = tap_tmpdir("conf");
    char err[METER_ERRMAX];
    struct seen s = { 0 };

    const char *p = write_conf(dir, "good.conf",
        "# a comment\n\n  alpha =  one two \n\tbeta=2\n   # indented comment\n"
        "gamma =\nkey_x = a = b\nlast = no newline");
    CHECK_RC_ERR(err, meter_conf_read(p, 4096, collect, &s, err), METER_OK, "a good file");
    CHECK_EQ_INT(s.n, 5, "five settings");
    CHECK_EQ_STR(s.keys[0], "alpha", "key trimmed");
    CHECK_EQ_STR(s.values[0], "one two", "value trimmed, inner blank kept");
    CHECK_EQ_STR(s.keys[1], "beta", "no blanks around '='");
    CHECK_EQ_STR(s.values[1], "2", "its value");
    CHECK_EQ_STR(s.values[2], "", "an empty value is passed on");
    CHECK_EQ_STR(s.keys[3], "key_x", "the key is given as written");
    CHECK_EQ_STR(s.values[3], "a = b", "split at the first '='");
    CHECK_EQ_STR(s.values[4], "no newline", "a last line without a newline");

    memset(&s, 0, sizeof s);
    p = write_conf(dir, "noeq.conf", "a = 1\n\nb 2\nc = 3\n");
    CHECK_EQ_INT(meter_conf_read(p, 4096, collect, &s, err), METER_EINVAL, "a line without '='");
    CHECK(strstr(err, "noeq.conf:3: expected 'key = value'") != NULL, "file and line: %s", err);
    CHECK_EQ_INT(s.n, 1, "what came before was set, nothing after");

    memset(&s, 0, sizeof s);
    s.refuse = "b";
    p = write_conf(dir, "refused.conf", "a = 1\n# c\nb = 2\nc = 3\n");
    CHECK_EQ_INT(meter_conf_read(p, 4096, collect, &s, err), METER_EINVAL, "set() refuses");
    CHECK(strstr(err, "refused.conf:3: b: no") != NULL, "file, line and set()'s message: %s",
          err);
    CHECK_EQ_INT(s.n, 1, "the read stops there");

    char big[64];
    memset(big, 'x', sizeof big);
    memcpy(big, "k = ", 4);
    big[sizeof big - 2] = '\n';
    big[sizeof big - 1] = '\0';   /* a line of 63 bytes, newline included */
    p = write_conf(dir, "long.conf", big);
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(meter_conf_read(p, 63, collect, &s, err), METER_EINVAL, "a line too long");
    CHECK(strstr(err, "long.conf:1: line too long") != NULL, "says so: %s", err);
    CHECK_RC_ERR(err, meter_conf_read(p, 64, collect, &s, err), METER_OK,
                 "the same line within the limit");
    CHECK_EQ_INT(s.n, 1, "taken");

    CHECK_EQ_INT(meter_conf_read(tap_path(dir, "missing.conf"), 4096, collect, &s, err),
                 METER_EIO, "a missing file");
    CHECK(strstr(err, "cannot read config file") && strstr(err, "missing.conf"),
          "names the file: %s", err);
    return done_testing();
}
