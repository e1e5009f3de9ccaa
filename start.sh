#!/usr/bin/env bash
# Brings up the whole Conectades stack on this machine as project-local processes
# under var/ (installing what is missing), with demo data, and prints URLs and
# credentials. Running it again is harmless.
#
#   ./start.sh            start (or keep) everything
#   ./start.sh stop       stop every process it started
#   ./start.sh status     show each service
#   ./start.sh --help     all options
#
# DATABASE_URL=postgresql://owner:pw@host:port/db ./start.sh  uses an existing server
# (an owner role that is superuser or has BYPASSRLS; the API role is created there).
set -euo pipefail
cd "$(dirname "$0")"
source infra/bootstrap.sh
case "${1:-up}" in
    stop|status|env|-h|--help) ;;
    *) bootstrap_packages; bootstrap_venv ;;
esac
if [ ! -x .venv/bin/python ]; then
    echo "nothing installed yet: run ./start.sh first" >&2
    exit 1
fi
exec .venv/bin/python -m infra.stack "$@"
