/*
 * fuzz_sync_config.c — the node's sync settings file (sync/config.c):
 * meter_sync_config_load on the input as /etc/ffmeter/sync.conf, then
 * meter_sync_config_check; and meter_sync_read_secret on the input as a
 * secret file.  Both read through a path (an in-memory file here); the
 * settings file through libmeter's meter_conf_read (metering/conf.c), which
 * meter-ledgerd's --config shares (fuzz_ledger_config).
 *
 * Checked: a refusal has a one-line message; a loaded URL is http(s) with
 * a host, no blank or control character, no query, and no trailing slash;
 * a node name is a wire node name; a secret read is non-empty, printable
 * and at most METER_SYNC_SECRET_MAX bytes; sizes are within their ranges.
 *
 * Input: the file's bytes (seeds: tests/fuzz/corpus/sync_config/).
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "sync_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_detach_stdin();
    return 0;
}

static void check_loaded(const meter_sync_config *c)
{
    const char *u = c->ledger_url;
    if (u[0]) {
        size_t scheme = !strncmp(u, "https://", 8) ? 8 : !strncmp(u, "http://", 7) ? 7 : 0;
        size_t n = strlen(u);
        fuzz_check(scheme && n > scheme, "ledger URL '%s' taken", u);
        fuzz_check(u[n - 1] != '/' && !strpbrk(u, "?# \t\r\n"), "ledger URL '%s' taken", u);
        for (const char *p = u; *p; p++)
            fuzz_check((unsigned char)*p > 0x20 && *p != 0x7f, "control char in URL");
    }
    fuzz_check(!c->node[0] || proto_valid_node(c->node), "node '%s' taken", c->node);
    size_t sn = strnlen(c->secret, sizeof c->secret);
    fuzz_check(sn <= METER_SYNC_SECRET_MAX, "secret of %zu bytes", sn);
    for (size_t i = 0; i < sn; i++)
        fuzz_check((unsigned char)c->secret[i] >= 0x20 && c->secret[i] != 0x7f,
                   "control character in the secret");
    fuzz_check(c->batch >= 1 && c->batch <= PROTO_MAX_BATCH, "batch %zu", c->batch);
    fuzz_check(c->max_bytes >= 1024 && c->max_bytes <= PROTO_MAX_BODY, "max_bytes %zu",
               c->max_bytes);
    fuzz_check(c->retries >= 0 && c->retries <= 100, "retries %d", c->retries);
    fuzz_check(c->timeout_ms >= 1000 && c->connect_timeout_ms >= 1000, "timeouts");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[METER_ERRMAX];
    int fd = fuzz_memfile(data, size, path);

    meter_sync_config cfg;
    meter_sync_config_init(&cfg);
    err[0] = '\0';
    if (meter_sync_config_load(&cfg, path, err) == METER_OK) {
        check_loaded(&cfg);
        if (meter_sync_config_check(&cfg, err) != METER_OK)
            fuzz_check(err[0] && !strpbrk(err, "\r\n"), "check refused without one line");
    } else {
        fuzz_check(err[0], "load refused without a message");
        /* the message quotes the file's text, which may hold any byte; it
         * stays one line unless the file put a line break in a value */
        check_loaded(&cfg);   /* what was set before the bad line is sane */
    }
    meter_sync_config_clear(&cfg);

    meter_sync_config_init(&cfg);
    if (meter_sync_read_secret(&cfg, path, err) == METER_OK) {
        fuzz_check(cfg.secret[0], "empty secret taken");
        check_loaded(&cfg);
    }
    meter_sync_config_clear(&cfg);
    close(fd);
    return 0;
}
