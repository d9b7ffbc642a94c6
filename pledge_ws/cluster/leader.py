"""Leader election over Redis: exactly one process per deployment holds the exchange feed.

The lock is ``SET pledge_ws:leader <identity> NX PX ttl``, renewed every ``ttl/3`` by a script
that extends it only while it still holds our identity (redis-py's Lock pattern, here as our
own scripts because acquisition also draws the term). If the leader dies, the key expires and
another process takes it within ``ttl`` plus one polling interval.

Terms (fencing, see core/fencing.py): a successful acquisition, and only that, runs ``INCR
pledge_ws:term`` in the same script, so a fresh deployment's first leader has term 1 and each
later acquisition one more. A failover can lose the last ``INCR`` (replication is
asynchronous), so the acquirer passes the newest term it has seen as a floor, and renewals
write the holder's term back if the key fell behind.

Stepping down: a leader's lease runs from the moment its last successful renewal was *sent*;
``ttl - margin`` later (no renewal got through meanwhile: Redis unreachable, or this process
was frozen) :meth:`Elector.write_term` returns None and the writer and the heartbeat stop,
before any other process can hold the lock. The feed keeps serving this process's own
clients (the sequence guard keeps them ordered) until a renewal tells who leads: our key
still ours (go on), or someone else's (stop the feed at once).

Keys: ``pledge_ws:leader`` holds the leader's identity (``host:pid:random``),
``pledge_ws:term`` the last term issued, ``pledge_ws:feed`` the leader's feed status as JSON
(for operators), and the leader publishes the same status with its term on the channel
``pledge_ws:beat`` every ``ttl/3``: what followers judge liveness by (core/liveness.py).
The names are in keys.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Protocol

import gevent
import redis

from pledge_ws.cluster.keys import BEAT_CHANNEL, FEED_STATUS, LEADER, TERM
from pledge_ws.core.fencing import lease_left
from pledge_ws.core.readiness import FeedStatus
from pledge_ws.metrics import Metrics

log = logging.getLogger(__name__)

LEADER_TTL = 3.0

# KEYS: leader, term. ARGV: identity, ttl ms, floor. Returns the new term, or 0 (held by another).
ACQUIRE_SCRIPT = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
local term = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if term <= floor then
  term = floor + 1
  redis.call('SET', KEYS[2], term)
end
return term
"""

# KEYS: leader, term. ARGV: identity, ttl ms, our term. 1 if still ours (extended), else 0.
RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if (tonumber(redis.call('GET', KEYS[2])) or 0) < tonumber(ARGV[3]) then redis.call('SET', KEYS[2], ARGV[3]) end
return 1
"""

RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class FeedHolder(Protocol):
    """What the leader runs (worker/holder.py): started when elected, stopped when deposed,
    its status published in every heartbeat."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> FeedStatus: ...


def make_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Elector:
    def __init__(
        self,
        client: redis.Redis,
        holder: FeedHolder,
        metrics: Metrics,
        identity: str | None = None,
        ttl: float = LEADER_TTL,
        now: Callable[[], float] = time.monotonic,
        seen_term: Callable[[], int] = lambda: 0,
        margin: float | None = None,
    ) -> None:
        self.client = client
        self.identity = identity or make_identity()
        self.ttl = ttl
        self.margin = ttl / 3 if margin is None else margin
        self.holder = holder
        self.metrics = metrics
        self.now = now
        self.seen_term = seen_term
        self.is_leader = False
        self.term = 0  # the term this process holds (or last held)
        self.redis_ok = False
        self.leader_status: dict[str, object] | None = None  # the leader's feed, as followers see it
        self._renewed_at: float | None = None
        self._lease_lapsed = False
        self._acquire = client.register_script(ACQUIRE_SCRIPT)
        self._renew_script = client.register_script(RENEW_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)
        self._not_before = 0.0
        self._stopped = False

    @property
    def ttl_ms(self) -> int:
        return int(self.ttl * 1000)

    def write_term(self) -> int | None:
        """The term to stamp on writes and publishes, or None: this process must not write."""
        if not self.is_leader or lease_left(self._renewed_at, self.ttl, self.margin, self.now()) <= 0:
            return None
        return self.term

    def run(self) -> None:
        while not self._stopped:
            self.step()
            gevent.sleep(self.ttl / 3)

    def step(self) -> None:
        """One renewal or acquisition attempt, plus the feed-status exchange."""
        try:
            if self.is_leader:
                self._renew()
            elif self.now() >= self._not_before:
                self._try_acquire()
            term = self.write_term()
            if term is not None:
                status = json.dumps({"leader": self.identity, "term": term, **self.holder.status().to_beat()})
                pipe = self.client.pipeline(transaction=False)
                pipe.set(FEED_STATUS, status, px=int(self.ttl * 3000))
                pipe.publish(BEAT_CHANNEL, status)
                pipe.execute()
                self.leader_status = None
            elif not self.is_leader:
                raw = self.client.get(FEED_STATUS)
                self.leader_status = json.loads(raw) if raw else None
            self.redis_ok = True
        except redis.RedisError as exc:
            self.metrics.redis_errors.labels(op="leader").inc()
            if self.redis_ok or not self.is_leader:
                log.warning("leader election: redis unreachable: %s", exc, extra={"event": "election_redis_down"})
            self.redis_ok = False
            if not self.is_leader:
                # When Redis returns, give the incumbent one TTL to re-take its lock first.
                self._not_before = self.now() + self.ttl
        except ValueError:
            self.leader_status = None  # unreadable status: report as unknown
        self._note_lease()

    def _note_lease(self) -> None:
        lapsed = self.is_leader and self.write_term() is None
        if lapsed and not self._lease_lapsed:
            log.warning(
                "leadership lease lapsed (no renewal for %.1fs): not writing or publishing until a renewal succeeds",
                self.ttl - self.margin,
                extra={"event": "leader_lease_lapsed", "identity": self.identity, "term": self.term},
            )
        self._lease_lapsed = lapsed

    def _draw_term(self) -> int:
        """Try to take the free lock; on success the new term (also kept), else 0."""
        sent = self.now()
        floor = max(self.seen_term(), self.term)
        term = int(self._acquire(keys=[LEADER, TERM], args=[self.identity, self.ttl_ms, floor]))
        if term:
            self.term = term
            self._renewed_at = sent
            self.metrics.leader_term.set(term)
        return term

    def _try_acquire(self) -> None:
        if self._draw_term():
            self._elected()

    def _renew(self) -> None:
        sent = self.now()
        if self._renew_script(keys=[LEADER, TERM], args=[self.identity, self.ttl_ms, self.term]):
            self._renewed_at = sent
            return
        # Our key is gone (Redis restarted or failed over, or we were cut off past the TTL):
        # take it back under a new term if nobody else has; otherwise step down at once.
        old = self.term
        if self._draw_term():
            log.info(
                "leadership re-acquired under term %d (was %d)",
                self.term,
                old,
                extra={"event": "leader_reacquired", "identity": self.identity, "term": self.term},
            )
            return
        self._deposed()

    def _elected(self) -> None:
        self.is_leader = True
        self.metrics.leader.set(1)
        log.info(
            "leader gained (term %d): this process holds the exchange feed",
            self.term,
            extra={"event": "leader_gained", "identity": self.identity, "term": self.term},
        )
        self.holder.start()

    def _deposed(self) -> None:
        self.is_leader = False
        self._renewed_at = None
        self.metrics.leader.set(0)
        owner = None
        with contextlib.suppress(redis.RedisError):
            owner = self.client.get(LEADER)
        log.warning(
            "leader lost: %s holds the lock; stopping the exchange feed",
            owner.decode(errors="replace") if isinstance(owner, bytes) else owner,
            extra={"event": "leader_lost", "identity": self.identity, "term": self.term},
        )
        self.holder.stop()

    def leader_identity(self) -> str | None:
        if self.is_leader:
            return self.identity
        status = self.leader_status or {}
        leader = status.get("leader")
        return leader if isinstance(leader, str) else None

    def stop(self) -> None:
        """Give the lock up (on shutdown) so a follower takes over without waiting for the TTL."""
        self._stopped = True
        if self.is_leader:
            self.is_leader = False
            self._renewed_at = None
            self.metrics.leader.set(0)
            with contextlib.suppress(redis.RedisError):
                self._release(keys=[LEADER], args=[self.identity])
            self.holder.stop()
