"""Recovery's I/O (``/ws?since=``): which history answers, this worker's memory or Redis.

One call, :meth:`Replayer.recover`. Memory answers most recoveries: each symbol is decided
once from the book (core/book.py), without yielding, and the caller attaches the client in
the same stretch (Hub.attach), so no tick slips between the replay and the live stream. Only
when memory cannot prove a symbol's gap closed (this worker missed bus messages, or just
started) is the shared history read from Redis, which yields; then every symbol is decided
again, because ticks that arrived meanwhile are part of what the client must get.
"""

from __future__ import annotations

from typing import Protocol

import gevent.lock

from pledge_ws.core.book import Entry, PriceBook
from pledge_ws.core.recovery import Decision, NotRecovered, Recovered, Recovery, decide, layout, merge
from pledge_ws.metrics import Metrics

REDIS_READERS = 8  # concurrent history reads per worker: a reconnect storm must not open 1,000


class SharedHistory(Protocol):
    """The shared history (cluster/stream.py): entries with sequence >= ``order``, oldest
    first, or None when it cannot be read."""

    def since(self, symbol: str, order: int) -> list[Entry] | None: ...


class Replayer:
    def __init__(self, book: PriceBook, shared: SharedHistory | None, metrics: Metrics) -> None:
        self.book = book
        self.shared = shared
        self.metrics = metrics
        self.limit = book.limit
        self._readers = gevent.lock.BoundedSemaphore(REDIS_READERS)

    def recover(self, since: dict[str, int]) -> Recovery:
        """The status frames and replays for ``since``; returns without yielding after the
        last decision (see the module docstring)."""
        decisions = self._decide(since, {})
        missing = [symbol for symbol, d in decisions.items() if isinstance(d, NotRecovered)]
        if missing and self.shared is not None:
            fetched = {}
            for symbol in missing:
                with self._readers:
                    entries = self.shared.since(symbol, since[symbol])
                if entries is not None:
                    fetched[symbol] = entries
            if fetched:
                decisions = self._decide(since, fetched)
        for decision in decisions.values():
            if isinstance(decision, Recovered):
                self.metrics.recoveries.labels(result="recovered").inc()
                self.metrics.recovered_ticks.inc(len(decision.entries))
            else:
                self.metrics.recoveries.labels(result="not_recovered").inc()
        return layout(decisions)

    def _decide(self, since: dict[str, int], fetched: dict[str, list[Entry]]) -> dict[str, Decision]:
        decisions: dict[str, Decision] = {}
        for symbol, seq in since.items():
            local = self.book.since(symbol, seq)
            kept = merge(fetched[symbol], local) if symbol in fetched else local
            decisions[symbol] = decide(seq, kept, self.limit)
        return decisions
