#!/bin/sh
# leases_pg.sh — accounts and leases over HTTP, PostgreSQL backend, with two
# servers on one database racing for one account's minutes
# (tests/ledger/test_leases.py; a fresh database, dropped afterwards).
exec python3 "$(dirname "$0")/test_leases.py" pg
