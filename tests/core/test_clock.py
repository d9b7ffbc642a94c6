import pytest

from pledge_ws.core.clock import (
    DEAD_AGE,
    DEAD_PONG,
    DEAD_SILENT,
    PING,
    Backoff,
    HeartbeatClock,
    TokenBucket,
    UpstreamClock,
)


def test_backoff_doubles_up_to_cap_with_bounded_jitter():
    low = Backoff(base=0.5, cap=30, rng=lambda: 0.0)
    high = Backoff(base=0.5, cap=30, rng=lambda: 1.0)
    assert [low.ceiling(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    for n in range(1, 12):
        assert low.compute(n) == low.ceiling(n) / 2  # never zero: no tight loop
        assert high.compute(n) == low.ceiling(n)
    assert low.compute(10_000) == 15  # no overflow for huge failure counts


def test_backoff_rejects_nonsense():
    with pytest.raises(ValueError):
        Backoff(base=0)


def test_heartbeat_clock():
    clock = HeartbeatClock(20, now=100)
    assert clock.remaining(110) == 10
    assert not clock.expired(119.9)
    assert clock.expired(120)
    clock.beat(115)
    assert clock.remaining(120) == 15


def test_upstream_clock_pings_on_interval_and_waits_until_next_deadline():
    clock = UpstreamClock(ping_interval=18, ping_timeout=10, now=0, max_age=1000)
    assert clock.poll(5) == (None, 13)
    assert clock.poll(18)[0] == PING
    clock.ping_sent(18)
    clock.pong_received(19)
    assert clock.poll(20) == (None, 16)


def test_upstream_clock_declares_missing_pong_dead():
    clock = UpstreamClock(ping_interval=18, ping_timeout=10, now=0, max_age=1000)
    clock.ping_sent(18)
    clock.frame_received(20)  # ticks still arriving do not excuse a missing pong
    assert clock.poll(27.9)[0] is None
    assert clock.poll(28)[0] == DEAD_PONG


def test_upstream_clock_declares_silence_dead():
    clock = UpstreamClock(ping_interval=100, ping_timeout=10, now=0, max_age=1000, silence_limit=30)
    assert clock.poll(29)[0] is None
    assert clock.poll(30)[0] == DEAD_SILENT


def test_upstream_clock_retires_old_sessions():
    clock = UpstreamClock(ping_interval=18, ping_timeout=10, now=0, max_age=50)
    for t in range(0, 50, 9):
        clock.frame_received(t)
        clock.pong_received(t)
        clock.ping_sent(t)
    assert clock.poll(50)[0] == DEAD_AGE


def test_token_bucket_allows_bursts_then_rate():
    bucket = TokenBucket(rate=2, burst=3, now=0)
    assert [bucket.take(0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5)
    assert not bucket.take(0.6)
