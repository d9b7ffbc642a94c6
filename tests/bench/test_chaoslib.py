"""The fault campaign's pure parts (bench/chaoslib): the seeded schedule and the checker's
rules, with literal histories. The campaign itself runs in tests/bench/test_chaos.py."""

from __future__ import annotations

import itertools

from bench.chaoslib import checker, schedule
from bench.chaoslib.checker import Bounds, Connection


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    one, again, other = schedule.draw(7, 30), schedule.draw(7, 30), schedule.draw(8, 30)
    assert one == again and one != other
    assert 40 < len(one) < 110  # a fault every 25 s on average, over 30 minutes
    assert all(f.at_s >= 20 and f.at_s + f.duration_s <= 30 * 60 - 45 for f in one)  # warm-up, quiet tail
    assert {f.kind for f in one} == set(schedule.MENU)  # every kind drawn in a long campaign
    assert one == sorted(one, key=lambda f: f.at_s)


def test_a_slice_replays_a_stretch_of_the_schedule_from_the_warm_up():
    full = schedule.draw(2026, 30)
    part = schedule.cut(full, 1200, 1340)
    expected = [f for f in full if 1200 <= f.at_s < 1340]
    assert part and [f.kind for f in part] == [f.kind for f in expected]
    assert [f.params for f in part] == [f.params for f in expected]
    assert part[0].at_s == round(expected[0].at_s - 1180, 3)  # 1200 s becomes 20 s
    gaps = [round(b.at_s - a.at_s, 2) for a, b in itertools.pairwise(part)]
    assert gaps == [round(b.at_s - a.at_s, 2) for a, b in itertools.pairwise(expected)]


def test_overlapping_fault_windows_merge():
    faults = [schedule.Fault("a", 10, 0), schedule.Fault("b", 15, 30), schedule.Fault("c", 100, 5)]
    assert schedule.windows(faults) == [(10, 45), (100, 110)]


def conn(frames, since=None, opened=0.0, closed=100.0, kind="steady"):
    return Connection("c1", kind, opened, closed, since, frames)


def price(t, seq, ts=None, symbol="A-B"):
    return (t, 0, symbol, seq, ts if ts is not None else int(t * 1000), None)


def test_order_takes_a_restarted_sequence_and_nothing_older():
    ok = conn([price(1, 10), price(2, 11), price(40, 1)])  # a reset: lower, 38 s later
    bad = conn([price(1, 10), price(2, 11), price(3, 11), price(4, 9)])
    assert checker.check_order([ok]).violations == 0
    verdict = checker.check_order([bad])
    assert verdict.violations == 2 and verdict.first[0]["seq"] == 11


def test_a_recovered_replay_must_be_exactly_the_written_ticks_above_the_position():
    written = {"A-B": [10, 11, 12, 13]}
    seen = {"A-B": {10, 11, 12, 13}}
    status = (1, 2, "A-B", -1, 0, ("recovered", 3))
    good = conn([status, price(1.1, 11), price(1.2, 12), price(1.3, 13)], since={"A-B": 10})
    hole = conn([(1, 2, "A-B", -1, 0, ("recovered", 2)), price(1.1, 11), price(1.2, 13)], since={"A-B": 10})
    invented = conn([(1, 2, "A-B", -1, 0, ("recovered", 1)), price(1.1, 99)], since={"A-B": 10})
    honest = conn([(1, 2, "A-B", -1, 0, ("not recovered", 0)), price(1.1, 13)], since={"A-B": 2})
    silent = conn([price(1, 13)], since={"A-B": 10})
    assert checker.check_recovery([good, honest], written, seen).violations == 0
    for case, why in ((hole, "left out"), (invented, "nobody saw"), (silent, "before the status")):
        verdict = checker.check_recovery([case], written, seen)
        assert verdict.violations == 1 and why in verdict.first[0]["why"], verdict.first


def test_keys_may_be_rewritten_but_never_go_back():
    writes = [(1, "k", 10, 1000), (2, "k", 10, 1000), (3, "k", 11, 1100), (4, "k", 9, 1200)]
    verdict = checker.check_keys(writes)
    assert verdict.checked == 4 and verdict.violations == 1 and verdict.first[0]["seq"] == 9


def test_freshness_outside_faults_and_being_told_inside_them():
    bounds = Bounds(bound_outside_s=3, bound_inside_s=5, settle_s=0, first_price_s=1)
    steady = conn([price(t, t) for t in range(1, 30)], closed=30)
    assert [v.violations for v in checker.check_freshness([steady], [], 30, bounds)] == [0, 0]
    gap = conn([price(1, 1), price(12, 2)], closed=13)
    outside, _ = checker.check_freshness([gap], [], 13, bounds)
    assert outside.violations > 0
    told = conn([price(1, 1), (3, -1, "", -1, 0, "price feed interrupted"), price(20, 2)], closed=21)
    assert checker.check_freshness([told], [(2, 21)], 21, bounds)[1].violations == 0
    untold = conn([price(1, 1), price(20, 2)], closed=21)
    assert checker.check_freshness([untold], [(2, 21)], 21, bounds)[1].violations > 0


def test_one_link_after_the_faults_and_memory_within_its_margin():
    links = [(t, 2 if t < 50 else 1) for t in range(100)]
    assert checker.check_links(links, [(0, 10)], Bounds(link_settle_s=36)).violations == 4
    assert checker.check_links(links, [(0, 10)], Bounds(link_settle_s=41)).violations == 0
    assert checker.time_to_one_link(links, 10) == 40
    grows = {1: [(t, 80_000_000 + t * 200_000) for t in range(0, 601, 10)]}  # +120 MB in 10 min
    flat = {2: [(t, 80_000_000) for t in range(0, 601, 10)]}
    assert checker.check_memory(grows, Bounds()).violations == 1
    assert checker.check_memory(flat, Bounds()).violations == 0
