#!/usr/bin/env bash
# Set up the machine (idempotent) and run the whole test suite: lint, then pytest with every marker
# (db tests start and stop their own PostgreSQL + TimescaleDB cluster; slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
bash scripts/typecheck.sh
bash scripts/docs.sh          # the API documentation site (build/docs), warnings fail it
mkdir -p test-artifacts
# two workers (pytest-xdist, a file per worker at a time): each starts its own PostgreSQL cluster (tests/conftest.py)
.venv/bin/python -m pytest -p no:cacheprovider -n "${WATTBILL_TEST_WORKERS:-2}" --dist loadfile "$@"
