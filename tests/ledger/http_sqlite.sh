#!/bin/sh
# http_sqlite.sh — meter-ledgerd over HTTP on loopback, SQLite backend
# (tests/ledger/test_http.py).
exec python3 "$(dirname "$0")/test_http.py" sqlite
