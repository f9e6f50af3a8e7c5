#!/bin/bash
# drain_sqlite.sh — tests/farm/drain.inc on the SQLite ledger backend.
E2E_BACKEND=sqlite
. "$(dirname "$0")/drain.inc"
