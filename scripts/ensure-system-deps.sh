#!/usr/bin/env bash
# Installs the system packages the tests start themselves, if absent: redis-server, and
# Debian's chromium for the browser tests (Playwright drives /usr/bin/chromium; it never
# downloads a browser). Idempotent: does nothing when both are there.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -gt 0 ] || exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${need[*]}"
$SUDO apt-get update -qq
# Ubuntu has no chromium .deb (only a snap): there the browser tests skip themselves.
if [[ " ${need[*]} " == *" chromium "* ]] && ! apt-cache show chromium >/dev/null 2>&1; then
  echo "note: no 'chromium' package in apt; the e2e browser tests will be skipped"
  need=("${need[@]/chromium/}")
fi
read -r -a need <<<"${need[*]}"
[ ${#need[@]} -gt 0 ] || exit 0
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
