#!/bin/bash
# faults_pg.sh — tests/farm/faults.inc on the PostgreSQL ledger backend.
E2E_BACKEND=pg
. "$(dirname "$0")/faults.inc"
