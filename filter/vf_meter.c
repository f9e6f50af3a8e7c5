/*
 * vf_meter.c: the meter video filter of ffmeter.
 *
 * Passes every frame through untouched (any pixel format, hardware frames
 * included) and meters the output it feeds: its duration, measured exactly
 * from timestamps in the input link's time base, and its picture size, per
 * segment of one size.  The usage is checkpointed while the job runs and
 * finalized once, through libmeter's session API (meter_common.c).
 *
 *   ffmpeg -i in.mp4 -vf "scale=-2:720,meter=job=J42:output=720p:codec=h264" ...
 *
 * Part of ffmeter; filter/integrate.sh copies it into libavfilter/.
 */

#include "meter_common.h"   /* first: see there */

#include "libavutil/mathematics.h"
#include "libavutil/opt.h"

#include "avfilter.h"
#include "filters.h"

typedef struct VideoMeterContext {
    MeterContext m;             /* first: the class pointer leads it */

    /* The last forwarded frame: how long it lasts is only known when the
     * next one arrives (or at the end). */
    int     have_last;
    int64_t last_pts;
    int64_t last_own;           /* its own duration, in ticks (0: unknown) */
    int64_t last_span;          /* the last span measured between two frames */
} VideoMeterContext;

#define FLAGS (AV_OPT_FLAG_VIDEO_PARAM | AV_OPT_FLAG_FILTERING_PARAM)

static const AVOption meter_options[] = {
    METER_COMMON_OPTIONS(FLAGS, NULL),
    { NULL }
};

/* not meter_class: that is libmeter's enum type */
AVFILTER_DEFINE_CLASS_EXT(vf_meter, "meter", meter_options);

/* A frame's own duration in link ticks: its duration field where FFmpeg
 * keeps one in the link's time base, else one frame at the link's frame
 * rate, else the previous span.  Only used for the last frame (and for a
 * frame whose successor has no usable timestamp). */
static int64_t own_duration(AVFilterContext *ctx, const AVFrame *frame)
{
    VideoMeterContext *vs = ctx->priv;
    AVFilterLink *inlink  = ctx->inputs[0];
    AVRational fr = ff_meter_link_frame_rate(inlink);

#if METER_FRAME_DURATION
    if (frame->duration > 0)
        return frame->duration;
#endif
    if (fr.num > 0 && fr.den > 0)
        return av_rescale_q_rnd(1, av_inv_q(fr), inlink->time_base, AV_ROUND_NEAR_INF);
    return vs->last_span;
}

static int config_input(AVFilterLink *inlink)
{
    return ff_meter_open(inlink->dst, inlink->time_base);
}

static int filter_frame(AVFilterContext *ctx, AVFrame *frame)
{
    VideoMeterContext *vs = ctx->priv;
    MeterContext *s = &vs->m;
    int ret, width = frame->width, height = frame->height;

    if (vs->have_last) {
        /* The previous frame lasted until this one starts. */
        int64_t span = vs->last_own;
        if (frame->pts != AV_NOPTS_VALUE && vs->last_pts != AV_NOPTS_VALUE) {
            /* Equal (or backward) timestamps add no output time: a timelapse
             * in a coarse time base must not bill each such frame a whole
             * frame duration.  Its own duration only stands in for a
             * missing timestamp. */
            span = frame->pts > vs->last_pts ? frame->pts - vs->last_pts : 0;
            if (span > 0)
                vs->last_span = span;
        }
        ff_meter_extend(s, ff_meter_kept(s, vs->last_pts, span));
    }

    ff_meter_output_size(ctx, &width, &height);
    ret = ff_meter_frame(ctx, width, height, 0);
    if (ret) {
        /* The previous frame's span is already counted: uninit must not
         * add it again as pending. */
        vs->have_last = 0;
        if (ret < 0) {
            av_frame_free(&frame);
            return ret;
        }
        return ff_meter_stop_before(ctx, frame);
    }

    vs->have_last = 1;
    vs->last_pts  = frame->pts;
    vs->last_own  = own_duration(ctx, frame);
    ff_meter_set_metadata(s, frame);
    return ff_filter_frame(ctx->outputs[0], frame);
}

/* End of input: the last frame lasts its own duration; if none is known,
 * until the end-of-stream timestamp. */
static void end_last_frame(AVFilterContext *ctx, int64_t eof_pts)
{
    VideoMeterContext *vs = ctx->priv;
    int64_t d = vs->last_own;

    if (!vs->have_last)
        return;
    if (d <= 0 && eof_pts != AV_NOPTS_VALUE && vs->last_pts != AV_NOPTS_VALUE &&
        eof_pts > vs->last_pts)
        d = eof_pts - vs->last_pts;
    ff_meter_extend(&vs->m, ff_meter_kept(&vs->m, vs->last_pts, d));
    vs->have_last = 0;
}

/* Downstream closed: the last frame's span is not billed. */
static void drop_last_frame(AVFilterContext *ctx)
{
    VideoMeterContext *vs = ctx->priv;

    vs->have_last = 0;
}

static const MeterActivateOps video_ops = {
    .frame         = filter_frame,
    .input_ended   = end_last_frame,
    .output_closed = drop_last_frame,
};

static int activate(AVFilterContext *ctx)
{
    return ff_meter_activate(ctx, &video_ops);
}

static av_cold int init(AVFilterContext *ctx)
{
    return ff_meter_init(ctx);
}

static av_cold void uninit(AVFilterContext *ctx)
{
    VideoMeterContext *vs = ctx->priv;

    /* Freed before the end (graph re-init): the last frame lasted its own
     * duration; the next instance resumes the session from there. */
    ff_meter_uninit(ctx, vs->have_last ? ff_meter_kept(&vs->m, vs->last_pts, vs->last_own) : 0);
}

static const AVFilterPad meter_inputs[] = {
    {
        .name         = "default",
        .type         = AVMEDIA_TYPE_VIDEO,
        .config_props = config_input,
    },
};

static const AVFilterPad meter_outputs[] = {
    {
        .name = "default",
        .type = AVMEDIA_TYPE_VIDEO,
    },
};

/* No query_formats: every pixel format passes, hardware ones included, and
 * hw_frames_ctx is propagated to the output as for any pass-through filter. */
#if METER_FFFILTER
const FFFilter ff_vf_meter = {
    .p.name        = "meter",
    .p.description = NULL_IF_CONFIG_SMALL("Meter the output's duration and resolution for ffmeter billing."),
    .p.priv_class  = &vf_meter_class,
    .p.flags       = AVFILTER_FLAG_METADATA_ONLY,
#else
const AVFilter ff_vf_meter = {
    .name          = "meter",
    .description   = NULL_IF_CONFIG_SMALL("Meter the output's duration and resolution for ffmeter billing."),
    .priv_class    = &vf_meter_class,
    .flags         = AVFILTER_FLAG_METADATA_ONLY,
#endif
    .priv_size     = sizeof(VideoMeterContext),
    .init          = init,
    .uninit        = uninit,
    .activate      = activate,
    FILTER_INPUTS(meter_inputs),
    FILTER_OUTPUTS(meter_outputs),
};
