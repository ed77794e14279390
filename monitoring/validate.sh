#!/bin/sh
# Validates monitoring/: a thin wrapper around `manage.py check_monitoring` once that
# command exists; until then it runs the offline checks with the real tools:
# promtool check config / check rules / test rules, amtool check-config and the routing
# of each severity, and the dashboard JSON. Exit status 0 only if every check passes.
# Usage: monitoring/validate.sh        (needs promtool and amtool: make test-tools)
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || python=python3

if [ -f "$root/manage.py" ] && (cd "$root" && "$python" manage.py help check_monitoring >/dev/null 2>&1); then
  cd "$root" && exec "$python" manage.py check_monitoring "$@"
fi

for bin in promtool amtool; do
  command -v "$bin" >/dev/null 2>&1 || { echo "FAIL $bin not found (make test-tools)"; exit 2; }
done

failures=0
check() {
  description=$1; shift
  if output=$("$@" 2>&1); then
    echo "ok   $description"
  else
    echo "FAIL $description"; echo "$output" | sed 's/^/     /'
    failures=$((failures + 1))
  fi
}

# The configs read their tokens from /run/secrets (compose secrets), which exists only
# in the containers; promtool insists the file exists, so check a copy with stand-ins.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$here/." "$work/"
mkdir "$work/secrets"
for name in prometheus.yml alertmanager.yml; do
  for secret in $(grep -o '/run/secrets/[A-Za-z0-9_.-]*' "$work/$name" | sort -u); do
    echo stand-in > "$work/secrets/$(basename "$secret")"
  done
  sed -i "s#/run/secrets/#$work/secrets/#g" "$work/$name"
done

check "prometheus.yml (promtool check config, rule files included)" promtool check config "$work/prometheus.yml"
check "rule files (promtool check rules, lint fatal)" \
  promtool check rules --lint=all --lint-fatal "$work/recording_rules.yml" "$work/alert_rules.yml"
check "alert unit tests (promtool test rules)" sh -c "promtool test rules '$work'/tests/*.yml"
check "alertmanager.yml (amtool check-config)" amtool check-config "$work/alertmanager.yml"
check "severity=critical routes to console-pages" amtool config routes test \
  --config.file="$work/alertmanager.yml" --verify.receivers=console-pages severity=critical
check "severity=warning routes to console" amtool config routes test \
  --config.file="$work/alertmanager.yml" --verify.receivers=console severity=warning
check "dashboard JSON parses" "$python" -m json.tool "$here/grafana/dashboards/investiq-overview.json"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all monitoring checks passed"
