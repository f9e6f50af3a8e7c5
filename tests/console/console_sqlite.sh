#!/bin/sh
# console_sqlite.sh — the ledger console in headless chromium against a
# real meter-ledgerd (SQLite backend): tests/console/test_console.py.
exec python3 "$(dirname "$0")/test_console.py"
