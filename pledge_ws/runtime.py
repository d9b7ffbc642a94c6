"""Wires the pieces of one worker process together and owns their greenlets.

Nothing starts at import or construction: gunicorn forks workers first, and a greenlet or
socket created before the fork would be shared by every worker. ``start()`` runs in each
worker after the fork (see ``gunicorn.conf.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent

from pledge_ws.config import Settings
from pledge_ws.feed import ExchangeFeed
from pledge_ws.hub import Hub
from pledge_ws.metrics import Metrics
from pledge_ws.protocol import CLOSE_GOING_AWAY, close_frame
from pledge_ws.store import PriceBook, RedisWriter, connect_redis
from pledge_ws.ticks import SequenceGuard, Tick, relative_jump

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.book = PriceBook()
        self.guard = SequenceGuard()
        self.hub = Hub(settings.symbols, self.metrics, settings.slow_client_timeout)
        self.feed = ExchangeFeed(settings.kucoin_api_url, settings.symbols, self.on_exchange_tick, self.metrics)
        self.redis: RedisWriter | None = None
        if settings.redis_url:
            self.redis = RedisWriter(
                connect_redis(settings.redis_url),
                settings.primary_symbol,
                settings.price_key,
                self.metrics,
                self.book,
                url=settings.redis_url,
            )
        self.clients_per_ip: dict[str, int] = {}
        self.shutting_down = False
        self._greenlets: list[gevent.Greenlet] = []
        self._last_tick_wall: float | None = None
        self.metrics.last_tick_age.set_function(self._last_tick_age)

    # -- the tick path --------------------------------------------------------------------

    def on_exchange_tick(self, tick: Tick) -> None:
        """Called by the feed greenlet for each parsed tick; must never block."""
        if not self.guard.accept(tick):
            self.metrics.ticks_dropped.labels(reason="out_of_order").inc()
            return
        if self._is_bad_print(tick):
            return
        self.metrics.ticks_received.labels(source="exchange").inc()
        self._last_tick_wall = time.time()
        self.book.update(tick, time.monotonic())
        self.hub.offer(tick)
        if self.redis is not None:
            self.redis.offer(tick)

    def _is_bad_print(self, tick: Tick) -> bool:
        limit = self.settings.max_price_jump
        previous = self.book.get(tick.symbol)
        if not limit or previous is None:
            return False
        jump = relative_jump(previous.price, tick.price)
        if jump <= limit:
            return False
        self.metrics.ticks_dropped.labels(reason="price_jump").inc()
        log.warning(
            "held back %s %s: moved %.1f%% from %s (MAX_PRICE_JUMP=%g)",
            tick.symbol,
            tick.price,
            jump * 100,
            previous.price,
            limit,
            extra={"event": "bad_print", "symbol": tick.symbol, "price": tick.price, "previous": previous.price},
        )
        return True

    def _last_tick_age(self) -> float:
        return -1.0 if self._last_tick_wall is None else time.time() - self._last_tick_wall

    # -- status ---------------------------------------------------------------------------

    def not_ready_reasons(self) -> list[str]:
        reasons = []
        if self.shutting_down:
            reasons.append("shutting down")
        state = self.feed.state
        if not state.connected:
            reasons.append(f"exchange feed not connected: {state.last_error}")
        if self.settings.primary_symbol in state.unavailable:
            reasons.append(f"primary symbol {self.settings.primary_symbol} not found on the exchange")
        if self.redis is not None and not self.redis.healthy:
            reasons.append(f"redis unreachable: {self.redis.last_error}")
        return reasons

    def is_live(self) -> bool:
        """Whether prices served now are current (the feed is up) or possibly stale."""
        return self.feed.state.connected

    # -- lifecycle ------------------------------------------------------------------------

    def _spawn(self, name: str, fn: Callable[[], None]) -> None:
        greenlet = gevent.spawn(fn)
        greenlet.name = name
        self._greenlets.append(greenlet)

    def start(self) -> None:
        if self._greenlets:
            return
        if self.redis is not None:
            for tick in self.redis.read_latest(self.settings.symbols):
                if self.guard.accept(tick):
                    self.book.update(tick, time.monotonic())
                    self.hub.seed(tick)
            self._spawn("redis-writer", self.redis.run)
        self._spawn("broadcaster", self.hub.run_broadcaster)
        self._spawn("reaper", self.hub.run_reaper)
        self._spawn("exchange-feed", self.feed.run)
        log.info(
            "pledge-ws worker started",
            extra={"event": "worker_started", "symbols": list(self.settings.symbols), "redis": self.redis is not None},
        )

    def shutdown(self, grace: float = 3.0) -> None:
        """Close every client with 1001, stop the feed, then stop our greenlets."""
        if self.shutting_down:
            return
        self.shutting_down = True
        count = self.hub.close_all(close_frame(CLOSE_GOING_AWAY, "server shutting down"), "server shutting down")
        log.info("shutting down: closing %d clients", count, extra={"event": "shutdown", "clients": count})
        self.feed.stop()
        deadline = time.monotonic() + grace
        while self.hub.connections and time.monotonic() < deadline:
            gevent.sleep(0.05)
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
