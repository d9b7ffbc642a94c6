"""A KuCoin-protocol client for the simulator's tests: its REST calls and a WebSocket peer
with bounded reads (the service's own client is not used, so the simulator is checked on its
own terms)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import websocket

from tests.support import http

LISTENING = re.compile(r"^simulator listening on http://([0-9.]+):([0-9]+)$")
PRICE = re.compile(r"^[0-9]+\.[0-9]+$")
TICK_KEYS = {
    "sequence",
    "price",
    "size",
    "bestAsk",
    "bestAskSize",
    "bestBid",
    "bestBidSize",
    "time",
}
RECV_TIMEOUT = 3.0


def request(base: str, path: str, body: object = None, *, method: str = "POST") -> tuple[int, Any]:
    return http(method, base + path, body)


def post(base: str, path: str, body: object = None) -> dict[str, Any]:
    status, reply = request(base, path, body)
    assert status == 200, (path, status, reply)
    return reply


def get_state(base: str) -> dict[str, Any]:
    status, reply = request(base, "/_sim/state", method="GET")
    assert status == 200
    return reply


def bullet(base: str) -> dict[str, Any]:
    body = post(base, "/api/v1/bullet-public")
    assert body["code"] == "200000"
    return body["data"]


def ws_url(data: dict[str, Any], connect_id: str) -> str:
    return f"{data['instanceServers'][0]['endpoint']}?token={data['token']}&connectId={connect_id}"


@dataclass
class Client:
    ws: websocket.WebSocket
    seen: list[str] = field(default_factory=list)

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def recv_text(self, timeout: float = RECV_TIMEOUT) -> str:
        self.ws.settimeout(timeout)
        text = self.ws.recv()
        assert isinstance(text, str)
        self.seen.append(text)
        return text

    def recv_until(
        self,
        match: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = RECV_TIMEOUT,
        limit: int = 500,
    ) -> dict[str, Any]:
        """The first JSON frame ``match`` accepts, skipping others (bounded)."""
        deadline = time.monotonic() + timeout
        for _ in range(limit):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            frame = json.loads(self.recv_text(remaining))
            if isinstance(frame, dict) and match(frame):
                return frame
        raise AssertionError(f"no matching frame; last seen: {self.seen[-5:]}")

    def ticks(self, symbol: str, count: int, timeout: float = RECV_TIMEOUT) -> list[dict[str, Any]]:
        topic = "/market/ticker:" + symbol
        frames = []
        for _ in range(count):
            frames.append(self.recv_until(lambda f: f.get("topic") == topic, timeout=timeout))
        return frames

    def assert_quiet(self, seconds: float) -> None:
        """Nothing at all arrives for ``seconds``."""
        self.ws.settimeout(seconds)
        with pytest.raises(websocket.WebSocketTimeoutException):
            text = self.ws.recv()
            pytest.fail(f"expected silence, got {text!r}")

    def subscribe(self, symbols: str, request_id: str = "sub-1") -> dict[str, Any]:
        self.send(
            {
                "id": request_id,
                "type": "subscribe",
                "topic": "/market/ticker:" + symbols,
                "privateChannel": False,
                "response": True,
            }
        )
        return self.recv_until(lambda f: f.get("id") == request_id)

    def close(self) -> None:
        self.ws.close(timeout=1)


Connect = Callable[..., Client]
