"""The feed status as a typed value and the readiness rule, with plain values."""

from __future__ import annotations

from pledge_ws.core.readiness import FeedStatus, WorkerView, not_ready_reasons
from pledge_ws.core.ticks import PRINT_CONFIRMED, PRINT_HELD, PRINT_OK, PrintFilter, Tick


def test_a_heartbeat_round_trips_and_old_or_bad_ones_read_as_not_delivering():
    status = FeedStatus(connected=False, source="rest", error="ws down", unavailable=("X-Y",))
    assert FeedStatus.from_beat(status.to_beat()) == status
    assert FeedStatus.from_beat({"connected": True}).delivering  # a leader from before `source`
    assert FeedStatus.from_beat({"connected": False, "delivering": True}).source == "ws"
    bad = FeedStatus.from_beat({"source": 7, "unavailable": "X", "error": None})
    assert not bad.delivering and bad.unavailable == () and bad.error == ""


def view(**changes: object) -> WorkerView:
    base = {"shutting_down": False, "feed": FeedStatus(True, "ws"), "primary_symbol": "A-B", "redis": True}
    return WorkerView(**{**base, **changes})  # type: ignore[arg-type]


def test_ready_from_either_source_and_every_reason_named():
    assert not_ready_reasons(view()) == []
    assert not_ready_reasons(view(feed=FeedStatus(False, "rest"))) == []  # REST answering: ready
    reasons = not_ready_reasons(
        view(
            shutting_down=True,
            feed=FeedStatus(False, None, "refused", ("A-B",)),
            redis_ok=False,
            bus_up=False,
            bus_error="down",
            leader=True,
            writes_ok=False,
            write_error="timeout",
        )
    )
    assert reasons == [
        "shutting down",
        "exchange feed not delivering (WebSocket: refused; no REST fallback answer)",
        "primary symbol A-B not found on the exchange",
        "redis unreachable",
        "tick bus not subscribed: down",
        "redis writes failing: timeout",
    ]
    assert not_ready_reasons(view(redis=False, redis_ok=False, bus_up=False)) == []  # no Redis configured
    assert not_ready_reasons(view(writes_ok=False)) == []  # only the leader writes


def test_a_jump_is_held_unless_the_next_print_confirms_it():
    prints = PrintFilter(0.5)
    one, spike, normal = (Tick("A-B", p, str(n), 1) for n, p in ((1, "1.0"), (2, "9.0"), (3, "1.1")))
    assert prints.check(None, one) == PRINT_OK
    assert prints.check(one, spike) == PRINT_HELD
    assert prints.check(one, normal) == PRINT_OK  # the spike never confirmed: forgotten
    moved, confirm = Tick("A-B", "2.0", "4", 1), Tick("A-B", "2.05", "5", 1)
    assert prints.check(normal, moved) == PRINT_HELD
    assert prints.check(normal, confirm) == PRINT_CONFIRMED
    assert PrintFilter(0).check(one, spike) == PRINT_OK  # off
