/*
 * fuzz_spool.c — spool files (metering/spool.c), the state a session
 * writes when its database is unavailable and `meterctl import-spool`
 * bills later: meter_spool_read on the input as one file, then
 * meter_import_spool of a directory holding it into a real store (SQLite
 * in a temporary directory, tmpfs when there is one).
 *
 * Checked: a file that reads has an id, a valid job and output, and
 * segments within the duration limit; after an import — billed, skipped or
 * refused — meter_verify finds every money invariant intact and every
 * record queued for the ledger is one its decoder takes; a file that
 * imported is gone.  The store is started afresh every 256 inputs so it
 * stays small and verify fast.
 *
 * Input: the spool file's bytes (seeds: tests/fuzz/corpus/spool/).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_outbox.h"
#include "fuzz_util.h"
#include "internal.h"

static meter_store *st;
static char db[512], spool_dir[512], spool_file[600];
static unsigned runs;

static void open_store(void)
{
    char err[METER_ERRMAX];
    const char *const suffix[] = { "", "-wal", "-shm" };
    meter_close(st);
    st = NULL;
    for (int i = 0; i < 3; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", db, suffix[i]);
        unlink(p);
    }
    if (meter_open(db, METER_OPEN_CREATE, &st, err) != METER_OK) {
        fprintf(stderr, "fuzz_spool: %s\n", err);
        abort();
    }
}

static void cleanup(void)
{
    meter_close(st);
    fuzz_rmtree(fuzz_tmpdir());
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_detach_stdin();
    snprintf(db, sizeof db, "%s/meter.db", fuzz_tmpdir());
    snprintf(spool_dir, sizeof spool_dir, "%s/spool", fuzz_tmpdir());
    snprintf(spool_file, sizeof spool_file, "%s/in.spool", spool_dir);
    if (mkdir(spool_dir, 0750) != 0 && errno != EEXIST)
        abort();
    open_store();
    atexit(cleanup);
    return 0;
}

static void report(void *ctx, const char *problem)
{
    (void)ctx;
    fuzz_check(0, "invariant broken after a spool import: %s", problem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (++runs % 256 == 0)
        open_store();
    FILE *f = fopen(spool_file, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();

    struct meter_session_state s;
    if (meter_spool_read(st, spool_file, &s) == METER_OK) {
        fuzz_check(s.id[0], "read without an id");
        fuzz_check(meter_check_name(NULL, "job", s.job) == METER_OK, "job '%s' read", s.job);
        fuzz_check(meter_check_name(NULL, "output", s.output) == METER_OK, "output '%s' read",
                   s.output);
        for (int i = 0; i < s.nseg; i++)
            fuzz_check(s.seg[i].duration_us >= 0 &&
                       s.seg[i].duration_us <= METER_DURATION_MAX_US &&
                       s.seg[i].width >= 0 && s.seg[i].height >= 0, "segment %d read", i);
        free(s.seg);
    } else {
        const char *e = meter_errmsg(st);
        fuzz_check(e[0] && !strchr(e, '\n'), "refused without a one-line reason");
    }

    int imported = 0;
    int rc = meter_import_spool(st, spool_dir, &imported);
    if (rc == METER_OK && imported)
        fuzz_check(access(spool_file, F_OK) != 0, "an imported file is still there");
    size_t violations = 0;
    fuzz_check(meter_verify(st, report, NULL, &violations) == METER_OK, "verify: %s",
               meter_errmsg(st));
    fuzz_check_outbox(st);
    unlink(spool_file);
    return 0;
}
