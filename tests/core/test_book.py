"""The worker's one in-memory record (core/book.py): latest, history, the recovery chain."""

from __future__ import annotations

from pledge_ws.core.book import PriceBook
from pledge_ws.core.recovery import NotRecovered, decide
from pledge_ws.core.ticks import Tick


def test_local_history_breaks_the_chain_at_a_gap_and_trims_to_its_limit():
    history = PriceBook(limit=5)
    tick = lambda n: Tick("A-USDT", "1.0", str(n), 1_700_000_000_000)  # noqa: E731
    for n in range(1, 4):
        history.add(tick(n))
    history.mark_gap(["A-USDT"])
    for n in range(7, 20):
        history.add(tick(n))
    kept = history.since("A-USDT", 0)
    assert [e.order for e in kept] == [15, 16, 17, 18, 19]
    assert decide(14, kept, 5).floor == 19  # exactly `limit` ticks missed: still recoverable
    assert decide(13, history.since("A-USDT", 13), 5) == NotRecovered("gap")
    history2 = PriceBook(limit=100)
    for n in (1, 2, 3):
        history2.add(tick(n))
    history2.mark_gap(["A-USDT"])
    history2.add(tick(7))
    assert history2.prev_of("A-USDT", 7) is None and history2.prev_of("A-USDT", 3) == 2
    assert decide(2, history2.since("A-USDT", 2), 100) == NotRecovered("gap")
