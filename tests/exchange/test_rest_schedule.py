"""The REST fallback's schedule, with plain numbers (no sockets)."""

from __future__ import annotations

import pytest

from pledge_ws.core.clock import Backoff
from pledge_ws.exchange.rest_schedule import (
    DEFAULT_RATE_LIMIT_HOLD,
    FAILED,
    LEVEL1_WEIGHT,
    MAX_CALLS_PER_SECOND,
    OK,
    RATE_LIMITED,
    REST_WEIGHT_PER_30S,
    PollSchedule,
    call_spacing,
    rate_limit_hold,
)


def fixed_backoff() -> Backoff:
    return Backoff(base=1.0, cap=30.0, rng=lambda: 1.0)


@pytest.mark.parametrize("symbols", [1, 3, 50, 300])
def test_any_symbol_count_stays_far_inside_kucoins_budget(symbols):
    spacing = call_spacing(2.0, symbols)
    weight_per_30s = 30.0 / spacing * LEVEL1_WEIGHT
    assert weight_per_30s <= REST_WEIGHT_PER_30S / 4 + 1e-9
    assert spacing == pytest.approx(max(2.0 / symbols, 1 / MAX_CALLS_PER_SECOND))


def test_round_robin_one_call_per_spacing():
    schedule = PollSchedule(("A-USDT", "B-USDT"), 2.0, fixed_backoff())
    assert schedule.due(0.0) == ("A-USDT", 0.0)
    schedule.record(0.0, OK)
    assert schedule.due(0.5) == (None, pytest.approx(0.5))
    assert schedule.due(1.0) == ("B-USDT", 0.0)
    schedule.record(1.0, OK)
    assert schedule.due(2.0)[0] == "A-USDT"


def test_unavailable_symbols_are_skipped():
    schedule = PollSchedule(("A-USDT", "B-USDT"), 2.0)
    assert schedule.due(0.0, frozenset({"A-USDT"})) == ("B-USDT", 0.0)
    assert schedule.due(0.0, frozenset({"A-USDT", "B-USDT"}))[0] is None


def test_a_429_holds_every_call_until_the_reset():
    schedule = PollSchedule(("A-USDT",), 2.0)
    schedule.due(0.0)
    schedule.record(0.0, RATE_LIMITED, rate_limit_hold("4000"))
    assert schedule.due(3.9)[0] is None
    assert schedule.due(4.0)[0] == "A-USDT"


@pytest.mark.parametrize(("header", "hold"), [("4000", 4.0), ("0", 0.0), (None, DEFAULT_RATE_LIMIT_HOLD)])
def test_rate_limit_hold_reads_milliseconds(header, hold):
    assert rate_limit_hold(header) == hold


@pytest.mark.parametrize("header", ["soon", "-5"])
def test_an_unusable_reset_header_holds_a_whole_window(header):
    assert rate_limit_hold(header) == DEFAULT_RATE_LIMIT_HOLD


def test_failures_back_off_and_a_success_resets():
    schedule = PollSchedule(("A-USDT",), 2.0, fixed_backoff())
    waits = []
    now = 0.0
    for _ in range(5):
        schedule.record(now, FAILED)
        _, wait = schedule.due(now)
        waits.append(wait)
    assert waits == [2.0, 2.0, 4.0, 8.0, 16.0]
    schedule.record(now, OK)
    assert schedule.due(now + 2.0)[0] == "A-USDT"


def test_answering_only_while_answers_are_recent():
    schedule = PollSchedule(("A-USDT",), 2.0)
    assert not schedule.answering(0.0)
    schedule.record(1.0, OK)
    assert schedule.answering(1.0 + 2 * 2.0 + 2.9)
    assert not schedule.answering(1.0 + 2 * 2.0 + 3.1)
    schedule.forget()
    assert not schedule.answering(1.5)


def test_a_new_outage_starts_without_the_last_outage_s_backoff():
    schedule = PollSchedule(("A-USDT",), 2.0, backoff=fixed_backoff())
    for n in range(5):
        schedule.due(float(n))
        schedule.record(float(n), FAILED)
    assert schedule.wait(5.0) > 10  # backed off after five failures
    schedule.restart(100.0)  # the WebSocket delivered meanwhile; now it is down again
    assert schedule.due(100.0) == ("A-USDT", 0.0)
    schedule.record(100.0, FAILED)
    assert schedule.wait(100.0) == 2.0  # the first failure of this outage: backoff from the bottom


def test_a_429_hold_outlives_a_switch():
    schedule = PollSchedule(("A-USDT",), 2.0)
    schedule.record(0.0, RATE_LIMITED, hold=20.0)
    schedule.restart(5.0)
    assert schedule.due(5.0) == (None, 15.0)
    assert schedule.due(20.0)[0] == "A-USDT"
