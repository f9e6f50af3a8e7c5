/*
 * af_ameter.c: the ameter audio filter of ffmeter.
 *
 * For audio-only outputs.  Passes every frame through untouched (any sample
 * format and channel layout) and meters the output's duration exactly from
 * sample counts: nb_samples / sample_rate, summed as integer samples and
 * converted to microseconds once.  Billed as audio (class general: "Audio",
 * tsc: "TESHD-20.Audio") through libmeter's session API (meter_common.c).
 *
 *   ffmpeg -i in.wav -af "ameter=job=J42:output=aac:codec=aac" out.m4a
 *
 * Part of ffmeter; filter/integrate.sh copies it into libavfilter/.
 */

#include "meter_common.h"   /* first: see there */

#include "libavutil/opt.h"

#include "avfilter.h"
#include "filters.h"

#define FLAGS (AV_OPT_FLAG_AUDIO_PARAM | AV_OPT_FLAG_FILTERING_PARAM)

static const AVOption ameter_options[] = {
    METER_COMMON_OPTIONS(FLAGS, "audio"),
    { NULL }
};

AVFILTER_DEFINE_CLASS(ameter);

static int config_input(AVFilterLink *inlink)
{
    if (inlink->sample_rate <= 0) {
        av_log(inlink->dst, AV_LOG_ERROR, "input has no sample rate\n");
        return AVERROR(EINVAL);
    }
    /* One tick is one sample. */
    return ff_meter_open(inlink->dst, (AVRational){ 1, inlink->sample_rate });
}

static int filter_frame(AVFilterContext *ctx, AVFrame *frame)
{
    MeterContext *s = ctx->priv;
    int64_t at = frame->pts == AV_NOPTS_VALUE ? AV_NOPTS_VALUE :
                 av_rescale_q(frame->pts, ctx->inputs[0]->time_base, s->tb);
    int ret = ff_meter_frame(ctx, 0, 0, ff_meter_kept(s, at, frame->nb_samples));

    if (ret) {
        if (ret < 0) {
            av_frame_free(&frame);
            return ret;
        }
        return ff_meter_stop_before(ctx, frame);
    }
    ff_meter_set_metadata(s, frame);
    return ff_filter_frame(ctx->outputs[0], frame);
}

/* Audio counts each frame as it passes: nothing is open at the end. */
static const MeterActivateOps audio_ops = {
    .frame = filter_frame,
};

static int activate(AVFilterContext *ctx)
{
    return ff_meter_activate(ctx, &audio_ops);
}

static av_cold int init(AVFilterContext *ctx)
{
    return ff_meter_init(ctx);
}

static av_cold void uninit(AVFilterContext *ctx)
{
    ff_meter_uninit(ctx, 0);
}

static const AVFilterPad ameter_inputs[] = {
    {
        .name         = "default",
        .type         = AVMEDIA_TYPE_AUDIO,
        .config_props = config_input,
    },
};

static const AVFilterPad ameter_outputs[] = {
    {
        .name = "default",
        .type = AVMEDIA_TYPE_AUDIO,
    },
};

/* No query_formats: every sample format, rate and layout passes. */
#if METER_FFFILTER
const FFFilter ff_af_ameter = {
    .p.name        = "ameter",
    .p.description = NULL_IF_CONFIG_SMALL("Meter an audio output's duration for ffmeter billing."),
    .p.priv_class  = &ameter_class,
    .p.flags       = AVFILTER_FLAG_METADATA_ONLY,
#else
const AVFilter ff_af_ameter = {
    .name          = "ameter",
    .description   = NULL_IF_CONFIG_SMALL("Meter an audio output's duration for ffmeter billing."),
    .priv_class    = &ameter_class,
    .flags         = AVFILTER_FLAG_METADATA_ONLY,
#endif
    .priv_size     = sizeof(MeterContext),
    .init          = init,
    .uninit        = uninit,
    .activate      = activate,
    FILTER_INPUTS(ameter_inputs),
    FILTER_OUTPUTS(ameter_outputs),
};
