#!/bin/bash
# security_sqlite.sh — tests/e2e/security.inc on the SQLite ledger backend.
E2E_BACKEND=sqlite
. "$(dirname "$0")/security.inc"
