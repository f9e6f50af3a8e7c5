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

static int activate(AVFilterContext *ctx)
{
    AVFilterLink *inlink  = ctx->inputs[0];
    AVFilterLink *outlink = ctx->outputs[0];
    AVFrame *frame;
    int64_t pts, consumed;
    int ret, status;

    /* Downstream closed (e.g. the atrim of an output -t): what it did not
     * take is not billed; pass the close upstream. */
    status = ff_meter_downstream_closed(ctx, &consumed);
    if (status) {
        ff_inlink_set_status(inlink, status);
        return ff_meter_close_downstream(ctx, consumed);
    }

    ret = ff_inlink_consume_frame(inlink, &frame);
    if (ret < 0)
        return ret;
    if (ret > 0) {
        MeterContext *s = ctx->priv;
        int64_t at = frame->pts == AV_NOPTS_VALUE ? AV_NOPTS_VALUE :
                     av_rescale_q(frame->pts, inlink->time_base, s->tb);
        ret = ff_meter_frame(ctx, 0, 0, ff_meter_kept(s, at, frame->nb_samples));
        if (ret) {
            pts = frame->pts;
            av_frame_free(&frame);
            if (ret < 0)
                return ret;
            /* Minutes ran out (on_exhausted=stop): end the output here. */
            ff_inlink_set_status(inlink, AVERROR_EOF);
            ff_outlink_set_status(outlink, AVERROR_EOF, pts);
            return ff_meter_finish(ctx);
        }
        ff_meter_set_metadata(ctx->priv, frame);
        return ff_filter_frame(outlink, frame);
    }

    if (ff_inlink_acknowledge_status(inlink, &status, &pts)) {
        ret = ff_meter_finish(ctx);
        ff_outlink_set_status(outlink, status, pts);
        return ret;
    }

    FF_FILTER_FORWARD_WANTED(outlink, inlink);
    return FFERROR_NOT_READY;
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
