"""Followers' liveness from what they hear (liveness.py), never from a status key's TTL."""

import json

from pledge_ws.core.liveness import LIVE_WINDOW, Liveness


def _beat(term: int, connected: bool = True, **extra: object) -> bytes:
    return json.dumps({"leader": "h:1:x", "term": term, "connected": connected, **extra}).encode()


def test_live_only_while_ticks_or_delivering_beats_arrive():
    live = Liveness()
    assert not live.live(0.0)
    assert live.beat(_beat(1), 10.0) and live.live(10.0) and live.live(10.0 + LIVE_WINDOW)
    assert not live.live(10.0 + LIVE_WINDOW + 0.1)  # the leader died: silence is the outage
    assert live.tick(1, 20.0) and live.live(20.5)
    assert live.beat(_beat(1, connected=False), 30.0) and not live.live(30.0)  # the leader says: not delivering
    assert live.leader_feed(30.0).connected is False
    assert live.beat(_beat(1, connected=False, delivering=True), 31.0) and live.live(31.0)  # issue 9's field wins


def test_replayed_ticks_are_no_proof_of_life():
    live = Liveness()
    assert live.tick(3, 1.0, heard=False) and not live.live(1.0)
    assert live.newest_term == 3


def test_older_terms_are_refused_while_the_newest_is_heard():
    live = Liveness()
    assert live.tick(2, 1.0)
    assert not live.tick(1, 2.0)
    assert live.beat(_beat(1), 3.0)  # well-formed, but ignored: a deposed leader's status
    assert live.newest_term == 2
    assert live.leader_feed(3.0).error == "no heartbeat from a leader yet"
    assert live.beat(_beat(3), 4.0) and live.newest_term == 3
    assert live.leader_feed(4.0).connected is True
    assert "no heartbeat from the leader" in live.leader_feed(4.0 + LIVE_WINDOW + 1).error


def test_malformed_beats_are_rejected():
    live = Liveness()
    for raw in (b"nope", b"[1]", b'{"term": "1"}', b'{"term": true}', b'{"term": -1}', b"[" * 5000):
        assert not live.beat(raw, 1.0)
    assert live.newest_term == 0 and not live.live(1.0)


def test_a_lower_term_is_accepted_once_the_newest_is_silent():
    # A failover that lost term increments: the only live leader has a lower term.
    live = Liveness()
    assert live.tick(5, 1.0)
    assert not live.tick(4, 1.0 + LIVE_WINDOW)
    assert live.tick(4, 1.1 + LIVE_WINDOW) and live.newest_term == 4
    assert not live.tick(3, 1.2 + LIVE_WINDOW)


def test_read_back_ticks_do_not_keep_a_term_alive():
    live = Liveness()
    assert live.tick(5, 1.0, heard=False)
    assert live.tick(4, 1.5)  # term 5 was never heard live: nothing to defend
