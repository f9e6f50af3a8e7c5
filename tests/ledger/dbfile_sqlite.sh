#!/bin/sh
# dbfile_sqlite.sh — the SQLite ledger file is its owner's alone: created
# 0600 with its -wal/-shm, a looser one refused (tests/ledger/test_dbfile.py).
exec python3 "$(dirname "$0")/test_dbfile.py"
