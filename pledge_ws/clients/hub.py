"""Fan-out: a lock-guarded registry of browser connections and the broadcaster greenlet.

Why it looks like this: each price is encoded once (core/book.py keeps the frame with the
tick) and handed to every subscribed
connection's non-blocking writer (connection.py) by one greenlet, so no client costs a
wake-up per tick and no slow client stalls the others; the reaper evicts a client that stays
backlogged for ``SLOW_CLIENT_TIMEOUT``.

A recovering client (core/recovery.py) is not in its symbols' fan-out sets until its replay is
written: the broadcaster hands it the first tick above the replay's last sequence, then
moves it in, so the seam has no duplicate and no hole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import gevent
import gevent.lock
import gevent.queue

from pledge_ws.clients.connection import Connection
from pledge_ws.core.book import Entry
from pledge_ws.core.recovery import Recovery
from pledge_ws.metrics import Metrics

log = logging.getLogger(__name__)

TICK_QUEUE_SIZE = 4096
# When the broadcaster is this far behind the feed (it cannot push every tick to every
# client within a tick interval, e.g. on an overloaded core), a tick that already has a newer
# one of its symbol queued is skipped: latency stays bounded instead of growing without end.
# While the broadcaster keeps up, nothing is ever skipped.
MAX_BROADCAST_LAG = 0.25


class Hub:
    """Registry of connections per symbol plus the broadcaster that feeds them."""

    def __init__(self, symbols: Iterable[str], metrics: Metrics, slow_client_timeout: float) -> None:
        self.metrics = metrics
        self.slow_client_timeout = slow_client_timeout
        self._lock = gevent.lock.RLock()
        self._subscribers: dict[str, set[Connection]] = {symbol: set() for symbol in symbols}
        self._targets: dict[str, tuple[Connection, ...]] = {}
        self._latest_frame: dict[str, bytes] = {}
        # Recovering clients per symbol, each with the last sequence its replay holds.
        self._recovering: dict[str, dict[Connection, int]] = {}
        self._queue: gevent.queue.Queue[tuple[Entry, float]] = gevent.queue.Queue(maxsize=TICK_QUEUE_SIZE)
        self._newest_queued: dict[str, int] = {}
        self.backlogged: set[Connection] = set()
        self.connections: set[Connection] = set()
        self._notice: bytes | None = None  # sent after the snapshot while prices are stale

    # -- registry -------------------------------------------------------------------------

    def attach(self, conn: Connection, symbols: Iterable[str], recovery: Recovery | None = None) -> None:
        """Register ``conn``; with ``recovery``, its replay replaces those symbols' snapshots.

        Must not yield between the caller's recovery decision and here (nothing below does):
        the replay then ends exactly where the broadcaster's next tick for this client starts.
        """
        with self._lock:
            self.connections.add(conn)
        self.metrics.connections.set(len(self.connections))
        if recovery is not None:
            conn.replay(recovery.frames)
            with self._lock:
                for symbol, floor in recovery.floors.items():
                    conn.symbols.add(symbol)
                    self._recovering.setdefault(symbol, {})[conn] = floor
        self.subscribe(conn, symbols)
        if self._notice is not None:
            conn.send(self._notice)

    def set_notice(self, frame: bytes | None) -> None:
        """Tell every client (now, and each new one) that prices are stale; None clears it."""
        self._notice = frame
        if frame is not None:
            for conn in list(self.connections):
                conn.send(frame)

    def detach(self, conn: Connection) -> None:
        """Stop sending prices to ``conn``; its queued frames may still drain."""
        with self._lock:
            self.connections.discard(conn)
            for symbol in conn.symbols:
                self._recovering.get(symbol, {}).pop(conn, None)
                self._subscribers[symbol].discard(conn)
                self._targets.pop(symbol, None)
            conn.symbols.clear()
        self.metrics.connections.set(len(self.connections))

    def subscribe(self, conn: Connection, symbols: Iterable[str]) -> None:
        """Add symbols and send each one's latest price at once (no wait for the next trade)."""
        added = []
        with self._lock:
            for symbol in symbols:
                if symbol not in conn.symbols:
                    conn.symbols.add(symbol)
                    self._subscribers[symbol].add(conn)
                    self._targets.pop(symbol, None)
                    added.append(symbol)
        for symbol in added:
            frame = self._latest_frame.get(symbol)
            if frame is not None:
                conn.send(frame, symbol)

    def unsubscribe(self, conn: Connection, symbols: Iterable[str]) -> None:
        with self._lock:
            for symbol in symbols:
                if symbol in conn.symbols:
                    conn.symbols.discard(symbol)
                    self._recovering.get(symbol, {}).pop(conn, None)
                    self._subscribers[symbol].discard(conn)
                    self._targets.pop(symbol, None)
                    conn.drop_symbol(symbol)

    def _targets_for(self, symbol: str) -> tuple[Connection, ...]:
        # Rebuilt at most once per tick after a change, instead of copied per change:
        # a connection storm costs O(n) per tick, not O(n) per connect.
        targets = self._targets.get(symbol)
        if targets is None:
            with self._lock:
                targets = self._targets[symbol] = tuple(self._subscribers[symbol])
        return targets

    # -- broadcasting ---------------------------------------------------------------------

    def offer(self, entry: Entry) -> None:
        """Queue a price (its entry in the book, frame encoded) for fan-out; never blocks the
        caller (the exchange loop). On overflow the oldest queued goes: the newest always gets
        through."""
        self._newest_queued[entry.tick.symbol] = entry.order
        item = (entry, time.monotonic())
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except gevent.queue.Full:
                try:
                    self._queue.get_nowait()
                    self.metrics.ticks_dropped.labels(reason="queue_full").inc()
                except gevent.queue.Empty:
                    pass

    def seed(self, entry: Entry) -> None:
        """Make ``entry`` the snapshot new clients get, without pushing it."""
        self._latest_frame[entry.tick.symbol] = entry.frame

    def publish(self, entry: Entry) -> int:
        frame, symbol = entry.frame, entry.tick.symbol
        self.metrics.tick_delivery.observe(max(0.0, time.time() - entry.tick.ts / 1000))
        self._latest_frame[symbol] = frame
        targets = self._targets_for(symbol)
        for conn in targets:
            conn.send(frame, symbol)
        sent = len(targets)
        waiting = self._recovering.get(symbol)
        if waiting:
            sent += self._end_recovery(symbol, waiting, entry.order, frame)
        self.metrics.frames_sent.inc(sent)
        return sent

    def _end_recovery(self, symbol: str, waiting: dict[Connection, int], order: int, frame: bytes) -> int:
        """Hand recovering clients the first tick above their replay, and move them into the
        fan-out set; a tick their replay already holds is skipped for them."""
        done = [conn for conn, floor in waiting.items() if order > floor]
        with self._lock:
            for conn in done:
                del waiting[conn]
                if symbol in conn.symbols:
                    conn.send(frame, symbol)
                    self._subscribers[symbol].add(conn)
                    self._targets.pop(symbol, None)
        return len(done)

    def run_broadcaster(self) -> None:
        while True:
            entry, offered_at = self._queue.get()
            lagging = time.monotonic() - offered_at > MAX_BROADCAST_LAG
            if lagging and self._newest_queued[entry.tick.symbol] > entry.order:
                self.metrics.ticks_dropped.labels(reason="broadcast_lag").inc()
                continue
            try:
                self.publish(entry)
            except Exception:  # a bug here must not end fan-out for everyone
                log.exception("broadcast failed", extra={"event": "broadcast_failed"})

    def run_reaper(self, interval: float = 0.5, now: Callable[[], float] = time.monotonic) -> None:
        """Evict clients whose socket stayed full for longer than ``slow_client_timeout``."""
        while True:
            gevent.sleep(interval)
            limit = now() - self.slow_client_timeout
            for conn in [c for c in self.backlogged if c.backlog_since is not None and c.backlog_since < limit]:
                conn.abort(f"slow client: socket unwritable for {self.slow_client_timeout:g}s", evicted=True)

    def close_all(self, frame: bytes, reason: str) -> int:
        """Queue ``frame`` (a close frame) to every client; returns how many."""
        conns = list(self.connections)
        for conn in conns:
            conn.close_with(frame, reason, wake=True)
        return len(conns)
