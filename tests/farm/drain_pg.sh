#!/bin/bash
# drain_pg.sh — tests/farm/drain.inc on the PostgreSQL ledger backend.
E2E_BACKEND=pg
. "$(dirname "$0")/drain.inc"
