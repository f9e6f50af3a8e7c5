#!/bin/sh
# embed.sh FILE... — writes C source to stdout defining console_files[]
# (console.h) with the bytes of each FILE, so meter-ledgerd serves its
# console without files on disk.  Only od and sed: no xxd needed.
set -eu

n=0
for f in "$@"; do
    echo "static const unsigned char file_$n[] = {"
    od -An -v -tx1 "$f" | sed -e 's/[[:space:]]*$//' -e '/^$/d' \
        -e 's/^[[:space:]]*//' -e 's/[[:space:]][[:space:]]*/, 0x/g' -e 's/^/    0x/' \
        -e 's/$/,/'
    echo "    0x00"   # a terminating NUL, not counted in the size
    echo "};"
    n=$((n + 1))
done

echo '#include "console.h"'
echo 'const struct console_file console_files[] = {'
n=0
for f in "$@"; do
    name=${f##*/}
    case $name in
        *.html) type='text/html; charset=utf-8' ;;
        *.js)   type='text/javascript; charset=utf-8' ;;
        *.css)  type='text/css; charset=utf-8' ;;
        *.svg)  type='image/svg+xml' ;;
        *.png)  type='image/png' ;;
        *)      type='application/octet-stream' ;;
    esac
    size=$(wc -c <"$f" | tr -d ' ')
    echo "    { \"$name\", \"$type\", file_$n, $size },"
    n=$((n + 1))
done
echo '    { 0, 0, 0, 0 }'
echo '};'
