#!/usr/bin/env bash
# Installs the system packages the tests start themselves, if absent: redis-server; Debian's
# chromium for the browser tests (Playwright drives /usr/bin/chromium; it never downloads a
# browser); prometheus + promtool for the alerting-rule tests; podman (with runc, buildah's
# storage helpers and mmdebstrap for the local stand-in base image) for the image test.
# Idempotent: does nothing when everything is there.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
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
# Debian's prometheus package enables a system service; the tests start their own on a free
# port, so one left running on :9090 would only take memory.
if [[ " ${need[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
