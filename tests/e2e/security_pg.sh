#!/bin/bash
# security_pg.sh — tests/e2e/security.inc on the PostgreSQL ledger backend.
E2E_BACKEND=pg
. "$(dirname "$0")/security.inc"
