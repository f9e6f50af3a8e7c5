#!/bin/sh
# store_sqlite.sh — the ledger storage suite (test_ledger_store.c) on SQLite.
set -u
BUILD=${BUILD:-$(cd "$(dirname "$0")/../.." && pwd)/build}
bin=$BUILD/tests/ledger/test_ledger_store
if [ ! -x "$bin" ]; then
    echo "Bail out! $bin is not built (make check-ledger)"
    exit 1
fi
exec "$bin" sqlite
