"""The tick model and the per-symbol ordering rule every consumer applies.

Pure: no I/O. A tick keeps the exchange's strings exactly as sent (``"0.002700"`` stays
``"0.002700"``), because browsers and the ``plgr_price`` readers compare them byte for byte.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# A finite, positive decimal without exponent or sign, as KuCoin prints prices.
PRICE_RE = re.compile(r"^(?:0|[1-9][0-9]{0,19})(?:\.[0-9]{1,20})?$")
SEQUENCE_RE = re.compile(r"^[0-9]{1,30}$")
SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")
SOURCES = ("ws", "rest")  # where the feed holder got a tick: the exchange WebSocket or REST
MAX_TERM = 2**63 - 1  # leadership terms come from a Redis INCR (a signed 64-bit integer)


class RejectedInput(ValueError):
    """Input from outside that we drop; ``reason`` is a short label for metrics."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class TickError(RejectedInput):
    """A tick field is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Tick:
    """One price. ``source`` says how the feed holder got it; ``term`` is the leadership term
    of the process that published it (0: no election, a standalone worker)."""

    symbol: str
    price: str
    sequence: str
    ts: int
    source: str = "ws"
    term: int = 0

    @property
    def order(self) -> int:
        return int(self.sequence)

    def to_json(self) -> str:
        """The compact form kept in Redis and sent between workers."""
        return json.dumps(
            {
                "symbol": self.symbol,
                "price": self.price,
                "seq": self.sequence,
                "ts": self.ts,
                "source": self.source,
                "term": self.term,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Tick:
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            raise TickError("bad_json") from None
        if not isinstance(raw, dict):
            raise TickError("bad_shape")
        return make_tick(
            raw.get("symbol"),
            raw.get("price"),
            raw.get("seq"),
            raw.get("ts"),
            source=raw.get("source", "ws"),
            term=raw.get("term", 0),
        )


def _is_positive_decimal(price: object) -> bool:
    return isinstance(price, str) and PRICE_RE.match(price) is not None and price.strip("0.") != ""


def make_tick(
    symbol: object, price: object, sequence: object, ts: object, source: object = "ws", term: object = 0
) -> Tick:
    """Validate raw fields into a :class:`Tick`, or raise :class:`TickError`."""
    if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol):
        raise TickError("bad_symbol", repr(symbol)[:40])
    if not _is_positive_decimal(price):
        raise TickError("bad_price", repr(price)[:40])
    if not isinstance(sequence, str) or not SEQUENCE_RE.match(sequence):
        raise TickError("bad_sequence", repr(sequence)[:40])
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 < ts < 10**14:
        raise TickError("bad_time", repr(ts)[:40])
    if source not in SOURCES:
        raise TickError("bad_source", repr(source)[:40])
    if isinstance(term, bool) or not isinstance(term, int) or not 0 <= term <= MAX_TERM:
        raise TickError("bad_term", repr(term)[:40])
    return Tick(symbol, price, sequence, ts, source, term)  # type: ignore[arg-type]


def relative_jump(previous: str, current: str) -> float:
    """Fractional move between two decimal price strings (both validated positive)."""
    before, after = float(previous), float(current)
    return abs(after - before) / before


class SequenceGuard:
    """Accepts a tick only if its sequence is above the last one accepted for its symbol.

    Applied wherever ticks enter (the exchange feed, the Redis bus) so that no path, and no
    failover between leaders, ever delivers an older price after a newer one, or one twice.
    One exception, the same as the Redis fencing rule (fencing.py): a lower sequence whose
    exchange time is ``reset_after_ms`` or more past the last accepted tick's is the
    exchange's sequence restarting, a newer price; without it one reset froze every key.
    """

    __slots__ = ("_last", "_reset")

    def __init__(self, reset_after_ms: int = 30_000) -> None:
        self._last: dict[str, tuple[int, int]] = {}
        self._reset = reset_after_ms

    def accept(self, tick: Tick) -> bool:
        order = tick.order
        last = self._last.get(tick.symbol)
        stale = last is not None and (order == last[0] or (order < last[0] and tick.ts < last[1] + self._reset))
        if stale:
            return False
        self._last[tick.symbol] = (order, tick.ts)
        return True

    def last(self, symbol: str) -> int | None:
        last = self._last.get(symbol)
        return None if last is None else last[0]


PRINT_OK = "ok"
PRINT_CONFIRMED = "confirmed"  # a jump, confirmed by the next print: the market really moved
PRINT_HELD = "held"  # a jump held back as a suspected bad print


class PrintFilter:
    """``MAX_PRICE_JUMP``: a tick moving more than ``limit`` (a fraction) from the last price is
    held back, unless the next tick confirms the new level (two consecutive prints agree).

    Runs after the order guard, on ticks from the exchange only (the bus carries what the
    feed holder already accepted). ``limit`` 0 turns it off.
    """

    __slots__ = ("_held", "limit")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._held: dict[str, Tick] = {}

    def check(self, previous: Tick | None, tick: Tick) -> str:
        """:data:`PRINT_OK`, :data:`PRINT_CONFIRMED` (both: accept) or :data:`PRINT_HELD`."""
        if not self.limit or previous is None or relative_jump(previous.price, tick.price) <= self.limit:
            self._held.pop(tick.symbol, None)
            return PRINT_OK
        held = self._held.pop(tick.symbol, None)
        if held is not None and relative_jump(held.price, tick.price) <= self.limit:
            return PRINT_CONFIRMED
        self._held[tick.symbol] = tick
        return PRINT_HELD
