#!/bin/sh
# Builds ffmpeg and ffprobe with the meter/ameter filters; run by
# filter/ffmpeg.mk (`make ffmpeg`), which passes everything in the
# environment (absolute paths):
#
#   FF_BUILD     directory this script owns: fetched source, FFmpeg's
#                out-of-tree build (obj-<tree name>/), logs
#   FF_BINDIR    where ffmpeg and ffprobe are installed
#   FF_SRC       an FFmpeg source tree to use (edited in place by
#                integrate.sh), or empty: fetch Debian's source of FF_SUITE
#   FF_SUITE     bookworm | trixie | unstable
#   FF_DL        tarball cache for scripts/fetch-ffmpeg
#   LIBMETER_A   the static libmeter ffmpeg links (relinked when it changes)
#   LIBMETER_PC  libmeter-uninstalled.pc, for the header and the libraries
#                (translated into FF_BUILD/pkgconfig/libmeter.pc, see below)
#   CC, CCACHE, SANITIZE, JOBS, SRCDIR
#
# Steps, each skipped when there is nothing to do: fetch, integrate (copies
# changed filter sources), configure (again only when the configure line,
# FFmpeg's configure script or libmeter's pc file changed), make, install.
set -eu

me=build-ffmpeg
die() { echo "$me: $*" >&2; exit 1; }
say() { echo "$me: $*" >&2; }

: "${FF_BUILD:?}" "${FF_BINDIR:?}" "${FF_SUITE:=bookworm}" "${FF_DL:?}"
: "${LIBMETER_A:?}" "${LIBMETER_PC:?}" "${SRCDIR:?}"
FF_SRC=${FF_SRC:-}
CC=${CC:-cc}
CCACHE=${CCACHE:-}
SANITIZE=${SANITIZE:-}
JOBS=${JOBS:-2}

[ -f "$LIBMETER_A" ] || die "$LIBMETER_A missing (build libmeter first)"
[ -f "$LIBMETER_PC" ] || die "$LIBMETER_PC missing (build libmeter first)"
mkdir -p "$FF_BUILD" "$FF_BINDIR"

# ---- the source tree
if [ -n "$FF_SRC" ]; then
    [ -f "$FF_SRC/libavfilter/allfilters.c" ] || die "--ffmpeg-src '$FF_SRC' is not an FFmpeg source tree"
    tree=$(cd "$FF_SRC" && pwd)
else
    record=$FF_BUILD/source-$FF_SUITE
    tree=
    [ -f "$record" ] && tree=$(cat "$record")
    if [ -z "$tree" ] || [ ! -f "$tree/.ffmeter-unpacked" ]; then
        tree=$("$SRCDIR/scripts/fetch-ffmpeg" --cache "$FF_DL" "$FF_SUITE" "$FF_BUILD/src") ||
            die "could not get FFmpeg's source for '$FF_SUITE'"
        printf '%s\n' "$tree" > "$record"
    fi
fi
if [ -f "$tree/config.h" ] || [ -f "$tree/ffbuild/config.mak" ]; then
    die "$tree was configured in place; run 'make distclean' there first (ffmeter builds out of tree)"
fi
name=$(basename "$tree")
obj=$FF_BUILD/obj-$name
mkdir -p "$obj"

# ---- filters into the tree
"$SRCDIR/filter/integrate.sh" "$tree"

# ---- libmeter as FFmpeg's configure must see it
# FFmpeg's configure passes pkg-config's Libs to the linker before the test
# object unless they look like -l…, so an archive path (what an uninstalled
# pc file naturally says) would never resolve: it is rewritten to
# -L<dir> -l:<archive>.  FFmpeg also adds a library's Cflags to every
# compile line, so meter.h alone is copied to an include directory of its
# own instead of exposing libmeter's source directory (and its internal.h).
pcdir=$FF_BUILD/pkgconfig
incdir=$FF_BUILD/include
mkdir -p "$pcdir" "$incdir"
libs=$(PKG_CONFIG_PATH=$(dirname "$LIBMETER_PC") pkg-config --libs libmeter) ||
    die "pkg-config cannot read libmeter from $LIBMETER_PC"
cflags=$(PKG_CONFIG_PATH=$(dirname "$LIBMETER_PC") pkg-config --cflags libmeter)
version=$(PKG_CONFIG_PATH=$(dirname "$LIBMETER_PC") pkg-config --modversion libmeter)
header=
new_cflags="-I$incdir"
for f in $cflags; do
    case "$f" in
        -I*) [ -f "${f#-I}/meter.h" ] && [ -z "$header" ] && header=${f#-I}/meter.h && continue ;;
    esac
    new_cflags="$new_cflags $f"
done
[ -n "$header" ] || die "meter.h not found in libmeter's Cflags ($cflags)"
cmp -s "$header" "$incdir/meter.h" || cp "$header" "$incdir/meter.h"
new_libs=
for f in $libs; do
    case "$f" in
        */lib*.a) f="-L$(dirname "$f") -l:$(basename "$f")" ;;
    esac
    new_libs="$new_libs $f"
done
case "$new_libs" in
    *"-L$(dirname "$LIBMETER_A") -l:$(basename "$LIBMETER_A")"*) ;;
    *) die "libmeter's pc file ($LIBMETER_PC) does not link $LIBMETER_A statically (Libs:$libs)" ;;
esac
pc="Name: libmeter
Description: ffmeter's libmeter, static, for FFmpeg (from $LIBMETER_PC)
Version: $version
Cflags: $new_cflags
Libs:$new_libs"
[ "$(cat "$pcdir/libmeter.pc" 2>/dev/null)" = "$pc" ] || printf '%s\n' "$pc" > "$pcdir/libmeter.pc"
PKG_CONFIG_PATH=$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH

# ---- configure
# The AV1 encoder: SVT-AV1 when the system's is recent enough for this
# tree's configure, else libaom.
svt_min=$(sed -n 's/.*require_pkg_config libsvtav1 "SvtAv1Enc >= \([0-9.]*\)".*/\1/p' "$tree/configure" | head -n 1)
if pkg-config --atleast-version="${svt_min:-0}" SvtAv1Enc 2>/dev/null; then
    av1=--enable-libsvtav1
else
    av1=--enable-libaom
fi

cc=$CC
[ -n "$CCACHE" ] && cc="$CCACHE $CC"
set -- --enable-gpl --enable-libx264 --enable-libx265 --enable-libdav1d "$av1" \
    --enable-libopus --enable-libmp3lame --enable-libmeter \
    --enable-static --disable-shared --disable-doc --disable-ffplay \
    --cc="$cc"
[ -n "$SANITIZE" ] && set -- "$@" --extra-ldflags="$SANITIZE"

signature=$(
    printf 'tree=%s\n' "$tree"
    printf 'arg=%s\n' "$@"
    printf 'configure=%s\n' "$(cksum < "$tree/configure")"
    printf 'pc=%s\n' "$pc"
)
stamp=$obj/.ffmeter-configured
if [ ! -f "$obj/ffbuild/config.mak" ] || [ ! -f "$stamp" ] ||
   [ "$(cat "$stamp")" != "$signature" ]; then
    say "configuring $name in $obj (log: $obj/ffmeter-configure.log)"
    rm -f "$stamp"
    if ! (cd "$obj" && "$tree/configure" "$@") > "$obj/ffmeter-configure.log" 2>&1; then
        tail -n 15 "$obj/ffmeter-configure.log" >&2
        die "FFmpeg's configure failed (missing -dev package? run scripts/install-deps; full log $obj/ffmeter-configure.log, details $obj/ffbuild/config.log)"
    fi
    printf '%s\n' "$signature" > "$stamp"
fi

# ---- build
# FFmpeg's Makefile does not know libmeter.a: relink when it is newer.
for p in ffmpeg ffprobe; do
    if [ -f "$obj/${p}_g" ] && [ -n "$(find "$LIBMETER_A" -newer "$obj/${p}_g")" ]; then
        rm -f "$obj/${p}_g" "$obj/$p"
    fi
done
# Our own -j, outside any parent jobserver (the top-level make is often run
# without -j; FFmpeg alone is minutes of compiling).
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$obj" -j"$JOBS" ffmpeg ffprobe ||
    die "building FFmpeg failed (in $obj)"

# ---- install, only what changed (keeps the binaries' timestamps otherwise)
for p in ffmpeg ffprobe; do
    if ! cmp -s "$obj/$p" "$FF_BINDIR/$p"; then
        cp "$obj/$p" "$FF_BINDIR/.$p.tmp"
        mv -f "$FF_BINDIR/.$p.tmp" "$FF_BINDIR/$p"
        say "installed $FF_BINDIR/$p"
    fi
done
for f in meter ameter; do
    "$FF_BINDIR/ffmpeg" -hide_banner -h filter=$f 2>&1 | grep -q "^Filter $f\$" ||
        die "$FF_BINDIR/ffmpeg has no $f filter"
done
# Which tree the binaries come from (tests/filter/integration.sh reads it).
[ "$(cat "$FF_BINDIR/.ffmpeg-source" 2>/dev/null)" = "$tree" ] ||
    printf '%s\n' "$tree" > "$FF_BINDIR/.ffmpeg-source"
