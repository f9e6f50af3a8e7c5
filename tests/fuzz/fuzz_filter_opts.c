/*
 * fuzz_filter_opts.c — the meter/ameter filters' option strings as libmeter
 * sees them.  filter/meter_common.c passes job, output, class, codec and
 * the flags (enforce, on_error=spool, idempotent) to
 * meter_session_open(), classifies each new frame size with
 * meter_classify(NULL, …) for its metadata, reports segment progress,
 * checkpoints, detaches on a graph re-init (a resume follows) and
 * finalizes.  This harness does the same from the input, without FFmpeg,
 * on a real store (SQLite in a temporary directory, tmpfs when there is
 * one; two packs per class so enforce and deduction run), and imports a
 * spooled session like `meterctl import-spool`.
 *
 * The filter's own checks come first, as in ff_meter_init(): a codec is
 * required, an output label may not be empty (none: the instance name),
 * a job longer than METER_NAME_MAX - 1 bytes is refused.
 *
 * Checked: a refusal has a one-line reason; a session that opened
 * finalizes exactly once (a second finalize says METER_EFINALIZED); its
 * summary bills no less than nothing and covered + overage = billed;
 * meter_verify finds every money invariant intact afterwards; and every
 * record queued for the ledger is one its decoder takes.  The store
 * starts afresh every 128 inputs.
 *
 * Input lines: JOB, OUTPUT, CODEC, FLAGS, then "W H DURATION_US" per
 * progress report (16 at most).  FLAGS letters: t class=tsc, e enforce,
 * i idempotent, s on_error=spool, u database unavailable (spooled), d
 * detach and resume after the first report, c checkpoint after each, n no
 * output option given.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_outbox.h"
#include "fuzz_util.h"
#include "internal.h"

static char db[512], spool_dir[512], missing_db[512];
static unsigned runs;

static void report(void *ctx, const char *problem)
{
    (void)ctx;
    fuzz_check(0, "invariant broken: %s", problem);
}

/* The harness's own connection to the store, for verify and imports. */
static meter_store *vst;

static void verify(int spooled)
{
    int imported = 0;
    /* a spooled session, billed the way `meterctl import-spool` does */
    if (spooled)
        (void)meter_import_spool(vst, spool_dir, &imported);
    size_t violations = 0;
    fuzz_check(meter_verify(vst, report, NULL, &violations) == METER_OK, "verify: %s",
               meter_errmsg(vst));
    fuzz_check_outbox(vst);
}

static void fresh_store(void)
{
    meter_close(vst);
    vst = NULL;
    const char *const suffix[] = { "", "-wal", "-shm" };
    for (int i = 0; i < 3; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", db, suffix[i]);
        unlink(p);
    }
    meter_store *st;
    char err[METER_ERRMAX];
    if (meter_open(db, METER_OPEN_CREATE, &st, err) != METER_OK) {
        fprintf(stderr, "fuzz_filter_opts: %s\n", err);
        abort();
    }
    /* small packs: enforce has minutes at first and runs out later */
    if (meter_pack_add(st, "pk-g", METER_CLASS_GENERAL, 3, 0, NULL) != METER_OK ||
        meter_pack_add(st, "pk-t", METER_CLASS_TSC, 30, 0, NULL) != METER_OK) {
        fprintf(stderr, "fuzz_filter_opts: %s\n", meter_errmsg(st));
        abort();
    }
    vst = st;
}

static void cleanup(void)
{
    meter_close(vst);
    fuzz_rmtree(fuzz_tmpdir());
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_detach_stdin();
    unsetenv("METER_JOB");
    unsetenv("METER_SPOOL");
    unsetenv("METER_NOW");
    snprintf(db, sizeof db, "%s/meter.db", fuzz_tmpdir());
    snprintf(spool_dir, sizeof spool_dir, "%s/spool", fuzz_tmpdir());
    snprintf(missing_db, sizeof missing_db, "%s/not-there/meter.db", fuzz_tmpdir());
    fresh_store();
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (++runs % 128 == 0)
        fresh_store();
    fuzz_in in;
    fuzz_in_init(&in, data, size);
    const char *job = fuzz_field(&in, '\n');
    const char *output = fuzz_field(&in, '\n');
    const char *codec = fuzz_field(&in, '\n');
    const char *flags = fuzz_field(&in, '\n');
    if (!flags)
        flags = "";

    /* ff_meter_init */
    if (!codec || !*codec || (output && !*output && !strchr(flags, 'n')) ||
        (job && strlen(job) >= METER_NAME_MAX))
        goto out;
    const char *label = strchr(flags, 'n') || !output ? "Parsed_meter_0" : output;
    if (!job || !*job)
        job = meter_default_job();

    meter_session_opts o = {
        .db = strchr(flags, 'u') ? missing_db : db,
        .job = job,
        .output = label,
        .cls = strchr(flags, 't') ? METER_CLASS_TSC : METER_CLASS_GENERAL,
        .codec = codec,
        .flags = (strchr(flags, 'e') ? METER_SESSION_ENFORCE : 0u) |
                 (strchr(flags, 's') ? METER_SESSION_SPOOL : 0u) |
                 (strchr(flags, 'i') ? METER_SESSION_IDEMPOTENT : 0u),
        .spool_dir = spool_dir,
    };
    meter_session *s;
    char err[METER_ERRMAX] = "";
    if (meter_session_open(&o, &s, err) != METER_OK) {
        fuzz_check(err[0] && !strchr(err, '\n'), "open refused without a one-line reason");
        goto out;
    }
    for (int i = 0; i < 16; i++) {
        const char *line = fuzz_field(&in, '\n');
        if (!line)
            break;
        int w = 0, h = 0;
        long long dur = 0;
        if (sscanf(line, "%d %d %lld", &w, &h, &dur) != 3)
            continue;
        /* the filter's sizes come from frames (≥ 0) and its durations
         * from a rescale of a tick count (≥ 0) */
        if (w < 0 || h < 0 || dur < 0)
            continue;
        meter_spec spec;
        (void)meter_classify(NULL, o.cls, codec, w, h, &spec, NULL);
        (void)meter_session_segment(s, w, h, dur);
        if (strchr(flags, 'c'))
            (void)meter_session_checkpoint(s);
        if (i == 0 && strchr(flags, 'd')) {
            /* a graph re-init: uninit detaches, the new instance resumes */
            meter_session_detach(s);
            meter_session *again;
            fuzz_check(meter_session_open(&o, &again, err) == METER_OK,
                       "a detached session did not resume: %s", err);
            fuzz_check(again == s, "the resume opened another session");
        }
    }
    meter_session_summary sum;
    memset(&sum, 0, sizeof sum);
    int rc = meter_session_finalize(s, 0, &sum);
    if (rc == METER_OK) {
        fuzz_check(sum.billed_us >= 0 && sum.covered_us >= 0 && sum.overage_us >= 0 &&
                   sum.covered_us + sum.overage_us == sum.billed_us,
                   "billed %" PRId64 " = covered %" PRId64 " + overage %" PRId64 "?",
                   sum.billed_us, sum.covered_us, sum.overage_us);
        fuzz_check(meter_session_finalize(s, 0, NULL) == METER_EFINALIZED,
                   "finalized twice");
    }
    meter_session_close(s);
    verify(strchr(flags, 'u') || strchr(flags, 's'));
out:
    fuzz_fields_free(&in);
    return 0;
}
