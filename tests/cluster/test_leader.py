"""The Elector against a real Redis: terms, losing the key, another owner, the lease."""

import redis as redis_lib

from pledge_ws.cluster.keys import LEADER as LEADER_KEY
from pledge_ws.cluster.keys import TERM as TERM_KEY
from pledge_ws.cluster.leader import Elector
from pledge_ws.core.readiness import FeedStatus
from pledge_ws.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Holder:
    """A feed holder that records what the elector told it."""

    def __init__(self, name: str, events: list[str]) -> None:
        self.name, self.events = name, events

    def start(self) -> None:
        self.events.append(f"{self.name}:elected")

    def stop(self) -> None:
        self.events.append(f"{self.name}:deposed")

    def status(self) -> FeedStatus:
        return FeedStatus(connected=True, source="ws")


def _elector(client, name: str, clock: Clock, events: list[str], seen: int = 0) -> Elector:
    return Elector(
        client,
        Holder(name, events),
        metrics=Metrics(),
        identity=name,
        now=clock,
        seen_term=lambda: seen,
    )


def test_terms_count_real_acquisitions_only(redis):
    client = redis_lib.Redis(port=redis.port)
    clock, events = Clock(), []
    a, b = _elector(client, "a", clock, events), _elector(client, "b", clock, events)
    for _ in range(5):  # many attempts by a follower draw no term
        a.step()
        b.step()
    assert a.is_leader and not b.is_leader and a.term == 1
    assert client.get(TERM_KEY) == b"1" and events == ["a:elected"]
    assert a.write_term() == 1 and b.write_term() is None


def test_key_deleted_is_taken_back_under_a_new_term(redis):
    client = redis_lib.Redis(port=redis.port)
    clock, events = Clock(), []
    a = _elector(client, "a", clock, events)
    a.step()
    client.delete(LEADER_KEY)  # e.g. a Redis restart or a failover that lost it
    a.step()
    assert a.is_leader and a.term == 2 and client.get(LEADER_KEY) == b"a"
    assert events == ["a:elected"]  # not deposed: the feed never stopped


def test_key_taken_by_another_identity_deposes_at_once(redis):
    client = redis_lib.Redis(port=redis.port)
    clock, events = Clock(), []
    a = _elector(client, "a", clock, events)
    a.step()
    client.set(LEADER_KEY, "intruder", px=3000)
    a.step()
    assert not a.is_leader and a.write_term() is None
    assert events == ["a:elected", "a:deposed"]
    assert client.get(LEADER_KEY) == b"intruder"


def test_lease_lapses_before_the_ttl_when_renewals_fail(redis):
    client = redis_lib.Redis(port=redis.port)
    clock, events = Clock(), []
    a = _elector(client, "a", clock, events)
    a.step()
    assert a.write_term() == 1
    clock.t += a.ttl - a.margin - 0.01
    assert a.write_term() == 1
    clock.t += 0.02  # no renewal got through (frozen, or Redis unreachable): stop writing
    assert a.write_term() is None and a.is_leader
    a.step()  # the renewal works again: the key was still ours
    assert a.write_term() == 1


def test_a_lost_term_increment_never_reissues_a_term_seen(redis):
    client = redis_lib.Redis(port=redis.port)
    clock, events = Clock(), []
    b = _elector(client, "b", clock, events, seen=7)  # heard term 7 on the bus; Redis says nothing
    b.step()
    assert b.term == 8 and client.get(TERM_KEY) == b"8"
    client.set(TERM_KEY, "3")  # an async replica that missed increments, after a failover
    b.step()  # the holder writes its term back
    assert client.get(TERM_KEY) == b"8"


def test_stop_releases_only_our_own_key(redis):
    client = redis_lib.Redis(port=redis.port)
    clock, events = Clock(), []
    a = _elector(client, "a", clock, events)
    a.step()
    client.set(LEADER_KEY, "other")
    a.stop()
    assert client.get(LEADER_KEY) == b"other"
