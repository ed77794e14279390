#!/bin/sh
# Starts Alertmanager with alertmanager.yml rendered from the environment, because
# Alertmanager itself reads no environment variables (compose.yaml's entrypoint).
#
#   SLACK_PAGER_WEBHOOK_URL, DISCORD_PAGER_WEBHOOK_URL  critical alerts (receiver "pager")
#   SLACK_CHAT_WEBHOOK_URL, DISCORD_CHAT_WEBHOOK_URL    warnings (receiver "chat")
#   CONSOLE_URL                                         the link in every message
#
# A URL left empty leaves its block of alertmanager.yml commented out: that channel sends
# nothing (and fails nothing). The rendered config and templates live in
# ALERTMANAGER_RUNTIME_DIR (mode 700, never in git, never in the mounted folder).
# Arguments are passed on to Alertmanager; --render-only prints the rendered config's
# path and stops (the tests and `docker compose run` use it to look before starting).
set -eu

source_dir=${ALERTMANAGER_CONFIG_DIR:-/etc/alertmanager}
runtime=${ALERTMANAGER_RUNTIME_DIR:-/tmp/investiq-alertmanager}
binary=${ALERTMANAGER_BIN:-/bin/alertmanager}
console_url=${CONSOLE_URL:-http://127.0.0.1:8000/}

fail() {
  echo "alertmanager-entrypoint: $*" >&2
  exit 2
}

# A URL is pasted into single-quoted YAML and a Go template: refuse what would end either.
check_url() {
  case "$2" in
    http://* | https://*) ;;
    *) fail "$1 must start with https:// (or http://), got something else" ;;
  esac
  case "$2" in
    *"'"* | *" "* | *"{{"* | *"}}"*) fail "$1 contains a quote, a space or {{ }}: not a webhook URL" ;;
  esac
  [ "$(printf '%s' "$2" | wc -l)" -eq 0 ] || fail "$1 spans several lines"
}

for name in SLACK_PAGER_WEBHOOK_URL SLACK_CHAT_WEBHOOK_URL DISCORD_PAGER_WEBHOOK_URL DISCORD_CHAT_WEBHOOK_URL; do
  eval "value=\${$name:-}"
  [ -z "$value" ] || check_url "$name" "$value"
done
check_url CONSOLE_URL "$console_url"

umask 077
rm -rf "$runtime"
mkdir -p "$runtime"
cp -R "$source_dir/templates" "$runtime/templates"

# awk reads the values from ENVIRON and replaces with index/substr, so no character of a
# URL is taken as a pattern or a replacement code (as sed's & and \ would be).
awk '
  function replace(line, placeholder, value,    at) {
    at = index(line, placeholder)
    return at ? substr(line, 1, at - 1) value substr(line, at + length(placeholder)) : line
  }
  /^[ ]*# >>> [A-Z_]+$/ { block = $NF; enabled = ENVIRON[block] != ""; print; next }
  /^[ ]*# <<< [A-Z_]+$/ { block = ""; print; next }
  block != "" && enabled { sub(/# /, ""); print replace($0, "__URL__", ENVIRON[block]); next }
  { print }
' "$source_dir/alertmanager.yml" >"$runtime/alertmanager.yml"

CONSOLE_URL=$console_url awk '
  /define "investiq.console_url"/ { print "{{ define \"investiq.console_url\" }}" ENVIRON["CONSOLE_URL"] "{{ end }}"; next }
  { print }
' "$source_dir/templates/investiq.tmpl" >"$runtime/templates/investiq.tmpl"

if [ "${1:-}" = "--render-only" ]; then
  echo "$runtime/alertmanager.yml"
  exit 0
fi
exec "$binary" --config.file="$runtime/alertmanager.yml" "$@"
