/*
 * rates.c — the one rate table, the classifier and billing arithmetic.
 *
 * The built-in table is billing-rules.md §3 as data.  Operators override or
 * extend it with rows in the database's `rates` table (meter_rate_set, i.e.
 * `meterctl rates set`); a row there wins over the built-in one.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NONE 0  /* no published ratio: not deductible */

/* Resolution tiers by short edge (billing-rules.md §1). */
static const struct tier {
    const char *name;
    int max_short_edge;
} tiers[] = {
    {"SD", 480}, {"HD", 720}, {"FHD", 1080}, {"2K", 1440}, {"4K", 2160}, {"8K", 4320},
};
#define NTIERS (int)(sizeof tiers / sizeof tiers[0])

/* Video ratios (pack minutes per output minute), the same for general and
 * TSC packs.  8K and MV-HEVC have no published ratio. */
static const struct video_rate {
    const char *codec;
    int ratio[6];  /* by tier, in the order of tiers[] */
} video_rates[] = {
    {"H264",   {1, 2, 4, 8, 16, NONE}},
    {"H265",   {5, 10, 20, 40, 80, NONE}},
    {"AV1",    {10, 20, 40, 80, 160, NONE}},
    {"MVHEVC", {NONE, NONE, NONE, NONE, NONE, NONE}},
};
#define NVIDEO (int)(sizeof video_rates / sizeof video_rates[0])

/* Audio and remux: general packs only (TSC rows exist, not deductible). */
static const struct other_rate {
    meter_class cls;
    const char *ttype;
    int num, den;
} other_rates[] = {
    {METER_CLASS_GENERAL, "Audio",          1, 4},
    {METER_CLASS_GENERAL, "Remuxing",       1, 2},
    {METER_CLASS_TSC,     "TESHD-20.Audio", 0, 0},
    {METER_CLASS_TSC,     "Remuxing",       0, 0},
};
#define NOTHER (int)(sizeof other_rates / sizeof other_rates[0])

/* The name prefix of video transcoding types per class. */
static const char *video_prefix(meter_class c)
{
    return c == METER_CLASS_TSC ? "TESHD-10" : "Standard";
}

/* Encoder and codec names as operators write them → canonical codec.
 * A trailing '*' matches any suffix (hardware encoders: h264_nvenc, …). */
static const struct alias {
    const char *name;
    const char *canon;
} aliases[] = {
    {"h264", "H264"}, {"avc", "H264"}, {"libx264", "H264"}, {"libx264rgb", "H264"},
    {"libopenh264", "H264"}, {"h264_*", "H264"},
    {"h265", "H265"}, {"hevc", "H265"}, {"libx265", "H265"}, {"libkvazaar", "H265"},
    {"hevc_*", "H265"},
    {"av1", "AV1"}, {"libsvtav1", "AV1"}, {"libaom-av1", "AV1"}, {"libaom", "AV1"},
    {"librav1e", "AV1"}, {"av1_*", "AV1"},
    {"mvhevc", "MVHEVC"}, {"mv-hevc", "MVHEVC"},
    {"audio", "AUDIO"}, {"aac", "AUDIO"}, {"libfdk_aac", "AUDIO"}, {"opus", "AUDIO"},
    {"libopus", "AUDIO"}, {"mp3", "AUDIO"}, {"libmp3lame", "AUDIO"}, {"ac3", "AUDIO"},
    {"eac3", "AUDIO"}, {"flac", "AUDIO"}, {"vorbis", "AUDIO"}, {"libvorbis", "AUDIO"},
    {"alac", "AUDIO"}, {"pcm", "AUDIO"}, {"pcm_*", "AUDIO"},
    {"copy", "REMUX"}, {"remux", "REMUX"},
};

static int alias_match(const char *pattern, const char *name)
{
    size_t n = strlen(pattern);
    if (n && pattern[n - 1] == '*')
        return strncasecmp(pattern, name, n - 1) == 0;
    return strcasecmp(pattern, name) == 0;
}

int meter_class_parse(const char *s, meter_class *out)
{
    if (s && strcasecmp(s, "general") == 0) {
        *out = METER_CLASS_GENERAL;
        return METER_OK;
    }
    if (s && strcasecmp(s, "tsc") == 0) {
        *out = METER_CLASS_TSC;
        return METER_OK;
    }
    return METER_EINVAL;
}

const char *meter_class_name(meter_class c)
{
    return c == METER_CLASS_TSC ? "tsc" : "general";
}

/* Does the store's rate table name a video type with this codec? */
static int store_knows_codec(meter_store *st, const char *canon)
{
    if (!st)
        return 0;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db,
            "SELECT 1 FROM rates WHERE ttype LIKE '%.' || ?1 || '.%' LIMIT 1",
            -1, &s, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(s, 1, canon, -1, SQLITE_STATIC);
    int yes = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return yes;
}

int meter_classify(const meter_store *cst, meter_class cls, const char *codec,
                   int width, int height, meter_spec *out, char err[METER_ERRMAX])
{
    /* Classification only reads the store's rate table. */
    meter_store *st = (meter_store *)cst;
    memset(out, 0, sizeof *out);
    if (cls != METER_CLASS_GENERAL && cls != METER_CLASS_TSC)
        return meter_fail_buf(err, METER_EINVAL, "unknown class %d (general or tsc)", (int)cls);
    if (!codec || !*codec)
        return meter_fail_buf(err, METER_EINVAL, "codec is missing");

    const char *canon = NULL;
    for (size_t i = 0; i < sizeof aliases / sizeof *aliases && !canon; i++)
        if (alias_match(aliases[i].name, codec))
            canon = aliases[i].canon;

    char upper[16];
    if (!canon) {
        /* Not built in: a codec the operator added rates for (e.g. VP9). */
        size_t n = strlen(codec);
        int ok = n < sizeof upper;
        for (size_t i = 0; ok && i < n; i++) {
            ok = isalnum((unsigned char)codec[i]);
            upper[i] = (char)toupper((unsigned char)codec[i]);
        }
        if (ok) {
            upper[n] = '\0';
            ok = store_knows_codec(st, upper);
        }
        if (!ok)
            return meter_fail_buf(err, METER_EINVAL,
                                  "unknown codec '%s' (known: h264, h265, av1, mvhevc, an "
                                  "audio codec, copy; add others with 'meterctl rates set')",
                                  codec);
        canon = upper;
    }

    if (strcmp(canon, "AUDIO") == 0) {
        strcpy(out->ttype, cls == METER_CLASS_TSC ? "TESHD-20.Audio" : "Audio");
        strcpy(out->codec, "AUDIO");
        out->flags = METER_SPEC_AUDIO;
        return METER_OK;
    }
    if (strcmp(canon, "REMUX") == 0) {
        strcpy(out->ttype, "Remuxing");
        strcpy(out->codec, "COPY");
        out->flags = METER_SPEC_REMUX;
        return METER_OK;
    }
    if (width <= 0 || height <= 0)
        return meter_fail_buf(err, METER_EINVAL, "video size %dx%d is invalid (width and "
                              "height must be positive)", width, height);
    int short_edge = width < height ? width : height;
    const char *tier = tiers[NTIERS - 1].name;
    for (int i = 0; i < NTIERS; i++)
        if (short_edge <= tiers[i].max_short_edge) {
            tier = tiers[i].name;
            break;
        }
    if (short_edge > tiers[NTIERS - 1].max_short_edge)
        out->flags |= METER_SPEC_OVERSIZE;  /* no rule above 8K: billed as 8K */
    meter_copy(out->codec, sizeof out->codec, canon);
    meter_copy(out->tier, sizeof out->tier, tier);
    snprintf(out->ttype, sizeof out->ttype, "%s.%s.%s", video_prefix(cls), canon, tier);
    return METER_OK;
}

/* The built-in row for (cls, ttype), if any. */
static int builtin_rate(meter_class cls, const char *ttype, meter_rate *out)
{
    memset(out, 0, sizeof *out);
    out->cls = cls;
    meter_copy(out->ttype, sizeof out->ttype, ttype);
    for (int i = 0; i < NOTHER; i++)
        if (other_rates[i].cls == cls && strcmp(other_rates[i].ttype, ttype) == 0) {
            out->num = other_rates[i].num;
            out->den = other_rates[i].den;
            return 1;
        }
    for (int v = 0; v < NVIDEO; v++)
        for (int t = 0; t < NTIERS; t++) {
            char name[METER_TTYPE_MAX];
            snprintf(name, sizeof name, "%s.%s.%s", video_prefix(cls), video_rates[v].codec,
                     tiers[t].name);
            if (strcmp(name, ttype) == 0) {
                out->num = video_rates[v].ratio[t];
                out->den = out->num == NONE ? 0 : 1;
                return 1;
            }
        }
    return 0;
}

int meter_rate_lookup(meter_store *st, meter_class cls, const char *ttype, meter_rate *out)
{
    int builtin = builtin_rate(cls, ttype, out);
    sqlite3_stmt *s = meter_prepare(st, "SELECT num, den FROM rates WHERE class = ?1 AND ttype = ?2");
    if (!s)
        return METER_EDB;
    sqlite3_bind_int(s, 1, (int)cls);
    sqlite3_bind_text(s, 2, ttype, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->num = sqlite3_column_int64(s, 0);
        out->den = sqlite3_column_int64(s, 1);
        out->overridden = 1;
    } else if (rc != SQLITE_DONE) {
        int code = meter_fail_db(st, "read rates");
        sqlite3_finalize(s);
        return code;
    }
    sqlite3_finalize(s);
    if (!builtin && !out->overridden)
        return meter_fail(st, METER_ENOTFOUND, "no rate for %s %s",
                          meter_class_name(cls), ttype);
    return METER_OK;
}

static int push_rate(meter_rate **rows, size_t *n, size_t *cap, const meter_rate *r)
{
    if (meter_grow(rows, cap, *n, sizeof **rows) != METER_OK)
        return METER_ENOMEM;
    (*rows)[(*n)++] = *r;
    return METER_OK;
}

int meter_rates_list(meter_store *st, meter_rate **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    size_t cap = 0;
    int rc = METER_OK;
    /* Built-in rows first, in table order, each with its effective ratio. */
    for (int c = 0; c < 2 && rc == METER_OK; c++) {
        for (int v = 0; v < NVIDEO && rc == METER_OK; v++)
            for (int t = 0; t < NTIERS && rc == METER_OK; t++) {
                char name[METER_TTYPE_MAX];
                meter_rate r;
                snprintf(name, sizeof name, "%s.%s.%s", video_prefix((meter_class)c),
                         video_rates[v].codec, tiers[t].name);
                if ((rc = meter_rate_lookup(st, (meter_class)c, name, &r)) == METER_OK)
                    rc = push_rate(rows, n, &cap, &r);
            }
        for (int i = 0; i < NOTHER && rc == METER_OK; i++) {
            meter_rate r;
            if (other_rates[i].cls != (meter_class)c)
                continue;
            if ((rc = meter_rate_lookup(st, (meter_class)c, other_rates[i].ttype, &r)) == METER_OK)
                rc = push_rate(rows, n, &cap, &r);
        }
    }
    /* Then rows the operator added for types the built-in table lacks. */
    sqlite3_stmt *s = rc == METER_OK
        ? meter_prepare(st, "SELECT class, ttype, num, den FROM rates ORDER BY class, ttype")
        : NULL;
    if (rc == METER_OK && !s)
        rc = METER_EDB;
    while (rc == METER_OK && sqlite3_step(s) == SQLITE_ROW) {
        meter_rate r, b;
        meter_class c = (meter_class)sqlite3_column_int(s, 0);
        const char *tt = (const char *)sqlite3_column_text(s, 1);
        if (builtin_rate(c, tt, &b))
            continue;
        memset(&r, 0, sizeof r);
        r.cls = c;
        meter_copy(r.ttype, sizeof r.ttype, tt);
        r.num = sqlite3_column_int64(s, 2);
        r.den = sqlite3_column_int64(s, 3);
        r.overridden = 1;
        rc = push_rate(rows, n, &cap, &r);
    }
    sqlite3_finalize(s);
    if (rc != METER_OK) {
        free(*rows);
        *rows = NULL;
        *n = 0;
        if (rc == METER_ENOMEM)
            meter_fail(st, rc, "out of memory");
    }
    return rc;
}

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* "4", "0.25", "1/4", "none" → num/den (den 0 for none). */
static int parse_ratio(const char *s, int64_t *num, int64_t *den)
{
    if (strcasecmp(s, "none") == 0) {
        *num = 0;
        *den = 0;
        return METER_OK;
    }
    const char *p = s;
    int64_t n = 0, d = 1;
    int digits = 0;
    while (isdigit((unsigned char)*p) && digits < 10) {
        n = n * 10 + (*p++ - '0');
        digits++;
    }
    if (!digits)
        return METER_EINVAL;
    if (*p == '.') {
        p++;
        int frac = 0;
        while (isdigit((unsigned char)*p) && frac < 6) {
            n = n * 10 + (*p++ - '0');
            d *= 10;
            frac++;
        }
        if (!frac)
            return METER_EINVAL;
    } else if (*p == '/') {
        p++;
        d = 0;
        digits = 0;
        while (isdigit((unsigned char)*p) && digits < 10) {
            d = d * 10 + (*p++ - '0');
            digits++;
        }
        if (!digits || d == 0)
            return METER_EINVAL;
    }
    if (*p || n == 0)
        return METER_EINVAL;
    int64_t g = gcd64(n, d);
    n /= g;
    d /= g;
    if (n > METER_RATIO_NUM_MAX || d > METER_RATIO_NUM_MAX)
        return METER_EINVAL;
    *num = n;
    *den = d;
    return METER_OK;
}

/* The canonical codec an alias names ("HEVC" → "H265"), or NULL when the
 * name is no built-in alias. */
static const char *alias_canon(const char *name)
{
    for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++)
        if (alias_match(aliases[i].name, name))
            return aliases[i].canon;
    return NULL;
}

/* A type the classifier can produce for this class: a built-in audio or
 * remux name, or "<class prefix>.<CODEC>.<tier>" with CODEC letters and
 * digits (new codecs welcome) and one of the tiers.  A CODEC that is a
 * built-in alias must be its canonical video name: the classifier turns
 * "hevc" into H265 and "aac" into Audio, so a row for Standard.HEVC.HD or
 * Standard.AAC.HD could never apply. */
static int valid_ttype(meter_class cls, const char *t, const char **alias_of)
{
    *alias_of = NULL;
    for (int i = 0; i < NOTHER; i++)
        if (other_rates[i].cls == cls && strcmp(other_rates[i].ttype, t) == 0)
            return 1;
    const char *prefix = video_prefix(cls);
    size_t pn = strlen(prefix);
    if (strncmp(t, prefix, pn) != 0 || t[pn] != '.')
        return 0;
    const char *codec = t + pn + 1, *dot = strchr(codec, '.');
    if (!dot || dot == codec || dot - codec >= 16)
        return 0;
    for (const char *c = codec; c < dot; c++)
        if (!isupper((unsigned char)*c) && !isdigit((unsigned char)*c))
            return 0;
    char name[16];
    memcpy(name, codec, (size_t)(dot - codec));
    name[dot - codec] = '\0';
    const char *canon = alias_canon(name);
    if (canon && (strcmp(canon, name) || !strcmp(canon, "AUDIO") || !strcmp(canon, "REMUX"))) {
        *alias_of = canon;
        return 0;
    }
    for (int i = 0; i < NTIERS; i++)
        if (strcmp(dot + 1, tiers[i].name) == 0)
            return 1;
    return 0;
}

int meter_rate_set(meter_store *st, meter_class cls, const char *ttype, const char *ratio)
{
    if (cls != METER_CLASS_GENERAL && cls != METER_CLASS_TSC)
        return meter_fail(st, METER_EINVAL, "unknown class (general or tsc)");
    const char *alias_of;
    if (ttype && !valid_ttype(cls, ttype, &alias_of) && alias_of) {
        const char *use = !strcmp(alias_of, "REMUX") ? "Remuxing"
                        : strcmp(alias_of, "AUDIO") ? NULL
                        : cls == METER_CLASS_TSC ? "TESHD-20.Audio" : "Audio";
        if (use)
            return meter_fail(st, METER_EINVAL, "transcoding type '%s' can never be billed: the "
                              "classifier bills that codec as %s", ttype, use);
        return meter_fail(st, METER_EINVAL, "transcoding type '%s' can never be billed: the "
                          "classifier names that codec %s (%s.%s.<TIER>)", ttype, alias_of,
                          video_prefix(cls), alias_of);
    }
    if (!ttype || !valid_ttype(cls, ttype, &alias_of))
        return meter_fail(st, METER_EINVAL, "unknown transcoding type '%s' for %s (like "
                          "%s.VP9.HD, tiers SD HD FHD 2K 4K 8K, or %s)", ttype ? ttype : "",
                          meter_class_name(cls), video_prefix(cls),
                          cls == METER_CLASS_TSC ? "TESHD-20.Audio, Remuxing" : "Audio, Remuxing");
    int64_t num, den;
    if (!ratio || parse_ratio(ratio, &num, &den) != METER_OK)
        return meter_fail(st, METER_EINVAL, "invalid ratio '%s' (like 4, 0.25, 1/4 or none)",
                          ratio ? ratio : "");
    int rc = meter_tx_begin(st);
    if (rc != METER_OK)
        return rc;
    sqlite3_stmt *s = meter_prepare(st,
        "INSERT INTO rates(class, ttype, num, den) VALUES(?1, ?2, ?3, ?4) "
        "ON CONFLICT(class, ttype) DO UPDATE SET num = excluded.num, den = excluded.den");
    if (!s)
        rc = METER_EDB;
    else {
        sqlite3_bind_int(s, 1, (int)cls);
        sqlite3_bind_text(s, 2, ttype, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, num);
        sqlite3_bind_int64(s, 4, den);
        rc = meter_exec_stmt(st, s, "save rate");
    }
    return meter_tx_end(st, rc);
}

int meter_rate_unset(meter_store *st, meter_class cls, const char *ttype)
{
    int rc = meter_tx_begin(st);
    if (rc != METER_OK)
        return rc;
    sqlite3_stmt *s = meter_prepare(st, "DELETE FROM rates WHERE class = ?1 AND ttype = ?2");
    if (!s)
        rc = METER_EDB;
    else {
        sqlite3_bind_int(s, 1, (int)cls);
        sqlite3_bind_text(s, 2, ttype ? ttype : "", -1, SQLITE_STATIC);
        rc = meter_exec_stmt(st, s, "remove rate");
        if (rc == METER_OK && sqlite3_changes(st->db) == 0)
            rc = meter_fail(st, METER_ENOTFOUND, "no override for %s %s",
                            meter_class_name(cls), ttype ? ttype : "");
    }
    return meter_tx_end(st, rc);
}

int meter_bill(const meter_rate *rate, meter_rounding rounding, int64_t duration_us,
               int64_t *billed_us, int *deductible)
{
    if (duration_us <= 0 || duration_us > METER_DURATION_MAX_US)
        return METER_EINVAL;
    __int128 d = duration_us;
    if (rounding == METER_ROUND_CEIL_MINUTE)
        d = (d + METER_US_PER_MIN - 1) / METER_US_PER_MIN * METER_US_PER_MIN;
    int ok = rate->den > 0 && rate->num > 0;
    /* Overage of a type without a ratio keeps its output duration (ratio 1). */
    __int128 num = ok ? rate->num : 1, den = ok ? rate->den : 1;
    __int128 b = (d * num + den - 1) / den;  /* ceil: never under-bill a µs */
    if (b > METER_BILLED_MAX_US)
        return METER_EINVAL;
    *billed_us = (int64_t)b;
    if (deductible)
        *deductible = ok;
    return METER_OK;
}
