#!/bin/sh
# Thin wrapper: tests/e2e/run.sh [--impl c|rust] [-k NAME] [--keep] ...  (see run.py --help)
exec python3 "$(dirname "$0")/run.py" "$@"
