#!/bin/sh
# limits_sqlite.sh — what strangers and slow clients can make meter-ledgerd
# hold, SQLite backend (tests/ledger/test_limits.py).
exec python3 "$(dirname "$0")/test_limits.py" sqlite
