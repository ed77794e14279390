#!/bin/sh
# Validates the monitoring chain: a thin wrapper around `manage.py check_monitoring`
# (the original InvestIQ validate.sh, now a Django command with tests).
#   monitoring/validate.sh --static-only   files, promtool/amtool, metric names, compose
#   monitoring/validate.sh                 also the running Prometheus, Alertmanager,
#                                          Grafana (GRAFANA_URL) and the app (APP_URL)
# Exit status 0 only if no check FAILs. Needs the venv (make install) and, for the
# tool checks, promtool and amtool (make test-tools).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || python=python3
cd "$root"
exec "$python" manage.py check_monitoring "$@"
