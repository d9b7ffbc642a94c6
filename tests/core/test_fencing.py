"""The fencing rule (fencing.py), and the Lua script that applies it in Redis, on one table."""

import pytest

from pledge_ws.cluster import keys
from pledge_ws.core.fencing import (
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
from pledge_ws.core.ticks import SequenceGuard, Tick

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
        key, primary = keys.price_key(f"T{n}"), f"primary{n}"
        client.set(keys.LEADER, "me")
        if stored is not None:
            tick = Tick("A-B", "1.0", stored[1], stored[2], term=stored[0])
            client.set(key, tick.to_json())
        new = Tick("A-B", "2.0", seq, ts, term=term).to_json()
        args = ["me", term, normalize_sequence(seq), ts, new, "2.0", RESET_AFTER_MS]
        got = script(keys=[keys.LEADER, key, primary], args=args).decode()
        assert got == verdict, (n, stored, term, seq, ts)
        written = verdict in (WRITTEN, RESET)
        assert (client.get(key) == new.encode()) is written
        assert (client.get(primary) == b"2.0") is written
    client.set(keys.LEADER, "someone-else")
    args = ["me", 9, "1", T0, "{}", "3.0", RESET_AFTER_MS]
    assert script(keys=[keys.LEADER, keys.price_key("X")], args=args) == b"not_leader"
    assert client.get(keys.price_key("X")) is None
    client.delete(keys.LEADER)  # a failover that lost the lock: nobody may write
    assert script(keys=[keys.LEADER, keys.price_key("X")], args=args) == b"not_leader"
