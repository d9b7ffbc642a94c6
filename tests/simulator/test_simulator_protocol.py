"""The exchange simulator's KuCoin surface, tested from outside: a real subprocess, real HTTP
and WebSocket (bullets, the handshake, subscriptions, ticks and their rate)."""

from __future__ import annotations

import json
import re
import time

import pytest
import websocket

from pledge_ws.simulator import SEQUENCE_START
from tests.simulator.peer import (
    PRICE,
    RECV_TIMEOUT,
    TICK_KEYS,
    Connect,
    bullet,
    get_state,
    post,
    request,
    ws_url,
)
from tests.support import Simulator

pytestmark = pytest.mark.integration


# -- bullet and handshake -----------------------------------------------------------------


def test_bullet_has_kucoin_shape(sim: Simulator, base: str) -> None:
    before = get_state(base)["bullets"]
    status, body = request(base, "/api/v1/bullet-public")
    assert status == 200
    assert body["code"] == "200000"
    assert isinstance(body["data"]["token"], str) and len(body["data"]["token"]) >= 32
    assert body["data"]["instanceServers"] == [
        {
            "endpoint": f"ws://127.0.0.1:{sim.port}/endpoint",
            "encrypt": False,
            "protocol": "websocket",
            "pingInterval": 18000,
            "pingTimeout": 10000,
        }
    ]
    assert get_state(base)["bullets"] == before + 1


def test_welcome_echoes_connect_id(connect: Connect, base: str) -> None:
    connect("hello-42")
    state = get_state(base)
    assert state["connections"] == 1
    assert state["connections_total"] >= 1


def test_token_is_single_use(sim: Simulator, base: str) -> None:
    data = bullet(base)
    first = websocket.create_connection(ws_url(data, "a"), timeout=RECV_TIMEOUT)
    try:
        assert json.loads(first.recv())["type"] == "welcome"
        with pytest.raises(websocket.WebSocketBadStatusException) as reused:
            websocket.create_connection(ws_url(data, "b"), timeout=RECV_TIMEOUT)
        assert reused.value.status_code == 401
    finally:
        first.close()
    for url in (f"ws://127.0.0.1:{sim.port}/endpoint", ws_url({**data, "token": "nope"}, "c")):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, timeout=RECV_TIMEOUT)
        assert refused.value.status_code == 401


# -- ping, subscribe, ticks ---------------------------------------------------------------


def test_ping_gets_pong_with_same_id(connect: Connect, base: str) -> None:
    pings = get_state(base)["pings"]
    client = connect()
    client.send({"id": "p-1", "type": "ping"})
    assert json.loads(client.recv_text()) == {"id": "p-1", "type": "pong"}
    assert get_state(base)["pings"] == pings + 1


def test_subscribe_acks_then_ticks_with_rising_sequence(connect: Connect, base: str) -> None:
    client = connect()
    assert client.subscribe("PLGR-USDT,BTC-USDT") == {"id": "sub-1", "type": "ack"}
    assert get_state(base)["subscribed"] == {"PLGR-USDT": 1, "BTC-USDT": 1, "ETH-USDT": 0}
    ticks = client.ticks("PLGR-USDT", 5)
    sequences = [int(t["data"]["sequence"]) for t in ticks]
    assert sequences == sorted(set(sequences)) and sequences[0] >= SEQUENCE_START
    for tick in ticks:
        assert tick["type"] == "message" and tick["subject"] == "trade.ticker"
        data = tick["data"]
        assert set(data) == TICK_KEYS
        assert PRICE.match(data["price"]) and float(data["price"]) > 0
        assert re.fullmatch(r"[0-9]+", data["sequence"])
        assert isinstance(data["time"], int) and abs(data["time"] - time.time() * 1000) < 60_000
    client.ticks("BTC-USDT", 1)
    last = get_state(base)["last"]["PLGR-USDT"]
    assert int(last["sequence"]) >= sequences[-1]


def test_unknown_symbol_is_404_and_subscribes_nothing(connect: Connect) -> None:
    client = connect()
    reply = client.subscribe("PLGR-USDT,FOO-BAR", "bad-1")
    assert reply == {
        "id": "bad-1",
        "type": "error",
        "code": 404,
        "data": "topic /market/ticker:FOO-BAR is not found",
    }
    client.assert_quiet(0.4)  # at 20 ticks/s a PLGR-USDT subscription would show by now


def test_more_than_100_symbols_is_400(connect: Connect) -> None:
    client = connect()
    reply = client.subscribe(",".join(["PLGR-USDT"] * 101), "many")
    assert reply["type"] == "error" and reply["code"] == 400


def test_unsubscribe_stops_ticks(connect: Connect) -> None:
    client = connect()
    client.subscribe("ETH-USDT")
    client.ticks("ETH-USDT", 1)
    topic = "/market/ticker:ETH-USDT"
    client.send({"id": "u-1", "type": "unsubscribe", "topic": topic, "response": True})
    assert client.recv_until(lambda f: f.get("id") == "u-1") == {"id": "u-1", "type": "ack"}
    client.assert_quiet(0.4)


def test_sequence_continues_across_connections(connect: Connect) -> None:
    first = connect("first")
    first.subscribe("PLGR-USDT")
    before = int(first.ticks("PLGR-USDT", 1)[0]["data"]["sequence"])
    first.close()
    second = connect("second")
    second.subscribe("PLGR-USDT")
    after = int(second.ticks("PLGR-USDT", 1)[0]["data"]["sequence"])
    assert after > before


def test_rate_is_steady_at_100_per_second(connect: Connect, base: str) -> None:
    client = connect()
    client.subscribe("PLGR-USDT")
    post(base, "/_sim/rate", {"rate": 100})
    client.ticks("PLGR-USDT", 1)
    start = time.monotonic()
    count = 0
    while time.monotonic() - start < 1.0:
        client.ticks("PLGR-USDT", 1)
        count += 1
    assert 70 <= count <= 130


def test_rate_zero_pauses(connect: Connect, base: str) -> None:
    client = connect()
    client.subscribe("PLGR-USDT")
    post(base, "/_sim/rate", {"rate": 0})
    client.ws.settimeout(0.2)
    for _ in range(50):  # drain anything sent before the pause took effect
        try:
            client.ws.recv()
        except websocket.WebSocketTimeoutException:
            break
    client.assert_quiet(0.4)
    assert get_state(base)["rate"] == 0
