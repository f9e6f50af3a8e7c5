#!/bin/sh
# migrate_pg.sh — a schema-1 ledger database (made by the release that wrote
# it) migrates and keeps serving, pg backend (tests/ledger/test_migrate.py).
exec python3 "$(dirname "$0")/test_migrate.py" pg
