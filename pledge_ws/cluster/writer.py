"""The Redis writer: every tick the feed holder accepts, mirrored into Redis for other
services and other workers (the keys: keys.py, docs/ha.md "Redis keys").

Per tick, in order: appended to its symbol's Stream (stream.py), published on the tick
channel, and its symbol's latest-price keys set (``PRICE_KEY`` too for the primary symbol).

Writes happen in their own greenlet from a bounded FIFO, with socket timeouts, so an
unreachable Redis never delays the feed; when Redis answers again (also after a restart or a
Sentinel failover that lost everything), the leader writes the latest prices again.

Only the leader writes, and only while its lease holds (``fence`` returns its term): the
latest-price keys go through core/fencing.py's script (refused for a deposed writer, an older
term or an older sequence), so no key ever goes back to an older price. While the lease has
lapsed the batch is kept, not dropped, and written once the lease is renewed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

import gevent
import gevent.event
import redis

from pledge_ws.cluster.client import MasterFollower
from pledge_ws.cluster.keys import LEADER, TICKS_CHANNEL, price_key
from pledge_ws.config import mask_url
from pledge_ws.core.book import PriceBook
from pledge_ws.core.clock import Backoff
from pledge_ws.core.fencing import NOT_LEADER, RESET, RESET_AFTER_MS, WRITE_LATEST_SCRIPT, WRITTEN, normalize_sequence
from pledge_ws.core.ticks import Tick, TickError
from pledge_ws.metrics import Metrics

log = logging.getLogger(__name__)

MAX_UNWRITTEN = 10_000  # ticks waiting for Redis; beyond it the oldest are dropped


class SharedHistory(Protocol):
    def append(self, pipe: redis.client.Pipeline, tick: Tick) -> None: ...


class RedisWriter:
    """Mirrors accepted ticks into Redis without ever blocking the caller.

    Each tick is published on the bus (when ``publish``), appended to its symbol's history
    Stream, and its symbol's latest keys are set (fenced); all in order, in one pipeline per
    wake-up, stamped with the term ``fence()`` returns at that moment. ``fence()`` None: the
    lease lapsed; nothing is written and the batch waits.
    """

    def __init__(
        self,
        client: redis.Redis,
        primary_symbol: str,
        primary_key: str,
        metrics: Metrics,
        book: PriceBook,
        url: str = "",
        publish: bool = True,
        backoff: Backoff | None = None,
        check_interval: float = 1.0,
        now: Callable[[], float] = time.monotonic,
        history: SharedHistory | None = None,
        fence: Callable[[], int | None] = lambda: 0,
        identity: str = "",
    ) -> None:
        self.client = client
        self.fence = fence
        self.identity = identity
        self._write_latest = client.register_script(WRITE_LATEST_SCRIPT)
        self.history = history
        self.primary_symbol = primary_symbol
        self.primary_key = primary_key
        self.metrics = metrics
        self.book = book
        self.url = mask_url(url)
        self.publish = publish
        self.backoff = backoff or Backoff(base=0.2, cap=5.0)
        self.check_interval = check_interval
        self.now = now
        self.healthy = False
        self.last_error = "not checked yet"
        self._unwritten: deque[Tick] = deque(maxlen=MAX_UNWRITTEN)
        self._rewrite: dict[str, Tick] = {}
        self._wakeup = gevent.event.Event()
        self._run_id: bytes | None = None
        self._master = MasterFollower(client)
        self._rewrite_due = False  # a new Redis server (or one back): rewrite once we may write

    def offer(self, tick: Tick) -> None:
        if self.fence() is None:  # held until the lease is renewed (or dropped if deposed)
            self.metrics.fenced_writes.labels(reason="lease_lapsed").inc()
        if len(self._unwritten) == MAX_UNWRITTEN:
            self.metrics.ticks_dropped.labels(reason="redis_backlog_full").inc()
        self._unwritten.append(tick)
        self._wakeup.set()

    def read_latest(self, symbols: tuple[str, ...]) -> list[Tick]:
        """The latest tick Redis holds for each of ``symbols``."""
        return self._read_ticks(lambda: self.client.mget([price_key(s) for s in symbols]))

    def _read_ticks(self, read: Callable[[], list[bytes | None]]) -> list[Tick]:
        try:
            values = read()
        except redis.RedisError as exc:
            self.metrics.redis_errors.labels(op="read").inc()
            log.warning("could not read from Redis: %s", exc, extra={"event": "redis_error"})
            return []
        ticks = []
        for value in values:
            if value is None:
                continue
            try:
                ticks.append(Tick.from_json(value))
            except TickError:
                self.metrics.ticks_dropped.labels(reason="bad_stored_tick").inc()
        return ticks

    def _write(self, ticks: list[Tick], latest: dict[str, Tick], term: int) -> dict[str, Tick]:
        """Write one batch; returns the latest ticks refused only because the lock was not ours
        at that moment (kept for a retry: the elector re-acquires or deposes us)."""
        pipe = self.client.pipeline(transaction=False)
        for tick in ticks:
            tick = replace(tick, term=term)
            if self.history is not None:  # before the publish: a tick on the bus is in the history
                self.history.append(pipe, tick)
            if self.publish:
                pipe.publish(TICKS_CHANNEL, tick.to_json())
        queued = list(latest.values())
        for tick in queued:
            keys = [LEADER, price_key(tick.symbol)]
            if tick.symbol == self.primary_symbol:
                keys.append(self.primary_key)
            stamped = replace(tick, term=term)
            args = [self.identity, term, normalize_sequence(tick.sequence), tick.ts, stamped.to_json(), tick.price]
            self._write_latest(keys=keys, args=[*args, RESET_AFTER_MS], client=pipe)
        results = pipe.execute()
        retry: dict[str, Tick] = {}
        for tick, result in zip(queued, results[len(results) - len(queued) :], strict=True):
            verdict = result.decode() if isinstance(result, bytes) else str(result)
            if verdict == RESET:
                log.warning(
                    "%s: the exchange sequence restarted (%s after a higher one, %d ms later): keys follow it",
                    tick.symbol,
                    tick.sequence,
                    RESET_AFTER_MS,
                    extra={"event": "sequence_reset", "symbol": tick.symbol},
                )
            elif verdict != WRITTEN:
                self.metrics.fenced_writes.labels(reason=verdict).inc()
                if verdict == NOT_LEADER:
                    retry[tick.symbol] = tick
        return retry

    def discard(self) -> None:
        """Forget what is waiting (this process lost leadership: its successor writes)."""
        self._unwritten.clear()
        self._rewrite = {}

    def _check(self) -> bool:
        """True if Redis is a new instance (or back from an outage): rewrite the latest prices."""
        moved_from = self._master.check()
        if moved_from is not None:
            new = self._master.master or ("?", 0)
            log.warning(
                "redis master moved from %s:%d to %s:%d (Sentinel): connections to the old one dropped",
                *moved_from,
                *new,
                extra={"event": "redis_master_moved", "url": self.url},
            )
        run_id = self.client.info("server").get("run_id")
        if self._run_id is not None and run_id != self._run_id:
            self.metrics.redis_failovers.inc()
            log.warning(
                "redis is a different server now (failover or restart): rewriting the latest prices",
                extra={"event": "redis_failover", "url": self.url},
            )
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
                    self._rewrite_due = self._check() or self._rewrite_due
                    next_check = self.now() + self.check_interval
                term = self.fence()
                if term is None:
                    if self._unwritten or self._rewrite:
                        next_check = min(next_check, self.now() + 0.2)  # look again soon
                    continue
                if self._rewrite_due:
                    self._rewrite = {**{t.symbol: t for t in self.book.all()}, **self._rewrite}
                    self._rewrite_due = False
                batch = list(self._unwritten)
                self._unwritten.clear()
                latest = {**self._rewrite, **{t.symbol: t for t in batch}}
                self._rewrite = {}
                if batch or latest:
                    try:
                        self._rewrite = {**self._write(batch, latest, term), **self._rewrite}
                    except BaseException:
                        # Keep everything, oldest first, ahead of what arrived meanwhile.
                        kept = [*batch, *self._unwritten][-MAX_UNWRITTEN:]
                        self._unwritten = deque(kept, maxlen=MAX_UNWRITTEN)
                        self._rewrite = {**latest, **self._rewrite}
                        raise
                self._set_health(True)
                failures = 0
            except redis.RedisError as exc:
                failures += 1
                self.metrics.redis_errors.labels(op="write").inc()
                self._set_health(False, f"{type(exc).__name__}: {exc}")
                gevent.sleep(self.backoff.compute(failures))
                next_check = 0.0
