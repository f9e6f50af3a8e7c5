#!/bin/sh
# migrate_sqlite.sh — a schema-1 ledger database (made by the release that wrote
# it) migrates and keeps serving, sqlite backend (tests/ledger/test_migrate.py).
exec python3 "$(dirname "$0")/test_migrate.py" sqlite
