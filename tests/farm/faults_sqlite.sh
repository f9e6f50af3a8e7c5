#!/bin/bash
# faults_sqlite.sh — tests/farm/faults.inc on the SQLite ledger backend.
E2E_BACKEND=sqlite
. "$(dirname "$0")/faults.inc"
