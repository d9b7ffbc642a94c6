"""The tick path: every price enters here, from the exchange feed or from the Redis bus.

Both paths go through the same order guard (core/ticks.py ``SequenceGuard``), so no path and
no failover ever delivers an older price after a newer one, or one twice. The leader hands its
own ticks to its clients directly (they keep getting prices while Redis is down) and to the
writer; they come back over the bus and the guard drops that copy. Bus ticks of an older
leadership term than the newest heard are dropped too (core/liveness.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pledge_ws.clients.hub import Hub
from pledge_ws.cluster.stream import RedisHistory
from pledge_ws.cluster.writer import RedisWriter
from pledge_ws.config import Settings
from pledge_ws.core.book import PriceBook
from pledge_ws.core.liveness import Liveness
from pledge_ws.core.ticks import PRINT_CONFIRMED, PRINT_HELD, PrintFilter, SequenceGuard, Tick, relative_jump
from pledge_ws.metrics import Metrics

log = logging.getLogger(__name__)


class TickIntake:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        book: PriceBook,
        hub: Hub,
        liveness: Liveness,
        leads: Callable[[], bool],
        writer: RedisWriter | None = None,
        stream: RedisHistory | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.book = book
        self.hub = hub
        self.liveness = liveness
        self.leads = leads
        self.writer = writer
        self.stream = stream
        self.guard = SequenceGuard()
        self.prints = PrintFilter(settings.max_price_jump)
        self._symbols = frozenset(settings.symbols)
        self.last_tick_wall: float | None = None

    def on_exchange_tick(self, tick: Tick) -> None:
        """From the feed or the REST fallback (the feed holder's greenlets); never blocks."""
        if not self.guard.accept(tick):
            # A poll that returns a sequence already seen is the normal case, not a fault.
            reason = "rest_unchanged" if tick.source == "rest" else "out_of_order"
            self.metrics.ticks_dropped.labels(reason=reason).inc()
            return
        if not self._print_ok(tick):
            return
        self.metrics.ticks_received.labels(source="exchange").inc()
        self._accept(tick)
        if self.writer is not None:
            self.writer.offer(tick)

    def on_bus_tick(self, tick: Tick, heard: bool = True) -> None:
        """From the bus greenlet (``heard``), or read back from Redis at a resync."""
        if tick.symbol not in self._symbols:
            return
        if not self.liveness.tick(tick.term, time.monotonic(), heard):
            self.metrics.ticks_dropped.labels(reason="old_term").inc()
            return
        if not self.guard.accept(tick):
            return
        self.metrics.ticks_received.labels(source="bus").inc()
        self._accept(tick)

    def on_beat(self, raw: bytes) -> None:
        """The leader's status, published every second on the bus (cluster/leader.py)."""
        if not self.liveness.beat(raw, time.monotonic()):
            self.metrics.ticks_dropped.labels(reason="bad_beat").inc()

    def resync(self) -> None:
        """Catch up from the latest prices in Redis (after the bus (re)connects)."""
        if self.writer is None:
            return
        if not self.leads():
            # Bus messages may have been missed: the kept history's chain breaks here, unless
            # the Stream's top is our own last entry (XADD precedes PUBLISH, so nothing was
            # published before our SUBSCRIBE that we lack). Without this, a worker restarted
            # while prices were still broke the chain for nothing, and if it became the leader,
            # recovery across that failover answered "not recovered".
            tops = self.stream.tops(self.settings.symbols) if self.stream is not None else None
            self.book.mark_gap(
                s for s in self.settings.symbols if tops is None or tops.get(s) != self.book.last_order(s)
            )
        for tick in sorted(self.writer.read_latest(self.settings.symbols), key=lambda t: t.order):
            self.on_bus_tick(tick, heard=False)  # read back, not heard: no proof the feed is live

    def load(self) -> None:
        """At start, before any greenlet runs: the kept history from Redis, and the snapshots."""
        if self.stream is not None:
            for symbol in self.settings.symbols:
                self.book.load(symbol, (e for e in self.stream.tail(symbol) if self.guard.accept(e.tick)))
        for entry in self.book.latest():
            self.hub.seed(entry)

    def _accept(self, tick: Tick) -> None:
        self.last_tick_wall = time.time()
        self.metrics.last_tick.set(self.last_tick_wall)
        self.hub.offer(self.book.add(tick))

    def _print_ok(self, tick: Tick) -> bool:
        previous = self.book.get(tick.symbol)
        verdict = self.prints.check(previous, tick)
        if verdict == PRINT_CONFIRMED and previous is not None:
            log.warning(
                "price jump on %s confirmed by two prints: %s -> %s",
                tick.symbol,
                previous.price,
                tick.price,
                extra={"event": "price_jump_confirmed", "symbol": tick.symbol, "price": tick.price},
            )
        elif verdict == PRINT_HELD and previous is not None:
            self.metrics.ticks_dropped.labels(reason="price_jump").inc()
            log.warning(
                "held back %s %s: moves %.1f%% from %s (MAX_PRICE_JUMP=%g)",
                tick.symbol,
                tick.price,
                relative_jump(previous.price, tick.price) * 100,
                previous.price,
                self.prints.limit,
                extra={"event": "bad_print", "symbol": tick.symbol, "price": tick.price, "previous": previous.price},
            )
            return False
        return True
