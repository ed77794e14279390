#!/bin/sh
# Installs Debian's Chromium for the console's browser tests (Playwright drives
# /usr/bin/chromium: `playwright install` downloads from a CDN, which CI machines cannot
# reach). Needs root and apt-get; elsewhere it only says so, and those tests skip (or
# fail under INVESTIQ_REQUIRE_SERVICES=1).
set -eu

[ -x /usr/bin/chromium ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "console browser tests need /usr/bin/chromium (Debian: apt-get install --no-install-recommends chromium)" >&2
  exit 0
fi

# --no-install-recommends: the browser alone, without fonts and desktop integration extras.
install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    -o DPkg::Lock::Timeout=600 chromium
}
install || { apt-get update -o DPkg::Lock::Timeout=600 && install; }
