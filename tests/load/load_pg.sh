#!/bin/bash
# load_pg.sh — tests/load/load.inc on the PostgreSQL ledger backend.
E2E_BACKEND=pg
. "$(dirname "$0")/load.inc"
