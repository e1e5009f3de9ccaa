#!/usr/bin/env bash
# Installs what the tests need (server packages, a virtual environment with the
# project) and runs the whole suite against real services the tests start.
# Usage: ./test.sh [pytest args]   (e.g. ./test.sh -k campaigns -x)
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
exec .venv/bin/pytest "$@"
