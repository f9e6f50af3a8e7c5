#!/usr/bin/env bash
# killstorm.sh — 100 SIGKILLs into 8 concurrent metered ffmpeg jobs, then
# reap: see killstorm.py (the storm needs a program that watches eight jobs
# at once; the TAP comes from there).
if ! command -v python3 >/dev/null 2>&1; then
    echo "Bail out! python3 is needed (scripts/install-deps)"
    exit 1
fi
exec python3 "$(dirname "$0")/killstorm.py"
