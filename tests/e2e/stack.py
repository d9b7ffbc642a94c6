"""The page tests' stack (redis-server, the simulator with no random ticks, gunicorn serving
the page) and the pure rules the page's text must follow (the change, the clock)."""

from __future__ import annotations

import random
import time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tests.support import RedisServer, Service, Simulator, wait_until

PRIMARY, OTHER = "PLGR-USDT", "BTC-USDT"
HEARTBEAT_TIMEOUT = 4  # seconds; the page pings every quarter of it


class Stack:
    """redis-server + simulator + gunicorn; the service can be replaced on the same port."""

    def __init__(self) -> None:
        self.redis = RedisServer().start()
        self.sim = Simulator(rate=0)
        self.env = {
            "KUCOIN_API_URL": self.sim.url,
            "REDIS_URL": self.redis.url,
            "SYMBOLS": f"{PRIMARY},{OTHER}",
            "HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        }
        self.service = Service(self.env)
        self.service.wait_ready()

    @property
    def url(self) -> str:
        return self.service.url

    def push(self, symbol: str, price: str) -> None:
        """Set a price in the simulator and wait until the service holds it."""
        self.sim.set_price(symbol, price)
        wait_until(lambda: self.latest(symbol) == price, 5, what=f"{symbol} {price} at the service")

    def latest(self, symbol: str) -> str | None:
        status, body = self.service.get(f"/price?symbol={symbol}")
        return body["price"] if status == 200 else None

    def history(self, symbol: str) -> list[dict[str, Any]]:
        status, body = self.service.get(f"/price/history?symbol={symbol}&limit=1000")
        assert status == 200, body
        return body["ticks"]

    def restart_service(self) -> None:
        port = self.service.port
        self.service.stop()
        self.service = Service(self.env, port=port)

    def stop(self) -> None:
        for part in (self.service, self.sim, self.redis):
            part.stop()


def expected_change(first: str, last: str) -> tuple[str, str]:
    """The change as the page must show it: exact difference, percent rounded to 2 places."""
    a, b = Decimal(first), Decimal(last)
    diff = b - a
    pct = (diff * 100 / a).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "+" if diff > 0 else "-" if diff < 0 else ""
    pct_text = f"{sign}{abs(pct):f}%" if pct or not diff else f"{sign}<0.01%"
    return f"{sign}{abs(diff):f}", pct_text


def clock_ms(ts: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts / 1000)) + f".{ts % 1000:03d}"


def random_walk(start: str, steps: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    value = Decimal(start)
    quantum = Decimal(1).scaleb(Decimal(start).as_tuple().exponent)
    out = []
    for _ in range(steps):
        value = max(quantum, value + quantum * rng.choice([-3, -2, -1, -1, 0, 1, 1, 2, 3, 4]))
        out.append(str(value.quantize(quantum)))
    return out
