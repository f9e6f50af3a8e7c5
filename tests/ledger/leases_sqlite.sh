#!/bin/sh
# leases_sqlite.sh — accounts and leases over HTTP, SQLite backend
# (tests/ledger/test_leases.py).
exec python3 "$(dirname "$0")/test_leases.py" sqlite
