"""Helpers for the recovery tests: a fast price setter, raw upgrades, frame collection."""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any

from tests.support import Client, Simulator


class Prices:
    """Sets simulator prices over one keep-alive HTTP connection; remembers the series it made."""

    def __init__(self, sim: Simulator) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
        self.conn.connect()
        # Headers and body go out as two writes: without this, each request waits out a delayed ACK.
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.series: dict[str, list[tuple[str, str]]] = {}  # symbol -> [(seq, price)]

    def set(self, symbol: str, price: str) -> str:
        self.conn.request("POST", "/_sim/price", json.dumps({"symbol": symbol, "price": price}))
        reply = json.loads(self.conn.getresponse().read())
        assert reply["ok"], reply
        self.series.setdefault(symbol, []).append((reply["sequence"], reply["price"]))
        return reply["sequence"]

    def walk(self, symbol: str, count: int, start: int = 2700) -> list[tuple[str, str]]:
        """``count`` new prices, each different from the one before."""
        made = []
        for n in range(count):
            price = f"0.00{start + (n % 2000):04d}" if symbol == "PLGR-USDT" else f"{60000 + n % 5000}.5"
            self.set(symbol, price)
            made.append(self.series[symbol][-1])
        return made

    def close(self) -> None:
        self.conn.close()


def collect(client: Client, want: dict[str, int], timeout: float = 10.0) -> list[dict[str, Any]]:
    """Frames (codes 0 and 2) until ``want[symbol]`` price frames of each symbol came."""
    got: dict[str, int] = dict.fromkeys(want, 0)
    frames = []
    deadline = time.monotonic() + timeout
    while any(got[s] < n for s, n in want.items()):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; got {got} of {want}: {frames[-5:]}"
        frame = client.recv(remaining)
        if frame["code"] in (0, 2):
            frames.append(frame)
        if frame["code"] == 0 and frame["symbol"] in got:
            got[frame["symbol"]] += 1
    return frames


def split(frames: list[dict[str, Any]], symbol: str) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The status frames and the (seq, price) series of ``symbol``, in arrival order."""
    status = [f for f in frames if f["code"] == 2 and f["symbol"] == symbol]
    prices = [(f["seq"], f["data"]) for f in frames if f["code"] == 0 and f["symbol"] == symbol]
    return status, prices
