#!/usr/bin/env bash
# filter/integrate.sh on the FFmpeg tree the ffmpeg under test was built
# from: applied to a pristine copy of the three files it edits, it produces
# exactly the files that were built; a second run changes nothing; a
# missing anchor stops it with the anchor named and nothing changed; the
# declarations follow the tree's spelling (AVFilter, or FFFilter from 8.0).
# shellcheck source=tests/filter/filter.inc
. "$(dirname "$0")/filter.inc"

integrate=$SRCDIR/filter/integrate.sh
tree=$(cat "$(dirname "$FFMPEG")/.ffmpeg-source" 2>/dev/null)
if [ -z "$tree" ] || [ ! -f "$tree/libavfilter/allfilters.c" ]; then
    echo "Bail out! no record of the FFmpeg tree $FFMPEG was built from ($(dirname "$FFMPEG")/.ffmpeg-source)"
    exit 1
fi
files=(configure libavfilter/Makefile libavfilter/allfilters.c)

# A pristine copy: the built tree's files without the lines integrate.sh adds.
pristine=$TMP/pristine
mkdir -p "$pristine/libavfilter"
for f in "${files[@]}"; do
    grep -vE 'ff_(af_ameter|vf_meter);$|CONFIG_A?METER_FILTER|^    libmeter$|--enable-libmeter |^a?meter_filter_deps=|^enabled libmeter ' \
        "$tree/$f" > "$pristine/$f"
done
chmod +x "$pristine/configure"
fresh() {   # DIR: a copy of the pristine files
    rm -rf "$1"
    cp -a "$pristine" "$1"
}

fresh "$TMP/t1"
"$integrate" "$TMP/t1" 2>"$TMP/run1.err"
is "integrate.sh on a pristine copy succeeds" "$?" 0
same=yes
for f in "${files[@]}"; do
    cmp -s "$TMP/t1/$f" "$tree/$f" || same="no: $f differs"
done
is "it makes exactly the files the tested ffmpeg was built from" "$same" yes
is "it reports 9 edits and 4 copied sources" "$(grep -c 'added' "$TMP/run1.err") $(grep -c 'updated' "$TMP/run1.err")" "9 4"
for src in vf_meter.c af_ameter.c meter_common.c meter_common.h; do
    check "libavfilter/$src copied" cmp -s "$SRCDIR/filter/$src" "$TMP/t1/libavfilter/$src"
done
check "configure keeps its execute bit" test -x "$TMP/t1/configure"

# idempotent: nothing printed, no file touched
find "$TMP/t1" -type f -printf '%P %T@ %s\n' | sort > "$TMP/before"
"$integrate" "$TMP/t1" 2>"$TMP/run2.err"
is "a second run succeeds" "$?" 0
find "$TMP/t1" -type f -printf '%P %T@ %s\n' | sort > "$TMP/after"
check "a second run changes nothing (not even a timestamp)" cmp -s "$TMP/before" "$TMP/after"
is "a second run reports nothing" "$(cat "$TMP/run2.err")" ""

# a changed filter source is copied again (so make rebuilds it)
fresh "$TMP/t2"
"$integrate" "$TMP/t2" 2>/dev/null
echo "/* stale */" >> "$TMP/t2/libavfilter/vf_meter.c"
"$integrate" "$TMP/t2" 2>"$TMP/run3.err"
check "a changed source is copied again" cmp -s "$SRCDIR/filter/vf_meter.c" "$TMP/t2/libavfilter/vf_meter.c"
is "only that source" "$(cat "$TMP/run3.err")" "integrate.sh: libavfilter/vf_meter.c updated"

# a missing anchor: refused, named, nothing changed
for anchor in 'ff_vf_mestimate;' 'CONFIG_AMERGE_FILTER' '^EXTERNAL_LIBRARY_LIST=' '^enabled libmp3lame '; do
    fresh "$TMP/t3"
    for f in "${files[@]}"; do sed -i "/$anchor/d" "$TMP/t3/$f"; done
    cp -a "$TMP/t3" "$TMP/t3.orig"
    "$integrate" "$TMP/t3" >/dev/null 2>"$TMP/run4.err"
    rc=$?
    if [ "$rc" -ne 0 ] && grep -q 'anchor .* found 0 times' "$TMP/run4.err" &&
       diff -r "$TMP/t3" "$TMP/t3.orig" >/dev/null; then
        ok "anchor /$anchor/ missing: refused, named, nothing changed"
    else
        not_ok "anchor /$anchor/ missing: refused, named, nothing changed" \
            "exit $rc: $(cat "$TMP/run4.err")"
    fi
    rm -rf "$TMP/t3.orig"
done

# the declaration follows the tree's spelling
if grep -q '^extern const FFFilter ff_' "$pristine/libavfilter/allfilters.c"; then
    have=FFFilter other=AVFilter
else
    have=AVFilter other=FFFilter
fi
check "declared as $have, like the tree's filters" grep -qx "extern const $have ff_vf_meter;" "$TMP/t1/libavfilter/allfilters.c"
fresh "$TMP/t4"
sed -i "s/^extern const $have /extern const $other /" "$TMP/t4/libavfilter/allfilters.c"
"$integrate" "$TMP/t4" 2>/dev/null
check "in a tree spelling $other: declared as $other" grep -qx "extern const $other ff_af_ameter;" "$TMP/t4/libavfilter/allfilters.c"

"$integrate" /nonexistent 2>"$TMP/run5.err"
is "not a tree: refused" "$? $(cat "$TMP/run5.err")" "1 integrate.sh: '/nonexistent' is not an FFmpeg source tree (no configure)"

finish
