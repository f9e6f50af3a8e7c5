#!/usr/bin/env bash
# Resolution tiers: scale to each tier (short edge decides, portrait too),
# a mid-stream resolution change billed as two segments at their own tiers,
# a graph re-initialisation (input changes size) billed once in full, an
# ABR ladder through split with each rendition billed at its own tier, and
# two outputs of one job sharing a label.
# shellcheck source=tests/filter/filter.inc
. "$(dirname "$0")/filter.inc"

# ---- each tier, from a small source scaled up (few frames: 8K is big)
while read -r size tier; do
    job=tier-$size
    ff "$job" -f lavfi -i "testsrc=size=160x120:rate=5:duration=1" \
        -vf "scale=${size/x/:},meter=job=$job:output=o:codec=h264" "${X264[@]}" "$TMP/$job.mp4"
    if [ "$FF_RC" -ne 0 ]; then not_ok "$size: ffmpeg ran" "$(ff_diag "$job")"; continue; fi
    is "$size is billed as $tier" "$(field "$job" o ttype)" "Standard.H264.$tier"
    meter_vs_probe "$size: billed = ffprobe" "$job" o "$TMP/$job.mp4"
done <<'SIZES'
640x480 SD
640x482 HD
1280x720 HD
720x1280 HD
1600x980 FHD
1920x1080 FHD
2560x1440 2K
3840x2160 4K
7680x4320 8K
SIZES

# -s after the chain: the ffmpeg tool scales behind the filter; the size
# billed is the one the output gets
ff dash-s -f lavfi -i "testsrc=size=320x240:rate=25:duration=1" \
    -vf "meter=job=dash-s:output=o:codec=h264" -s 1280x720 "${X264[@]}" "$TMP/dash-s.mp4"
is "-s 1280x720 behind the filter: billed as HD at 1280x720" \
    "$(field dash-s o ttype) $(field dash-s o width)x$(field dash-s o height)" "Standard.H264.HD 1280x720"
meter_vs_probe "-s 1280x720: billed = ffprobe" dash-s o "$TMP/dash-s.mp4"

# 8K has no published ratio: all of it is overage
is "8K has no ratio: all overage" \
    "$(field tier-7680x4320 o overage_us)" "$(field tier-7680x4320 o billed_us)"

# ---- a resolution change mid-stream: scale evaluating its size per frame
# (rawvideo in NUT carries frames of any size)
ff mid -f lavfi -i "testsrc=size=160x120:rate=10:duration=2" \
    -vf "scale=w='if(lt(t\,1)\,320\,864)':h='if(lt(t\,1)\,240\,486)':eval=frame,meter=job=mid:output=o:codec=h264" \
    -c:v rawvideo -f nut "$TMP/mid.nut"
meter_vs_probe "mid-stream change: total billed = ffprobe" mid o "$TMP/mid.nut"
is "mid-stream change: two records" "$ROWS" 2
segs=$(jobs_json mid | python3 -c '
import json, sys
rows = json.load(sys.stdin)
print(" ".join("%s:%dx%d:%d" % (r["ttype"], r["width"], r["height"], r["duration_us"]) for r in rows))')
is "mid-stream change: each segment at its own tier" "$segs" \
    "Standard.H264.SD:320x240:1000000 Standard.H264.HD:864x486:1000000"

# ---- graph re-init: the input changes size, the ffmpeg tool rebuilds the
# graph (uninit without EOF, then a new instance) and keeps the encoder's
# size with its own scale behind the chain
ff part-a -f lavfi -i "testsrc=size=320x240:rate=25:duration=2" "${X264[@]}" "$TMP/a.ts"
ff part-b -f lavfi -i "testsrc=size=1280x720:rate=25:duration=2" "${X264[@]}" "$TMP/b.ts"
cat "$TMP/a.ts" "$TMP/b.ts" > "$TMP/ab.ts"
ff reinit -v verbose -i "$TMP/ab.ts" -vf "meter=job=reinit:output=o:codec=h264" "${X264[@]}" "$TMP/reinit.mp4"
check "re-init: the graph was rebuilt (old instance detached)" grep -q 'detached' "$TMP/reinit.log"
meter_vs_probe "re-init: billed once, in full (= ffprobe)" reinit o "$TMP/reinit.mp4"
is "re-init: one record at the output's size" "$ROWS $(field reinit o ttype) $(field reinit o width)" \
    "1 Standard.H264.SD 320"
sessions=$("$METERCTL" --format json jobs --sessions --job reinit | python3 -c '
import json, sys
rows = json.load(sys.stdin)
rows = [rows] if isinstance(rows, dict) else rows
print(len(rows), " ".join(r["status"] for r in rows))')
is "re-init: one session, done" "$sessions" "1 done"

# without the tool's scale (-noautoscale) the second part keeps its size
ff reinit-raw -i "$TMP/ab.ts" -vf "meter=job=reinit-raw:output=o:codec=h264" -noautoscale \
    -c:v rawvideo -f nut "$TMP/reinit-raw.nut"
meter_vs_probe "re-init, -noautoscale: billed = ffprobe" reinit-raw o "$TMP/reinit-raw.nut"
probe "$TMP/a.ts"; a_us=$PROBE_US
probe "$TMP/b.ts"; b_us=$PROBE_US
segs=$(jobs_json reinit-raw | python3 -c '
import json, sys
rows = json.load(sys.stdin)
print(" ".join("%s=%d" % (r["ttype"], r["duration_us"]) for r in rows))')
is "re-init, -noautoscale: SD then HD, each as long as its part" "$segs" \
    "Standard.H264.SD=$a_us Standard.H264.HD=$b_us"

# ---- an ABR ladder: split into three renditions, each billed at its tier
ff ladder -f lavfi -i "testsrc=size=640x360:rate=25:duration=2" -filter_complex \
    "split=3[a][b][c];[a]scale=1280:720,meter=job=ladder:output=720p:codec=h264[oa];[b]scale=854:480,meter=job=ladder:output=480p:codec=h264[ob];[c]scale=1920:1080,meter=job=ladder:output=1080p:codec=h265[oc]" \
    -map '[oa]' "${X264[@]}" "$TMP/l720.mp4" -map '[ob]' "${X264[@]}" "$TMP/l480.mp4" \
    -map '[oc]' "${X265[@]}" "$TMP/l1080.mp4"
for r in 720p:l720:Standard.H264.HD 480p:l480:Standard.H264.SD 1080p:l1080:Standard.H265.FHD; do
    IFS=: read -r out file ttype <<<"$r"
    meter_vs_probe "ladder $out: billed = ffprobe" ladder "$out" "$TMP/$file.mp4"
    is "ladder $out: billed as $ttype" "$(field ladder "$out" ttype)" "$ttype"
done
billed ladder
is "ladder: three records" "$ROWS" 3

# ---- two outputs of one job with the same (default) label stay apart
ff twice -f lavfi -i "testsrc=size=320x240:rate=25:duration=2" \
    -vf "meter=job=twice:codec=h264" "${X264[@]}" "$TMP/t1.mp4" \
    -vf "meter=job=twice:codec=h264" -t 1 "${X264[@]}" "$TMP/t2.mp4"
billed twice
is "two outputs, one label: two records" "$ROWS" 2
probe "$TMP/t1.mp4"; t1=$PROBE_US
probe "$TMP/t2.mp4"; t2=$PROBE_US
near "two outputs: billed = Σ ffprobe" "$BILLED_US" $((t1 + t2)) "$FRAME_US"

finish
