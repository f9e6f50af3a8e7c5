#!/usr/bin/env bash
# Bad command lines against a real database: each is refused with one line
# on stderr naming the problem, exit status 2 (3, 4 where the input is well
# formed but names nothing / is refused), and the database file is byte for
# byte what it was.
# shellcheck source=tests/cli/tap.inc
. "$(dirname "$0")/tap.inc"

mkdir "$TMP/d"
db=$TMP/d/meter.db
export METER_DB=$db METER_NOW=2026-03-01T12:00:00Z

succeeds "init" init --node test-node
succeeds "a pack to refer to" pack add --type general --minutes 10 --id P1 \
    --start 2026-02-01T00:00:00Z
snapshot "$db"

# refused NAME CODE PATTERN ARGS...: fails as described, file untouched.
refused() {
    fails "$@"
    unchanged "$1: database unchanged" "$db"
}

# --- times
refused "malformed --start"            2 "--start.*yesterday"  pack add --type general --minutes 5 --start yesterday
refused "--start without a zone"       2 "--start.*zone"       pack add --type general --minutes 5 --start 2026-01-01T00:00:00
refused "--start impossible date"      2 "--start"             pack add --type general --minutes 5 --start 2026-02-30T00:00:00Z
refused "--start garbage after time"   2 "--start"             pack add --type general --minutes 5 --start 2026-01-01T00:00:00Zjunk
refused "--at malformed"               2 "--at"                record --job j --output o --class general --codec h264 --width 640 --height 480 --duration-ms 1000 --at 12:00
refused "--from malformed"             2 "--from"              usage --from 2026-13-01
refused "--to malformed"               2 "--to"                jobs --to not-a-time
refused "--from after --to"            2 "--from is after --to" usage --from 2026-03-02 --to 2026-03-01

# --- minutes and other numbers
refused "minutes not a number"         2 "--minutes.*'abc'.*not a whole number" pack add --type general --minutes abc
refused "minutes with a fraction"      2 "--minutes.*'1\.5'"   pack add --type general --minutes 1.5
refused "minutes empty"                2 "--minutes"           pack add --type general --minutes ""
refused "minutes with blanks"          2 "--minutes"           pack add --type general --minutes " 5"
refused "negative minutes"             2 "--minutes.*'-5'"     pack add --type general --minutes -5
refused "zero minutes"                 2 "--minutes.*'0'"      pack add --type general --minutes 0
refused "minutes overflow int64"       2 "--minutes.*too large" pack add --type general --minutes 99999999999999999999
refused "minutes over libmeter's limit" 2 "minutes"            pack add --type general --minutes 100000000
refused "width not a number"           2 "--width.*'wide'"     record --job j --output o --class general --codec h264 --width wide --height 480 --duration-ms 1000
refused "negative height"              2 "--height.*'-480'"    record --job j --output o --class general --codec h264 --width 640 --height -480 --duration-ms 1000
refused "zero duration"                2 "--duration-ms.*'0'"  record --job j --output o --class general --codec h264 --width 640 --height 480 --duration-ms 0
refused "negative duration"            2 "--duration-ms"       record --job j --output o --class general --codec h264 --width 640 --height 480 --duration-ms -1000
refused "huge duration"                2 "--duration-ms.*range" record --job j --output o --class general --codec h264 --width 640 --height 480 --duration-ms 1000000000000000

# --- unknown names
refused "unknown pack type"            2 "--type.*'gold'"      pack add --type gold --minutes 5
refused "unknown class in record"      2 "--class.*'premium'"  record --job j --output o --class premium --codec h264 --width 640 --height 480 --duration-ms 1000
refused "unknown codec"                2 "codec.*'vp8'"        record --job j --output o --class general --codec vp8 --width 640 --height 480 --duration-ms 1000
refused "video without a size"         2 "size|width|height"   record --job j --output o --class general --codec h264 --duration-ms 1000
refused "unknown status filter"        2 "--status.*'vaild'"   pack list --status vaild
refused "unknown type filter"          2 "--type.*'x'"         usage --type x
refused "unknown format"               2 "--format.*'xml'"     --format xml pack list
refused "unknown rounding value"       2 "rounding"            config set rounding up
refused "unknown settlement value"     2 "settlement"          config set settlement weekly
refused "bad day_offset"               2 "day_offset|offset"   config set day_offset +25:00
refused "bad ratio"                    2 "ratio.*'-1'"         rates set --class general --ttype Standard.H264.8K --ratio -1
refused "ratio not a number"           2 "ratio"               rates set --class general --ttype Standard.H264.8K --ratio lots

# --- the command line itself
refused "unknown command"              2 "unknown command 'frob'"        frob
refused "unknown subcommand"           2 "unknown subcommand 'frob'"     pack frob
refused "missing subcommand"           2 "pack: missing subcommand"      pack
refused "config without subcommand"    2 "config: missing subcommand"    config
refused "unknown rates subcommand"     2 "unknown subcommand 'frob'"     rates frob
refused "unknown global option"        2 "unknown option '--frob'"       --frob pack list
refused "unknown short option"         2 "unknown option '-x'"           -x pack list
refused "unknown command option"       2 "pack add: unknown option '--colour'" pack add --type general --minutes 5 --colour red
refused "option missing its value"     2 "option '--minutes' needs a value" pack add --type general --minutes
refused "--db without a path"          2 "option '--db' needs a value"   --db
refused "--db empty"                   2 "--db: empty path"              --db "" pack list
refused "--help with a value"          2 "takes no value"                pack show --help=yes
refused "missing --type"               2 "missing --type"                pack add --minutes 5
refused "missing --minutes"            2 "missing --minutes"             pack add --type tsc
refused "record missing --job"         2 "missing --job"                 record --output o --class general --codec h264 --width 640 --height 480 --duration-ms 1000
refused "record missing --output"      2 "missing --output"              record --job j --class general --codec h264 --width 640 --height 480 --duration-ms 1000
refused "record missing --class"       2 "missing --class"               record --job j --output o --codec h264 --width 640 --height 480 --duration-ms 1000
refused "record missing --codec"       2 "missing --codec"               record --job j --output o --class general --width 640 --height 480 --duration-ms 1000
refused "record missing --duration-ms" 2 "missing --duration-ms"         record --job j --output o --class general --codec h264 --width 640 --height 480
refused "rates set missing --ratio"    2 "missing --ratio"               rates set --class general --ttype Standard.H264.8K
refused "rates unset with --ratio"     2 "--ratio does not apply"        rates unset --class general --ttype Standard.H264.8K --ratio 2
refused "pack show without an id"      2 "missing pack ID"               pack show
refused "pack show with two ids"       2 "unexpected argument 'P2'"      pack show P1 P2
refused "config set without a value"   2 "missing KEY and VALUE"         config set rounding
refused "settle with an argument"      2 "unexpected argument 'now'"     settle now
refused "jobs --sessions with --ttype" 2 "--ttype"                       jobs --sessions --ttype Audio

# --- well formed, but names nothing or is refused
refused "unknown pack"                 3 "'P9'"                          pack show P9
refused "refund of an unknown pack"    3 "'P9'"                          pack refund P9
refused "a newline in a name stays one line" 3 "'P\?9'"                 pack show $'P\n9'
refused "unknown setting"              2 "setting 'colour'"              config get colour
refused "read-only setting"            2 "node_id"                       config set node_id abc
refused "pack id taken"                4 "'P1'"                          pack add --type general --minutes 5 --id P1
refused "unfreeze of a pack not frozen" 4 "not frozen"                   pack unfreeze P1

finish
