"""The whole chain from outside: simulator -> gunicorn (gevent) -> real WebSocket clients, plus Redis."""

import signal
import time

import pytest
import websocket

from pledge_ws.cluster import keys
from tests.support import Client, Simulator, http, wait_until


@pytest.fixture
def clients():
    opened: list[Client] = []

    def connect(url: str, **kwargs) -> Client:
        client = Client(url, **kwargs)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


def test_first_price_reaches_client_exactly_as_the_exchange_sent_it(service, simulator, clients):
    client = clients(service.ws_url)
    sent = simulator.set_price("PLGR-USDT", "0.002700")
    message = client.wait_price("0.002700")
    for _ in range(3):  # the start price, polled over REST at subscription, may come first
        if message["seq"] == sent["sequence"]:
            break
        message = client.wait_price("0.002700")
    assert message == {
        "code": 0,
        "data": "0.002700",
        "symbol": "PLGR-USDT",
        "seq": sent["sequence"],
        "ts": sent["time"],
    }


def test_late_client_gets_latest_price_at_once(service, simulator, clients):
    first = clients(service.ws_url)
    simulator.set_price("PLGR-USDT", "0.003100")
    first.wait_price("0.003100")
    late = clients(service.ws_url)
    assert late.next_price(timeout=1)["data"] == "0.003100"


def test_three_ping_spellings_get_pongs(service, clients):
    client = clients(service.ws_url)
    for text in ("ping", '"ping"', "'ping'"):
        client.send(text)
        assert client.next_non_price() == {"code": 1, "data": "pong"}


def test_silent_client_dropped_while_pinging_client_stays(service_factory, simulator, clients):
    svc = service_factory(KUCOIN_API_URL=simulator.url, HEARTBEAT_TIMEOUT="1.5")
    silent, pinging = clients(svc.ws_url), clients(svc.ws_url)
    started = time.monotonic()
    while time.monotonic() - started < 4:
        pinging.send("ping")
        assert pinging.next_non_price()["code"] == 1
        time.sleep(0.4)
    assert silent.next_non_price(timeout=1) == {"code": -1, "data": "heartbeat timeout"}
    opcode, _frame = silent.ws.recv_data_frame()
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    pinging.send("ping")
    assert pinging.next_non_price() == {"code": 1, "data": "pong"}


def test_redis_key_and_http_price_match_last_price(service, simulator, redis, clients):
    client = clients(service.ws_url)
    sent = simulator.set_price("PLGR-USDT", "0.004200")
    client.wait_price("0.004200")
    wait_until(lambda: redis.get("plgr_price") == "0.004200", 5, what="plgr_price in Redis")
    status, body = service.get("/price")
    assert status == 200
    assert body["price"] == "0.004200" and body["seq"] == sent["sequence"] and body["ts"] == sent["time"]
    assert body["symbol"] == "PLGR-USDT" and body["stale"] is False and body["age_ms"] >= 0
    # Other symbols are stored under the documented prefix; plgr_price stays the primary's.
    simulator.set_price("BTC-USDT", "67000.5")
    wait_until(lambda: '"67000.5"' in (redis.get(keys.price_key("BTC-USDT")) or ""), 5, what="BTC in Redis")
    assert redis.get("plgr_price") == "0.004200"
    assert service.get("/price?symbol=btc-usdt")[1]["price"] == "67000.5"


def test_price_endpoint_errors(service_factory, simulator):
    svc = service_factory(KUCOIN_API_URL=simulator.url)
    status, body = svc.get("/price?symbol=FOO-BAR")
    assert status == 404 and "unknown symbol" in body["error"]
    status, body = svc.get("/price")
    assert status == 503 and "no price" in body["error"]


@pytest.mark.parametrize("fault", ["drop", "reset", "silent", "fail_bullet"])
def test_same_clients_get_prices_again_after_upstream_fault(fault, service, simulator, clients):
    client = clients(service.ws_url)
    simulator.set_price("PLGR-USDT", "0.001000")
    client.wait_price("0.001000")
    before = simulator.state()["connections_total"]
    if fault == "drop":
        simulator.control("drop", mode="close")
    elif fault == "reset":
        simulator.control("drop", mode="reset")
    elif fault == "silent":
        simulator.control("silent", seconds=3)
    else:
        simulator.control("fail-bullet", count=3, mode="500")
        simulator.control("drop", mode="close")
    fault_at = time.monotonic()
    wait_until(lambda: simulator.state()["connections_total"] > before, 10, what="the feed to reconnect")
    service.wait_ready(timeout=10)
    # One more price through the new connection reaches the same, never-reconnected client.
    simulator.set_price("PLGR-USDT", "0.001001")
    client.send("ping")
    message = client.wait_price("0.001001", timeout=10)
    assert message["data"] == "0.001001"
    assert time.monotonic() - fault_at < 10 + (3 if fault == "silent" else 0)
    assert simulator.state()["connections"] == 1
    assert service.metric("pledge_ws_exchange_reconnects_total") >= 1


def test_malformed_upstream_frames_change_nothing_but_a_counter(service, simulator, clients):
    client = clients(service.ws_url)
    simulator.set_price("PLGR-USDT", "0.005000")
    client.wait_price("0.005000")
    simulator.control("malformed", count=24)
    wait_until(lambda: service.metric("pledge_ws_ticks_dropped_total", 'reason="bad_price"') >= 1, 5, what="counter")
    with pytest.raises(websocket.WebSocketTimeoutException):
        client.recv(timeout=1)  # nothing reached the client
    assert service.get("/price")[1]["price"] == "0.005000"
    assert simulator.state()["connections_total"] == 1  # and the link stayed up
    simulator.set_price("PLGR-USDT", "0.005001")
    assert client.wait_price("0.005001")["data"] == "0.005001"


def test_redis_outage_keeps_prices_flowing_and_key_is_rewritten(service, simulator, redis, clients):
    client = clients(service.ws_url)
    simulator.set_price("PLGR-USDT", "0.006000")
    client.wait_price("0.006000")
    redis.kill()
    simulator.set_price("PLGR-USDT", "0.006001")
    assert client.wait_price("0.006001", timeout=3)["data"] == "0.006001"
    wait_until(lambda: service.get("/readyz")[0] == 503, 5, what="/readyz to report Redis down")
    assert "redis" in " ".join(service.get("/readyz")[1]["reasons"])
    simulator.set_price("PLGR-USDT", "0.006002")
    assert client.wait_price("0.006002", timeout=3)["data"] == "0.006002"
    redis.start()  # same port, empty: nothing persisted
    wait_until(lambda: redis.get("plgr_price") == "0.006002", 10, what="plgr_price rewritten after restart")
    service.wait_ready(timeout=10)


def test_fifty_clients_each_get_twenty_consecutive_prices_in_order(service_factory, clients):
    sim = Simulator(rate=20, symbols="PLGR-USDT")
    try:
        svc = service_factory(KUCOIN_API_URL=sim.url)
        svc.wait_ready()
        group = [clients(svc.ws_url) for _ in range(50)]
        seen = []
        for client in group:
            seqs = [int(client.next_price(timeout=5)["seq"]) for _ in range(21)]
            seen.append(seqs[1:])  # the first may be the snapshot
        for seqs in seen:
            assert seqs == sorted(set(seqs)), "out of order or duplicated"
            assert seqs[-1] - seqs[0] == 19, "a price was skipped"
    finally:
        sim.stop()


def test_subscribe_symbols_and_query(service, simulator, clients):
    simulator.set_price("BTC-USDT", "67001.0")
    simulator.set_price("PLGR-USDT", "0.002222")
    client = clients(service.ws_url + "?symbols=BTC-USDT")
    assert client.next_price(timeout=2)["symbol"] == "BTC-USDT"
    client.send('{"op":"subscribe","symbols":["PLGR-USDT"]}')
    assert client.next_price(timeout=2)["data"] == "0.002222"  # snapshot of the new symbol
    client.send('{"op":"unsubscribe","symbols":["BTC-USDT"]}')
    client.send('{"op":"subscribe","symbols":["FOO-BAR"]}')
    assert client.recv() == {"code": -1, "data": "unknown symbol: FOO-BAR"}
    client.send("ping")
    assert client.recv()["code"] == 1
    simulator.set_price("BTC-USDT", "67002.0")
    simulator.set_price("PLGR-USDT", "0.002223")
    assert client.next_price(timeout=2)["data"] == "0.002223"  # BTC no longer arrives


def test_unknown_symbol_query_is_refused(service):
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(service.ws_url + "?symbols=FOO-BAR", timeout=3)
    assert info.value.status_code == 400


def test_topic_not_found_marks_symbol_unavailable(service_factory, simulator, clients):
    svc = service_factory(KUCOIN_API_URL=simulator.url, SYMBOLS="PLGR-USDT,NOPE-USDT")
    body = svc.wait_ready()
    assert body["feed"]["unavailable_symbols"] == ["NOPE-USDT"]
    client = clients(svc.ws_url)
    simulator.set_price("PLGR-USDT", "0.007000")
    assert client.wait_price("0.007000")["data"] == "0.007000"
    assert simulator.state()["connections_total"] == 1  # no reconnect loop over it


def test_sigterm_closes_clients_with_1001(service_factory, simulator, clients):
    svc = service_factory(KUCOIN_API_URL=simulator.url)
    group = [clients(svc.ws_url) for _ in range(5)]
    started = time.monotonic()
    svc.process.send_signal(signal.SIGTERM)
    for client in group:
        client.ws.settimeout(5)
        opcode, frame = client.ws.recv_data_frame()
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1001
    svc.process.proc.wait(10)
    assert time.monotonic() - started < 5


def test_bad_configuration_stops_with_one_clear_line(tmp_path):
    from tests.support import BIN, ROOT, Process

    proc = Process("badconfig", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "app:app"], {"PORT": "abc"}, ROOT)
    assert proc.proc.wait(10) != 0
    assert proc.log().strip() == "pledge-ws: configuration error: PORT: expected an integer, got 'abc'"
    proc.stop()


def test_health_metrics_and_page(service):
    assert service.get("/healthz")[0] == 200
    status, text = service.get("/metrics")
    assert status == 200 and "pledge_ws_connections" in text and "pledge_ws_exchange_connected 1.0" in text
    status, page = http("GET", service.url + "/")
    assert status == 200 and "<html" in page
