#!/usr/bin/env bash
# Containers and codecs: MP4, MKV, MPEG-TS and HLS outputs with H.264, H.265
# and AV1 encoders, each billed as ffprobe measures the file and classified
# by the codec given; audio-only outputs with ameter at 44.1 and 48 kHz
# (AAC, Opus, MP3), within one audio frame.
# shellcheck source=tests/filter/filter.inc
. "$(dirname "$0")/filter.inc"

src="testsrc=size=320x240:rate=25:duration=3"

# ---- video: container x codec
run_video() {   # NAME CODEC TTYPE FILE ENCODER-ARGS...
    local name=$1 codec=$2 ttype=$3 file=$4
    shift 4
    ff "$name" -f lavfi -i "$src" -vf "meter=job=$name:output=o:codec=$codec" "$@" "$TMP/$file"
    if [ "$FF_RC" -ne 0 ]; then not_ok "$name: ffmpeg ran" "$(ff_diag "$name")"; return; fi
    meter_vs_probe "$name: billed = ffprobe" "$name" o "$TMP/$file"
    is "$name: billed as $ttype" "$(field "$name" o ttype)" "$ttype"
}
run_video h264-mp4  h264 Standard.H264.SD out.mp4  "${X264[@]}"
run_video h264-mkv  h264 Standard.H264.SD out.mkv  "${X264[@]}"
run_video h264-ts   h264 Standard.H264.SD out.ts   "${X264[@]}"
run_video h265-mp4  h265 Standard.H265.SD h265.mp4 "${X265[@]}"
run_video h265-ts   hevc Standard.H265.SD h265.ts  "${X265[@]}"
run_video av1-mkv   av1  Standard.AV1.SD  av1.mkv  "${AV1ENC[@]}"
run_video av1-mp4   libsvtav1 Standard.AV1.SD av1.mp4 "${AV1ENC[@]}"

# HLS: the playlist as ffprobe reads it, and the segments add up
mkdir -p "$TMP/hls"
ff hls -f lavfi -i "testsrc=size=320x240:rate=25:duration=5" \
    -vf "meter=job=hls:output=o:codec=h264" "${X264[@]}" -g 25 \
    -f hls -hls_time 2 -hls_list_size 0 "$TMP/hls/index.m3u8"
if [ "$FF_RC" -ne 0 ]; then not_ok "hls: ffmpeg ran" "$(ff_diag hls)"; fi
meter_vs_probe "HLS: billed = ffprobe of the playlist" hls o "$TMP/hls/index.m3u8"
sum=0
for seg in "$TMP"/hls/index*.ts; do
    probe "$seg"
    sum=$((sum + ${PROBE_US:-0}))
done
near "HLS: billed = Σ ffprobe of the segments" "$BILLED_US" "$sum" "$FRAME_US"

# TSC class
ff tsc -f lavfi -i "$src" -vf "meter=job=tsc:output=o:class=tsc:codec=h265" "${X265[@]}" "$TMP/tsc.mp4"
is "class=tsc: billed as TESHD-10.H265.SD" "$(field tsc o ttype)" "TESHD-10.H265.SD"
is "class=tsc: deducted from the TSC pack" "$(field tsc o class)" "tsc"

# ---- audio only, with ameter
run_audio() {   # NAME RATE CODEC FILE ENCODER-ARGS...
    local name=$1 rate=$2 codec=$3 file=$4
    shift 4
    ff "$name" -f lavfi -i "sine=frequency=440:sample_rate=$rate:duration=3" \
        -af "ameter=job=$name:output=o:codec=$codec" "$@" "$TMP/$file"
    if [ "$FF_RC" -ne 0 ]; then not_ok "$name: ffmpeg ran" "$(ff_diag "$name")"; return; fi
    # one audio frame: the encoder's, or the 1024-sample frames the filter saw
    probe "$TMP/$file" a:0
    local tol=$(( FRAME_US > 1024000000 / rate ? FRAME_US : 1024000000 / rate ))
    meter_vs_probe "$name: billed = ffprobe within one audio frame" "$name" o "$TMP/$file" a:0 "$tol"
    is "$name: billed as Audio" "$(field "$name" o ttype)" "Audio"
}
run_audio aac-44k  44100 aac  aac44.m4a  -c:a aac
run_audio aac-48k  48000 aac  aac48.m4a  -c:a aac
run_audio opus-48k 48000 opus opus48.ogg -c:a libopus
run_audio mp3-44k  44100 mp3  mp344.mp3  -c:a libmp3lame
run_audio aac-48k-t 48000 aac aac48t.m4a -c:a aac -t 1.3
run_audio aac-44k-ss 44100 aac aac44ss.m4a -c:a aac -ss 1.01 -t 1.5

# the sum of samples is exact: 3 s of sine is 3 000 000 µs to the microsecond
billed aac-44k o
is "ameter: 132300 samples at 44.1 kHz are exactly 3 s" "$BILLED_US" 3000000
ff tsc-audio -f lavfi -i "sine=sample_rate=48000:duration=2" \
    -af "ameter=job=tsc-audio:output=o:class=tsc" -c:a aac "$TMP/tsc-audio.m4a"
is "ameter class=tsc: billed as TESHD-20.Audio" "$(field tsc-audio o ttype)" "TESHD-20.Audio"

finish
