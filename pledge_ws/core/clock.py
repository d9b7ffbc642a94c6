"""Time-based decisions, as plain objects that take ``now`` (monotonic seconds).

Nothing here sleeps or reads a clock: the I/O loops pass ``time.monotonic()`` in and act on
the answer, so every schedule is tested with plain numbers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Backoff:
    """Capped exponential backoff with jitter, like redis-py's ``EqualJitterBackoff``.

    ``compute(1)`` is the delay after the first failure. Half the delay is fixed and half
    random, so a fleet that lost the exchange together does not reconnect in lockstep,
    while no delay collapses to zero (which would make a tight loop).
    """

    base: float = 0.5
    cap: float = 30.0
    factor: float = 2.0
    rng: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap or self.factor < 1:
            raise ValueError("backoff needs 0 < base <= cap and factor >= 1")

    def ceiling(self, failures: int) -> float:
        exponent = min(max(failures, 1) - 1, 64)
        return min(self.cap, self.base * self.factor**exponent)

    def compute(self, failures: int) -> float:
        ceiling = self.ceiling(failures)
        return ceiling / 2 + self.rng() * ceiling / 2


class HeartbeatClock:
    """A browser must ping at least every ``timeout`` seconds or be dropped."""

    __slots__ = ("_deadline", "timeout")

    def __init__(self, timeout: float, now: float) -> None:
        self.timeout = timeout
        self._deadline = now + timeout

    def beat(self, now: float) -> None:
        self._deadline = now + self.timeout

    def remaining(self, now: float) -> float:
        return self._deadline - now

    def expired(self, now: float) -> bool:
        return now >= self._deadline


PING = "ping"
DEAD_PONG = "no pong from exchange"
DEAD_SILENT = "exchange silent"
DEAD_AGE = "session age limit"


class UpstreamClock:
    """When to ping the exchange, and when to declare the link dead.

    KuCoin gives ``pingInterval``/``pingTimeout`` with the token. A link is dead when a pong
    is overdue, when nothing at all arrived for ``silence_limit`` (a half-open TCP link can
    look healthy forever otherwise), or when the session nears KuCoin's 24 h cut-off.
    """

    def __init__(
        self, ping_interval: float, ping_timeout: float, now: float, max_age: float, silence_limit: float | None = None
    ) -> None:
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.silence_limit = silence_limit if silence_limit is not None else ping_interval + ping_timeout
        self._started = now
        self._max_age = max_age
        self._next_ping = now + ping_interval
        self._pong_due: float | None = None
        self._last_frame = now

    def frame_received(self, now: float) -> None:
        self._last_frame = now

    def ping_sent(self, now: float) -> None:
        self._next_ping = now + self.ping_interval
        if self._pong_due is None:
            self._pong_due = now + self.ping_timeout

    def pong_received(self, now: float) -> None:
        self._pong_due = None
        self._last_frame = now

    def poll(self, now: float) -> tuple[str | None, float]:
        """(action, seconds to wait before polling again); action is PING, a DEAD_* or None."""
        if self._pong_due is not None and now >= self._pong_due:
            return DEAD_PONG, 0.0
        if now - self._last_frame >= self.silence_limit:
            return DEAD_SILENT, 0.0
        if now - self._started >= self._max_age:
            return DEAD_AGE, 0.0
        if now >= self._next_ping:
            return PING, 0.0
        deadlines = [self._next_ping, self._last_frame + self.silence_limit, self._started + self._max_age]
        if self._pong_due is not None:
            deadlines.append(self._pong_due)
        return None, max(0.0, min(deadlines) - now)


class TokenBucket:
    """Allows ``rate`` events per second on average with bursts up to ``burst``."""

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, now: float) -> bool:
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
