import json

import pytest

from pledge_ws.core.fencing import RESET, WRITTEN, Stored, decide
from pledge_ws.core.ticks import SequenceGuard, Tick, TickError, make_tick, relative_jump
from tests.support import ROOT


def test_guard_drops_out_of_order_and_duplicates_per_symbol():
    guard = SequenceGuard()
    a1, a2, a0 = (Tick("A-B", "1", str(s), 1) for s in (10, 11, 9))
    b1 = Tick("C-D", "1", "5", 1)
    assert guard.accept(a1)
    assert not guard.accept(a1)  # duplicate
    assert guard.accept(a2)
    assert not guard.accept(a0)  # older
    assert guard.accept(b1)  # other symbols are independent
    assert guard.last("A-B") == 11


def test_sequence_is_compared_as_a_number():
    guard = SequenceGuard()
    assert guard.accept(Tick("A-B", "1", "9", 1))
    assert guard.accept(Tick("A-B", "1", "10", 1))


def test_json_round_trip():
    tick = Tick("PLGR-USDT", "0.002700", "12", 1704873323416)
    assert Tick.from_json(tick.to_json()) == tick


@pytest.mark.parametrize("text", ["", "[]", '{"symbol":"X"}', '{"symbol":"A-B","price":"1","seq":"1","ts":-1}'])
def test_from_json_rejects(text):
    with pytest.raises(TickError):
        Tick.from_json(text)


def test_make_tick_rejects_huge_time():
    with pytest.raises(TickError):
        make_tick("A-B", "1", "1", 10**20)


def test_relative_jump():
    assert relative_jump("100", "150") == pytest.approx(0.5)
    assert relative_jump("0.002700", "0.002700") == 0


def test_source_and_term_round_trip_and_default_for_old_records():
    tick = Tick("PLGR-USDT", "0.002700", "12", 1704873323416, source="rest", term=7)
    assert Tick.from_json(tick.to_json()) == tick
    old = '{"symbol":"PLGR-USDT","price":"0.002700","seq":"12","ts":1704873323416}'
    assert Tick.from_json(old) == Tick("PLGR-USDT", "0.002700", "12", 1704873323416, "ws", 0)


@pytest.mark.parametrize(("source", "term"), [("udp", 0), ("ws", -1), ("ws", True), ("ws", "3"), ("ws", 2**63)])
def test_make_tick_rejects_bad_source_or_term(source, term):
    with pytest.raises(TickError):
        make_tick("A-B", "1", "1", 1, source=source, term=term)


ORDER_CASES = json.loads((ROOT / "tests" / "data" / "order_cases.json").read_text())["cases"]


@pytest.mark.parametrize("case", ORDER_CASES, ids=[c["why"] for c in ORDER_CASES])
def test_one_newer_rule_for_the_guard_the_fencing_script_and_the_client(case):
    """The table the reference client is tested with too (clients' node tests read the same file)."""
    guard = SequenceGuard()
    last, nxt = case["last"], case["next"]
    if last is not None:
        assert guard.accept(make_tick("A-USDT", "1.0", last["seq"], last["ts"]))
    assert guard.accept(make_tick("A-USDT", "1.0", nxt["seq"], nxt["ts"])) is case["newer"]
    stored = None if last is None else Stored(0, last["seq"], last["ts"])
    assert (decide(stored, 0, nxt["seq"], nxt["ts"]) in (WRITTEN, RESET)) is case["newer"]
