"""The process's Redis client, plain or Sentinel-managed, and keeping it on the master.

redis-py's Sentinel client asks the sentinels for the master only when it opens a connection,
and drops idle connections only when *that* lookup sees a change. A connection kept open to a
master that Sentinel demoted alive (``SENTINEL FAILOVER``, or a partition that heals) goes on
writing to the old node, which still accepts writes until Sentinel turns it into a replica
(seconds later: it waits to see the node report the wrong role). Everything written there in
between is lost when it resyncs. :class:`MasterFollower` asks on a clock instead, so that
window is at most one check.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from pledge_ws.core.redis_url import is_sentinel_url, parse_sentinel_url

REDIS_TIMEOUT = 1.0
Address = tuple[str, int]


def connect_redis(url: str) -> redis.Redis:
    """One client per process, shared by the writer, the bus and the elector.

    A ``redis+sentinel://`` URL gives redis-py's Sentinel-managed master client: every new
    connection asks the sentinels for the current master, and a command that meets a demoted
    master (READONLY) disconnects so that the next one asks again. What it does not do (it
    never listens to ``+switch-master``; a connection on a master demoted alive, or a pub/sub
    connection on an old node, stays there) is covered by :class:`MasterFollower` (the
    writer's check) and the bus's own master check (bus.py).
    """
    # No retries inside redis-py (its default is 10, with backoff up to 1 s: one Sentinel
    # lookup over three dead sentinels took 10.9 s, holding the writer's greenlet): every loop
    # here has its own backoff and must see a failure at once.
    timeouts: dict[str, Any] = {"socket_timeout": REDIS_TIMEOUT, "socket_connect_timeout": REDIS_TIMEOUT}
    timeouts["retry"] = Retry(NoBackoff(), 0)
    if is_sentinel_url(url):
        target = parse_sentinel_url(url)
        sentinel = redis.sentinel.Sentinel(
            target.sentinels,
            sentinel_kwargs={**timeouts, "password": target.sentinel_password, "ssl": target.ssl},
        )
        return sentinel.master_for(
            target.service,
            db=target.db,
            username=target.username,
            password=target.password,
            ssl=target.ssl,
            health_check_interval=0,
            decode_responses=False,
            **timeouts,
        )
    return redis.Redis.from_url(url, health_check_interval=0, decode_responses=False, **timeouts)


def sentinel_master(client: redis.Redis) -> Address | None:
    """The master the sentinels name now; None for a plain client, or when no sentinel can
    say (all of them restarting): that is no reason to leave a master that still answers, so
    callers keep their connections as they are until the sentinels can say again."""
    pool = client.connection_pool
    if not isinstance(pool, redis.sentinel.SentinelConnectionPool):
        return None
    try:
        host, port = pool.get_master_address()
    except redis.sentinel.MasterNotFoundError:
        return None
    return str(host), int(port)


class MasterFollower:
    """Asks the sentinels for the master on the writer's clock, and says when it moved.

    Asking is what moves the connections: redis-py's Sentinel pool drops its idle connections
    when a lookup finds a changed address, and never returns to the pool a connection busy
    at that moment on the old node (``owns_connection``, redis-py 8.1; both pinned by
    tests/test_sentinel.py). Left alone, the pool looks only when it opens a connection, so an
    idle one to a master demoted alive could write there for seconds. It remembers the address
    it saw at its last check rather than the pool's record, which a connect elsewhere in the
    process may already have updated, so every move is reported once.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.master: Address | None = None

    def check(self) -> Address | None:
        """The previous master if the master moved since the last check, else None."""
        master = sentinel_master(self.client)  # a changed address drops the pool's idle connections
        if master is None:
            return None
        previous, self.master = self.master, master
        if previous is None or previous == master:
            return None
        return previous
