"""Where prices live: the in-process book, and Redis for other services and other workers.

Redis keys (all written by the process that holds the exchange feed):

- ``PRICE_KEY`` (default ``plgr_price``): the primary symbol's latest price string, as the Go
  backend wrote it.
- ``pledge_ws:price:<SYMBOL>``: the latest tick of each symbol as compact JSON
  (``{"symbol","price","seq","ts"}``), read by workers and late joiners for the snapshot.

Writes happen in their own greenlet from a latest-value slot per symbol, with socket
timeouts, so an unreachable Redis never delays the feed; when Redis answers again (also
after a restart that lost everything), the latest prices are written again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent
import gevent.event
import redis

from pledge_ws.clock import Backoff
from pledge_ws.config import mask_url
from pledge_ws.metrics import Metrics
from pledge_ws.ticks import Tick, TickError

log = logging.getLogger(__name__)

KEY_PREFIX = "pledge_ws:"
REDIS_TIMEOUT = 1.0


def price_key(symbol: str) -> str:
    return f"{KEY_PREFIX}price:{symbol}"


class PriceBook:
    """The latest tick per symbol in this process; what ``/price`` and snapshots read."""

    def __init__(self) -> None:
        self._latest: dict[str, Tick] = {}
        self._updated_at: dict[str, float] = {}

    def update(self, tick: Tick, now: float) -> None:
        self._latest[tick.symbol] = tick
        self._updated_at[tick.symbol] = now

    def get(self, symbol: str) -> Tick | None:
        return self._latest.get(symbol)

    def all(self) -> list[Tick]:
        return list(self._latest.values())


def connect_redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        health_check_interval=0,
        retry_on_timeout=False,
        decode_responses=False,
    )


class RedisWriter:
    """Mirrors the latest prices into Redis without ever blocking the caller."""

    def __init__(
        self,
        client: redis.Redis,
        primary_symbol: str,
        primary_key: str,
        metrics: Metrics,
        book: PriceBook,
        url: str = "",
        backoff: Backoff | None = None,
        check_interval: float = 1.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.primary_symbol = primary_symbol
        self.primary_key = primary_key
        self.metrics = metrics
        self.book = book
        self.url = mask_url(url)
        self.backoff = backoff or Backoff(base=0.2, cap=5.0)
        self.check_interval = check_interval
        self.now = now
        self.healthy = False
        self.last_error = "not checked yet"
        self._pending: dict[str, Tick] = {}
        self._wakeup = gevent.event.Event()
        self._run_id: bytes | None = None

    def offer(self, tick: Tick) -> None:
        self._pending[tick.symbol] = tick
        self._wakeup.set()

    def read_latest(self, symbols: tuple[str, ...]) -> list[Tick]:
        """The ticks Redis holds for ``symbols`` (used once at start-up to seed snapshots)."""
        try:
            values = self.client.mget([price_key(s) for s in symbols])
        except redis.RedisError as exc:
            self.metrics.redis_errors.labels(op="read").inc()
            log.warning("could not read snapshot from Redis: %s", exc, extra={"event": "redis_error"})
            return []
        ticks = []
        for value in values:
            if value is None:
                continue
            try:
                ticks.append(Tick.from_json(value))
            except TickError:
                self.metrics.ticks_dropped.labels(reason="bad_snapshot").inc()
        return ticks

    def _write(self, ticks: list[Tick]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for tick in ticks:
            pipe.set(price_key(tick.symbol), tick.to_json())
            if tick.symbol == self.primary_symbol:
                pipe.set(self.primary_key, tick.price)
        pipe.execute()

    def _check(self) -> bool:
        """True if Redis is a new instance (or back from an outage): rewrite everything."""
        run_id = self.client.info("server").get("run_id")
        fresh = run_id != self._run_id or not self.healthy
        self._run_id = run_id
        return fresh

    def _set_health(self, healthy: bool, error: str = "") -> None:
        if healthy != self.healthy:
            if healthy:
                log.info("redis reachable", extra={"event": "redis_up", "url": self.url})
            else:
                log.warning("redis unreachable: %s", error, extra={"event": "redis_down", "url": self.url})
        self.healthy = healthy
        self.last_error = error
        self.metrics.redis_up.set(1 if healthy else 0)

    def run(self) -> None:
        failures = 0
        next_check = 0.0
        while True:
            self._wakeup.wait(timeout=max(0.0, next_check - self.now()))
            self._wakeup.clear()
            try:
                if self.now() >= next_check:
                    if self._check():
                        for tick in self.book.all():
                            self._pending.setdefault(tick.symbol, tick)
                    next_check = self.now() + self.check_interval
                batch, self._pending = list(self._pending.values()), {}
                if batch:
                    try:
                        self._write(batch)
                    except BaseException:
                        for tick in batch:  # keep them unless a newer one arrived meanwhile
                            self._pending.setdefault(tick.symbol, tick)
                        raise
                self._set_health(True)
                failures = 0
            except redis.RedisError as exc:
                failures += 1
                self.metrics.redis_errors.labels(op="write").inc()
                self._set_health(False, f"{type(exc).__name__}: {exc}")
                gevent.sleep(self.backoff.compute(failures))
                next_check = 0.0
