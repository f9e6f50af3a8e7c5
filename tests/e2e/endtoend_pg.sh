#!/bin/bash
# endtoend_pg.sh — tests/e2e/endtoend.inc on the PostgreSQL ledger backend.
E2E_BACKEND=pg
. "$(dirname "$0")/endtoend.inc"
