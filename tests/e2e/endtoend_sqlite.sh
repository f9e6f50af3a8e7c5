#!/bin/bash
# endtoend_sqlite.sh — tests/e2e/endtoend.inc on the SQLite ledger backend.
E2E_BACKEND=sqlite
. "$(dirname "$0")/endtoend.inc"
