"""The exchange simulator, tested from outside: a real subprocess, real HTTP and WebSocket.

A few pure tests drive :class:`pledge_ws.simulator.Exchange` with a fake peer. Every wait
is bounded in count and time, so a broken simulator fails fast instead of hanging.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import websocket

from pledge_ws.simulator import MALFORMED_KINDS, SEQUENCE_START
from tests.support import ROOT, Simulator, http, wait_until

pytestmark = pytest.mark.integration

LISTENING = re.compile(r"^simulator listening on http://([0-9.]+):([0-9]+)$")
PRICE = re.compile(r"^[0-9]+\.[0-9]+$")
TICK_KEYS = {
    "sequence",
    "price",
    "size",
    "bestAsk",
    "bestAskSize",
    "bestBid",
    "bestBidSize",
    "time",
}
RECV_TIMEOUT = 3.0


# -- a simulator process ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    running = Simulator("--seed", "7", rate=20, ping_ms=None)
    yield running
    running.stop()


@pytest.fixture
def base(sim: Simulator) -> Iterator[str]:
    """A healthy exchange at 20 ticks/s, with no connections left over from other tests."""
    post(sim.url, "/_sim/reset")
    post(sim.url, "/_sim/rate", {"rate": 20})
    wait_until(lambda: get_state(sim.url)["connections"] == 0, 3, interval=0.02, what="no open connections")
    yield sim.url
    post(sim.url, "/_sim/drop", {"mode": "close"})


# -- clients ------------------------------------------------------------------------------


def request(base: str, path: str, body: object = None, *, method: str = "POST") -> tuple[int, Any]:
    return http(method, base + path, body)


def post(base: str, path: str, body: object = None) -> dict[str, Any]:
    status, reply = request(base, path, body)
    assert status == 200, (path, status, reply)
    return reply


def get_state(base: str) -> dict[str, Any]:
    status, reply = request(base, "/_sim/state", method="GET")
    assert status == 200
    return reply


def bullet(base: str) -> dict[str, Any]:
    body = post(base, "/api/v1/bullet-public")
    assert body["code"] == "200000"
    return body["data"]


def ws_url(data: dict[str, Any], connect_id: str) -> str:
    return f"{data['instanceServers'][0]['endpoint']}?token={data['token']}&connectId={connect_id}"


@dataclass
class Client:
    ws: websocket.WebSocket
    seen: list[str] = field(default_factory=list)

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def recv_text(self, timeout: float = RECV_TIMEOUT) -> str:
        self.ws.settimeout(timeout)
        text = self.ws.recv()
        assert isinstance(text, str)
        self.seen.append(text)
        return text

    def recv_until(
        self,
        match: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = RECV_TIMEOUT,
        limit: int = 500,
    ) -> dict[str, Any]:
        """The first JSON frame ``match`` accepts, skipping others (bounded)."""
        deadline = time.monotonic() + timeout
        for _ in range(limit):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            frame = json.loads(self.recv_text(remaining))
            if isinstance(frame, dict) and match(frame):
                return frame
        raise AssertionError(f"no matching frame; last seen: {self.seen[-5:]}")

    def ticks(self, symbol: str, count: int, timeout: float = RECV_TIMEOUT) -> list[dict[str, Any]]:
        topic = "/market/ticker:" + symbol
        frames = []
        for _ in range(count):
            frames.append(self.recv_until(lambda f: f.get("topic") == topic, timeout=timeout))
        return frames

    def assert_quiet(self, seconds: float) -> None:
        """Nothing at all arrives for ``seconds``."""
        self.ws.settimeout(seconds)
        with pytest.raises(websocket.WebSocketTimeoutException):
            text = self.ws.recv()
            pytest.fail(f"expected silence, got {text!r}")

    def subscribe(self, symbols: str, request_id: str = "sub-1") -> dict[str, Any]:
        self.send(
            {
                "id": request_id,
                "type": "subscribe",
                "topic": "/market/ticker:" + symbols,
                "privateChannel": False,
                "response": True,
            }
        )
        return self.recv_until(lambda f: f.get("id") == request_id)

    def close(self) -> None:
        self.ws.close(timeout=1)


Connect = Callable[..., Client]


@pytest.fixture
def connect(base: str) -> Iterator[Connect]:
    clients: list[Client] = []

    def _connect(connect_id: str = "conn-1", *, welcome: bool = True) -> Client:
        ws = websocket.create_connection(ws_url(bullet(base), connect_id), timeout=RECV_TIMEOUT)
        client = Client(ws)
        clients.append(client)
        if welcome:
            assert json.loads(client.recv_text()) == {"id": connect_id, "type": "welcome"}
        return client

    yield _connect
    for client in clients:
        client.close()


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


# -- fault injection ----------------------------------------------------------------------


def test_injected_price_arrives_byte_exact(connect: Connect, base: str) -> None:
    client = connect()
    client.subscribe("PLGR-USDT")
    post(base, "/_sim/rate", {"rate": 0})
    answer = post(base, "/_sim/price", {"symbol": "PLGR-USDT", "price": "0.0027000"})
    assert answer["price"] == "0.0027000"
    last = get_state(base)["last"]["PLGR-USDT"]
    assert (last["price"], last["sequence"]) == ("0.0027000", answer["sequence"])
    frame = client.recv_until(lambda f: f.get("data", {}).get("sequence") == answer["sequence"])
    assert frame["data"]["price"] == "0.0027000"
    assert '"price":"0.0027000"' in client.seen[-1]
    post(base, "/_sim/rate", {"rate": 20})
    walked = client.ticks("PLGR-USDT", 1)[0]["data"]
    assert int(walked["sequence"]) == int(answer["sequence"]) + 1
    assert re.fullmatch(r"0\.[0-9]{6}", walked["price"]) and float(walked["price"]) > 0
    status, error = request(base, "/_sim/price", {"symbol": "FOO-BAR", "price": "1.0"})
    assert status == 404 and "FOO-BAR" in error["error"]
    for bad in ("abc", "-1", "0", "0.000", "1e5", 1.5, None):
        status, _ = request(base, "/_sim/price", {"symbol": "PLGR-USDT", "price": bad})
        assert status == 400, bad


def test_fail_bullet_then_success(base: str) -> None:
    assert post(base, "/_sim/fail-bullet", {"count": 2, "mode": "500"})["count"] == 2
    for _ in range(2):
        status, reply = request(base, "/api/v1/bullet-public")
        assert status == 500 and reply["code"] == "500000"
    assert request(base, "/api/v1/bullet-public")[0] == 200
    post(base, "/_sim/fail-bullet", {"count": 1, "mode": "badjson"})
    status, reply = request(base, "/api/v1/bullet-public")
    assert status == 200 and isinstance(reply, str)  # not JSON
    assert bullet(base)["token"]


def test_silent_stops_pongs_and_ticks_until_ended(connect: Connect, base: str) -> None:
    client = connect()
    client.subscribe("PLGR-USDT")
    post(base, "/_sim/silent", {"seconds": 30})
    assert get_state(base)["silent"] is True
    client.ws.settimeout(0.2)
    for _ in range(50):  # a tick may have been on the wire already
        try:
            client.ws.recv()
        except websocket.WebSocketTimeoutException:
            break
    client.send({"id": "p-silent", "type": "ping"})
    client.assert_quiet(0.5)
    post(base, "/_sim/silent", {"seconds": 0})
    client.send({"id": "p-back", "type": "ping"})
    pong = client.recv_until(lambda f: f.get("type") == "pong")
    assert pong["id"] == "p-back"  # the pong owed during the silence is never sent
    client.ticks("PLGR-USDT", 1)


def test_silence_ends_by_itself(base: str) -> None:
    post(base, "/_sim/silent", {"seconds": 0.3})
    assert get_state(base)["silent"] is True
    wait_until(lambda: get_state(base)["silent"] is False, 3, interval=0.02, what="silence to end")


def test_drop_close_sends_close_frame(connect: Connect, base: str) -> None:
    client = connect()
    assert post(base, "/_sim/drop", {"mode": "close"})["dropped"] == 1
    client.ws.settimeout(RECV_TIMEOUT)
    for _ in range(100):
        opcode, data = client.ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            assert int.from_bytes(data[:2], "big") == 1001
            break
    else:
        pytest.fail("no close frame")
    wait_until(lambda: get_state(base)["connections"] == 0, 3, interval=0.02, what="connection to go")


def test_drop_reset_closes_without_close_frame(connect: Connect, base: str) -> None:
    client = connect()
    assert post(base, "/_sim/drop", {"mode": "reset"})["dropped"] == 1
    client.ws.settimeout(RECV_TIMEOUT)
    with pytest.raises((ConnectionError, websocket.WebSocketConnectionClosedException)):
        for _ in range(100):
            opcode, _ = client.ws.recv_data(control_frame=True)
            assert opcode != websocket.ABNF.OPCODE_CLOSE, "reset must not send a close frame"
    wait_until(lambda: get_state(base)["connections"] == 0, 3, interval=0.02, what="connection to go")


def test_malformed_frames_arrive_and_leave_books_alone(connect: Connect, base: str) -> None:
    client = connect()
    client.subscribe("PLGR-USDT")
    post(base, "/_sim/rate", {"rate": 0})
    client.ws.settimeout(0.2)
    for _ in range(50):
        try:
            client.ws.recv()
        except websocket.WebSocketTimeoutException:
            break
    before = get_state(base)["last"]
    answer = post(base, "/_sim/malformed", {"count": len(MALFORMED_KINDS)})
    assert answer["sent"] == len(MALFORMED_KINDS)
    frames = [client.recv_text() for _ in MALFORMED_KINDS]
    with pytest.raises(ValueError):
        json.loads(frames[0])
    parsed = [json.loads(text) for text in frames[1:]]
    assert isinstance(parsed[0], list)
    by_kind = dict(zip(MALFORMED_KINDS[1:], parsed, strict=True))
    assert "data" not in by_kind["missing_data"]
    assert by_kind["price_abc"]["data"]["price"] == "abc"
    assert by_kind["price_negative"]["data"]["price"] == "-1"
    assert by_kind["price_zero"]["data"]["price"] == "0"
    assert by_kind["price_nan"]["data"]["price"] == "NaN"
    assert by_kind["sequence_not_digits"]["data"]["sequence"] == "12a"
    assert by_kind["time_string"]["data"]["time"] == "x"
    last_seq = int(before["PLGR-USDT"]["sequence"])
    assert int(by_kind["sequence_out_of_order"]["data"]["sequence"]) < last_seq
    assert by_kind["unsubscribed_topic"]["topic"] != "/market/ticker:PLGR-USDT"
    assert by_kind["unknown_type"]["type"] not in {"message", "welcome", "pong", "ack", "error"}
    assert get_state(base)["last"] == before
    only_nan = post(base, "/_sim/malformed", {"count": 2, "kinds": ["price_nan"]})
    assert only_nan["sent"] == 2
    assert [json.loads(client.recv_text())["data"]["price"] for _ in range(2)] == ["NaN", "NaN"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_sim/rate", {"rate": -1}),
        ("/_sim/rate", {"rate": "fast"}),
        ("/_sim/rate", b"{not json"),
        ("/_sim/rate", [1]),
        ("/_sim/silent", {"seconds": True}),
        ("/_sim/drop", {"mode": "explode"}),
        ("/_sim/fail-bullet", {"count": 1, "mode": "404"}),
        ("/_sim/fail-bullet", {"count": 1.5}),
        ("/_sim/malformed", {"count": 1, "kinds": ["nope"]}),
        ("/_sim/sequence-reset", {"symbol": "PLGR-USDT", "start": 0}),
        ("/_sim/sequence-reset", {"symbol": "PLGR-USDT", "gap_ms": -1}),
    ],
)
def test_control_api_rejects_bad_input(base: str, path: str, body: object) -> None:
    status, reply = request(base, path, body)
    assert status == 400
    assert "error" in reply


# -- process behaviour --------------------------------------------------------------------


def test_idle_connection_is_closed_and_pings_keep_it_open() -> None:
    quick = Simulator(rate=1, ping_ms=(300, 200))
    try:
        data = bullet(quick.url)
        assert data["instanceServers"][0]["pingInterval"] == 300
        pinger = websocket.create_connection(ws_url(data, "pinger"), timeout=RECV_TIMEOUT)
        idle = websocket.create_connection(ws_url(bullet(quick.url), "idle"), timeout=RECV_TIMEOUT)
        assert json.loads(pinger.recv())["type"] == "welcome"
        assert json.loads(idle.recv())["type"] == "welcome"
        for index in range(8):  # 0.8 s, well past the 0.5 s idle limit
            pinger.send(json.dumps({"id": f"k{index}", "type": "ping"}))
            assert json.loads(pinger.recv())["type"] == "pong"
            time.sleep(0.1)
        opcode, payload = idle.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(payload[:2], "big") == 1008
        pinger.close()
        idle.close()
    finally:
        assert quick.stop() == 0


def test_sigterm_closes_clients_and_exits_zero() -> None:
    own = Simulator(rate=1, ping_ms=None)
    client = websocket.create_connection(ws_url(bullet(own.url), "c"), timeout=RECV_TIMEOUT)
    assert json.loads(client.recv())["type"] == "welcome"
    own.process.send_signal(signal.SIGTERM)
    opcode, payload = client.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(payload[:2], "big") == 1001
    assert own.process.proc.wait(5) == 0
    client.close()


@pytest.mark.parametrize(
    "args",
    [
        ["--start-price", "FOO-BAR=1.0"],
        ["--start-price", "PLGR-USDT=-1"],
        ["--rate", "-1"],
        ["--symbols", "plgr_usdt"],
        ["--ping-interval-ms", "0"],
    ],
)
def test_bad_command_line_exits_2(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pledge_ws.simulator", "--port", "0", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip()


# -- the exchange without sockets ---------------------------------------------------------
