#!/usr/bin/env bash
# Lint, then run the whole test suite on two workers.
source "$(dirname "$0")/env.sh"
ruff check .
python -m pytest -n 2 -q "$@"
