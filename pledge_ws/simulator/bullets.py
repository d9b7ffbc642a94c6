"""Bullets and tokens, without I/O: what ``POST /api/v1/bullet-public`` hands out."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from typing import Any

from pledge_ws.simulator.model import MAX_OUTSTANDING_TOKENS

# A path the simulator's HTTP server refuses to upgrade: the "dead" first instanceServer.
DEAD_ENDPOINT = "/dead-endpoint"


class Tokens:
    """Single-use connect tokens; the oldest are forgotten beyond a bound."""

    def __init__(self, limit: int = MAX_OUTSTANDING_TOKENS) -> None:
        self._tokens: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def issue(self) -> str:
        token = secrets.token_urlsafe(48)
        self._tokens[token] = None
        while len(self._tokens) > self._limit:
            self._tokens.popitem(last=False)
        return token

    def consume(self, token: str) -> bool:
        """True once for an issued token, then never again."""
        return self._tokens.pop(token, False) is None


def bullet_body(token: str, host: str, paths: tuple[str, ...], ping_interval_ms: int, ping_timeout_ms: int) -> dict:
    """The bullet as KuCoin answers it, one ``instanceServers`` entry per path on ``host``."""
    servers: list[dict[str, Any]] = [
        {
            "endpoint": f"ws://{host}{path}",
            "encrypt": False,
            "protocol": "websocket",
            "pingInterval": ping_interval_ms,
            "pingTimeout": ping_timeout_ms,
        }
        for path in paths
    ]
    return {"code": "200000", "data": {"token": token, "instanceServers": servers}}
