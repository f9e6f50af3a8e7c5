#!/bin/sh
# limits_pg.sh — what strangers and slow clients can make meter-ledgerd
# hold, PostgreSQL backend (tests/ledger/test_limits.py; a fresh database,
# dropped afterwards).
exec python3 "$(dirname "$0")/test_limits.py" pg
