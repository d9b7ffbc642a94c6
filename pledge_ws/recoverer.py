"""The I/O around recovery: which history to read, from memory or from Redis.

Two phases, because only the first may yield: :meth:`Recoverer.fetch` reads Redis for the
symbols this worker's memory cannot prove (it missed bus messages, or it just started);
:meth:`Recoverer.plan` then decides, from memory and what was read, without yielding, and the
caller attaches the client in the same stretch (see Hub.attach), so no tick slips between the
replay and the live stream.
"""

from __future__ import annotations

import gevent.lock

from pledge_ws.history import LocalHistory, RedisHistory
from pledge_ws.metrics import Metrics
from pledge_ws.recovery import Decision, Entry, NotRecovered, Recovered, Recovery, decide, layout, merge

REDIS_READERS = 8  # concurrent history reads per worker: a reconnect storm must not open 1,000


class Recoverer:
    def __init__(self, local: LocalHistory, remote: RedisHistory | None, metrics: Metrics) -> None:
        self.local = local
        self.remote = remote
        self.metrics = metrics
        self.limit = local.limit
        self._readers = gevent.lock.BoundedSemaphore(REDIS_READERS)

    def fetch(self, since: dict[str, int]) -> dict[str, list[Entry]]:
        """Redis history for each symbol memory alone cannot recover (may yield)."""
        if self.remote is None:
            return {}
        fetched = {}
        for symbol, seq in since.items():
            if isinstance(decide(seq, self.local.since(symbol, seq), self.limit), NotRecovered):
                with self._readers:
                    entries = self.remote.since(symbol, seq)
                if entries is not None:
                    fetched[symbol] = entries
        return fetched

    def plan(self, since: dict[str, int], fetched: dict[str, list[Entry]]) -> Recovery:
        """Decide every symbol (never yields): memory first, else Redis continued by memory."""
        decisions: dict[str, Decision] = {}
        for symbol, seq in since.items():
            local = self.local.since(symbol, seq)
            decision = decide(seq, local, self.limit)
            if isinstance(decision, NotRecovered) and symbol in fetched:
                decision = decide(seq, merge(fetched[symbol], local), self.limit)
            decisions[symbol] = decision
            if isinstance(decision, Recovered):
                self.metrics.recoveries.labels(result="recovered").inc()
                self.metrics.recovered_ticks.inc(len(decision.entries))
            else:
                self.metrics.recoveries.labels(result="not_recovered").inc()
        return layout(decisions)
