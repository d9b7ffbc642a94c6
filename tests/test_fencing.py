"""The fencing rule (fencing.py), and the Lua script that applies it in Redis, on one table."""

import pytest

from pledge_ws.fencing import (
    NOT_LEADER,
    NOT_NEWER,
    OLDER_TERM,
    RESET,
    RESET_AFTER_MS,
    WRITE_LATEST_SCRIPT,
    WRITTEN,
    Stored,
    decide,
    lease_left,
    normalize_sequence,
    sequence_above,
)
from pledge_ws.ticks import SequenceGuard, Tick

T0 = 1_700_000_000_000
BIG = "1" + "0" * 29  # 30 digits: beyond a double's exact range

# (stored (term, seq, ts) or None, write (term, seq, ts), verdict)
CASES = [
    (None, (1, "5", T0), WRITTEN),
    ((1, "5", T0), (1, "6", T0 + 1), WRITTEN),
    ((1, "5", T0), (1, "5", T0 + 1), NOT_NEWER),  # repeated
    ((1, "5", T0), (1, "4", T0 + 1), NOT_NEWER),  # older
    ((2, "5", T0), (1, "9", T0 + 1), OLDER_TERM),  # a deposed leader, even with a newer seq
    ((1, "5", T0), (2, "4", T0 + 1), NOT_NEWER),  # a new leader with a stale book gains nothing
    ((1, "5", T0), (2, "6", T0 + 1), WRITTEN),
    ((1, "0009", T0), (1, "10", T0 + 1), WRITTEN),  # leading zeros compare by value
    ((1, BIG, T0), (1, BIG[:-1] + "1", T0 + 1), WRITTEN),
    ((1, BIG[:-1] + "1", T0), (1, BIG, T0 + 1), NOT_NEWER),
    ((1, "99999", T0), (1, "100000", T0), WRITTEN),  # longer is larger
    ((1, "1000", T0), (1, "10", T0 + RESET_AFTER_MS - 1), NOT_NEWER),  # not a reset: too soon
    ((1, "1000", T0), (1, "10", T0 + RESET_AFTER_MS), RESET),  # the exchange restarted its sequence
    ((2, "1000", T0), (1, "10", T0 + RESET_AFTER_MS), OLDER_TERM),
]


def _stored(row):
    return None if row is None else Stored(*row)


@pytest.mark.parametrize(("stored", "write", "verdict"), CASES)
def test_rule(stored, write, verdict):
    assert decide(_stored(stored), *write) == verdict


def test_not_the_lock_holder_is_refused_first():
    assert decide(None, 5, "1", T0, holds_lock=False) == NOT_LEADER


def test_sequence_compare():
    assert sequence_above("10", "9") and not sequence_above("9", "10") and not sequence_above("007", "7")
    assert normalize_sequence("000") == "0" and normalize_sequence("0012") == "12"


def test_lease_ends_a_margin_before_the_ttl():
    assert lease_left(None, 3.0, 1.0, 0.0) == 0.0
    assert lease_left(100.0, 3.0, 1.0, 101.0) == pytest.approx(1.0)
    assert lease_left(100.0, 3.0, 1.0, 102.0) <= 0


def test_sequence_guard_follows_the_same_reset_rule():
    guard = SequenceGuard()
    assert guard.accept(Tick("A-B", "1", "1000", T0))
    assert not guard.accept(Tick("A-B", "1", "1000", T0 + RESET_AFTER_MS))  # a repeat never passes
    assert not guard.accept(Tick("A-B", "1", "10", T0 + RESET_AFTER_MS - 1))
    assert guard.accept(Tick("A-B", "1", "10", T0 + RESET_AFTER_MS))
    assert guard.last("A-B") == 10


def test_lua_script_agrees_with_the_rule(redis):
    import redis as redis_lib

    client = redis_lib.Redis(port=redis.port)
    script = client.register_script(WRITE_LATEST_SCRIPT)
    for n, (stored, (term, seq, ts), verdict) in enumerate(CASES):
        key, primary = f"pledge_ws:price:T{n}", f"primary{n}"
        client.set("pledge_ws:leader", "me")
        if stored is not None:
            tick = Tick("A-B", "1.0", stored[1], stored[2], term=stored[0])
            client.set(key, tick.to_json())
        new = Tick("A-B", "2.0", seq, ts, term=term).to_json()
        args = ["me", term, normalize_sequence(seq), ts, new, "2.0", RESET_AFTER_MS]
        got = script(keys=["pledge_ws:leader", key, primary], args=args).decode()
        assert got == verdict, (n, stored, term, seq, ts)
        written = verdict in (WRITTEN, RESET)
        assert (client.get(key) == new.encode()) is written
        assert (client.get(primary) == b"2.0") is written
    client.set("pledge_ws:leader", "someone-else")
    args = ["me", 9, "1", T0, "{}", "3.0", RESET_AFTER_MS]
    assert script(keys=["pledge_ws:leader", "pledge_ws:price:X"], args=args) == b"not_leader"
    assert client.get("pledge_ws:price:X") is None
    client.delete("pledge_ws:leader")  # a failover that lost the lock: nobody may write
    assert script(keys=["pledge_ws:leader", "pledge_ws:price:X"], args=args) == b"not_leader"


def test_stream_append_follows_a_sequence_reset_and_nothing_else(redis):
    import redis as redis_lib

    from pledge_ws.history import LocalHistory, RedisHistory, stream_key

    client = redis_lib.Redis(port=redis.port)
    local = LocalHistory(10)
    shared = RedisHistory(client, local)
    guard = SequenceGuard()  # as in the runtime: memory only gets what the guard accepts

    def append(seq: int, ts: int) -> None:
        tick = Tick("A-B", "1.0", str(seq), ts)
        pipe = client.pipeline(transaction=False)
        shared.append(pipe, tick)
        pipe.execute()
        if guard.accept(tick):
            local.append(tick)

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
    import redis as redis_lib

    from pledge_ws.history import LocalHistory, RedisHistory, stream_key

    client = redis_lib.Redis(port=redis.port)
    shared = RedisHistory(client, LocalHistory(10))

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
