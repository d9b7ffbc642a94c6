#!/usr/bin/env bash
# The whole chain offline: simulator (the exchange) on :9000, pledge-ws on :${PORT:-8000}.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pledge-ws-simulator --port 9000 --rate "${SIM_RATE:-2}" &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT
sleep 1
KUCOIN_API_URL=http://127.0.0.1:9000 SYMBOLS="${SYMBOLS:-PLGR-USDT,BTC-USDT,ETH-USDT}" \
  .venv/bin/pledge-ws
