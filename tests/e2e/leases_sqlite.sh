#!/bin/bash
# leases_sqlite.sh — tests/e2e/leases.inc on the SQLite ledger backend.
E2E_BACKEND=sqlite
. "$(dirname "$0")/leases.inc"
