#!/bin/sh
# Adds ffmeter's meter/ameter filters to an FFmpeg source tree, the way an
# external-library filter (libvmaf) is wired in:
#
#   filter/integrate.sh FFMPEG_TREE
#
#   libavfilter/        vf_meter.c af_ameter.c meter_common.[ch] (copied,
#                       only when they differ, so make rebuilds just those)
#   libavfilter/Makefile    OBJS-$(CONFIG_METER_FILTER), ..._AMETER_FILTER
#   libavfilter/allfilters.c  extern const AVFilter|FFFilter ff_vf_meter, ...
#   configure           libmeter in EXTERNAL_LIBRARY_LIST, --enable-libmeter
#                       help line, meter/ameter_filter_deps="libmeter",
#                       enabled libmeter && require_pkg_config libmeter ...
#
# Idempotent: a second run changes nothing (and touches no file).  Verified:
# every edit is inserted after an anchor line that must occur exactly once,
# and the result is checked; a missing anchor (a layout this script does not
# know) stops it with the anchor named, before the tree is half edited.
# Tested with FFmpeg 5.1, 7.1 and 9.0.  Edits the tree in place.
set -eu

me=integrate.sh
die() { echo "$me: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $me FFMPEG_TREE"
tree=${1%/}
here=$(cd "$(dirname "$0")" && pwd)
sources="vf_meter.c af_ameter.c meter_common.c meter_common.h"

for f in configure libavfilter/Makefile libavfilter/allfilters.c; do
    [ -f "$tree/$f" ] || die "'$tree' is not an FFmpeg source tree (no $f)"
done
for f in $sources; do
    [ -f "$here/$f" ] || die "missing filter source $here/$f"
done

configure=$tree/configure
makefile=$tree/libavfilter/Makefile
allfilters=$tree/libavfilter/allfilters.c

# FFmpeg 8.0 declares filters as FFFilter; configure scans for that spelling.
if grep -q '^extern const FFFilter ff_' "$allfilters"; then
    ftype=FFFilter
elif grep -q '^extern const AVFilter ff_' "$allfilters"; then
    ftype=AVFilter
else
    die "$allfilters declares no filters in a form this script knows"
fi

# The edits: FILE|ANCHOR (an ERE matching exactly one line)|LINE to insert
# right after it.
edits=$(cat <<EOF
$allfilters|^extern const $ftype ff_af_amerge;\$|extern const $ftype ff_af_ameter;
$allfilters|^extern const $ftype ff_vf_mestimate;\$|extern const $ftype ff_vf_meter;
$makefile|^OBJS-\\\$\\(CONFIG_AMERGE_FILTER\\) |OBJS-\$(CONFIG_AMETER_FILTER)                 += af_ameter.o meter_common.o
$makefile|^OBJS-\\\$\\(CONFIG_MESTIMATE_FILTER\\) |OBJS-\$(CONFIG_METER_FILTER)                  += vf_meter.o meter_common.o
$configure|^EXTERNAL_LIBRARY_LIST="\$|    libmeter
$configure|^  --enable-libmp3lame  |  --enable-libmeter        enable the meter and ameter filters via ffmeter's libmeter [no]
$configure|^amovie_filter_deps=|ameter_filter_deps="libmeter"
$configure|^mcdeint_filter_deps=|meter_filter_deps="libmeter"
$configure|^enabled libmp3lame  |enabled libmeter          && require_pkg_config libmeter "libmeter >= 0.1.0" meter.h meter_session_open
EOF
)

# Pass 1: check every anchor (and that no line is present twice) before
# changing anything.
printf '%s\n' "$edits" | while IFS='|' read -r file anchor line; do
    have=$(grep -cxF -e "$line" "$file" || true)
    [ "$have" -le 1 ] || die "$(basename "$file"): '$line' is present $have times"
    [ "$have" -eq 1 ] && continue
    n=$(grep -cE -e "$anchor" "$file" || true)
    [ "$n" -eq 1 ] || die "$(basename "$file"): anchor /$anchor/ found $n times, expected once (unknown FFmpeg layout)"
done

# Pass 2: insert what is missing right after its anchor.  The strings go to
# awk through the environment: -v would interpret their backslashes.
printf '%s\n' "$edits" | while IFS='|' read -r file anchor line; do
    grep -qxF -e "$line" "$file" && continue
    tmp=$file.ffmeter-tmp
    ANCHOR=$anchor LINE=$line awk '
        { print }
        $0 ~ ENVIRON["ANCHOR"] { print ENVIRON["LINE"] }
    ' "$file" > "$tmp" || { rm -f "$tmp"; die "cannot edit $file"; }
    # cat keeps the file's mode (configure is executable)
    cat "$tmp" > "$file" && rm -f "$tmp"
    [ "$(grep -cxF -e "$line" "$file")" -eq 1 ] || die "$(basename "$file"): inserting '$line' failed"
    echo "$me: $(basename "$file"): added '$line'" >&2
done

# The sources: copied only when they differ, so make rebuilds what changed.
for f in $sources; do
    if ! cmp -s "$here/$f" "$tree/libavfilter/$f"; then
        cp "$here/$f" "$tree/libavfilter/$f"
        echo "$me: libavfilter/$f updated" >&2
    fi
done

# Final check, the way configure will read the tree.
for name in af_ameter vf_meter; do
    grep -qx "extern const $ftype ff_$name;" "$allfilters" || die "allfilters.c: ff_$name not declared"
done
if ! grep -q '^meter_filter_deps="libmeter"$' "$configure" ||
   ! grep -q '^ameter_filter_deps="libmeter"$' "$configure" ||
   ! grep -q '^    libmeter$' "$configure" ||
   ! grep -q '^enabled libmeter .*require_pkg_config libmeter' "$configure"; then
    die "configure: libmeter wiring incomplete"
fi
exit 0
