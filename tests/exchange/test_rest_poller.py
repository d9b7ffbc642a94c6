"""The exchange side under faults: REST fallback, error frames, candidate endpoints.

Real gunicorn (gevent worker), the simulator as the exchange, real WebSocket clients, and a
real redis-server where a test names it. Every wait is bounded.
"""

from __future__ import annotations

import itertools
import time

import websocket

from tests.support import Client, Simulator, wait_until

INTERVAL = 1.0


def seqs_strictly_increase(frames: list[dict]) -> bool:
    seqs = [int(f["seq"]) for f in frames if f.get("code") == 0]
    return all(a < b for a, b in itertools.pairwise(seqs))


def drain(client: Client, frames: list[dict], seconds: float) -> None:
    """Read (and ping) for ``seconds``, keeping every frame."""
    deadline = time.monotonic() + seconds
    next_ping = 0.0
    while (remaining := deadline - time.monotonic()) > 0:
        if time.monotonic() >= next_ping:
            client.send("ping")
            next_ping = time.monotonic() + 1.0
        try:
            frames.append(client.recv(timeout=min(1.0, remaining)))
        except websocket.WebSocketTimeoutException:  # a quiet second
            continue


def rest_calls(simulator: Simulator) -> int:
    return simulator.state()["rest_calls"]


def test_ws_down_rest_up_then_ws_back_keeps_clients_current_and_ordered(service_factory, simulator):
    svc = service_factory(KUCOIN_API_URL=simulator.url, REST_FALLBACK_INTERVAL=str(INTERVAL))
    svc.wait_ready()
    client = Client(svc.ws_url)
    frames: list[dict] = []
    simulator.set_price("PLGR-USDT", "0.002700")
    frames.append(client.wait_price("0.002700"))
    assert svc.get("/price")[1]["source"] == "ws"

    # After the subscription's one hand-over poll, a healthy WebSocket has no polls.
    wait_until(lambda: rest_calls(simulator) >= 1, 3, what="the hand-over poll after subscribing")
    time.sleep(2 * INTERVAL)
    before = rest_calls(simulator)
    drain(client, frames, 3)
    assert rest_calls(simulator) == before

    simulator.control("ws-down", seconds=60)
    sent = simulator.set_price("PLGR-USDT", "0.002811")
    started = time.monotonic()
    frames.append(client.wait_price("0.002811", timeout=INTERVAL + 5))
    print(f"REST price reached the client {time.monotonic() - started:.2f}s after it was set")
    status, body = svc.get("/price")
    assert status == 200 and body["source"] == "rest" and body["stale"] is False
    assert body["seq"] == sent["sequence"]
    status, ready = svc.get("/readyz")
    assert status == 200 and ready["feed"]["source"] == "rest" and ready["feed"]["connected"] is False

    # The poll rate matches the interval (one symbol).
    calls_before = rest_calls(simulator)
    drain(client, frames, 10)
    calls = rest_calls(simulator) - calls_before
    print(f"{calls} level-1 calls in 10 s at REST_FALLBACK_INTERVAL={INTERVAL}")
    assert 7 <= calls <= 12
    assert svc.metric("pledge_ws_exchange_rest_polls_total", 'result="ok"') >= 7

    # The WebSocket comes back: prices over it within 10 s, and the polls stop.
    simulator.control("ws-down", seconds=0)
    wait_until(lambda: svc.get("/readyz")[1]["feed"]["connected"], 10, what="the WebSocket back")
    simulator.set_price("PLGR-USDT", "0.002822")
    frames.append(client.wait_price("0.002822", timeout=5))
    assert svc.get("/price")[1]["source"] == "ws"
    time.sleep(2 * INTERVAL)  # the hand-over poll of each symbol
    calls_after = rest_calls(simulator)
    drain(client, frames, 3)
    assert rest_calls(simulator) == calls_after
    # Across both switches no client saw an older or repeated seq.
    assert seqs_strictly_increase(frames), [f.get("seq") for f in frames]
    log = svc.process.log()
    assert log.count("polling level-1 REST") == 1 and log.count("REST polls stop") == 1
    client.close()


def test_a_429_is_waited_out(service_factory, simulator):
    svc = service_factory(KUCOIN_API_URL=simulator.url, REST_FALLBACK_INTERVAL=str(INTERVAL))
    svc.wait_ready()
    wait_until(lambda: rest_calls(simulator) >= 1, 3, what="the hand-over poll after subscribing")
    time.sleep(1.5)
    base = rest_calls(simulator)
    simulator.control("rest-limit", ms=4000)
    limited_at = time.monotonic()
    simulator.control("ws-down", seconds=60)
    wait_until(lambda: rest_calls(simulator) >= base + 1, 5, what="the first poll")
    simulator.set_price("PLGR-USDT", "0.003300")
    time.sleep(max(0.0, limited_at + 3.5 - time.monotonic()))
    assert rest_calls(simulator) == base + 1  # the 429's reset was honoured: no second call
    wait_until(lambda: svc.get("/price")[1]["price"] == "0.003300", 4 + INTERVAL + 3, what="price after the reset")
    assert svc.metric("pledge_ws_exchange_rest_polls_total", 'result="rate_limited"') == 1


def test_a_price_moved_during_a_reconnect_arrives_without_another_trade(service_factory, simulator):
    svc = service_factory(KUCOIN_API_URL=simulator.url, REST_FALLBACK_INTERVAL=str(INTERVAL))
    svc.wait_ready()
    client = Client(svc.ws_url)
    time.sleep(10.5)  # a healthy session: the reconnect after the drop waits only 0.125-0.25 s,
    # less than the fallback's 0.5 s grace, so no fallback poll happens in the gap
    simulator.control("drop", mode="reset")
    simulator.set_price("PLGR-USDT", "0.007700")  # while the link is down; no trade follows
    client.wait_price("0.007700", timeout=8)
    assert svc.get("/price")[1]["price"] == "0.007700"
    client.close()


def test_fallback_off_never_polls(service_factory, simulator):
    svc = service_factory(KUCOIN_API_URL=simulator.url, REST_FALLBACK_INTERVAL="0")
    svc.wait_ready()
    simulator.control("ws-down", seconds=60)
    wait_until(lambda: svc.get("/readyz")[0] == 503, 10, what="/readyz 503 without a fallback")
    time.sleep(3)
    assert rest_calls(simulator) == 0
    assert svc.get("/readyz")[0] == 503


def test_token_rejected_gets_a_new_bullet_and_prices_within_3s(service_factory, simulator):
    svc = service_factory(KUCOIN_API_URL=simulator.url)
    svc.wait_ready()
    client = Client(svc.ws_url)
    bullets = simulator.state()["bullets"]
    started = time.monotonic()
    simulator.control("error-frame", code=401)
    wait_until(lambda: simulator.state()["bullets"] > bullets, 3, what="a new bullet")
    wait_until(lambda: simulator.state()["subscribed"]["PLGR-USDT"] == 1, 3, what="resubscribed")
    simulator.set_price("PLGR-USDT", "0.004400")
    client.wait_price("0.004400", timeout=max(0.5, started + 3 - time.monotonic()))
    print(f"prices again {time.monotonic() - started:.2f}s after the 401")
    assert svc.metric("pledge_ws_exchange_errors_total", 'code="401"') == 1
    client.close()


def test_rate_limit_error_frames_back_off(service_factory, simulator):
    svc = service_factory(KUCOIN_API_URL=simulator.url, REST_FALLBACK_INTERVAL="0")
    svc.wait_ready()
    before = simulator.state()["connections_total"]
    simulator.control("error-frame", code=509, seconds=5)
    time.sleep(5)
    reconnects = simulator.state()["connections_total"] - before
    print(f"{reconnects} reconnects in 5 s of 509 frames")
    assert reconnects <= 4
    simulator.control("reset")
    svc.wait_ready(timeout=15)


def test_a_dead_first_instance_server_is_skipped(service_factory, simulator):
    simulator.control("dead-first-server", on=True)
    svc = service_factory(KUCOIN_API_URL=simulator.url, REST_FALLBACK_INTERVAL="0")
    svc.wait_ready()
    state = simulator.state()
    assert state["dead_endpoint_refused"] >= 1 and state["connections"] == 1
    client = Client(svc.ws_url)
    simulator.set_price("PLGR-USDT", "0.005500")
    client.wait_price("0.005500")
    client.close()


def test_only_the_leader_polls(service_factory, simulator, redis):
    env = {
        "KUCOIN_API_URL": simulator.url,
        "REDIS_URL": redis.url,
        "WEB_CONCURRENCY": "2",
        "REST_FALLBACK_INTERVAL": str(INTERVAL),
    }
    first, second = service_factory(**env), service_factory(**env)
    first.wait_ready()
    second.wait_ready()
    clients = [Client(svc.ws_url) for svc in (first, second) for _ in range(2)]
    simulator.control("ws-down", seconds=60)
    simulator.set_price("PLGR-USDT", "0.006600")
    for client in clients:
        client.wait_price("0.006600", timeout=INTERVAL + 8)
    calls_before = rest_calls(simulator)
    time.sleep(6)
    calls = rest_calls(simulator) - calls_before
    print(f"{calls} level-1 calls in 6 s from 2 instances x 2 workers")
    assert 3 <= calls <= 8  # one poller: about 6, never four times that
    for svc in (first, second):
        assert svc.get("/readyz")[0] == 200
        assert svc.get("/price")[1]["source"] == "rest"
    for client in clients:
        client.close()
