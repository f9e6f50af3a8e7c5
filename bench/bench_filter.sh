#!/bin/sh
# bench_filter.sh — what the `meter` filter costs on a real transcode.
#
# Runs $FFMPEG on a generated source (lavfi testsrc2, fixed length) with
# and without `-vf meter=...` (database in a temp dir holding one pack),
# several repetitions each, and prints the median wall time, frames/s and
# the difference.  Then, when `perf stat -e instructions` works (else with
# valgrind's callgrind), counts instructions without, with `-vf null` (one
# do-nothing filter, for reference) and with the meter, at two clip lengths,
# which gives repeatable figures: the meter's instructions per frame (the
# slope) and its fixed cost per run (session open, finalize).
#
# Prints figures; never fails on time.  Exits 0 after a skip (no ffmpeg
# with the meter filter yet), 1 if a run failed or a metered run did not
# record its usage (the figures would be wrong), 2 on a usage error.
#
#   bench/bench_filter.sh [-n REPS] [-t SECONDS] [-s WxH] [-r RATE]
#                         [-c 'ENCODER ARGS'] [-I] [-W] [-h]
#
# Environment: FFMPEG (default build/bin/ffmpeg), METERCTL (default
# build/bin/meterctl), BENCH_TMP (else TMPDIR, else /tmp) for the temp dir,
# BENCH_NO_HYPERFINE=1 to time with the built-in loop even when hyperfine
# is installed.

# Command lines are kept as strings (printed, and handed to hyperfine) and
# split on purpose where run; paths with blanks are refused below.
# shellcheck disable=SC2046
set -eu

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(dirname "$here")
FFMPEG=${FFMPEG:-$srcdir/build/bin/ffmpeg}
METERCTL=${METERCTL:-$srcdir/build/bin/meterctl}

reps=7
secs=20
size=1280x720
rate=30
enc=""
instr=1
wall=1
# Clip lengths (s) for the instruction counts: the per-frame figure is the
# slope between them, so the fixed cost of a run drops out.  Both are under
# the filter's default checkpoint interval (10 s of output), so no
# checkpoint falls in the slope; bench_record measures checkpoints.
ishort=2
ilong=9

usage() {
    echo "usage: bench/bench_filter.sh [-n REPS] [-t SECONDS] [-s WxH] [-r RATE]"
    echo "                               [-c 'ENCODER ARGS'] [-I] [-W] [-h]"
    echo "  -n REPS     timed runs of each variant, after one warm-up   [$reps]"
    echo "  -t SECONDS  clip length of the timed runs                   [$secs]"
    echo "  -s WxH      picture size                                   [$size]"
    echo "  -r RATE     frame rate (integer or N/D)                    [$rate]"
    echo "  -c ARGS     encoder arguments, e.g. '-c:v libx264 -preset ultrafast'"
    echo "              [none: -f null with FFmpeg's default for it, no encoding]"
    echo "  -I          skip the instruction counts"
    echo "  -W          skip the wall-time runs"
}

while getopts n:t:s:r:c:IWh opt; do
    case $opt in
    n) reps=$OPTARG ;;
    t) secs=$OPTARG ;;
    s) size=$OPTARG ;;
    r) rate=$OPTARG ;;
    c) enc=$OPTARG ;;
    I) instr=0 ;;
    W) wall=0 ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done

case $reps in ''|*[!0-9]*|0) echo "bench_filter: -n wants a positive integer" >&2; exit 2 ;; esac

skip() {
    echo "bench_filter: SKIPPED: $*"
    exit 0
}

[ -x "$FFMPEG" ] || skip "$FFMPEG does not exist yet (build it: make ffmpeg; or set FFMPEG=/path/to/ffmpeg built with the meter filter)"
"$FFMPEG" -hide_banner -h filter=meter 2>/dev/null | grep -q '^Filter meter' ||
    skip "$FFMPEG has no meter filter (it was not built by filter/build-ffmpeg.sh)"
[ -x "$METERCTL" ] || skip "$METERCTL does not exist yet (make meterctl)"

base=${BENCH_TMP:-${TMPDIR:-/tmp}}
tmp=$(mktemp -d "$base/bench_filter.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
# A new database holding one large general pack.
new_db() {
    "$METERCTL" --db "$1" init >/dev/null
    "$METERCTL" --db "$1" pack add --type general --minutes 1000000 >/dev/null
}
case "$FFMPEG$tmp" in
*[[:space:]:,\'\\]*)
    echo "bench_filter: FFMPEG ($FFMPEG) and the temp dir ($tmp) must not contain" \
         "blanks, ':', ',', quotes or backslashes (they go into command lines and filter options)" >&2
    exit 2 ;;
esac
db=$tmp/meter.db
new_db "$db"

# frames in a clip of $1 seconds at $rate
frames_of() {
    awk -v t="$1" -v r="$rate" 'BEGIN { n = split(r, a, "/"); f = (n == 2) ? a[1] / a[2] : a[1];
                                        printf "%d\n", t * f + 0.5 }'
}

# The command lines for a clip of $1 seconds; cmd_meter: $2 = job id,
# $3 its database [$db].  The clip's length is the source's, so the meter
# sees a plain EOF.  Single-threaded filtering and no stats output, so both
# do the same work apart from the meter.
src() { echo "-f lavfi -i testsrc2=size=$size:rate=$rate:duration=$1"; }
ff_common="-hide_banner -nostdin -nostats -loglevel error -filter_threads 1"
out="${enc:+$enc }-f null -"
cmd_base() { echo "$FFMPEG $ff_common $(src "$1") $out"; }
cmd_null() { echo "$FFMPEG $ff_common $(src "$1") -vf null $out"; }
cmd_meter() {
    echo "$FFMPEG $ff_common $(src "$1") -vf meter=db=${3:-$db}:job=$2:output=bench:codec=h264 $out"
}

now_ns() { date +%s%N; }

# Checks that database $1 holds $2 usage records of $3 s each (the metered
# runs really metered the clip, not e.g. spooled it); prints a summary, or a
# WARNING when they do not, since then the "with" figures are not the real
# cost.
check_metered() {
    got=$("$METERCTL" --db "$1" --format csv jobs |
          awk -F, -v want="$3" 'NR > 1 { n++; if ($11 != want * 1000000) odd++ }
                                END { printf "%d %d\n", n, odd }')
    n=${got% *}
    odd=${got#* }
    if [ "$n" -eq "$2" ] && [ "$odd" -eq 0 ]; then
        echo "  metered: $n records of $3 s each, as expected"
    else
        suspect=1
        echo "  WARNING: $1 holds $n usage records ($odd not of $3 s), expected $2:" \
             "the meter did not record every run (spooled? see $1.spool); figures with the meter are suspect"
    fi
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
                                              else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

frames=$(frames_of "$secs")
echo "bench_filter: $($FFMPEG -hide_banner -version | head -1)"
echo "bench_filter: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
echo "bench_filter: source testsrc2 ${size} @ ${rate} fps, ${secs} s = $frames frames;" \
     "output ${enc:+$enc }-f null; $reps timed runs of each"
echo "  without: $(cmd_base "$secs")"
echo "  with:    $(cmd_meter "$secs" JOB)"

# ------------------------------------------------------------- wall time --
hfshell=""
suspect=0
# Times both command lines; prints the table and checks the metered records.
wall_time() {
    if [ "${BENCH_NO_HYPERFINE:-0}" != 1 ] && command -v hyperfine >/dev/null 2>&1; then
        timer=hyperfine
        # Every metered run is a new job of the same id (not idempotent): fine.
        # -N (no intermediate shell) when this hyperfine has it (1.13+).
        hyperfine --help 2>/dev/null | grep -q -- '--shell=none' && hfshell=-N
        hyperfine $hfshell --style basic --warmup 1 --runs "$reps" --export-csv "$tmp/hf.csv" \
            -n without "$(cmd_base "$secs")" -n with "$(cmd_meter "$secs" bench-hf)" >"$tmp/hf.log" 2>&1 || {
            cat "$tmp/hf.log" >&2
            echo "bench_filter: a run failed" >&2
            exit 1
        }
        # CSV: command,mean,stddev,median,user,system,min,max (seconds)
        hf() { awk -F, -v n="$1" -v c="$2" '$1 == n { printf "%.0f\n", $c * 1e9 }' "$tmp/hf.csv"; }
        med_base=$(hf without 4); min_base=$(hf without 7); max_base=$(hf without 8)
        med_meter=$(hf with 4); min_meter=$(hf with 7); max_meter=$(hf with 8)
    else
        timer="built-in loop, date +%s%N, alternating"
        run_timed() {  # $@: command; prints its wall time in ns
            t0=$(now_ns)
            "$@" || { echo "bench_filter: run failed: $*" >&2; exit 1; }
            t1=$(now_ns)
            echo $((t1 - t0))
        }
        run_timed $(cmd_base "$secs") >/dev/null          # warm-up
        run_timed $(cmd_meter "$secs" bench-w) >/dev/null
        : >"$tmp/base.ns"
        : >"$tmp/meter.ns"
        i=1
        while [ "$i" -le "$reps" ]; do                     # alternate: drift hits both
            run_timed $(cmd_base "$secs") >>"$tmp/base.ns"
            run_timed $(cmd_meter "$secs" "bench-$i") >>"$tmp/meter.ns"
            i=$((i + 1))
        done
        med_base=$(median <"$tmp/base.ns")
        med_meter=$(median <"$tmp/meter.ns")
        min_base=$(sort -n "$tmp/base.ns" | head -1); max_base=$(sort -n "$tmp/base.ns" | tail -1)
        min_meter=$(sort -n "$tmp/meter.ns" | head -1); max_meter=$(sort -n "$tmp/meter.ns" | tail -1)
    fi

    echo
    echo "wall time, median of $reps ($timer${hfshell:+ $hfshell}):"
    awk -v b="$med_base" -v m="$med_meter" -v f="$frames" \
        -v b0="$min_base" -v b1="$max_base" -v m0="$min_meter" -v m1="$max_meter" 'BEGIN {
        printf "  %-14s %10s %10s %18s\n", "", "median s", "frames/s", "min-max s"
        printf "  %-14s %10.3f %10.1f %8.3f - %.3f\n", "without meter", b / 1e9, f * 1e9 / b, b0 / 1e9, b1 / 1e9
        printf "  %-14s %10.3f %10.1f %8.3f - %.3f\n", "with meter", m / 1e9, f * 1e9 / m, m0 / 1e9, m1 / 1e9
        printf "  %-14s %+10.3f %+9.2f%%   (%+.1f us/frame, fixed cost included; compare with min-max)\n",
               "difference", (m - b) / 1e9, (m - b) * 100 / b, (m - b) / 1e3 / f
    }'

    # Sanity: every metered run (warm-up included) recorded the whole clip.
    check_metered "$db" $((reps + 1)) "$secs"
}
[ "$wall" = 0 ] || wall_time

# ----------------------------------------------------- instruction counts --
[ "$instr" = 1 ] || exit "$suspect"

# perf needs hardware counters (often missing in VMs); callgrind always works.
counter=""
if command -v perf >/dev/null 2>&1 &&
   perf stat -x, -e instructions:u true 2>&1 | grep -q '^[0-9][0-9]*,'; then
    counter=perf
elif command -v valgrind >/dev/null 2>&1; then
    counter=callgrind
else
    echo
    echo "instruction counts: SKIPPED (no perf with hardware counters, no valgrind)"
    exit "$suspect"
fi

count() {  # $@: command; prints instructions retired (user space)
    case $counter in
    perf)
        perf stat -x, -e instructions:u -o "$tmp/perf.txt" "$@" ||
            { echo "bench_filter: run failed: $*" >&2; exit 1; }
        awk -F, '$3 ~ /^instructions/ { print $1; exit }' "$tmp/perf.txt" ;;
    callgrind)
        valgrind -q --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$@" ||
            { echo "bench_filter: run failed: $*" >&2; exit 1; }
        awk '/^summary:/ { print $2; exit }' "$tmp/cg.out" ;;
    esac
}

echo
echo "instructions ($counter; clips of $ishort s and $ilong s, same size and rate;" \
     "each metered run on a new database):"
fs=$(frames_of "$ishort")
fl=$(frames_of "$ilong")
new_db "$tmp/is.db"
new_db "$tmp/il.db"
bs=$(count $(cmd_base "$ishort"))
ns=$(count $(cmd_null "$ishort"))
ms=$(count $(cmd_meter "$ishort" bench-is "$tmp/is.db"))
bl=$(count $(cmd_base "$ilong"))
nl=$(count $(cmd_null "$ilong"))
ml=$(count $(cmd_meter "$ilong" bench-il "$tmp/il.db"))
# "-vf null" is a reference: an extra filter that does nothing, so
# meter - null compares the meter with that, null - without is the graph's
# cost of one more filter.
awk -v bs="$bs" -v ns="$ns" -v ms="$ms" -v bl="$bl" -v nl="$nl" -v ml="$ml" \
    -v fs="$fs" -v fl="$fl" -v ts="$ishort" -v tl="$ilong" 'BEGIN {
    printf "  %-18s %14s %14s %14s %12s\n", "", "without", "-vf null", "-vf meter", "meter-without"
    printf "  %-18s %14.0f %14.0f %14.0f %+12.0f\n", ts " s (" fs " frames)", bs, ns, ms, ms - bs
    printf "  %-18s %14.0f %14.0f %14.0f %+12.0f\n", tl " s (" fl " frames)", bl, nl, ml, ml - bl
    df = fl - fs
    pm = ((ml - bl) - (ms - bs)) / df
    pn = ((nl - bl) - (ns - bs)) / df
    printf "  per frame (slope between the two clips):\n"
    printf "    meter - without  %+8.0f instructions\n", pm
    printf "    meter - null     %+8.0f instructions (against a do-nothing filter)\n", pm - pn
    printf "    null - without   %+8.0f instructions (one more filter in the graph)\n", pn
    printf "  fixed per run, meter - without: %+.0f instructions (session open, finalize, SQLite)\n",
           (ms - bs) - pm * fs
    printf "  relative, meter - without: %+.3f%% at %s s, %+.3f%% at %s s\n",
           (ms - bs) * 100 / bs, ts, (ml - bl) * 100 / bl, tl
}'
check_metered "$tmp/is.db" 1 "$ishort"
check_metered "$tmp/il.db" 1 "$ilong"
exit "$suspect"
