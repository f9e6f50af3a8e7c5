/*
 * meter_common.c: session bookkeeping shared by the meter and ameter filters.
 * Part of ffmeter; see meter_common.h for the measuring rules.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meter_common.h"   /* first: see there */

#include "libavutil/avassert.h"
#include "libavutil/dict.h"
#include "libavutil/error.h"
#include "libavutil/log.h"
#include "libavutil/mathematics.h"

static const AVRational us_q = { 1, 1000000 };

/* Microseconds of the current segment: the one rounding of its ticks. */
static int64_t seg_us(const MeterContext *s)
{
    return av_rescale_q_rnd(s->seg_ticks, s->tb, us_q, AV_ROUND_NEAR_INF);
}

/* A libmeter error as an AVERROR, after the message was logged. */
static int averror_of(int code)
{
    switch (code) {
    case METER_EINVAL:    return AVERROR(EINVAL);
    case METER_ENOMEM:    return AVERROR(ENOMEM);
    case METER_EIO:       return AVERROR(EIO);  /* e.g. the usage could go nowhere */
    case METER_ENOMINUTES:
    case METER_EREFUSED:  return AVERROR(EPERM);
    default:              return AVERROR_EXTERNAL;
    }
}

int ff_meter_init(AVFilterContext *ctx)
{
    MeterContext *s = ctx->priv;
    const char *job = s->job;

    if (!s->codec || !*s->codec) {
        av_log(ctx, AV_LOG_ERROR, "option 'codec' is required (the output's "
               "codec for billing: h264, h265, av1, ...)\n");
        return AVERROR(EINVAL);
    }
    if (s->output && !*s->output) {
        av_log(ctx, AV_LOG_ERROR, "option 'output' must not be empty\n");
        return AVERROR(EINVAL);
    }
    if (s->account && !meter_account_valid(s->account)) {
        av_log(ctx, AV_LOG_ERROR, "option 'account' must be 1 to %d letters, digits, "
               "'.', '_', '-' or ':', not '%s'\n", METER_NAME_MAX - 1, s->account);
        return AVERROR(EINVAL);
    }
    /* The job libmeter will use (meter.h: NULL means $METER_JOB, else
     * meter_default_job()), kept for the metadata and the summary. */
    if (!job || !*job)
        job = getenv("METER_JOB");
    if (!job || !*job)
        job = meter_default_job();
    if (strlen(job) >= sizeof(s->job_id)) {
        av_log(ctx, AV_LOG_ERROR, "job id longer than %d bytes\n", METER_NAME_MAX - 1);
        return AVERROR(EINVAL);
    }
    strcpy(s->job_id, job);
    /* The instance name ("Parsed_meter_1") is the same when the ffmpeg tool
     * rebuilds the graph, so a default label still resumes after a re-init. */
    s->label = s->output ? s->output : ctx->name ? ctx->name : ctx->filter->name;
    return 0;
}

/* Filters that give one frame per frame taken, with the same timestamps:
 * what the ffmpeg tool and format negotiation put behind a chain (format,
 * aformat, scale, and aresample when it only converts the sample format or
 * layout, not the rate). */
static int passes_frames_on(const AVFilterContext *f)
{
    static const char *const names[] = { "format", "aformat", "scale", "null", "anull" };
    const char *name = f->filter->name;

    if (f->nb_inputs != 1 || f->nb_outputs != 1 || !f->inputs[0] || !f->outputs[0])
        return 0;
    for (size_t i = 0; i < FF_ARRAY_ELEMS(names); i++)
        if (!strcmp(name, names[i]))
            return 1;
    return !strcmp(name, "aresample") &&
           f->inputs[0]->sample_rate == f->outputs[0]->sample_rate;
}

/* A trim (or atrim) right downstream, through filters that pass frames on,
 * drops everything before its start; find it so that part is not billed.
 * trim's start is min(start, start_pts), in the link's time base for video
 * and in samples for audio: exactly this filter's ticks. */
static void find_downstream_start(AVFilterContext *ctx)
{
    MeterContext *s = ctx->priv;
    AVFilterLink *link = ctx->nb_outputs ? ctx->outputs[0] : NULL;
    const char *trim = s->audio ? "atrim" : "trim";

    s->start = INT64_MIN;
    for (int hops = 0; link && link->dst && hops < 8; hops++) {
        AVFilterContext *f = link->dst;
        if (!strcmp(f->filter->name, trim)) {
            int64_t start_us = INT64_MAX, start_pts = AV_NOPTS_VALUE, start;
            av_opt_get_int(f, "start", AV_OPT_SEARCH_CHILDREN, &start_us);
            av_opt_get_int(f, "start_pts", AV_OPT_SEARCH_CHILDREN, &start_pts);
            start = start_pts;
            if (start_us != INT64_MAX) {
                int64_t t = av_rescale_q(start_us, us_q, s->tb);
                if (start == AV_NOPTS_VALUE || t < start)
                    start = t;
            }
            if (start != AV_NOPTS_VALUE) {
                s->start = start;
                av_log(ctx, AV_LOG_VERBOSE, "%s downstream starts at %"PRId64
                       "*%d/%d s: what comes before is not billed\n",
                       f->name ? f->name : trim, start, s->tb.num, s->tb.den);
            }
            return;
        }
        if (!passes_frames_on(f))
            return;
        link = f->outputs[0];
    }
}

int ff_meter_open(AVFilterContext *ctx, AVRational tb)
{
    MeterContext *s = ctx->priv;
    meter_session_opts o = { 0 };
    char err[METER_ERRMAX] = "";
    int ret;

    if (s->sess)    /* configured once per instance; be safe if not */
        return 0;
    if (tb.num <= 0 || tb.den <= 0) {
        av_log(ctx, AV_LOG_ERROR, "input has no valid time base (%d/%d)\n",
               tb.num, tb.den);
        return AVERROR(EINVAL);
    }
    s->tb                 = tb;
    s->audio              = ctx->inputs[0]->type == AVMEDIA_TYPE_AUDIO;
    s->next_checkpoint_us = s->checkpoint;
    find_downstream_start(ctx);

    o.db        = s->db && *s->db ? s->db : NULL;
    o.job       = s->job_id;
    o.output    = s->label;
    o.cls       = s->cls;
    o.codec     = s->codec;
    o.spool_dir = s->spool && *s->spool ? s->spool : NULL;
    o.account   = s->account;
    o.flags     = (s->enforce    ? METER_SESSION_ENFORCE    : 0) |
                  (s->on_error == METER_ONERROR_SPOOL ? METER_SESSION_SPOOL : 0) |
                  (s->idempotent ? METER_SESSION_IDEMPOTENT : 0);

    ret = meter_session_open(&o, &s->sess, err);
    if (ret < 0) {
        s->sess = NULL;
        if (ret == METER_ENOMINUTES)
            av_log(ctx, AV_LOG_ERROR, "refusing to start (enforce=1): %s\n",
                   *err ? err : "no valid pack has minutes left");
        else
            av_log(ctx, AV_LOG_ERROR, "cannot open a metering session: %s\n",
                   *err ? err : meter_strerror(ret));
        return averror_of(ret);
    }
    if (meter_session_spooled(s->sess))
        av_log(ctx, AV_LOG_WARNING, "metering database unavailable (%s): "
               "usage goes to the spool, import it with `meterctl import-spool`\n",
               meter_session_errmsg(s->sess));
    av_log(ctx, AV_LOG_VERBOSE, "session %s: job %s, output %s, %s, codec %s\n",
           meter_session_id(s->sess), s->job_id, s->label,
           meter_class_name(s->cls), s->codec);
    return 0;
}

/* Tells libmeter how long the current segment is.  Returns 1 when minutes
 * ran out (ENFORCE) and the output must stop, else 0 or an AVERROR. */
static int report(AVFilterContext *ctx)
{
    MeterContext *s = ctx->priv;
    int ret;

    /* (a segment libmeter knows is reported even when a downstream close
     * rolled it back to nothing; libmeter bills no empty segment) */
    if (!s->seg || (s->seg_ticks <= 0 && !s->seg_reported))
        return 0;
    ret = meter_session_segment(s->sess, s->seg_w, s->seg_h, seg_us(s));
    s->seg_reported = 1;
    if (ret == METER_ENOMINUTES) {
        if (s->stopped)     /* already ended: only the final report */
            return 0;
        if (s->on_exhausted == METER_EXHAUSTED_STOP) {
            s->stopped = 1;
            av_log(ctx, AV_LOG_ERROR, "%s pack minutes exhausted: ending the "
                   "output (on_exhausted=stop)\n", meter_class_name(s->cls));
            return 1;
        }
        if (!s->warned_exhausted)
            av_log(ctx, AV_LOG_WARNING, "%s pack minutes exhausted: the rest "
                   "of this output is billed as overage\n", meter_class_name(s->cls));
        s->warned_exhausted = 1;
        return 0;
    }
    if (ret < 0) {
        /* on_error=spool keeps transcoding whatever metering says (what was
         * measured is already with libmeter, or in its spool file). */
        av_log(ctx, s->on_error == METER_ONERROR_FAIL ? AV_LOG_ERROR : AV_LOG_WARNING,
               "metering failed: %s\n", meter_session_errmsg(s->sess));
        return s->on_error == METER_ONERROR_FAIL ? averror_of(ret) : 0;
    }
    return 0;
}

static int checkpoint(AVFilterContext *ctx)
{
    MeterContext *s = ctx->priv;
    int64_t now_us = s->done_us + seg_us(s);
    int ret;

    if (now_us < s->next_checkpoint_us)
        return 0;
    /* next one a whole interval of output later, even after a long frame */
    s->next_checkpoint_us = now_us + s->checkpoint;
    ret = meter_session_checkpoint(s->sess);
    if (ret < 0) {
        if (s->on_error == METER_ONERROR_FAIL) {
            av_log(ctx, AV_LOG_ERROR, "checkpoint failed (on_error=fail): %s\n",
                   meter_session_errmsg(s->sess));
            return averror_of(ret);
        }
        /* spool mode: libmeter keeps the usage; finalize retries */
        av_log(ctx, AV_LOG_WARNING, "checkpoint failed, going on: %s\n",
               meter_session_errmsg(s->sess));
    }
    return 0;
}

static void new_segment(MeterContext *s, int width, int height)
{
    meter_spec spec;

    s->done_us  += seg_us(s);
    s->seg_ticks = 0;
    s->seg_reported = 0;
    s->seg++;
    s->seg_w     = width;
    s->seg_h     = height;
    /* For the metadata only: built-in table (a codec only the store's rate
     * table knows gets no ttype here; libmeter still classifies it). */
    if (meter_classify(NULL, s->cls, s->codec, width, height, &spec, NULL) == METER_OK) {
        snprintf(s->ttype, sizeof(s->ttype), "%s", spec.ttype);
        snprintf(s->tier,  sizeof(s->tier),  "%s", spec.tier);
    } else {
        s->ttype[0] = s->tier[0] = '\0';
    }
}

int ff_meter_frame(AVFilterContext *ctx, int width, int height, int64_t ticks)
{
    MeterContext *s = ctx->priv;
    MeterFrameStart *fs;
    int ret;

    if (!s->seg || width != s->seg_w || height != s->seg_h) {
        /* the finished segment's last span was added before this call */
        if ((ret = report(ctx)) != 0)
            return ret;
        new_segment(s, width, height);
    }
    if ((ret = report(ctx)) != 0 || (ret = checkpoint(ctx)) < 0)
        return ret;

    fs = &s->ring[s->nb_frames % METER_RING];
    fs->seg   = s->seg;
    fs->start = s->seg_ticks;
    s->nb_frames++;
    ff_meter_extend(s, ticks);
    return 0;
}

void ff_meter_set_metadata(MeterContext *s, AVFrame *frame)
{
    char buf[32];
    const MeterFrameStart *fs;
    int64_t start_us;

    if (!s->metadata || !s->nb_frames)
        return;
    fs = &s->ring[(s->nb_frames - 1) % METER_RING];
    start_us = s->done_us + av_rescale_q_rnd(fs->start, s->tb, us_q, AV_ROUND_NEAR_INF);
    av_dict_set(&frame->metadata, "lavfi.meter.job", s->job_id, 0);
    av_dict_set(&frame->metadata, "lavfi.meter.output", s->label, 0);
    snprintf(buf, sizeof(buf), "%"PRId64, start_us);
    av_dict_set(&frame->metadata, "lavfi.meter.elapsed_us", buf, 0);
    if (s->ttype[0])
        av_dict_set(&frame->metadata, "lavfi.meter.ttype", s->ttype, 0);
    if (s->tier[0])
        av_dict_set(&frame->metadata, "lavfi.meter.tier", s->tier, 0);
}

void ff_meter_output_size(AVFilterContext *ctx, int *width, int *height)
{
    MeterContext *s = ctx->priv;

    if (!s->size_link_known) {
        /* links are all in place once frames flow; the graph is fixed */
        AVFilterLink *link = ctx->outputs[0];
        for (int hops = 0; link && link->dst && hops < 8; hops++) {
            AVFilterContext *f = link->dst;
            if (!passes_frames_on(f))
                break;
            link = f->outputs[0];
            if (!strcmp(f->filter->name, "scale"))
                s->size_link = link;
        }
        s->size_link_known = 1;
    }
    /* a scale that evaluates its size per frame updates its link's size */
    if (s->size_link && s->size_link->w > 0 && s->size_link->h > 0) {
        *width  = s->size_link->w;
        *height = s->size_link->h;
    }
}

int ff_meter_downstream_closed(AVFilterContext *ctx, int64_t *consumed)
{
    AVFilterLink *link = ctx->nb_outputs ? ctx->outputs[0] : NULL;

    /* (a link is NULL once the graph freed the filter at its other end) */
    for (int hops = 0; link && hops < 8; hops++) {
        int status = ff_meter_link_closed(link);
        if (status) {
            *consumed = ff_meter_link_consumed(link);
            return status;
        }
        if (!link->dst || !passes_frames_on(link->dst))
            break;
        link = link->dst->outputs[0];
    }
    return 0;
}

int ff_meter_close_downstream(AVFilterContext *ctx, int64_t consumed)
{
    MeterContext *s = ctx->priv;
    int64_t last = consumed > 0 ? consumed - 1 : 0;

    if (s->ended || !s->sess)
        return 0;
    /* Roll the current segment back to where that frame started; a frame of
     * an earlier segment (or too far back) cannot be rolled back and stays
     * billed: the error is then at most that frame. */
    if (last < s->nb_frames && s->nb_frames - last <= METER_RING) {
        const MeterFrameStart *fs = &s->ring[last % METER_RING];
        if (fs->seg == s->seg && fs->start <= s->seg_ticks)
            s->seg_ticks = fs->start;
    }
    av_log(ctx, AV_LOG_DEBUG, "downstream closed after %"PRId64" of %"PRId64
           " frames\n", consumed, s->nb_frames);
    return ff_meter_finish(ctx);
}

static void log_summary(AVFilterContext *ctx, const meter_session_summary *sum)
{
    MeterContext *s = ctx->priv;
    char billed[32], covered[32], overage[32];
    /* spooled: libmeter classifies at import; show what this filter knows */
    const char *spec = sum->ttype[0] ? sum->ttype : s->ttype[0] ? s->ttype : "-";

    meter_format_minutes(sum->billed_us,  billed);
    meter_format_minutes(sum->covered_us, covered);
    meter_format_minutes(sum->overage_us, overage);
    av_log(ctx, AV_LOG_INFO, "job=%s output=%s spec=%s duration=%"PRId64".%06"PRId64"s "
           "segments=%d billed=%smin deducted=%smin overage=%smin packs=%s%s%s\n",
           sum->job, sum->output, spec,
           sum->duration_us / 1000000, sum->duration_us % 1000000,
           sum->segments ? sum->segments : s->seg, billed, covered, overage,
           sum->packs[0] ? sum->packs : "-",
           sum->spooled ? " (spooled)" : "",
           sum->already_billed ? " (already billed: idempotent)" : "");
}

int ff_meter_finish(AVFilterContext *ctx)
{
    MeterContext *s = ctx->priv;
    meter_session_summary sum;
    int ret;

    if (s->ended || !s->sess)     /* the filter tries once; see uninit */
        return 0;
    s->ended = 1;
    ret = report(ctx);
    if (ret < 0 && s->on_error == METER_ONERROR_FAIL)
        return ret;
    memset(&sum, 0, sizeof(sum));
    ret = meter_session_finalize(s->sess, 0, &sum);
    if (ret < 0 && ret != METER_EFINALIZED) {
        /* Not finalized: uninit detaches the session and libmeter's exit
         * handler tries again, so the usage is not lost. */
        av_log(ctx, AV_LOG_ERROR, "finalizing the usage failed: %s\n",
               meter_session_errmsg(s->sess));
        return s->on_error == METER_ONERROR_FAIL ? averror_of(ret) : 0;
    }
    s->finished = 1;
    if (ret == METER_OK)
        log_summary(ctx, &sum);
    return 0;
}

void ff_meter_uninit(AVFilterContext *ctx, int64_t pending)
{
    MeterContext *s = ctx->priv;
    int64_t consumed;

    if (!s->sess)
        return;
    /* (after the end, downstream is closed because this filter closed it) */
    if (!s->ended && ff_meter_downstream_closed(ctx, &consumed))
        ff_meter_close_downstream(ctx, consumed);
    if (s->finished) {
        meter_session_close(s->sess);
    } else {
        /* Not finalized: never ended (re-init), or finalizing failed and
         * libmeter's exit handler tries again. */
        if (!s->ended)
            ff_meter_extend(s, pending);
        report(ctx);
        av_log(ctx, AV_LOG_VERBOSE, "uninit before the end of the output: "
               "session %s detached\n", meter_session_id(s->sess));
        meter_session_detach(s->sess);
    }
    s->sess = NULL;
}
