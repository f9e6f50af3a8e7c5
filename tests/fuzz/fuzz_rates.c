/*
 * fuzz_rates.c — rate-table overrides as `meterctl rates set --class C
 * --ttype T --ratio R` hands them to libmeter (metering/rates.c), on a real
 * store (SQLite in a temporary directory, tmpfs when there is one):
 *
 *   meter_class_parse(C), meter_rate_set(T, R), meter_rate_lookup,
 *   meter_rates_list, meter_classify with the codec the new type names,
 *   meter_bill with the stored ratio, meter_rate_unset (so every input
 *   starts from the built-in table).  Also meter_classify on the raw codec
 *   text with the input's size, and meter_bill on the input's own ratio.
 *
 * Checked: a ratio that is taken is stored reduced, within
 * METER_RATIO_NUM_MAX, 0/0 exactly for "none"; the row is listed; a video
 * type with a new codec makes that codec classifiable to exactly that
 * type; a bill is ceil(duration × num / den), refused exactly when it
 * would exceed METER_BILLED_MAX_US.
 *
 * Input: "CLASS\nTTYPE\nRATIO\nCODEC\nWIDTH HEIGHT DURATION_US".
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "internal.h"

static meter_store *st;

static void cleanup(void)
{
    meter_close(st);
    fuzz_rmtree(fuzz_tmpdir());
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_detach_stdin();
    char path[512], err[METER_ERRMAX];
    snprintf(path, sizeof path, "%s/rates.db", fuzz_tmpdir());
    if (meter_open(path, METER_OPEN_CREATE, &st, err) != METER_OK) {
        fprintf(stderr, "fuzz_rates: %s\n", err);
        abort();
    }
    atexit(cleanup);
    return 0;
}

static void check_bill(const meter_rate *r, int64_t dur)
{
    for (int rounding = 0; rounding < 2; rounding++) {
        int ok = r->num > 0 && r->den > 0;
        __int128 d = dur;
        if (rounding == METER_ROUND_CEIL_MINUTE)
            d = (d + METER_US_PER_MIN - 1) / METER_US_PER_MIN * METER_US_PER_MIN;
        __int128 num = ok ? r->num : 1, den = ok ? r->den : 1;
        /* the least integer with billed × den ≥ d × num */
        __int128 want = (d * num + den - 1) / den;
        int fits = dur > 0 && dur <= METER_DURATION_MAX_US && want <= METER_BILLED_MAX_US;
        int64_t billed = -1;
        int deductible = -1;
        int rc = meter_bill(r, (meter_rounding)rounding, dur, &billed, &deductible);
        fuzz_check((rc == METER_OK) == fits, "bill of %" PRId64 " us at %" PRId64 "/%" PRId64
                   " (rounding %d): rc %d", dur, r->num, r->den, rounding, rc);
        if (rc != METER_OK)
            continue;
        fuzz_check(deductible == ok, "deductible %d for %" PRId64 "/%" PRId64, deductible,
                   r->num, r->den);
        fuzz_check(billed == (int64_t)want, "%" PRId64 " us at %" PRId64 "/%" PRId64
                   " billed %" PRId64, dur, r->num, r->den, billed);
    }
}

/* "Standard.VP9.HD" → codec "VP9" (empty when not a video type). */
static void video_codec(const char *ttype, char codec[16])
{
    codec[0] = '\0';
    const char *a = strchr(ttype, '.'), *b = a ? strchr(a + 1, '.') : NULL;
    if (a && b && b - a - 1 > 0 && b - a - 1 < 16) {
        memcpy(codec, a + 1, (size_t)(b - a - 1));
        codec[b - a - 1] = '\0';
    }
}

static void fuzz_override(meter_class cls, const char *ttype, const char *ratio,
                          int64_t dur)
{
    if (meter_rate_set(st, cls, ttype, ratio) != METER_OK) {
        const char *e = meter_errmsg(st);
        fuzz_check(e[0] && !strchr(e, '\n'), "refusal without a one-line reason");
        return;
    }
    meter_rate r;
    fuzz_check(meter_rate_lookup(st, cls, ttype, &r) == METER_OK && r.overridden,
               "'%s' set but not found: %s", ttype, meter_errmsg(st));
    int none = strcasecmp(ratio, "none") == 0;
    if (none)
        fuzz_check(r.num == 0 && r.den == 0, "'none' stored as %" PRId64 "/%" PRId64, r.num,
                   r.den);
    else {
        fuzz_check(r.num > 0 && r.den > 0 && r.num <= METER_RATIO_NUM_MAX &&
                   r.den <= METER_RATIO_NUM_MAX, "'%s' stored as %" PRId64 "/%" PRId64, ratio,
                   r.num, r.den);
        int64_t a = r.num, b = r.den;
        while (b) {
            int64_t t = a % b;
            a = b;
            b = t;
        }
        fuzz_check(a == 1, "'%s' stored unreduced as %" PRId64 "/%" PRId64, ratio, r.num,
                   r.den);
    }
    meter_rate *rows;
    size_t n;
    int listed = 0;
    fuzz_check(meter_rates_list(st, &rows, &n) == METER_OK, "list: %s", meter_errmsg(st));
    for (size_t i = 0; i < n; i++)
        if (rows[i].cls == cls && strcmp(rows[i].ttype, ttype) == 0) {
            fuzz_check(rows[i].num == r.num && rows[i].den == r.den && rows[i].overridden,
                       "'%s' listed with another ratio", ttype);
            listed++;
        }
    meter_free(rows);
    fuzz_check(listed == 1, "'%s' listed %d times", ttype, listed);

    /* a video type makes its codec classifiable, to exactly this type (at
     * the type's tier: a square of the tier's largest short edge) */
    char codec[16];
    video_codec(ttype, codec);
    if (codec[0]) {
        static const struct { const char *tier; int edge; } tiers[] = {
            {"SD", 480}, {"HD", 720}, {"FHD", 1080}, {"2K", 1440}, {"4K", 2160}, {"8K", 4320},
        };
        const char *tier = strrchr(ttype, '.') + 1;
        int edge = 0;
        for (size_t i = 0; i < sizeof tiers / sizeof *tiers; i++)
            if (strcmp(tier, tiers[i].tier) == 0)
                edge = tiers[i].edge;
        meter_spec spec;
        char err[METER_ERRMAX];
        int rc = meter_classify(st, cls, codec, edge, edge, &spec, err);
        fuzz_check(rc == METER_OK, "codec '%s' of '%s' not classifiable: %s", codec, ttype,
                   err);
        /* built-in aliases (H264, AV1…) map to their canonical name, which
         * is the codec itself for every canonical upper-case name */
        fuzz_check(strcmp(spec.ttype, ttype) == 0, "'%s' at %dx%d classified as '%s'", codec,
                   edge, edge, spec.ttype);
    }
    check_bill(&r, dur);
    fuzz_check(meter_rate_unset(st, cls, ttype) == METER_OK, "unset '%s': %s", ttype,
               meter_errmsg(st));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in in;
    fuzz_in_init(&in, data, size);
    const char *cls_s = fuzz_field(&in, '\n');
    const char *ttype = fuzz_field(&in, '\n');
    const char *ratio = fuzz_field(&in, '\n');
    const char *codec = fuzz_field(&in, '\n');
    const char *nums = fuzz_rest(&in, NULL);
    int w = 0, h = 0;
    long long dur = 60000000;
    sscanf(nums, "%d %d %lld", &w, &h, &dur);

    meter_class cls = METER_CLASS_GENERAL;
    if (cls_s && meter_class_parse(cls_s, &cls) != METER_OK)
        cls = (meter_class)(cls_s[0] & 1);   /* keep going with either class */
    if (ttype && ratio)
        fuzz_override(cls, ttype, ratio, dur);

    if (codec) {
        meter_spec spec;
        char err[METER_ERRMAX] = "";
        if (meter_classify(NULL, cls, codec, w, h, &spec, err) == METER_OK) {
            fuzz_check(spec.ttype[0] && strlen(spec.ttype) < sizeof spec.ttype,
                       "classified without a type");
            meter_rate r;
            if (meter_rate_lookup(st, cls, spec.ttype, &r) == METER_OK)
                check_bill(&r, dur);
        } else
            fuzz_check(err[0], "classify refused '%s' without a reason", codec);
    }
    /* the input's ratio as a rate of its own */
    if (ratio) {
        meter_rate r = { .cls = cls };
        char *end;
        r.num = strtoll(ratio, &end, 10);
        r.den = *end == '/' ? strtoll(end + 1, NULL, 10) : 1;
        if (r.num >= 0 && r.num <= METER_RATIO_NUM_MAX && r.den >= 0 &&
            r.den <= METER_RATIO_NUM_MAX)
            check_bill(&r, dur);
    }
    fuzz_fields_free(&in);
    return 0;
}
