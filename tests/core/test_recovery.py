"""Recovery's pure core: since parsing, the gap proof, the frames laid out."""

from __future__ import annotations

import json

import pytest

from pledge_ws.core.book import Entry
from pledge_ws.core.recovery import NotRecovered, Recovered, decide, merge, parse_since, plan
from pledge_ws.core.ticks import Tick

SYMBOLS = ("A-USDT", "B-USDT")


def entry(order: int, prev: int | None, frame: bytes) -> Entry:
    return Entry(order, prev, frame, Tick("A-USDT", "1.0", str(order), 1))


def chain(orders: list[int], first_prev: int | None = None) -> list[Entry]:
    entries, prev = [], first_prev
    for order in orders:
        entries.append(entry(order, prev, b"f%d" % order))
        prev = order
    return entries


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A-USDT:5", {"A-USDT": 5}),
        ("a-usdt:5,B-USDT:0007", {"A-USDT": 5, "B-USDT": 7}),
        (" A-USDT:5 , B-USDT:6 ", {"A-USDT": 5, "B-USDT": 6}),
    ],
)
def test_parse_since_accepts(raw, expected):
    assert parse_since(raw, SYMBOLS) == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "SYMBOL:SEQ"),
        ("A-USDT", "malformed item"),
        ("A-USDT:", "malformed item"),
        ("A-USDT:-1", "malformed item"),
        ("A-USDT:1.5", "malformed item"),
        ("A-USDT:1,", "SYMBOL:SEQ"),
        ("A-USDT:1:2", "malformed item"),
        ("C-USDT:1", "C-USDT is not in symbols"),
        ("A-USDT:1,A-USDT:2", "given twice"),
        ("A-USDT:" + "9" * 31, "malformed item"),
    ],
)
def test_parse_since_names_the_problem(raw, problem):
    error = parse_since(raw, SYMBOLS)
    assert isinstance(error, str) and problem in error


def test_decide_needs_an_unbroken_chain_from_the_position():
    kept = chain([10, 12, 15, 16], first_prev=9)
    assert decide(10, kept, 100) == Recovered(tuple(kept[1:]), 16)  # anchored: 10 itself is kept
    assert decide(9, kept, 100) == Recovered(tuple(kept), 16)  # 9 was trimmed, but 10.prev proves it
    assert decide(16, kept[3:], 100) == Recovered((), 16)  # nothing missed
    assert decide(11, kept[1:], 100) == NotRecovered("gap")  # 11 is no tick this history knows
    assert decide(8, kept, 100) == NotRecovered("gap")  # too old: 10's predecessor was 9
    assert decide(17, [], 100) == NotRecovered("unknown")  # newer than anything kept
    holed = [kept[0], kept[1], entry(15, 13, b"x"), kept[3]]  # 13 was lost before 15 was kept
    assert decide(10, holed, 100) == NotRecovered("gap")
    assert decide(15, holed[2:], 100) == Recovered((kept[3],), 16)  # after the hole: fine
    unknown_prev = [kept[0], entry(12, None, b"x")]
    assert decide(10, unknown_prev, 100) == NotRecovered("gap")
    assert decide(9, kept, 3) == NotRecovered("too_many")


def test_merge_continues_redis_with_newer_local_entries():
    remote = chain([1, 2, 3], first_prev=0)
    local = chain([2, 3, 4, 5], first_prev=1)
    merged = merge(remote, local)
    assert [e.order for e in merged] == [1, 2, 3, 4, 5]
    assert decide(1, merged, 10) == Recovered(tuple(merged[1:]), 5)
    assert merge([], local) == local
    # Redis lost 3 in a failover and the publisher appended 4 (prev 3): the proof fails.
    assert decide(1, merge([*chain([1, 2], 0), entry(4, 3, b"4")], []), 10) == NotRecovered("gap")


def test_plan_lays_out_status_then_prices_per_symbol():
    recovery = plan({"A-USDT": 1, "B-USDT": 50}, {"A-USDT": chain([1, 2, 3], 0), "B-USDT": chain([60], 55)}, 10)
    frames = [json.loads(f[2:]) if f.startswith(b"\x81") else f for f in recovery.frames]
    assert frames == [
        {"code": 2, "data": "recovered", "symbol": "A-USDT", "count": 2},
        b"f2",
        b"f3",
        {"code": 2, "data": "not recovered", "symbol": "B-USDT"},
    ]
    assert recovery.floors == {"A-USDT": 3}
