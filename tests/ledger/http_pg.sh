#!/bin/sh
# http_pg.sh — meter-ledgerd over HTTP on loopback, PostgreSQL backend
# (tests/ledger/test_http.py; a fresh database, dropped afterwards).
exec python3 "$(dirname "$0")/test_http.py" pg
