"""The exchange link's reconnect rules (reconnect.py), with plain values: no sockets, no clock."""

from __future__ import annotations

from pledge_ws.core.clock import DEAD_AGE, Backoff
from pledge_ws.exchange.reconnect import RATE_LIMIT_FLOOR, RATE_LIMITED, TOKEN_REJECTED, Ended, ReconnectPolicy

A, B, C = "ws://a/", "ws://b/", "ws://c/"


def policy() -> ReconnectPolicy:
    # rng 1.0: every delay is its ceiling, 0.25 * 2**(n-1) capped at 8
    return ReconnectPolicy(Backoff(base=0.25, cap=8.0, rng=lambda: 1.0))


def failed(endpoint: str | None, candidates: tuple[str, ...] = (A,), reason: str = "refused") -> Ended:
    return Ended(reason, endpoint, candidates)


def healthy(reason: str = "exchange closed the connection", endpoint: str = A) -> Ended:
    return Ended(reason, endpoint, (endpoint,), subscribed=True, delivered=True)


def test_backoff_grows_with_every_failed_round_and_stops_at_the_cap():
    p = policy()
    delays = [p.ended(failed(A)) for _ in range(8)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert p.failures == 8


def test_a_healthy_session_clears_an_outage_s_backoff_whatever_its_age():
    p = policy()
    for _ in range(6):
        p.ended(failed(None))  # the bullet endpoint down: a long outage
    assert p.failures == 6
    assert p.ended(healthy()) == 0.25  # short as after a first failure, not 8 s
    assert p.failures == 0
    assert p.ended(failed(A)) == 0.25  # and the next outage starts from the bottom again


def test_a_401_after_a_long_outage_and_a_healthy_link_reconnects_at_once():
    p = policy()
    for _ in range(6):
        p.ended(failed(None))
    assert p.ended(healthy(TOKEN_REJECTED)) == 0.0


def test_401s_in_a_row_without_a_healthy_session_back_off():
    p = policy()
    assert p.ended(Ended(TOKEN_REJECTED, A, (A,))) == 0.0  # a new bullet at once, once
    assert p.ended(Ended(TOKEN_REJECTED, A, (A,))) > 0  # never a tight loop of 401s
    assert p.ended(Ended(TOKEN_REJECTED, A, (A,))) > 0


def test_subscribed_without_a_tick_or_pong_is_not_healthy():
    p = policy()
    p.ended(failed(A))
    p.ended(failed(A))
    assert p.ended(Ended("exchange closed the connection", A, (A,), subscribed=True)) == 1.0
    assert p.failures == 3


def test_a_failed_entry_is_skipped_for_the_next_one_at_once():
    p = policy()
    bullet = (A, B, C)
    assert p.pick(bullet) == 0
    assert p.ended(failed(A, bullet)) == 0.0
    assert p.pick(bullet) == 1
    assert p.ended(failed(B, bullet)) == 0.0
    assert p.pick(bullet) == 2
    assert p.failures == 0


def test_only_a_round_where_every_entry_failed_backs_off_and_rounds_grow():
    p = policy()
    bullet = (A, B)
    delays = []
    for _ in range(4):
        delays.append(p.ended(failed(bullet[p.pick(bullet)], bullet)))
        delays.append(p.ended(failed(bullet[p.pick(bullet)], bullet)))
    assert delays == [0.0, 0.25, 0.0, 0.5, 0.0, 1.0, 0.0, 2.0]
    assert p.pick(bullet) == 0  # each round starts at the bullet's first entry


def test_a_dead_first_entry_after_an_outage_costs_no_backoff():
    p = policy()
    for _ in range(5):
        p.ended(failed(None))
    bullet = (A, B)
    p.ended(healthy(endpoint=B))  # subscribed through B
    assert p.pick(bullet) == 0  # A is tried first again (the bullet's order)...
    assert p.ended(failed(A, bullet)) == 0.0  # ...and B at once after it
    assert p.pick(bullet) == 1


def test_a_round_is_bounded_even_when_each_bullet_names_new_entries():
    p = policy()
    delays = [p.ended(failed(f"ws://x{n}/", (f"ws://x{n}/", B))) for n in range(2)]
    assert delays == [0.0, 0.25]  # two sessions of a two-entry bullet, then backoff


def test_rate_limit_waits_at_least_the_floor_and_age_limit_reconnects_at_once():
    p = policy()
    assert p.ended(healthy(RATE_LIMITED)) == RATE_LIMIT_FLOOR
    assert p.ended(Ended(RATE_LIMITED, A, (A, B))) == RATE_LIMIT_FLOOR  # not "next entry at once"
    assert p.ended(healthy(DEAD_AGE)) == 0.0
