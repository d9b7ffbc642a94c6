"""When and where the exchange link reconnects, without I/O.

The feed (feed.py) reports how each session ended; :class:`ReconnectPolicy` answers which
``instanceServers`` entry to try next and how long to wait first. Three rules, each from an
outage seen in a row with others rather than alone:

- A healthy session clears every earlier failure. Healthy means the link did its job: every
  subscription was acknowledged and then a tick or a pong arrived, however short the session
  was. (A session's age said nothing: after a long outage a link that had delivered prices
  for 6 s still waited out the outage's backoff when a 401 ended it.)
- An entry that fails before it is healthy is skipped for the next entry of the bullet at
  once: trying another endpoint is not a new failure to back off from. Each round (one
  bullet's worth of entries) tries every entry once; only a round in which every entry
  failed backs off, and each such round in a row backs off longer.
- The exchange's own words: a 401 (token invalid or expired) gets a new bullet at once, once
  in a row; a 509 (rate limit) waits at least :data:`RATE_LIMIT_FLOOR`; a session at its age
  limit reconnects at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pledge_ws.core.clock import DEAD_AGE, Backoff

TOKEN_REJECTED = "exchange error 401: token invalid or expired"
RATE_LIMITED = "exchange error 509: rate limited"
RATE_LIMIT_FLOOR = 2.0  # seconds before reconnecting after a 509, whatever the backoff says


@dataclass(frozen=True, slots=True)
class Ended:
    """How one session ended, as far as reconnecting cares."""

    reason: str
    endpoint: str | None = None  # None: no bullet was had, so no entry was tried
    candidates: tuple[str, ...] = ()  # every entry of the session's bullet, in order
    subscribed: bool = False  # every subscription acknowledged
    delivered: bool = False  # a tick or a pong arrived after that


@dataclass
class ReconnectPolicy:
    """Backoff per failed round, the next entry at once within a round (see the module)."""

    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.25, cap=8.0))
    failures: int = 0  # rounds failed in a row since the last healthy session
    _tried: set[str] = field(default_factory=set)  # entries of this round that failed
    _attempts: int = 0  # sessions in this round
    _rejected: bool = False  # the last session ended in a 401 before it was healthy

    def pick(self, candidates: Sequence[str]) -> int:
        """Index of the entry to connect to: the first one this round has not tried."""
        for index, endpoint in enumerate(candidates):
            if endpoint not in self._tried:
                return index
        return 0

    def ended(self, outcome: Ended) -> float:
        """Seconds to wait before the next session."""
        healthy = outcome.subscribed and outcome.delivered
        if healthy:
            self.failures = 0
            self._new_round()
            self._rejected = False
            if outcome.reason in (DEAD_AGE, TOKEN_REJECTED):
                return 0.0
            # A short wait all the same: a fleet that lost the exchange together spreads out.
            return self._delay(outcome.reason, 1)
        if outcome.reason == DEAD_AGE:
            return 0.0
        if outcome.reason == TOKEN_REJECTED and not self._rejected:
            self._rejected = True  # the token, not the entry: a new bullet, at once, once
            return 0.0
        self._rejected = outcome.reason == TOKEN_REJECTED
        self._attempts += 1
        if outcome.endpoint is not None and outcome.reason != RATE_LIMITED:
            self._tried.add(outcome.endpoint)
            untried = [c for c in outcome.candidates if c not in self._tried]
            if untried and self._attempts < len(outcome.candidates):
                return 0.0  # the next entry of this bullet, at once
        self.failures += 1
        self._new_round()
        return self._delay(outcome.reason, self.failures)

    def _new_round(self) -> None:
        self._tried.clear()
        self._attempts = 0

    def _delay(self, reason: str, failures: int) -> float:
        delay = self.backoff.compute(failures)
        return max(delay, RATE_LIMIT_FLOOR) if reason == RATE_LIMITED else delay
