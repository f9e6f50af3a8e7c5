#!/usr/bin/env bash
# Billed duration against ffprobe's duration of the produced file, within
# one frame: constant frame rates (24, 25, 30000/1001, 60), variable frame
# rate, fps= and -r, trim, input -ss/-t, output -t/-to/-ss, -frames:v.
# shellcheck source=tests/filter/filter.inc
. "$(dirname "$0")/filter.inc"

src="testsrc=size=160x120"

# ---- constant frame rates
for rate in 24 25 30000/1001 60; do
    job=cfr-${rate%%/*}
    ff "$job" -f lavfi -i "$src:rate=$rate:duration=3" -vf "meter=job=$job:output=o:codec=h264" \
        "${X264[@]}" "$TMP/$job.mp4"
    if [ "$FF_RC" -ne 0 ]; then not_ok "CFR $rate: ffmpeg ran" "$(ff_diag "$job")"; continue; fi
    meter_vs_probe "CFR $rate fps: billed = ffprobe within one frame" "$job" o "$TMP/$job.mp4"
    is "CFR $rate fps: one record, done" "$ROWS $(field "$job" o state)" "1 done"
done

# ---- variable frame rate: an input with irregular gaps, kept as is
ff vfr-src -f lavfi -i "$src:rate=25:duration=4" \
    -vf "select='not(eq(mod(n\,5)\,2))*not(between(n\,40\,55))'" -fps_mode passthrough \
    "${X264[@]}" "$TMP/vfr-src.mkv"
probe "$TMP/vfr-src.mkv"
src_frames=$("$FFPROBE" -v error -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$TMP/vfr-src.mkv")
check "VFR source has gaps ($src_frames of 100 frames)" [ "${src_frames:-100}" -lt 80 ]
ff vfr -i "$TMP/vfr-src.mkv" -vf "meter=job=vfr:output=o:codec=h264" -fps_mode passthrough \
    "${X264[@]}" "$TMP/vfr.mp4"
meter_vs_probe "VFR passthrough: billed = ffprobe" vfr o "$TMP/vfr.mp4"
ff vfr-mkv -i "$TMP/vfr-src.mkv" -vf "meter=job=vfr-mkv:output=o:codec=h264" "${X264[@]}" "$TMP/vfr.mkv"
meter_vs_probe "VFR into MKV: billed = ffprobe" vfr-mkv o "$TMP/vfr.mkv"

# ---- equal timestamps: a 50x timelapse in a 1/1000 time base gives runs
# of frames with the same pts; they add no output time (billing each a whole
# frame once billed 4.4 s here).  The file is made 25 fps CFR after the
# graph, so it may hold up to two frames more than the span the meter saw.
ff tl-src -f lavfi -i "$src:rate=25:duration=20" "${X264[@]}" "$TMP/tl-src.mkv"
ff tl -i "$TMP/tl-src.mkv" -vf "setpts=0.02*PTS,meter=job=tl:output=o:codec=h264" \
    "${X264[@]}" "$TMP/tl.mp4"
probe "$TMP/tl.mp4"
billed tl o
check "timelapse: billed ${BILLED_US:-?} µs covers the 0.4 s pts span, at most the file ${PROBE_US:-?} µs" \
    between "${BILLED_US:-0}" 400000 "${PROBE_US:-0}"
check "timelapse: the file is within three frames of what was billed (CFR after the graph)" \
    between "$(( ${PROBE_US:-0} - ${BILLED_US:-0} ))" 0 $((3 * 40000))

# ---- frame rate changes: fps= in the graph is exact; -r works after the
# graph (documented: within two frames of the new rate)
ff fps -f lavfi -i "$src:rate=25:duration=3" -vf "fps=10,meter=job=fps:output=o:codec=h264" \
    "${X264[@]}" "$TMP/fps.mp4"
meter_vs_probe "fps=10 before meter: billed = ffprobe" fps o "$TMP/fps.mp4"
ff fps-up -f lavfi -i "$src:rate=24:duration=3" -vf "fps=30000/1001,meter=job=fps-up:output=o:codec=h264" \
    "${X264[@]}" "$TMP/fps-up.mp4"
meter_vs_probe "fps=30000/1001 (up) before meter: billed = ffprobe" fps-up o "$TMP/fps-up.mp4"
for r in 10 50; do
    ff "r$r" -f lavfi -i "$src:rate=25:duration=3" -vf "meter=job=r$r:output=o:codec=h264" \
        -r "$r" "${X264[@]}" "$TMP/r$r.mp4"
    probe "$TMP/r$r.mp4"
    billed "r$r" o
    near "-r $r after the graph: billed = ffprobe within two output frames" \
        "$BILLED_US" "$PROBE_US" $((2 * FRAME_US))
done

# ---- trimming
ff trim -f lavfi -i "$src:rate=25:duration=5" \
    -vf "trim=start=1:end=3.5,meter=job=trim:output=o:codec=h264" "${X264[@]}" "$TMP/trim.mp4"
meter_vs_probe "trim before meter: billed = ffprobe" trim o "$TMP/trim.mp4"

ff long -f lavfi -i "$src:rate=25:duration=10" "${X264[@]}" -g 25 "$TMP/long.mp4"
ff in-ss -ss 2.3 -t 3.1 -i "$TMP/long.mp4" -vf "meter=job=in-ss:output=o:codec=h264" \
    "${X264[@]}" "$TMP/in-ss.mp4"
meter_vs_probe "input -ss/-t: billed = ffprobe" in-ss o "$TMP/in-ss.mp4"

ff out-t -i "$TMP/long.mp4" -vf "meter=job=out-t:output=o:codec=h264" -t 4 "${X264[@]}" "$TMP/out-t.mp4"
meter_vs_probe "output -t: billed = ffprobe (frames after the cut not billed)" out-t o "$TMP/out-t.mp4"
is "output -t: the record is done" "$(field out-t o state)" "done"

ff out-t-ntsc -f lavfi -i "$src:rate=30000/1001:duration=10" \
    -vf "meter=job=out-t-ntsc:output=o:codec=h264" -t 4 "${X264[@]}" "$TMP/out-t-ntsc.mkv"
meter_vs_probe "output -t at 30000/1001: billed = ffprobe" out-t-ntsc o "$TMP/out-t-ntsc.mkv"

ff out-to -i "$TMP/long.mp4" -vf "meter=job=out-to:output=o:codec=h264" -to 2.5 "${X264[@]}" "$TMP/out-to.mkv"
meter_vs_probe "output -to: billed = ffprobe" out-to o "$TMP/out-to.mkv"

ff out-ss -i "$TMP/long.mp4" -vf "meter=job=out-ss:output=o:codec=h264" -ss 1 -to 4.3 \
    "${X264[@]}" "$TMP/out-ss.mp4"
meter_vs_probe "output -ss/-to: the skipped start is not billed" out-ss o "$TMP/out-ss.mp4"

# ---- -frames:v: the tool stops after the graph; documented as billed
# within one frame (what passed the filter), the record marked interrupted
ff frames -i "$TMP/long.mp4" -vf "meter=job=frames:output=o:codec=h264" -frames:v 37 \
    "${X264[@]}" "$TMP/frames.mp4"
probe "$TMP/frames.mp4"
meter_vs_probe "-frames:v 37: billed within one frame" frames o "$TMP/frames.mp4" v:0 "$FRAME_US"
probe "$TMP/frames.mp4"
check "-frames:v 37: never billed less than the file" [ "${BILLED_US:-0}" -ge "${PROBE_US:-1}" ]

finish
