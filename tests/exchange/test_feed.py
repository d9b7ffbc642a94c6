"""The exchange link across faults in a row: an outage, then a healthy link, then another fault.

Real gunicorn (gevent worker), the simulator as the exchange, JSON logs read for the feed's
events. Each fault comes after an outage has grown the backoff, which is where the link used to
wait out an old outage's backoff (reconnect.py says the rules).
"""

from __future__ import annotations

import time

from tests.support import Client, Service, Simulator, wait_until

# The client idles through the outage (it need not ping): no heartbeat timeout meanwhile.
QUIET = {"HEARTBEAT_TIMEOUT": "300"}


def connected_count(svc: Service) -> int:
    return len(svc.events("feed_connected"))


def outage_then_healthy(svc: Service, simulator: Simulator, client: Client) -> None:
    """Six failed bullets in a row (backoff grown to seconds), then a link that delivers."""
    svc.wait_ready()
    before = connected_count(svc)
    simulator.control("fail-bullet", count=6, mode="500")
    simulator.control("drop", mode="reset")
    wait_until(lambda: connected_count(svc) > before, 30, interval=0.1, what="the link back after the outage")
    failures = max(e["failures"] for e in svc.events("feed_reconnecting"))
    assert failures >= 6, failures  # the outage really grew the backoff
    client.send("ping")
    simulator.set_price("PLGR-USDT", "0.004100")
    client.wait_price("0.004100")  # healthy: subscribed and delivering


def test_a_401_after_an_outage_and_a_healthy_link_reconnects_within_1s(service_factory, simulator):
    svc = service_factory(KUCOIN_API_URL=simulator.url, LOG_FORMAT="json", REST_FALLBACK_INTERVAL="0", **QUIET)
    client = Client(svc.ws_url)
    outage_then_healthy(svc, simulator, client)
    bullets, before = simulator.state()["bullets"], connected_count(svc)
    started = time.monotonic()
    assert simulator.control("error-frame", code=401)["sent"] == 1
    wait_until(lambda: connected_count(svc) > before, 5, interval=0.02, what="subscribed again after the 401")
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"subscribed {elapsed:.2f}s after the 401"
    assert simulator.state()["bullets"] > bullets  # with a new bullet
    last = svc.events("feed_reconnecting")[-1]
    assert last["delay"] == 0 and "401" in last["reason"]
    client.send("ping")
    simulator.set_price("PLGR-USDT", "0.004101")
    client.wait_price("0.004101")
    client.close()


def test_a_dead_first_entry_after_an_outage_subscribes_through_the_second_within_2s(service_factory, simulator):
    svc = service_factory(KUCOIN_API_URL=simulator.url, LOG_FORMAT="json", REST_FALLBACK_INTERVAL="0", **QUIET)
    client = Client(svc.ws_url)
    outage_then_healthy(svc, simulator, client)
    simulator.control("dead-first-server", on=True)
    before = connected_count(svc)
    started = time.monotonic()
    simulator.control("drop", mode="reset")
    wait_until(lambda: connected_count(svc) > before, 10, interval=0.02, what="subscribed through the second entry")
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"subscribed {elapsed:.2f}s after the drop"
    assert simulator.state()["dead_endpoint_refused"] >= 1  # the dead entry was tried first
    dead = [e for e in svc.events("feed_reconnecting") if (e.get("endpoint") or "").endswith("/dead-endpoint")]
    assert dead and dead[-1]["delay"] == 0  # and the next entry taken at once
    client.send("ping")
    simulator.set_price("PLGR-USDT", "0.004102")
    client.wait_price("0.004102")
    client.close()


def test_backoff_still_grows_when_every_entry_of_every_bullet_fails(service_factory, simulator):
    svc = service_factory(KUCOIN_API_URL=simulator.url, LOG_FORMAT="json", REST_FALLBACK_INTERVAL="0", **QUIET)
    svc.wait_ready()
    simulator.control("dead-first-server", on=True)
    seen = len(svc.events("feed_reconnecting"))
    simulator.control("ws-down", seconds=9)  # both entries refuse: the dead one, and the push servers

    def rounds() -> list[float]:
        events = svc.events("feed_reconnecting")[seen + 1 :]  # after the healthy session's end
        return [e["delay"] for e in events if not e["endpoint"].endswith("/dead-endpoint")]

    wait_until(lambda: len(rounds()) >= 5, 15, interval=0.1, what="five failed rounds")
    events = svc.events("feed_reconnecting")[seen + 1 :]
    dead = [e["delay"] for e in events if e["endpoint"].endswith("/dead-endpoint")]
    assert dead and all(delay == 0 for delay in dead)  # within a round, the next entry at once
    delays = rounds()[:5]
    assert delays == sorted(delays), delays  # each failed round waits at least as long as the last
    assert delays[-1] >= 4 * delays[0], delays
    svc.wait_ready(timeout=20)  # and the link comes back when the push servers do
