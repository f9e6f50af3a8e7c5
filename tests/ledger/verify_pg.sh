#!/bin/sh
# verify_pg.sh — meter-ledgerd verify catches each kind of violation,
# PostgreSQL backend (tests/ledger/test_verify.py).
exec python3 "$(dirname "$0")/test_verify.py" pg
