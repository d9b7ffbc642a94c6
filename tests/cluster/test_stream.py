"""The history Streams in Redis (cluster/stream.py), on a real redis-server."""

from __future__ import annotations

import pytest
import redis as redis_lib

from pledge_ws.cluster.keys import stream_key
from pledge_ws.cluster.stream import RedisHistory
from pledge_ws.core.book import PriceBook
from pledge_ws.core.fencing import RESET_AFTER_MS
from pledge_ws.core.ticks import SequenceGuard, Tick

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000


def test_stream_append_follows_a_sequence_reset_and_nothing_else(redis):

    client = redis_lib.Redis(port=redis.port)
    local = PriceBook(10)
    shared = RedisHistory(client, local)
    guard = SequenceGuard()  # as in the runtime: memory only gets what the guard accepts

    def append(seq: int, ts: int) -> None:
        tick = Tick("A-B", "1.0", str(seq), ts)
        pipe = client.pipeline(transaction=False)
        shared.append(pipe, tick)
        pipe.execute()
        if guard.accept(tick):
            local.add(tick)

    def ids() -> list[int]:
        return [int(i.decode().split("-")[0]) for i, _ in client.xrange(stream_key("A-B"))]

    append(1000, T0)
    append(1001, T0 + 1)
    append(999, T0 + 2)  # older: refused, a no-op
    append(1001, T0 + RESET_AFTER_MS)  # a repeat never passes
    assert ids() == [1000, 1001]
    append(10, T0 + RESET_AFTER_MS + 1)  # the exchange restarted its sequence
    append(11, T0 + RESET_AFTER_MS + 2)
    assert ids() == [10, 11]
    assert [e.order for e in local.since("A-B", 0)] == [10, 11]  # memory drops the old space too


def test_a_stream_append_that_redis_refuses_for_another_reason_fails_loudly(redis):
    """Only "ID not above the top" is a no-op; any other refusal (here NOREPLICAS: writes
    refused while no replica acknowledges) must reach the writer as an error, so it keeps the
    batch and retries, instead of taking the tick as written."""

    client = redis_lib.Redis(port=redis.port)
    shared = RedisHistory(client, PriceBook(10))

    def append(seq: int) -> None:
        pipe = client.pipeline(transaction=False)
        shared.append(pipe, Tick("A-B", "1.0", str(seq), T0 + seq))
        pipe.execute()

    append(1)
    client.config_set("min-replicas-to-write", 1)
    try:
        with pytest.raises(redis_lib.ResponseError, match="NOREPLICAS"):
            append(2)
    finally:
        client.config_set("min-replicas-to-write", 0)
    append(2)
    assert [i.decode() for i, _ in client.xrange(stream_key("A-B"))] == ["1-0", "2-0"]
