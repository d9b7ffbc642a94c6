"""Every worker's view of the tick stream: a Redis pub/sub subscriber with its own liveness.

redis-py's ``listen()`` can hang forever on a half-open connection, so this loop polls
``get_message(timeout=...)`` and pings the server itself: no message of any kind (a pong
counts) for ``silence_limit`` means the link is dead. On every (re)subscribe it first reads
the latest prices from Redis, so a worker that was cut off catches up at once; the order
guard downstream drops anything it already had.

Behind Sentinel (client.connect_redis) a failover can leave this connection on a node
that is no longer the master: dead (the ping catches it), or alive as a replica, where it
would still answer pings. So every ``MASTER_CHECK_EVERY`` the loop also asks the sentinels for the master
and ends the session if this connection is elsewhere; the next one goes to the new master.

Two channels: ``pledge_ws:ticks`` (every tick) and ``pledge_ws:beat`` (the leader's status
every second, leader.py), so a worker knows the feed is alive between prices.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import gevent
import redis

from pledge_ws.cluster.client import sentinel_master
from pledge_ws.cluster.keys import BEAT_CHANNEL, TICKS_CHANNEL
from pledge_ws.core.clock import Backoff
from pledge_ws.core.ticks import Tick, TickError
from pledge_ws.metrics import Metrics

log = logging.getLogger(__name__)

POLL_TIMEOUT = 1.0
PING_EVERY = 2.0
SILENCE_LIMIT = 5.0
MASTER_CHECK_EVERY = 2.0


class BusSilent(Exception):
    """The pub/sub connection stopped answering."""


class BusSubscriber:
    def __init__(
        self,
        client: redis.Redis,
        on_tick: Callable[[Tick], None],
        resync: Callable[[], None],
        metrics: Metrics,
        on_state: Callable[[bool], None] = lambda up: None,
        on_beat: Callable[[bytes], None] = lambda raw: None,
        backoff: Backoff | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.on_tick = on_tick
        self.resync = resync
        self.metrics = metrics
        self.on_state = on_state
        self.on_beat = on_beat
        self.backoff = backoff or Backoff(base=0.2, cap=5.0)
        self.now = now
        self.connected = False
        self.last_error = "not connected yet"

    def run(self) -> None:
        failures = 0
        while True:
            try:
                self._session()
            except (redis.RedisError, OSError, BusSilent) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            was_up = self.connected
            self._set_connected(False)
            self.metrics.redis_errors.labels(op="subscribe").inc()
            failures = 1 if was_up else min(failures + 1, 1000)
            gevent.sleep(self.backoff.compute(failures))

    def _set_connected(self, up: bool) -> None:
        if up != self.connected:
            self.connected = up
            self.metrics.bus_connected.set(1 if up else 0)
            if up:
                log.info("subscribed to %s", TICKS_CHANNEL, extra={"event": "bus_up"})
            else:
                log.warning("tick bus down: %s", self.last_error, extra={"event": "bus_down"})
            self.on_state(up)

    def _session(self) -> None:
        pubsub = self.client.pubsub(ignore_subscribe_messages=False)
        try:
            pubsub.subscribe(TICKS_CHANNEL, BEAT_CHANNEL)
            last_heard = self.now()
            next_ping = last_heard + PING_EVERY
            next_master_check = last_heard + MASTER_CHECK_EVERY
            confirmed = False
            while True:
                message = pubsub.get_message(timeout=POLL_TIMEOUT)
                now = self.now()
                if message is not None:
                    last_heard = now
                    kind = message.get("type")
                    if kind == "message" and message.get("channel") == BEAT_CHANNEL.encode():
                        data = message.get("data")
                        if isinstance(data, bytes):
                            self.on_beat(data)
                    elif kind == "message":
                        self._deliver(message.get("data"))
                    elif kind == "subscribe" and not confirmed:
                        confirmed = True
                        self.resync()  # after subscribing: nothing published from now on is missed
                        self.last_error = ""
                        self._set_connected(True)
                elif now - last_heard >= SILENCE_LIMIT:
                    raise BusSilent(f"no reply from Redis for {SILENCE_LIMIT:g}s")
                if now >= next_ping:
                    pubsub.ping()
                    next_ping = now + PING_EVERY
                if now >= next_master_check:
                    self._check_master(pubsub)
                    next_master_check = now + MASTER_CHECK_EVERY
        finally:
            with contextlib.suppress(Exception):
                pubsub.reset()

    def _check_master(self, pubsub: redis.client.PubSub) -> None:
        """Sentinel only: end the session if this connection is not on the current master."""
        connection = pubsub.connection
        master = sentinel_master(self.client)  # also drops the pool's idle connections to an old one
        if master is None or connection is None:
            return  # a plain client, or no sentinel can say: the ping still checks this link
        here = (str(connection.host), int(connection.port))
        if master != here:
            raise BusSilent(f"subscribed to {here[0]}:{here[1]}, but the master is now {master[0]}:{master[1]}")

    def _deliver(self, data: object) -> None:
        if not isinstance(data, bytes | str):
            self.metrics.ticks_dropped.labels(reason="bad_bus_message").inc()
            return
        try:
            tick = Tick.from_json(data)
        except TickError:
            self.metrics.ticks_dropped.labels(reason="bad_bus_message").inc()
            return
        self.on_tick(tick)
