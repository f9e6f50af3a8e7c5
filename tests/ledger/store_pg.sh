#!/bin/sh
# store_pg.sh — the ledger storage suite (test_ledger_store.c) on
# PostgreSQL, in a fresh database of its own (tests/ledger/pg.inc).
set -u
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-$SRCDIR/build}
bin=$BUILD/tests/ledger/test_ledger_store
if [ ! -x "$bin" ]; then
    echo "Bail out! $bin is not built (make check-ledger)"
    exit 1
fi
. "$SRCDIR/tests/ledger/pg.inc"
trap pg_drop_db EXIT
if ! pg_fresh_db ledger_store; then
    echo "not ok 1 - PostgreSQL is available (set LEDGER_PG_URL or run as root: scripts/start-postgres)"
    echo "1..1"
    exit 1
fi
"$bin" pg "$PG_DB_URL"
