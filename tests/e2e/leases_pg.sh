#!/bin/bash
# leases_pg.sh — tests/e2e/leases.inc on the PostgreSQL ledger backend.
E2E_BACKEND=pg
. "$(dirname "$0")/leases.inc"
