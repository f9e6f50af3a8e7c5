/*
 * meter_common.h: what the meter (video) and ameter (audio) filters share.
 *
 * Part of ffmeter.  filter/integrate.sh copies this file, meter_common.c,
 * vf_meter.c and af_ameter.c into an FFmpeg tree's libavfilter/.  The filters
 * talk to libmeter only through its public header <meter.h> (sessions); they
 * hold no SQL and open no files.
 *
 * How the output is measured (exact, integer ticks, one rounding per segment):
 *   - a tick is 1/tb: the input link's time base for video, one sample for
 *     audio (tb = 1/sample_rate);
 *   - a video frame lasts until the next frame's pts; the last one its own
 *     duration (see vf_meter.c); an audio frame lasts nb_samples ticks;
 *   - frames of one width x height in a row form a segment; its length in
 *     ticks is converted to microseconds (rounded to nearest) each time it is
 *     reported, and reported cumulatively (meter_session_segment());
 *   - the size is the one the output gets (ff_meter_output_size());
 *   - a frame the filter did not forward, that downstream discarded unread
 *     when it closed (ff_meter_close_downstream()), or that a trim right
 *     behind the filter drops before its start (ff_meter_kept()), is not
 *     billed.
 */
#ifndef AVFILTER_METER_COMMON_H
#define AVFILTER_METER_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <meter.h>

#include "libavutil/version.h"
#include "libavfilter/version.h"

#if LIBAVFILTER_VERSION_INT < AV_VERSION_INT(10, 4, 100)
/* FFmpeg 5.1 declares AVFilterLink.status_out (ff_meter_link_closed())
 * only for libavfilter files that ask for it, before avfilter.h: hence
 * this header comes first in the filters' sources. */
#  ifdef AVFILTER_AVFILTER_H
#    error "meter_common.h must be included before avfilter.h"
#  endif
#  define FF_INTERNAL_FIELDS 1
#  include "framequeue.h"
#endif

#include "libavutil/frame.h"
#include "libavutil/internal.h"
#include "libavutil/opt.h"
#include "libavutil/rational.h"
#include "avfilter.h"
#include "filters.h"

/* FFmpeg API differences, decided here once for both filters:
 *   lavfi 10.4 (FFmpeg 7.1): internal.h folded into filters.h, and the
 *       link's frame_rate and frame counters moved to FilterLink;
 *   lavfi 11 (FFmpeg 8.0): filters are defined as FFFilter (in the .c files);
 *   lavu 57.30 (FFmpeg 6.0): AVFrame.duration, in the link's time base (5.1's
 *       pkt_duration is in the decoder's stream time base, which filters such
 *       as fps or settb change without rescaling it, so it is not used). */
#if LIBAVFILTER_VERSION_INT >= AV_VERSION_INT(10, 4, 100)
#  define METER_FILTERLINK 1
#  include "avfilter_internal.h"
#else
#  define METER_FILTERLINK 0
#  include "internal.h"
#endif
#define METER_FFFILTER      (LIBAVFILTER_VERSION_MAJOR >= 11)
#define METER_FRAME_DURATION (LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(57, 30, 100))

static inline AVRational ff_meter_link_frame_rate(AVFilterLink *link)
{
#if METER_FILTERLINK
    return ff_filter_link(link)->frame_rate;
#else
    return link->frame_rate;
#endif
}

/* The link's status as its destination set it when it closed the link:
 * what ff_outlink_get_status() reports (ff_inlink_set_status() of activate
 * filters), or only the destination-side status, which a filter_frame
 * filter sets by returning EOF and FFmpeg 5.1's trim (the ffmpeg tool's
 * output -t) with ff_avfilter_link_set_out_status(). */
static inline int ff_meter_link_closed(AVFilterLink *link)
{
    int status = ff_outlink_get_status(link);
    if (status)
        return status;
#if METER_FILTERLINK
    return ff_link_internal(link)->status_out;
#else
    return link->status_out;
#endif
}

/* Frames the link's destination has taken out of it. */
static inline int64_t ff_meter_link_consumed(AVFilterLink *link)
{
#if METER_FILTERLINK
    return ff_filter_link(link)->frame_count_out;
#else
    return link->frame_count_out;
#endif
}

/* Starts of the most recent frames, to un-bill frames a downstream filter
 * discarded unread when it closed (normally at most one or two). */
#define METER_RING 64

enum MeterOnExhausted {
    METER_EXHAUSTED_CONTINUE = 0,   /* keep going; the rest is overage */
    METER_EXHAUSTED_STOP     = 1,   /* end the output (EOF) */
};

enum MeterOnError {
    METER_ONERROR_FAIL  = 0,        /* a database failure fails the transcode */
    METER_ONERROR_SPOOL = 1,        /* keep transcoding, spool the usage */
};

typedef struct MeterFrameStart {
    int     seg;                    /* segment number */
    int64_t start;                  /* segment ticks before this frame */
} MeterFrameStart;

typedef struct MeterContext {
    const AVClass *class;

    /* options */
    char   *job;
    char   *output;
    int     cls;                    /* meter_class */
    char   *codec;
    char   *db;
    char   *spool;
    char   *account;                /* NULL: $METER_ACCOUNT, else the store's */
    int64_t checkpoint;             /* microseconds of output */
    int     enforce;
    int     on_exhausted;           /* enum MeterOnExhausted */
    int     on_error;               /* enum MeterOnError */
    int     idempotent;
    int     metadata;

    /* session */
    meter_session *sess;
    const char *label;              /* output label in use */
    char    job_id[METER_NAME_MAX]; /* the job actually used */
    int     ended;                  /* the output ended (EOF, close, stop) */
    int     finished;               /* finalize succeeded (exactly once) */
    int     stopped;                /* output ended because minutes ran out */
    int     warned_exhausted;

    /* measurement */
    AVRational tb;                  /* one tick */
    int     audio;
    int64_t start;                  /* a trim right downstream drops what is
                                       before this (ticks); INT64_MIN: none */
    AVFilterLink *size_link;        /* output of a scale right downstream */
    int     size_link_known;
    int     seg;                    /* current segment number (0 = none yet) */
    int     seg_w, seg_h;           /* its picture size (0x0 for audio) */
    int64_t seg_ticks;              /* its length so far */
    int     seg_reported;           /* libmeter knows this segment */
    int64_t done_us;                /* this instance's earlier segments */
    int64_t next_checkpoint_us;
    int64_t nb_frames;              /* frames forwarded */
    MeterFrameStart ring[METER_RING];
    char    ttype[METER_TTYPE_MAX]; /* of the current segment, for metadata */
    char    tier[8];
} MeterContext;

#define METER_OFFSET(x) offsetof(MeterContext, x)

/* The options both filters take; only the codec default differs. */
#define METER_COMMON_OPTIONS(FLAGS, CODEC_DEFAULT)                                   \
    { "job",        "job id (default: $METER_JOB, else <host>-<pid>-<time>)",       \
        METER_OFFSET(job),        AV_OPT_TYPE_STRING, { .str = NULL }, 0, 0, FLAGS },  \
    { "output",     "label of this output or rendition (default: the filter instance name)", \
        METER_OFFSET(output),     AV_OPT_TYPE_STRING, { .str = NULL }, 0, 0, FLAGS },  \
    { "class",      "service class the usage is billed to",                         \
        METER_OFFSET(cls),        AV_OPT_TYPE_INT, { .i64 = METER_CLASS_GENERAL },  \
        METER_CLASS_GENERAL, METER_CLASS_TSC, FLAGS, "class" },                      \
        { "general", "general transcoding packs", 0, AV_OPT_TYPE_CONST,             \
            { .i64 = METER_CLASS_GENERAL }, 0, 0, FLAGS, "class" },                  \
        { "tsc",     "TSC (top speed codec) packs", 0, AV_OPT_TYPE_CONST,           \
            { .i64 = METER_CLASS_TSC },     0, 0, FLAGS, "class" },                  \
    { "codec",      "output codec for billing: h264, h265, av1, mvhevc, aac, opus, copy, ...", \
        METER_OFFSET(codec),      AV_OPT_TYPE_STRING, { .str = CODEC_DEFAULT }, 0, 0, FLAGS }, \
    { "db",         "metering database (default: $METER_DB, else /var/lib/ffmeter/meter.db)", \
        METER_OFFSET(db),         AV_OPT_TYPE_STRING, { .str = NULL }, 0, 0, FLAGS },  \
    { "checkpoint", "output time between persisted checkpoints",                    \
        METER_OFFSET(checkpoint), AV_OPT_TYPE_DURATION, { .i64 = 10000000 },         \
        100000, INT64_C(86400000000), FLAGS },                                       \
    { "enforce",    "refuse to start when no valid pack of the class has minutes",  \
        METER_OFFSET(enforce),    AV_OPT_TYPE_BOOL, { .i64 = 0 }, 0, 1, FLAGS },     \
    { "on_exhausted", "with enforce: what to do when the minutes run out mid-job",  \
        METER_OFFSET(on_exhausted), AV_OPT_TYPE_INT, { .i64 = METER_EXHAUSTED_CONTINUE }, \
        0, 1, FLAGS, "on_exhausted" },                                               \
        { "continue", "keep transcoding, bill the rest as overage", 0, AV_OPT_TYPE_CONST, \
            { .i64 = METER_EXHAUSTED_CONTINUE }, 0, 0, FLAGS, "on_exhausted" },      \
        { "stop",     "end the output there", 0, AV_OPT_TYPE_CONST,                 \
            { .i64 = METER_EXHAUSTED_STOP },     0, 0, FLAGS, "on_exhausted" },      \
    { "on_error",   "what a metering database failure does",                        \
        METER_OFFSET(on_error),   AV_OPT_TYPE_INT, { .i64 = METER_ONERROR_SPOOL },   \
        0, 1, FLAGS, "on_error" },                                                   \
        { "fail",  "fail the transcode", 0, AV_OPT_TYPE_CONST,                      \
            { .i64 = METER_ONERROR_FAIL },  0, 0, FLAGS, "on_error" },               \
        { "spool", "keep transcoding, spool the usage for `meterctl import-spool`", \
            0, AV_OPT_TYPE_CONST, { .i64 = METER_ONERROR_SPOOL }, 0, 0, FLAGS, "on_error" }, \
    { "spool",      "spool directory (default: $METER_SPOOL, else <db>.spool)",     \
        METER_OFFSET(spool),      AV_OPT_TYPE_STRING, { .str = NULL }, 0, 0, FLAGS },  \
    { "account",    "account (customer) billed (default: $METER_ACCOUNT, else the database's account setting)", \
        METER_OFFSET(account),    AV_OPT_TYPE_STRING, { .str = NULL }, 0, 0, FLAGS },  \
    { "idempotent", "bill a job+output only once, even when the job is re-run",     \
        METER_OFFSET(idempotent), AV_OPT_TYPE_BOOL, { .i64 = 0 }, 0, 1, FLAGS },     \
    { "metadata",   "set lavfi.meter.* metadata on every frame",                    \
        METER_OFFSET(metadata),   AV_OPT_TYPE_BOOL, { .i64 = 0 }, 0, 1, FLAGS }

/* init(): checks the options.  A missing codec is refused here; class and
 * codec names are checked by libmeter when the session opens. */
int ff_meter_init(AVFilterContext *ctx);

/* config_props() of the input: opens (or, after a graph re-init, resumes)
 * the session; `tb` is one tick (video: the link's time base; audio: one
 * sample).  Refuses with a one-line error when libmeter
 * does (enforce and no minutes, bad codec, database failure with
 * on_error=fail). */
int ff_meter_open(AVFilterContext *ctx, AVRational tb);

/* How much of a frame at `pts` lasting `ticks` (both in ticks) leaves this
 * filter's output for good: all of it, unless a trim right downstream (the
 * ffmpeg tool's output -ss, or the user's trim=start) drops what comes
 * before its start: whole video frames, the samples before it for audio. */
static inline int64_t ff_meter_kept(const MeterContext *s, int64_t pts, int64_t ticks)
{
    if (s->start == INT64_MIN)
        return ticks;
    if (pts == AV_NOPTS_VALUE)
        return 0;                   /* trim drops frames without a pts */
    if (!s->audio)
        return pts >= s->start ? ticks : 0;
    if (pts >= s->start)
        return ticks;
    return pts + ticks > s->start ? pts + ticks - s->start : 0;
}

/* Adds `ticks` to the current segment: the span a video frame lasted. */
static inline void ff_meter_extend(MeterContext *s, int64_t ticks)
{
    if (ticks > 0)
        s->seg_ticks += ticks;
}

/* The picture size the output gets for a frame of width x height: the size
 * after a scale right downstream (the one the ffmpeg tool appends to keep
 * the encoder's size after a graph re-init, or -s), else the frame's. */
void ff_meter_output_size(AVFilterContext *ctx, int *width, int *height);

/* A frame of width x height (0x0: audio) lasting `ticks` (audio; video
 * passes 0 and extends later) is about to be forwarded.  Reports progress,
 * checkpoints every `checkpoint` of output, starts a segment on a size
 * change.  Returns 0 to forward it, 1 when minutes ran out and the output
 * must stop here (the frame is then not billed), or a negative AVERROR. */
int ff_meter_frame(AVFilterContext *ctx, int width, int height, int64_t ticks);

/* Sets lavfi.meter.* on the frame (only with metadata=1: the one per-frame
 * allocation the filters make, so it is opt-in). */
void ff_meter_set_metadata(MeterContext *s, AVFrame *frame);

/* Whether the output was closed downstream: on the output link, or behind
 * filters that pass every frame on unchanged in number and timing (format,
 * scale, null: what the ffmpeg tool puts between a chain and the trim of an
 * output -t/-to; FFmpeg 5.1 does not carry such a close back through
 * them).  Returns the status, or 0; *consumed gets how many of this
 * filter's frames the closing filter took. */
int ff_meter_downstream_closed(AVFilterContext *ctx, int64_t *consumed);

/* Downstream closed: bills up to the start of the last frame the closing
 * filter took, which is the frame that made it close (trim drops the first
 * frame past its end and closes); frames it never took are not billed.
 * Then finalizes. */
int ff_meter_close_downstream(AVFilterContext *ctx, int64_t consumed);

/* Finalizes exactly once and logs the one-line summary. */
int ff_meter_finish(AVFilterContext *ctx);

/* uninit(): a session not finalized yet is finalized when downstream had
 * closed the output (the ffmpeg tool may free the graph before this filter
 * runs again), else detached (graph re-init, or the tool stopping early):
 * for a resuming instance or libmeter's exit handler.  `pending` is the
 * still open duration of the last frame (video), billed when detaching. */
void ff_meter_uninit(AVFilterContext *ctx, int64_t pending);

#endif /* AVFILTER_METER_COMMON_H */
