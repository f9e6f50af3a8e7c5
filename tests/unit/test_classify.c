/*
 * test_classify — meter_classify(): tiers by short edge at every edge,
 * portrait and odd sizes, codec aliases, class naming, audio and remux, and
 * the refusals of bad input (billing-rules.md §1).
 */
#include "mtest.h"

/* Classifies with the built-in table; returns rc, fills *sp. */
static int classify(meter_class c, const char *codec, int w, int h,
                    meter_spec *sp, char *err)
{
    memset(sp, 0, sizeof *sp);
    err[0] = '\0';
    return meter_classify(NULL, c, codec, w, h, sp, err);
}

/* One video case: expected tier, codec, ttype prefix, oversize flag. */
static void video_case(meter_class c, const char *codec, int w, int h,
                       const char *canon, const char *tier, int oversize)
{
    meter_spec sp;
    char err[METER_ERRMAX];
    char want[METER_TTYPE_MAX];
    snprintf(want, sizeof want, "%s.%s.%s",
             c == METER_CLASS_TSC ? "TESHD-10" : "Standard", canon, tier);
    int rc = classify(c, codec, w, h, &sp, err);
    if (!CHECK_RC_ERR(err, rc, METER_OK, "classify %s %s %dx%d",
                      meter_class_name(c), codec, w, h))
        return;
    CHECK_EQ_STR(sp.ttype, want, "%s %dx%d ttype", codec, w, h);
    CHECK_EQ_STR(sp.tier, tier, "%s %dx%d tier", codec, w, h);
    CHECK_EQ_STR(sp.codec, canon, "%s %dx%d canonical codec", codec, w, h);
    CHECK_EQ_INT(!!(sp.flags & METER_SPEC_OVERSIZE), oversize,
                 "%s %dx%d oversize flag", codec, w, h);
    CHECK_EQ_INT(sp.flags & (METER_SPEC_AUDIO | METER_SPEC_REMUX), 0,
                 "%s %dx%d neither audio nor remux", codec, w, h);
}

static void tier_edges(void)
{
    /* short edge → tier, billing-rules.md §1; both orientations, and the
     * long edge always well above the short one. */
    static const struct { int edge; const char *tier; int over; } e[] = {
        { 1, "SD", 0 },     { 480, "SD", 0 },   { 481, "HD", 0 },
        { 720, "HD", 0 },   { 721, "FHD", 0 },  { 1080, "FHD", 0 },
        { 1081, "2K", 0 },  { 1440, "2K", 0 },  { 1441, "4K", 0 },
        { 2160, "4K", 0 },  { 2161, "8K", 0 },  { 4320, "8K", 0 },
        { 4321, "8K", 1 },  { 8640, "8K", 1 },
    };
    for (size_t i = 0; i < sizeof e / sizeof e[0]; ++i) {
        int lng = e[i].edge * 2 + 7;
        video_case(METER_CLASS_GENERAL, "h264", lng, e[i].edge, "H264",
                   e[i].tier, e[i].over);
        video_case(METER_CLASS_GENERAL, "h264", e[i].edge, lng, "H264",
                   e[i].tier, e[i].over);
    }
    /* square: short edge = both */
    video_case(METER_CLASS_GENERAL, "hevc", 720, 720, "H265", "HD", 0);
    video_case(METER_CLASS_GENERAL, "hevc", 721, 721, "H265", "FHD", 0);
    /* the long edge never matters */
    video_case(METER_CLASS_GENERAL, "h264", 100000, 480, "H264", "SD", 0);
}

static void examples(void)
{
    /* billing-rules.md §1 and §3 worked examples */
    video_case(METER_CLASS_GENERAL, "h264", 640, 480, "H264", "SD", 0);
    video_case(METER_CLASS_GENERAL, "h264", 1280, 720, "H264", "HD", 0);
    video_case(METER_CLASS_GENERAL, "h264", 720, 1280, "H264", "HD", 0);
    video_case(METER_CLASS_GENERAL, "h265", 1600, 980, "H265", "FHD", 0);
    video_case(METER_CLASS_GENERAL, "h264", 854, 480, "H264", "SD", 0);
    video_case(METER_CLASS_GENERAL, "h264", 1920, 1080, "H264", "FHD", 0);
    video_case(METER_CLASS_GENERAL, "h264", 1080, 1920, "H264", "FHD", 0);
    video_case(METER_CLASS_GENERAL, "av1", 2560, 1440, "AV1", "2K", 0);
    video_case(METER_CLASS_GENERAL, "av1", 3840, 2160, "AV1", "4K", 0);
    video_case(METER_CLASS_GENERAL, "av1", 7680, 4320, "AV1", "8K", 0);
    video_case(METER_CLASS_GENERAL, "h264", 3, 2, "H264", "SD", 0);
    video_case(METER_CLASS_GENERAL, "h264", 1366, 768, "H264", "FHD", 0);
}

static void aliases(void)
{
    static const char *const h264[] = { "h264", "avc", "libx264",
                                        "h264_nvenc", "h264_vaapi",
                                        "h264_qsv" };
    static const char *const h265[] = { "h265", "hevc", "libx265",
                                        "hevc_nvenc", "hevc_vaapi",
                                        "hevc_qsv" };
    static const char *const av1[] = { "av1", "libsvtav1", "libaom-av1",
                                       "librav1e", "av1_nvenc", "av1_qsv" };
    for (size_t i = 0; i < 6; ++i) {
        video_case(METER_CLASS_GENERAL, h264[i], 1920, 1080, "H264", "FHD", 0);
        video_case(METER_CLASS_TSC, h265[i], 1280, 720, "H265", "HD", 0);
        video_case(METER_CLASS_GENERAL, av1[i], 640, 360, "AV1", "SD", 0);
    }

    /* MV-HEVC classifies (its tier by short edge); its canonical name is not
     * spelled out by meter.h, so only the tier and the class prefix. */
    meter_spec sp;
    char err[METER_ERRMAX];
    int rc = classify(METER_CLASS_GENERAL, "mvhevc", 1920, 1080, &sp, err);
    if (CHECK_RC_ERR(err, rc, METER_OK, "classify mvhevc")) {
        CHECK_EQ_STR(sp.tier, "FHD", "mvhevc tier");
        CHECK(strncmp(sp.ttype, "Standard.", 9) == 0 &&
              strlen(sp.ttype) > 13 && strcmp(sp.ttype + strlen(sp.ttype) - 4,
                                              ".FHD") == 0,
              "mvhevc ttype Standard.<codec>.FHD (%s)", sp.ttype);
        CHECK(strstr(sp.ttype, "H265") == NULL,
              "mvhevc is its own codec, not H.265 (%s)", sp.ttype);
    }
}

static void classes(void)
{
    video_case(METER_CLASS_GENERAL, "libx264", 1280, 720, "H264", "HD", 0);
    video_case(METER_CLASS_TSC, "libx264", 1280, 720, "H264", "HD", 0);
    video_case(METER_CLASS_TSC, "libx265", 1920, 1080, "H265", "FHD", 0);
    video_case(METER_CLASS_TSC, "libsvtav1", 3840, 2160, "AV1", "4K", 0);
    video_case(METER_CLASS_TSC, "hevc", 7680, 4320, "H265", "8K", 0);

    meter_class c;
    CHECK_EQ_INT(meter_class_parse("general", &c), METER_OK, "parse general");
    CHECK_EQ_INT(c, METER_CLASS_GENERAL, "general is GENERAL");
    CHECK_EQ_INT(meter_class_parse("TSC", &c), METER_OK, "parse TSC");
    CHECK_EQ_INT(c, METER_CLASS_TSC, "TSC is TSC");
    CHECK_EQ_INT(meter_class_parse("Tsc", &c), METER_OK, "parse Tsc");
    CHECK_EQ_INT(meter_class_parse("General", &c), METER_OK, "parse General");
    CHECK_EQ_INT(c, METER_CLASS_GENERAL, "General is GENERAL");
    CHECK_EQ_INT(meter_class_parse("premium", &c), METER_EINVAL,
                 "parse premium refused");
    CHECK_EQ_INT(meter_class_parse("", &c), METER_EINVAL, "parse '' refused");
    CHECK_EQ_STR(meter_class_name(METER_CLASS_GENERAL), "general",
                 "name of GENERAL");
    CHECK_EQ_STR(meter_class_name(METER_CLASS_TSC), "tsc", "name of TSC");
}

static void audio_remux(void)
{
    static const char *const audio[] = { "aac", "opus", "mp3", "ac3", "eac3",
                                         "flac", "vorbis", "pcm", "audio" };
    meter_spec sp;
    char err[METER_ERRMAX];
    for (size_t i = 0; i < sizeof audio / sizeof audio[0]; ++i) {
        int rc = classify(METER_CLASS_GENERAL, audio[i], 0, 0, &sp, err);
        if (!CHECK_RC_ERR(err, rc, METER_OK, "classify audio %s", audio[i]))
            continue;
        CHECK_EQ_STR(sp.ttype, "Audio", "%s is Audio", audio[i]);
        CHECK_EQ_STR(sp.tier, "", "%s has no tier", audio[i]);
        CHECK(sp.flags & METER_SPEC_AUDIO, "%s flagged audio", audio[i]);
        CHECK(!(sp.flags & (METER_SPEC_REMUX | METER_SPEC_OVERSIZE)),
              "%s flagged neither remux nor oversize", audio[i]);
    }
    /* audio ignores width and height, whatever they are */
    int rc = classify(METER_CLASS_GENERAL, "aac", 3840, 2160, &sp, err);
    CHECK_RC_ERR(err, rc, METER_OK, "audio with a picture size");
    CHECK_EQ_STR(sp.ttype, "Audio", "audio with a size is still Audio");
    rc = classify(METER_CLASS_GENERAL, "opus", -1, -1, &sp, err);
    CHECK_RC_ERR(err, rc, METER_OK, "audio ignores negative sizes");

    /* TSC audio is TESHD-20 */
    rc = classify(METER_CLASS_TSC, "aac", 0, 0, &sp, err);
    if (CHECK_RC_ERR(err, rc, METER_OK, "classify TSC aac")) {
        CHECK_EQ_STR(sp.ttype, "TESHD-20.Audio", "TSC audio ttype");
        CHECK(sp.flags & METER_SPEC_AUDIO, "TSC audio flagged audio");
    }

    static const char *const remux[] = { "copy", "remux" };
    for (size_t i = 0; i < 2; ++i) {
        rc = classify(METER_CLASS_GENERAL, remux[i], 0, 0, &sp, err);
        if (!CHECK_RC_ERR(err, rc, METER_OK, "classify %s", remux[i]))
            continue;
        CHECK_EQ_STR(sp.ttype, "Remuxing", "%s is Remuxing", remux[i]);
        CHECK_EQ_STR(sp.tier, "", "%s has no tier", remux[i]);
        CHECK(sp.flags & METER_SPEC_REMUX, "%s flagged remux", remux[i]);
        CHECK(!(sp.flags & METER_SPEC_AUDIO), "%s not flagged audio", remux[i]);
    }
    rc = classify(METER_CLASS_GENERAL, "copy", 1920, 1080, &sp, err);
    CHECK_RC_ERR(err, rc, METER_OK, "remux with a picture size");
    CHECK_EQ_STR(sp.ttype, "Remuxing", "remux with a size is still Remuxing");
}

/* A refused input: EINVAL, a one-line message. */
static void refused(meter_class c, const char *codec, int w, int h,
                    const char *what)
{
    meter_spec sp;
    char err[METER_ERRMAX];
    int rc = classify(c, codec, w, h, &sp, err);
    CHECK_RC_ERR(err, rc, METER_EINVAL, "refused: %s", what);
    CHECK(err[0] != '\0' && !strchr(err, '\n'), "message for %s: '%s'",
          what, err);
}

static void invalid(void)
{
    refused(METER_CLASS_GENERAL, "h264", 0, 720, "width 0");
    refused(METER_CLASS_GENERAL, "h264", 1280, 0, "height 0");
    refused(METER_CLASS_GENERAL, "h264", 0, 0, "0x0 video");
    refused(METER_CLASS_GENERAL, "h264", -1280, 720, "negative width");
    refused(METER_CLASS_GENERAL, "hevc", 1280, -720, "negative height");
    refused(METER_CLASS_GENERAL, "vp9", 1280, 720, "unknown codec vp9");
    refused(METER_CLASS_GENERAL, "", 1280, 720, "empty codec");
    refused(METER_CLASS_GENERAL, "h264x", 1280, 720, "codec h264x");
    refused(METER_CLASS_GENERAL, "xh264", 1280, 720, "codec xh264");
    refused(METER_CLASS_GENERAL, NULL, 1280, 720, "NULL codec");
    refused((meter_class)2, "h264", 1280, 720, "class 2");
    refused((meter_class)-1, "h264", 1280, 720, "class -1");
    refused((meter_class)7, "aac", 0, 0, "audio of class 7");

    /* err may be NULL */
    meter_spec sp;
    CHECK_EQ_INT(meter_classify(NULL, METER_CLASS_GENERAL, "vp9", 10, 10, &sp,
                                NULL),
                 METER_EINVAL, "refusal with err NULL");
}

int main(void)
{
    tier_edges();
    examples();
    aliases();
    classes();
    audio_remux();
    invalid();
    return done_testing();
}
