#!/usr/bin/env bash
# The filters as FFmpeg filters: their options are documented by
# `ffmpeg -h filter=…`, bad options are refused with one clear error, frames
# pass through untouched whatever their format, lavfi.meter.* metadata is
# set on request, and the end of an output is summed up in one log line.
# shellcheck source=tests/filter/filter.inc
. "$(dirname "$0")/filter.inc"

clip=(-f lavfi -i "testsrc=size=160x120:rate=25:duration=1")

# ---- help
for f in meter ameter; do
    "$FFMPEG" -hide_banner -h "filter=$f" >"$TMP/help-$f.txt" 2>&1
    missing=
    for opt in job output class codec db checkpoint enforce on_exhausted on_error spool idempotent metadata; do
        grep -q "^   $opt " "$TMP/help-$f.txt" || missing="$missing $opt"
    done
    is "ffmpeg -h filter=$f documents every option" "${missing:-none missing}" "none missing"
done
check "meter: class general|tsc listed" grep -q '^     tsc ' "$TMP/help-meter.txt"

# ---- refusals
ff nocodec "${clip[@]}" -vf "meter=job=x" -f null -
check "meter without codec: refused" [ "$FF_RC" -ne 0 ]
check "meter without codec: the error names the option" grep -q "option 'codec' is required" "$TMP/nocodec.log"
ff badclass "${clip[@]}" -vf "meter=job=x:codec=h264:class=gold" -f null -
check "class=gold: refused" [ "$FF_RC" -ne 0 ]
ff badcodec "${clip[@]}" -vf "meter=job=x:codec=vp7" -f null -
check "codec=vp7: refused" [ "$FF_RC" -ne 0 ]
check "codec=vp7: libmeter's reason is shown" grep -q "cannot open a metering session: .*vp7" "$TMP/badcodec.log"
ff badckpt "${clip[@]}" -vf "meter=job=x:codec=h264:checkpoint=0.001" -f null -
check "checkpoint=0.001: out of range, refused" [ "$FF_RC" -ne 0 ]
ff emptyout "${clip[@]}" -vf "meter=job=x:codec=h264:output=''" -f null -
check "an empty output label: refused" [ "$FF_RC" -ne 0 ]
check "an empty output label: the error says so" grep -q "option 'output' must not be empty" "$TMP/emptyout.log"
billed x
is "nothing refused was billed" "$ROWS" 0

# ---- frames pass through untouched, in any format (no conversion is
# inserted in front of the filter: the frame checksums match a run without it)
for fmt in yuv420p yuv444p10le nv12 rgb24 gray16le; do
    ff "plain-$fmt" "${clip[@]}" -vf "format=$fmt" -f framemd5 "$TMP/plain-$fmt.md5"
    ff "meter-$fmt" "${clip[@]}" -vf "format=$fmt,meter=job=pass-$fmt:output=o:codec=h264" \
        -f framemd5 "$TMP/meter-$fmt.md5"
    if [ "$FF_RC" -eq 0 ] && cmp -s <(grep -v '^#' "$TMP/plain-$fmt.md5") <(grep -v '^#' "$TMP/meter-$fmt.md5"); then
        ok "$fmt frames pass through unchanged"
    else
        not_ok "$fmt frames pass through unchanged" "$(ff_diag "meter-$fmt")"
    fi
done
for fmt in s16 fltp s32p dbl; do
    ff "aplain-$fmt" -f lavfi -i "sine=sample_rate=48000:duration=1" -af "aformat=sample_fmts=$fmt" \
        -f framemd5 "$TMP/aplain-$fmt.md5"
    ff "ameter-$fmt" -f lavfi -i "sine=sample_rate=48000:duration=1" \
        -af "aformat=sample_fmts=$fmt,ameter=job=apass:output=$fmt" -f framemd5 "$TMP/ameter-$fmt.md5"
    if [ "$FF_RC" -eq 0 ] && cmp -s <(grep -v '^#' "$TMP/aplain-$fmt.md5") <(grep -v '^#' "$TMP/ameter-$fmt.md5"); then
        ok "$fmt audio passes through unchanged"
    else
        not_ok "$fmt audio passes through unchanged" "$(ff_diag "ameter-$fmt")"
    fi
done
billed pass-yuv444p10le o
is "a 10-bit 4:4:4 output is metered like any other" "$BILLED_US" 1000000

# ---- metadata on request
ff meta "${clip[@]}" \
    -vf "meter=job=meta:output=o:codec=h265:metadata=1,metadata=mode=print:file=$TMP/meta.txt" -f null -
is "metadata=1: lavfi.meter.* on every frame" "$(grep -c '^lavfi.meter.ttype=Standard.H265.SD$' "$TMP/meta.txt")" 25
is "metadata=1: elapsed output time before frame 10" \
    "$(grep '^lavfi.meter.elapsed_us=' "$TMP/meta.txt" | sed -n 11p)" "lavfi.meter.elapsed_us=400000"
check "metadata=1: job, output and tier" grep -q '^lavfi.meter.tier=SD$' "$TMP/meta.txt"
ff nometa "${clip[@]}" -vf "meter=job=meta2:output=o:codec=h265,metadata=mode=print:file=$TMP/nometa.txt" -f null -
is "metadata off by default (no allocation per frame)" "$(grep -c '^lavfi.meter' "$TMP/nometa.txt")" 0

# ---- the one-line summary
ff summary "${clip[@]}" -vf "scale=1280:720,meter=job=sum:output=720p:codec=h264" "${X264[@]}" "$TMP/sum.mp4"
line=$(grep 'job=sum ' "$TMP/summary.log")
is "one summary line per output" "$(printf '%s\n' "$line" | grep -c .)" 1
case $line in
    *"job=sum output=720p spec=Standard.H264.HD duration=1.000000s segments=1 billed=0.033min deducted=0.033min overage=0.000min packs=pk-"*)
        ok "summary: job, output, spec, duration, minutes deducted, packs" ;;
    *) not_ok "summary: job, output, spec, duration, minutes deducted, packs" "got: $line" ;;
esac

finish
