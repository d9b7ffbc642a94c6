"""When the REST fallback may call the exchange, and for which symbol, without I/O.

While the exchange WebSocket is not delivering, the feed holder polls each symbol's level-1
ticker. The schedule keeps that inside KuCoin's public REST budget (2,000 weight per 30 s per
IP; level-1 weighs 2) whatever ``SYMBOLS`` holds: it takes at most a quarter of the budget
(8.3 calls/s), so with many symbols each one is polled less often than
``REST_FALLBACK_INTERVAL``, round robin. A 429 holds every call until the exchange's
``gw-ratelimit-reset`` has passed; 5xx answers, bad JSON and timeouts back off exponentially.
"""

from __future__ import annotations

from collections.abc import Sequence

from pledge_ws.core.clock import Backoff

REST_WEIGHT_PER_30S = 2000
LEVEL1_WEIGHT = 2
BUDGET_SHARE = 0.25  # of the per-IP budget: room for other clients behind the same address
MAX_CALLS_PER_SECOND = REST_WEIGHT_PER_30S * BUDGET_SHARE / LEVEL1_WEIGHT / 30.0
DEFAULT_RATE_LIMIT_HOLD = 30.0  # a 429 without a usable gw-ratelimit-reset: one whole window
MAX_RATE_LIMIT_HOLD = 60.0
CALL_TIMEOUT = 3.0  # seconds for one REST call, connect and read together

OK = "ok"
RATE_LIMITED = "rate_limited"
FAILED = "failed"


def call_spacing(interval: float, symbols: int) -> float:
    """Seconds between two calls: every symbol once per ``interval``, within the budget share."""
    return max(interval / max(symbols, 1), 1.0 / MAX_CALLS_PER_SECOND)


def rate_limit_hold(reset_header: str | None) -> float:
    """Seconds to wait after a 429, from ``gw-ratelimit-reset`` (milliseconds)."""
    try:
        ms = int(reset_header) if reset_header is not None else -1
    except ValueError:
        ms = -1
    if ms < 0:
        return DEFAULT_RATE_LIMIT_HOLD
    return min(ms / 1000.0, MAX_RATE_LIMIT_HOLD)


class PollSchedule:
    """Round robin over the symbols, one call every :func:`call_spacing` seconds, held back by
    429s and backoff. ``due`` and ``record`` take ``now`` (monotonic seconds)."""

    def __init__(self, symbols: Sequence[str], interval: float, backoff: Backoff | None = None) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive (0 means no fallback: build no schedule)")
        self.symbols = tuple(symbols)
        self.interval = interval
        self.spacing = call_spacing(interval, len(self.symbols))
        self.backoff = backoff or Backoff(base=1.0, cap=30.0)
        self._next_at = 0.0  # the first call goes at once
        self._index = 0
        self._failures = 0
        self._held_until = 0.0  # a 429's gw-ratelimit-reset: outlives a switch, unlike backoff
        self.last_ok: float | None = None

    @property
    def round_seconds(self) -> float:
        """How long one pass over every symbol takes when every call succeeds."""
        return self.spacing * len(self.symbols)

    def wait(self, now: float) -> float:
        """Seconds until any call may go (0: now)."""
        return max(0.0, self._next_at - now)

    def due(self, now: float, skip: frozenset[str] = frozenset()) -> tuple[str | None, float]:
        """``(symbol, 0)`` when a call may go now, else ``(None, seconds to wait)``."""
        if now < self._next_at:
            return None, self._next_at - now
        for _ in range(len(self.symbols)):
            symbol = self.symbols[self._index % len(self.symbols)]
            self._index += 1
            if symbol not in skip:
                return symbol, 0.0
        return None, self.spacing

    def record(self, now: float, outcome: str, hold: float = 0.0) -> None:
        """What a call's answer means for the next one."""
        if outcome == OK:
            self._failures = 0
            self.last_ok = now
            self._next_at = now + self.spacing
        elif outcome == RATE_LIMITED:
            self._held_until = now + hold
            self._next_at = now + max(hold, self.spacing)
        else:
            self._failures += 1
            self._next_at = now + max(self.spacing, self.backoff.compute(self._failures))

    def answering(self, now: float) -> bool:
        """Whether REST has supplied prices recently enough to call them current."""
        window = 2 * self.round_seconds + CALL_TIMEOUT
        return self.last_ok is not None and now - self.last_ok <= window

    def restart(self, now: float) -> None:
        """A new outage of the WebSocket: the previous outage's failures say nothing about REST
        now, so its backoff goes; a 429's hold is the exchange's word and stays."""
        self._failures = 0
        self._next_at = max(now, self._held_until)

    def forget(self) -> None:
        """The WebSocket delivers again: REST's answers stop counting as current."""
        self.last_ok = None
