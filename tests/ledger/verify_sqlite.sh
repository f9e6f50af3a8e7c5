#!/bin/sh
# verify_sqlite.sh — meter-ledgerd verify catches each kind of violation,
# SQLite backend (tests/ledger/test_verify.py).
exec python3 "$(dirname "$0")/test_verify.py" sqlite
