#!/usr/bin/env bash
# The tests: set up, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# a throwaway PostgreSQL server for the storage tests (they skip, saying why, when none can be had)
ADVISOR_TEST_POSTGRES=${ADVISOR_TEST_POSTGRES:-$(bash scripts/postgres.sh || true)}
export ADVISOR_TEST_POSTGRES
exec .venv/bin/python -m pytest -q "$@"
