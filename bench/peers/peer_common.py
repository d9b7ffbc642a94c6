"""What both peers share: configuration from the same env as pledge-ws, the Go-compatible
frames, and the KuCoin bullet request (the simulator's real protocol, no shortcuts)."""

from __future__ import annotations

import json
import os
import time
import urllib.request

API = os.environ.get("KUCOIN_API_URL", "http://127.0.0.1:9000").rstrip("/")
SYMBOL = os.environ.get("SYMBOLS", "PLGR-USDT").split(",")[0].strip()
HEARTBEAT = float(os.environ.get("HEARTBEAT_TIMEOUT", "20"))
PINGS = {"ping", '"ping"', "'ping'"}
PONG = json.dumps({"code": 1, "data": "pong"}, separators=(",", ":"))
TIMEOUT_FRAME = json.dumps({"code": -1, "data": "heartbeat timeout"}, separators=(",", ":"))


def bullet(connect_prefix: str) -> tuple[str, float]:
    """POST bullet-public; return the tokenised endpoint URL and ping interval (s)."""
    req = urllib.request.Request(API + "/api/v1/bullet-public", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        data = json.load(resp)["data"]
    server = data["instanceServers"][0]
    url = f"{server['endpoint']}?token={data['token']}&connectId={connect_prefix}-{time.time_ns()}"
    return url, server.get("pingInterval", 18000) / 1000.0
