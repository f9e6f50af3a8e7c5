/*
 * fuzz_ledger_config.c — meter-ledgerd's settings (ledger/config.c):
 * config_load on a command line and a --config file, as main() calls it,
 * then config_free (also after a refusal, as main() does).  The file is
 * read by libmeter's meter_conf_read (metering/conf.c), which the sync
 * client's file shares (fuzz_sync_config).
 *
 * Checked: a refusal has a one-line message; what is taken has a --listen
 * that config_split_listen accepts (port 0…65535), max-body and
 * max-records and shutdown-timeout within their ranges, exactly one of
 * db/pg, and TLS certificate and key together or not at all.
 *
 * Input: "WORD WORD …\nFILE" — the first line is argv after the program
 * name (split at spaces, at most 8 words; "--config <file>" is added at
 * the end), the rest is the config file (in memory).
 */
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "fuzz_util.h"
#include "protocol.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_detach_stdin();
    unsetenv("LEDGER_DB");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in in;
    fuzz_in_init(&in, data, size);
    char *line = fuzz_field(&in, '\n');
    size_t flen;
    const char *file = fuzz_rest(&in, &flen);
    char path[64];
    int fd = fuzz_memfile((const uint8_t *)file, flen, path);

    char *argv[12];
    int argc = 0;
    argv[argc++] = "meter-ledgerd";
    for (char *w = line ? strtok(line, " ") : NULL; w && argc < 9; w = strtok(NULL, " "))
        argv[argc++] = w;
    argv[argc++] = "--config";
    argv[argc++] = path;
    argv[argc] = NULL;

    struct ledger_config cfg;
    char err[METER_ERRMAX] = "";
    if (config_load(&cfg, argc, argv, err) == 0) {
        char host[256], err2[METER_ERRMAX];
        int port = -1;
        fuzz_check(cfg.listen && config_split_listen(cfg.listen, host, sizeof host, &port,
                                                     err2) == 0,
                   "--listen '%s' taken but does not split", cfg.listen);
        fuzz_check(port >= 0 && port <= 65535 && host[0], "listen %s:%d", host, port);
        fuzz_check(cfg.max_body >= 1024 && cfg.max_body <= 64u * 1024 * 1024, "max-body %zu",
                   cfg.max_body);
        fuzz_check(cfg.max_records >= 1 && cfg.max_records <= PROTO_MAX_BATCH,
                   "max-records %d", cfg.max_records);
        fuzz_check(cfg.shutdown_timeout_s >= 0 && cfg.shutdown_timeout_s <= 3600,
                   "shutdown-timeout %d", cfg.shutdown_timeout_s);
        fuzz_check(!cfg.db != !cfg.pg, "db '%s' and pg '%s'", cfg.db ? cfg.db : "-",
                   cfg.pg ? cfg.pg : "-");
        fuzz_check(!cfg.tls_cert == !cfg.tls_key, "half a TLS setup taken");
        fuzz_check(cfg.nargs >= 0 && cfg.nargs <= 4, "%d words", cfg.nargs);
    } else {
        fuzz_check(err[0], "refused without a message");
    }
    config_free(&cfg);
    close(fd);
    fuzz_fields_free(&in);
    return 0;
}
