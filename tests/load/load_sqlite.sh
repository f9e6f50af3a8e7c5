#!/bin/bash
# load_sqlite.sh — tests/load/load.inc on the SQLite ledger backend.
E2E_BACKEND=sqlite
. "$(dirname "$0")/load.inc"
