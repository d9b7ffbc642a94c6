"""A real WebSocket client (websocket-client) with bounded waits, and the refused upgrade."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import websocket


class Client:
    """A real WebSocket client (websocket-client) with bounded waits."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.ws = websocket.create_connection(url, timeout=5, **kwargs)

    def send(self, text: str) -> None:
        self.ws.send(text)

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        self.ws.settimeout(timeout)
        return json.loads(self.ws.recv())

    def next_non_price(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame that is not a price (the feed's hand-over poll may push one at start)."""
        for _ in range(50):
            message = self.recv(timeout)
            if message["code"] != 0:
                return message
        raise AssertionError("only price frames")

    def next_price(self, timeout: float = 5.0, symbol: str | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self.recv(remaining)
            if message["code"] == 0 and (symbol is None or message["symbol"] == symbol):
                return message
        raise AssertionError("no price frame in time")

    def wait_price(self, price: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self.next_price(remaining)
            if message["data"] == price:
                return message
        raise AssertionError(f"price {price} never arrived")

    def close_code(self, timeout: float = 5.0) -> int:
        """Read until the server's close frame; its status code."""
        self.ws.settimeout(timeout)
        while True:
            opcode, frame = self.ws.recv_data_frame()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(frame.data[:2], "big")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close(timeout=1)


def refused(url: str, **kwargs: Any) -> websocket.WebSocketBadStatusException:
    """The HTTP refusal of a WebSocket upgrade that must not succeed (AssertionError if it did)."""
    try:
        ws = websocket.create_connection(url, timeout=3, **kwargs)
    except websocket.WebSocketBadStatusException as exc:
        return exc
    ws.close()
    raise AssertionError(f"the upgrade to {url} was accepted")
