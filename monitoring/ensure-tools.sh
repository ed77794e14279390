#!/bin/sh
# Installs the tools the monitoring tests run (promtool, amtool, prometheus,
# prometheus-alertmanager, and caddy for the TLS proxy) from Debian when any is missing. Needs root and apt-get;
# elsewhere it only says so, and those tests skip (or fail under INVESTIQ_REQUIRE_SERVICES=1).
set -eu

missing=""
for bin in promtool amtool prometheus prometheus-alertmanager caddy; do
  command -v "$bin" >/dev/null 2>&1 || missing="$missing $bin"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "monitoring tests need:$missing (Debian: apt-get install --no-install-recommends prometheus prometheus-alertmanager caddy)" >&2
  exit 0
fi

# --no-install-recommends: otherwise node-exporter and 20+ packages come along.
install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    -o DPkg::Lock::Timeout=600 prometheus prometheus-alertmanager caddy
}
install || { apt-get update -o DPkg::Lock::Timeout=600 && install; }
