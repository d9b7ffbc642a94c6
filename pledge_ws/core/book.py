"""The worker's one in-memory record of prices: the latest tick and the kept history per symbol.

Pure: ticks in, entries out. What reads it: ``/price`` and ``/price/history``, the snapshot a
new client gets, and recovery (``since=``), which needs each tick's ``prev`` link and its price
frame. One record serves all of them, so each tick is stored once and its frame encoded once
(:meth:`PriceBook.add` returns the entry the hub then sends).

Fed only with ticks the order guard accepted, so within one sequence space the history is
strictly increasing. A tick with a lower sequence is the exchange restarting its sequence
(``ticks.SequenceGuard`` let it through): the old space cannot be searched together with the
new one, so it is dropped, and ``/price/history`` starts again.

An entry's ``prev`` is the sequence accepted before it here, unless :meth:`PriceBook.mark_gap`
said ticks may have been missed since (the bus was down): then None, and the recovery chain
breaks there (recovery.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from pledge_ws.core.protocol import price_payload, text_frame
from pledge_ws.core.ticks import Tick

HISTORY_LIMIT = 1000  # ticks kept per symbol, here and in each Redis Stream


@dataclass(frozen=True, slots=True)
class Entry:
    """One kept tick: its sequence, its publisher's previous sequence, its encoded price frame."""

    order: int
    prev: int | None
    frame: bytes
    tick: Tick


def entry_for(tick: Tick, prev: int | None) -> Entry:
    return Entry(tick.order, prev, text_frame(price_payload(tick)), tick)


class PriceBook:
    """The last ``limit`` accepted ticks per symbol, oldest first, each with its frame."""

    def __init__(self, limit: int = HISTORY_LIMIT) -> None:
        self.limit = limit
        self._orders: dict[str, list[int]] = {}
        self._entries: dict[str, list[Entry]] = {}
        self._gap: set[str] = set()

    # -- writing ----------------------------------------------------------------------------

    def add(self, tick: Tick) -> Entry:
        """Keep ``tick`` (accepted by the order guard) as its symbol's latest; its entry."""
        symbol = tick.symbol
        orders = self._orders.setdefault(symbol, [])
        entries = self._entries.setdefault(symbol, [])
        if orders and tick.order <= orders[-1]:  # a restarted sequence: the old space goes
            del orders[:]
            del entries[:]
        prev = None if symbol in self._gap or not orders else orders[-1]
        self._gap.discard(symbol)
        entry = entry_for(tick, prev)
        self._keep(symbol, entry)
        return entry

    def load(self, symbol: str, entries: Iterable[Entry]) -> None:
        """Entries read from Redis at start, oldest first; their ``prev`` links are kept."""
        for entry in entries:
            orders = self._orders.setdefault(symbol, [])
            self._entries.setdefault(symbol, [])
            if not orders or entry.order > orders[-1]:
                self._keep(symbol, entry)

    def _keep(self, symbol: str, entry: Entry) -> None:
        entries, orders = self._entries[symbol], self._orders[symbol]
        entries.append(entry)
        orders.append(entry.order)
        if len(orders) >= 2 * self.limit:  # trim in batches: amortized O(1) per tick
            del entries[: -self.limit]
            del orders[: -self.limit]

    def mark_gap(self, symbols: Iterable[str]) -> None:
        """Ticks of ``symbols`` may have been missed since the last one kept."""
        self._gap.update(symbols)

    # -- reading ----------------------------------------------------------------------------

    def get(self, symbol: str) -> Tick | None:
        entries = self._entries.get(symbol)
        return entries[-1].tick if entries else None

    def latest(self) -> list[Entry]:
        """The latest entry of every symbol that has one."""
        return [entries[-1] for entries in self._entries.values() if entries]

    def all(self) -> list[Tick]:
        return [entry.tick for entry in self.latest()]

    def last_order(self, symbol: str) -> int | None:
        orders = self._orders.get(symbol)
        return orders[-1] if orders else None

    def history(self, symbol: str, limit: int, since_ts: int | None = None) -> list[Tick]:
        """The last ``limit`` ticks of ``symbol`` (with ``ts >= since_ts``), oldest first."""
        entries = self._entries.get(symbol, [])[-self.limit :]
        ticks = [e.tick for e in entries if since_ts is None or e.tick.ts >= since_ts]
        return ticks[-limit:] if limit else []

    def since(self, symbol: str, order: int) -> list[Entry]:
        """Kept entries with sequence >= ``order`` (within the last ``limit``), oldest first."""
        orders = self._orders.get(symbol)
        if not orders:
            return []
        first = max(bisect.bisect_left(orders, order), len(orders) - self.limit)
        return self._entries[symbol][first:]

    def prev_of(self, symbol: str, order: int) -> int | None:
        """The ``prev`` link of the kept entry ``order`` (None if it is not kept)."""
        orders = self._orders.get(symbol) or []
        index = bisect.bisect_left(orders, order)
        if index < len(orders) and orders[index] == order:
            return self._entries[symbol][index].prev
        return None
