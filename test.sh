#!/usr/bin/env bash
# Installs what the tests need (server packages, a virtual environment with the
# project) and runs the whole suite against real services the tests start.
# Usage: ./test.sh [pytest args]   (e.g. ./test.sh -k campaigns -x)
#        TEST_WORKERS=0 ./test.sh -x   (one process: -x stops at the first failure at once)
set -euo pipefail
cd "$(dirname "$0")"
source infra/bootstrap.sh
bootstrap_packages
bootstrap_venv
bootstrap_browser
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
# Two processes (pytest-xdist), each with its own PostgreSQL, Redis and API, each
# taking whole modules (module fixtures stay per module): half the wall time on two
# cores, where one process left a core idle waiting for servers. TEST_WORKERS=0
# runs in one process; `-n N` among the arguments overrides it too.
exec .venv/bin/pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
