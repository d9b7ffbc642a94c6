"""Observers that judge a deployment from outside while faults happen: a /ws reader thread that
checks order as frames arrive, and a poller of the Redis keys that checks they never go back."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable

import redis
import websocket

from pledge_ws.cluster import keys

Keys = tuple[str | None, dict[str, dict]]  # PRICE_KEY, and each symbol's latest tick


class Reader:
    """A /ws client read in its own thread: records every price frame, checks order as it goes.

    ``violations`` lists any frame whose seq is not above the previous one of its symbol
    (an older or repeated price); ``first_after(wall)`` is when the first price generated
    by the exchange after ``wall`` (its ``ts``) arrived here.
    """

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=5)
        self.frames: list[tuple[float, str, int, int, str]] = []  # (recv wall, symbol, seq, ts, price)
        self.violations: list[str] = []
        self.notices: list[tuple[float, str]] = []  # (recv wall, data) of code -1 frames
        self.closed: str | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last: dict[str, int] = {}
        next_ping = time.monotonic() + 5
        self.ws.settimeout(0.5)
        while not self._stop:
            if time.monotonic() >= next_ping:
                try:
                    self.ws.send("ping")
                except Exception as exc:
                    self.closed = repr(exc)
                    return
                next_ping = time.monotonic() + 5
            try:
                raw = self.ws.recv()
            except Exception as exc:
                if "timed out" in str(exc) or type(exc).__name__ == "WebSocketTimeoutException":
                    continue
                self.closed = repr(exc)
                return
            message = json.loads(raw)
            if message.get("code") == -1:
                self.notices.append((time.time(), message.get("data")))
            if message.get("code") != 0:
                continue
            symbol, seq = message["symbol"], int(message["seq"])
            if seq <= last.get(symbol, -1):
                self.violations.append(f"{symbol}: seq {seq} after {last[symbol]}")
            last[symbol] = max(seq, last.get(symbol, -1))
            self.frames.append((time.time(), symbol, seq, message["ts"], message["data"]))

    def first_after(self, wall: float) -> float | None:
        for received, _symbol, _seq, ts, _price in list(self.frames):
            if ts / 1000 > wall:
                return received
        return None

    def has_seq(self, symbol: str, seq: str | int) -> bool:
        return any(s == symbol and q == int(seq) for _received, s, q, _ts, _price in list(self.frames))

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        with contextlib.suppress(Exception):
            self.ws.close(timeout=1)


class KeyPoller:
    """Reads the latest-price keys every 50 ms in a thread; records any key that goes back.

    ``read()`` returns (PRICE_KEY value, {symbol: tick dict}) or raises while Redis is away.
    """

    def __init__(self, read: Callable[[], Keys], symbols: tuple[str, ...], interval: float = 0.05) -> None:
        self.read, self.symbols, self.interval = read, symbols, interval
        self.samples = 0
        self.errors = 0
        self.phase = ""  # set by the test; each violation is recorded with it
        self.violations: list[str] = []
        self.by_phase: dict[str, list[str]] = {}
        self.last_sample = (0.0, False)  # (monotonic time, some key below the highest seen)
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last: dict[str, int] = {}
        while not self._stop:
            try:
                primary, ticks = self.read()
            except Exception:
                self.errors += 1
                time.sleep(self.interval)
                continue
            self.samples += 1
            behind = False
            for symbol, tick in ticks.items():
                seq = int(tick["seq"])
                if seq < last.get(symbol, -1):
                    behind = True
                    self._violation(f"{symbol}: key went back from seq {last[symbol]} to {seq}")
                last[symbol] = max(seq, last.get(symbol, -1))
            self.last_sample = (time.monotonic(), behind)
            first = ticks.get(self.symbols[0])
            if first is not None and primary is not None and primary != first["price"]:
                self._violation(f"primary key {primary!r} != {first['price']!r} (read together)")
            time.sleep(self.interval)

    def _violation(self, text: str) -> None:
        self.by_phase.setdefault(self.phase, []).append(text)
        if not self.phase.startswith("allowed:"):
            self.violations.append(text)

    def caught_up_since(self, since: float) -> bool:
        """A sample read after ``since`` (monotonic) found every key at the highest seen."""
        at, behind = self.last_sample
        return at > since and not behind

    def stop(self) -> None:
        self._stop = True
        self._thread.join(2)


def read_keys(client: redis.Redis, symbols: tuple[str, ...], primary_key: str = "plgr_price") -> Keys:
    """One MGET (atomic) of the primary key and every pledge_ws:price:<SYMBOL>."""
    values = client.mget([primary_key, *(keys.price_key(s) for s in symbols)])
    ticks = {s: json.loads(v) for s, v in zip(symbols, values[1:], strict=True) if v is not None}
    return values[0], ticks
