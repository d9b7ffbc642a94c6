"""Leader election over Redis: exactly one process per deployment holds the exchange feed.

The lock is redis-py's :class:`redis.lock.Lock` (``SET key token NX PX ttl``, renewed with a
compare-and-pexpire script): the documented single-instance Redis lock pattern. The leader
renews every ``ttl/3``; if it dies, the key expires and another process takes it within
``ttl`` plus one polling interval. A leader whose renewal finds the key held by someone else
stops its exchange connection at once. A leader cut off from Redis keeps its feed (its own
clients keep getting prices; it cannot publish anyway) and steps down when it sees another
owner after Redis answers again.

Keys: ``pledge_ws:leader`` holds the leader's identity (``host:pid:random``);
``pledge_ws:feed`` holds the leader's feed status as JSON, so followers can report it.
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

import gevent
import redis
from redis.exceptions import LockError

from pledge_ws.metrics import Metrics
from pledge_ws.store import KEY_PREFIX

log = logging.getLogger(__name__)

LEADER_KEY = f"{KEY_PREFIX}leader"
FEED_STATUS_KEY = f"{KEY_PREFIX}feed"
LEADER_TTL = 3.0


def make_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Elector:
    def __init__(
        self,
        client: redis.Redis,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        feed_status: Callable[[], dict[str, object]],
        metrics: Metrics,
        identity: str | None = None,
        ttl: float = LEADER_TTL,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.identity = identity or make_identity()
        self.ttl = ttl
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.feed_status = feed_status
        self.metrics = metrics
        self.now = now
        self.is_leader = False
        self.redis_ok = False
        self.leader_status: dict[str, object] | None = None  # the leader's feed, as followers see it
        self._lock = client.lock(LEADER_KEY, timeout=ttl, thread_local=False)
        self._not_before = 0.0
        self._stopped = False

    def run(self) -> None:
        while not self._stopped:
            self.step()
            gevent.sleep(self.ttl / 3)

    def step(self) -> None:
        """One renewal or acquisition attempt, plus the feed-status exchange."""
        try:
            if self.is_leader:
                self._renew()
            elif self.now() >= self._not_before and self._lock.acquire(blocking=False, token=self.identity):
                self._elected()
            if self.is_leader:
                self.client.set(
                    FEED_STATUS_KEY,
                    json.dumps({"leader": self.identity, **self.feed_status()}),
                    px=int(self.ttl * 3000),
                )
                self.leader_status = None
            else:
                raw = self.client.get(FEED_STATUS_KEY)
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

    def _renew(self) -> None:
        try:
            self._lock.reacquire()
        except LockError:
            # Our key is gone (Redis restarted or we were cut off past the TTL): take it back
            # if nobody else has; otherwise step down at once.
            if self._lock.acquire(blocking=False, token=self.identity):
                log.info("leadership re-acquired", extra={"event": "leader_reacquired", "identity": self.identity})
                return
            self._deposed()

    def _elected(self) -> None:
        self.is_leader = True
        self.metrics.leader.set(1)
        log.info(
            "leader gained: this process holds the exchange feed",
            extra={"event": "leader_gained", "identity": self.identity},
        )
        self.on_elected()

    def _deposed(self) -> None:
        self.is_leader = False
        self.metrics.leader.set(0)
        owner = None
        with contextlib.suppress(redis.RedisError):
            owner = self.client.get(LEADER_KEY)
        log.warning(
            "leader lost: %s holds the lock; stopping the exchange feed",
            owner,
            extra={"event": "leader_lost", "identity": self.identity},
        )
        self.on_deposed()

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
            self.metrics.leader.set(0)
            with contextlib.suppress(redis.RedisError, LockError):
                self._lock.release()
            self.on_deposed()
